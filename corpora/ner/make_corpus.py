"""Write the small NER corpus in this folder: train.conll and dev.conll.

Sentences are news-like templates written for this project, filled with invented
person, company and club names and real place names. Every line is
``token POS chunk NER`` as in CoNLL-2003 files (POS and chunk are ``_`` here) with
IOB2 NER tags of the types PER, LOC, ORG and MISC; sentences are separated by a blank
line. Nothing is taken from CoNLL-2003 or any other corpus.

The dev set is not a copy of train: about one filler in five (names, places, clubs …)
and a handful of templates are kept out of train and used only in dev, and no dev
sentence equals a train sentence, so dev measures some generalisation to new names
and new contexts.

Run ``python corpora/ner/make_corpus.py`` to rewrite the files (the seed is fixed, so
the output is byte-for-byte the same).
"""
from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from pathlib import Path

SEED = 2024
N_TRAIN = 400
N_DEV = 100
HOLDOUT_EVERY = 5  # every 5th filler of a (shuffled) list appears only in dev

# ----------------------------------------------------------------------------- fillers
# Names are invented (first and last names combined at random); places are real.
FIRST_NAMES = """Angela Thomas Maria Jonas Amara Kenji Lucia Pedro Ingrid Samuel Fatima Oliver
Chiara Dmitri Aisha Marco Helena Tariq Yuki Rafael Sofia Emeka Nadia Lars Beatriz Hassan Claire
Mateo Ewa Kwame Leila Henrik Paola Arjun Greta Diego Mei Stefan Zanele Omar Ines Viktor Priya
Joao Astrid Felipe Noura Bruno Hana Tomasz Elif Gabriel Ana Karim Freya Luca Daniela Ibrahim
Rosa Anders Wanjiru Nikolai Carmen""".split()

LAST_NAMES = """Hoffmann Dupont Okafor Tanaka Moreno Lindqvist Novak Rossi Mensah Kowalski Haddad
Fischer Petrov Santos Nakamura Bianchi Andersen Mbeki Schulz Lefebvre Herrera Yilmaz Sato Keller
Dubois Adeyemi Costa Jansen Moretti Nowak Kariuki Vargas Berger Laurent Ibarra Eriksen Popescu
Ferreira Takahashi Weber Marchetti Olsen Abdi Romero Kuznetsov Fontaine Osei Brandt Silva
Horvath Martens Quintero Varga Aksoy Richter""".split()

# Harder surnames (particles, hyphens, apostrophes) so PER spans are not all one shape.
ODD_LAST_NAMES = ["van Dijk", "de Souza", "Al-Hamdan", "O'Neill", "von Arnim", "Da Silva", "Ben-Ami", "McAllister"]

CITIES = """Paris Berlin London Madrid Rome Lisbon Vienna Warsaw Prague Stockholm Oslo Helsinki
Athens Dublin Brussels Amsterdam Geneva Zurich Munich Hamburg Milan Barcelona Lyon Marseille
Istanbul Cairo Lagos Nairobi Accra Johannesburg Tokyo Osaka Seoul Beijing Shanghai Mumbai Delhi
Jakarta Manila Bangkok Sydney Melbourne Toronto Montreal Chicago Boston Lima Bogota Santiago""".split()
CITIES += ["New York", "Los Angeles", "Rio de Janeiro", "Buenos Aires", "Cape Town", "Hong Kong",
           "Kuala Lumpur", "Mexico City", "San Francisco", "Sao Paulo", "Addis Ababa", "Abu Dhabi"]

COUNTRIES = """France Germany Italy Spain Portugal Poland Austria Sweden Norway Finland Greece
Ireland Belgium Switzerland Turkey Egypt Nigeria Kenya Ghana Japan China India
Indonesia Thailand Australia Canada Brazil Argentina Chile Peru Colombia Mexico Morocco
Vietnam Denmark Hungary Romania Ukraine""".split()
COUNTRIES += ["South Africa", "the United States", "New Zealand", "South Korea", "the Czech Republic",
              "Saudi Arabia", "the United Kingdom", "Sri Lanka", "the Netherlands", "the Philippines"]

# News mentions a few capitals far more often than the rest: a share of city draws
# comes from this list, so names like Paris occur in many different sentences.
MAJOR_CITIES = ["Paris", "London", "Berlin", "New York", "Tokyo", "Madrid", "Rome", "Brussels"]

REGIONS = ["Bavaria", "Catalonia", "Tuscany", "Normandy", "Scotland", "Siberia", "Patagonia",
           "the Alps", "Flanders", "Andalusia", "Kashmir", "Borneo"]
RIVERS = ["Rhine", "Danube", "Elbe", "Loire", "Thames", "Nile", "Ganges", "Amazon", "Vistula", "Po"]

# (adjective, plural noun, language) — all MISC in CoNLL conventions.
NATIONALITIES = [
    ("German", "Germans", "German"), ("French", "French", "French"), ("Italian", "Italians", "Italian"),
    ("Spanish", "Spaniards", "Spanish"), ("Polish", "Poles", "Polish"), ("Swedish", "Swedes", "Swedish"),
    ("Greek", "Greeks", "Greek"), ("Dutch", "Dutch", "Dutch"), ("Turkish", "Turks", "Turkish"),
    ("Egyptian", "Egyptians", "Arabic"), ("Nigerian", "Nigerians", "Yoruba"), ("Kenyan", "Kenyans", "Swahili"),
    ("Japanese", "Japanese", "Japanese"), ("Chinese", "Chinese", "Mandarin"), ("Indian", "Indians", "Hindi"),
    ("Brazilian", "Brazilians", "Portuguese"), ("Argentine", "Argentines", "Spanish"),
    ("Australian", "Australians", "English"), ("Canadian", "Canadians", "French"),
    ("Mexican", "Mexicans", "Spanish"), ("Norwegian", "Norwegians", "Norwegian"),
    ("Portuguese", "Portuguese", "Portuguese"), ("Korean", "Koreans", "Korean"), ("Irish", "Irish", "Irish"),
    ("Austrian", "Austrians", "German"), ("Finnish", "Finns", "Finnish"), ("Ghanaian", "Ghanaians", "Twi"),
    ("Chilean", "Chileans", "Spanish"), ("Hungarian", "Hungarians", "Hungarian"),
]

# Invented companies, clubs and papers; a few real international bodies, used only
# in neutral sentences (visits, statements, figures).
COMPANIES = ["Norvik Holdings", "Altamar Energy", "Kestrel Airlines", "Brightwater Bank", "Solano Motors",
             "Veltra", "Helix Pharma", "Grauberg Steel", "Lumina Telecom", "Pacifica Foods", "Arcturus Systems",
             "Meridian Insurance", "Baltic Shipping Group", "Orion Chemicals", "Calder Mining", "Tessera",
             "Nordhavn Wind", "Quadrant Media", "Silverline Rail", "Cobalt Logistics", "Rivage Hotels",
             "Ferrox", "Amberfield Brewing", "Zentral Versicherung", "Haldane Securities", "Mistral Aerospace",
             "Kinetiq", "Porto Verde Textiles", "Sakura Robotics", "Atlas Cement"]
AIRLINES = ["Kestrel Airlines", "Aurora Air", "Transmeridian", "SkyNordic", "Condera Airways", "Pelican Air"]
INSTITUTIONS = ["United Nations", "European Union", "World Bank", "Red Cross", "International Monetary Fund",
                "World Health Organization", "European Commission", "African Union", "Council of Europe",
                "World Food Programme", "International Labour Organization"]
PARTIES = ["Green Party", "Social Democrats", "Liberal Party", "People 's Party", "Labour Party", "Christian Democrats",
           "National Alliance", "Progress Party"]
CLUB_STEMS = ["Eastbridge", "Valmont", "Harrowgate", "Castelo", "Dunmore", "Riverside", "Kingsport", "Alder Vale",
              "Santa Clara", "Nordstrand", "Marlow", "Westhaven", "Belmonte", "Stonefield"]
CLUB_SUFFIXES = ["Rovers", "United", "Athletic", "FC", "City", "Wanderers", "SC", "Albion"]
PAPERS = ["Daily Courier", "Morning Ledger", "Evening Standard-Post", "Northern Gazette", "Corriere Nuovo",
          "Tageskurier", "Weekly Observer"]
SPORT_EVENTS = ["World Cup", "Olympic Games", "Tour de France", "Champions League", "Australian Open",
                "Paralympic Games", "Africa Cup of Nations", "Winter Olympics", "Davis Cup", "Commonwealth Games",
                "Asian Games", "Copa America"]
EVENTS = SPORT_EVENTS + ["Eurovision Song Contest", "Venice Film Festival", "Frankfurt Book Fair", "Salzburg Festival"]
PRIZES = ["Nobel Prize in Physics", "Pulitzer Prize", "Booker Prize", "Fields Medal", "Palme d'Or",
          "Nobel Peace Prize", "Golden Bear"]
PRODUCTS = ["Falcon X2", "Aero 500", "PixelPad Pro", "Stratos", "Nova S7", "Tundra GT"]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
TOPICS = ["climate models", "protein folding", "quantum sensors", "malaria vaccines", "soil bacteria",
          "deep-sea currents"]
JOBS = ["minister", "spokesman", "spokeswoman", "director", "coach", "economist", "lawyer", "senator"]

# ----------------------------------------------------------------------------- templates
# Slots: {PER} full name, {LAST} surname, {CITY} {COUNTRY} {REGION} {RIVER} (LOC), {COMPANY}
# {AIRLINE} {INST} {PARTY} {CLUB} {PAPER} {UNIV} {EXCHANGE} (ORG), {NAT} {NATS} {LANG} {EVENT}
# {SPORTEVENT} {PRIZE} {PRODUCT} (MISC); the rest are O: numbers, days, months, money …
TEMPLATES = [
    # politics and world news
    "{PER} , the {NAT} foreign minister , arrived in {CITY} on {DAY} for two days of talks .",
    "{PER} visited {CITY} on {DAY} and met local business leaders .",
    "{PER} flew to {CITY} on {DAY} for talks with {PER} .",
    "{PER} met {PER} in {CITY} to discuss trade between {COUNTRY} and {COUNTRY} .",
    "The {NAT} government said on {DAY} it would send {NUM} aid workers to {COUNTRY} .",
    "Officials from the {INST} will visit {CITY} next week , a spokesman said .",
    '{PER} told reporters in {CITY} that the talks had been " very constructive " .',
    "{LAST} , who has led the {PARTY} since {YEAR} , is expected to stand again .",
    "Thousands of people marched through central {CITY} on {DAY} to protest against the new tax .",
    "Voters in {COUNTRY} go to the polls on {MONTH} {DATE} to elect a new parliament .",
    "The {INST} said {NUM} people had been displaced by flooding in northern {COUNTRY} .",
    "{COUNTRY} and {COUNTRY} signed a border agreement in {CITY} on {DAY} .",
    "Speaking in {CITY} , {PER} said the {PARTY} would not join a coalition .",
    "{NAT} Prime Minister {PER} will travel to {CITY} for the summit .",
    "President {PER} of {COUNTRY} welcomed the decision .",
    "The ambassador was summoned to the foreign ministry in {CITY} on {DAY} .",
    "It was not immediately clear how many people were hurt .",
    "Police said the two men were arrested late on {DAY} .",
    "Two {NAT} soldiers were injured in an explosion near {CITY} , the army said .",
    "The {INST} has urged {COUNTRY} to release the {NUM} detained journalists .",
    "{NAT} and {NAT} officials will meet in {CITY} on {DAY} .",
    "{CITY} 's mayor , {PER} , opened the new bridge on {DAY} .",
    "{PER} was appointed head of the {INST} office in {CITY} in {MONTH} {YEAR} .",
    "The {PAPER} newspaper reported that {PER} had resigned as {JOB} .",
    '" We are very disappointed , " said {PER} , a {JOB} for the {PARTY} .',
    "Parliament approved the budget by {SEATS} votes to {SEATS} .",
    "{PER} , {AGE} , was born in {CITY} and moved to {COUNTRY} in {YEAR} .",
    "About {POP} {NATS} live in {CITY} , according to the {INST} .",
    "The {NAT} embassy in {CITY} was closed on {DAY} after a security alert .",
    "A magnitude {MAG} earthquake struck off the coast of {COUNTRY} on {DAY} .",
    "The {RIVER} burst its banks near {CITY} after a week of heavy rain .",
    "Heavy snow cut off dozens of villages in {REGION} on {DAY} .",
    "Rescue teams were still searching for survivors late on {DAY} .",
    "The trial is expected to last {SMALL} weeks .",
    # business
    "Shares in {COMPANY} rose {PCT} percent to {PRICE} euros in early trading .",
    "{COMPANY} said on {DAY} it would cut {NUM} jobs at its plant near {CITY} .",
    "{COMPANY} agreed to buy {COMPANY} for {MONEY} , the companies said in a joint statement .",
    "The {COMPANY} chief executive , {PER} , said profits had doubled in {YEAR} .",
    "{PER} , an analyst at {COMPANY} in {CITY} , expected further losses .",
    "The central bank left interest rates unchanged at {PCT} percent .",
    "Net profit fell to {MONEY} in the first half from {MONEY} a year earlier .",
    "Inflation in {COUNTRY} slowed to {PCT} percent in {MONTH} , the statistics office said .",
    "{COMPANY} shares closed {PCT} percent lower on the {EXCHANGE} .",
    "Oil prices climbed above {PRICE} dollars a barrel on {DAY} .",
    "{COMPANY} , based in {CITY} , makes parts for the {NAT} car industry .",
    "Exports to {COUNTRY} rose {PCT} percent to {MONEY} in the third quarter .",
    "{COUNTRY} 's economy grew by {PCT} percent last year , the {INST} said .",
    "{COMPANY} launched the {PRODUCT} at a trade fair in {CITY} on {DAY} .",
    "He said the {NAT} market accounted for {PCT} percent of sales .",
    "Flights between {CITY} and {CITY} were cancelled after a strike by {AIRLINE} pilots .",
    "The deal still needs approval from regulators in {COUNTRY} .",
    # sport
    "{CLUB} beat {CLUB} {SCORE} in the {NAT} league on {DAY} .",
    "{PER} scored twice as {CLUB} won {SCORE} away at {CLUB} .",
    "{PER} of {COUNTRY} won the 100 metres in {TIME} seconds .",
    "SOCCER - {CLUB} BEAT {CLUB} {SCORE} .",
    "TENNIS - {LAST} THROUGH TO {CITY} SEMI-FINALS .",
    "{PER} ( {COUNTRY} ) {TIME}",
    "{NAT} striker {PER} has joined {CLUB} on a three-year contract .",
    "The {EVENT} will be held in {CITY} in {YEAR} .",
    "{COUNTRY} qualified for the {SPORTEVENT} after a {SCORE} win over {COUNTRY} .",
    "{PER} , the {NAT} champion , withdrew from the {SPORTEVENT} with a knee injury .",
    "{LAST} finished third , {SECONDS} seconds behind the winner .",
    "The match was abandoned because of heavy rain .",
    '" I think we can still win the title , " {LAST} said .',
    "Fans of {CLUB} celebrated in the streets of {CITY} until dawn .",
    "{PER} , {PER} and {PER} were named in the squad for the {SPORTEVENT} .",
    "{CLUB} coach {PER} was fined {FINE} for comments made after the game .",
    # culture and science
    "The film , shot in {CITY} and {CITY} , opens in {NAT} cinemas in {MONTH} .",
    "{PER} won the {PRIZE} for research on {TOPIC} .",
    "Researchers at the {UNIV} said the vaccine was {EFFICACY} percent effective .",
    "The novel has been translated into {LANG} and {LANG} .",
    "Temperatures in {CITY} reached {TEMP} degrees on {DAY} , the highest since {YEAR} .",
    "Tickets went on sale on {DAY} at {PRICE} euros each .",
    "The exhibition moves to {CITY} in {MONTH} after three months in {CITY} .",
    "{PER} will conduct the orchestra at its first concert in {CITY} since {YEAR} .",
]

# Kept out of train: dev sentences from these test contexts the model has not seen.
DEV_ONLY_TEMPLATES = [
    "{PER} arrived in {CITY} late on {DAY} after a long delay .",
    "The concert in {CITY} drew a crowd of about {NUM} .",
    "{COMPANY} denied that it planned to move its headquarters to {CITY} .",
    "{NAT} police arrested {NUM} people after the match between {CLUB} and {CLUB} .",
    "Asked about the report , {LAST} declined to comment .",
    "Heavy snow closed several roads in the mountains on {DAY} .",
    "{PER} will be replaced by {PER} , the {INST} said in a statement .",
    "The {EVENT} attracted visitors from {COUNTRY} , {COUNTRY} and {COUNTRY} .",
]

# Slot → entity type; slots not listed are O.
SLOT_TYPES = {
    "PER": "PER", "LAST": "PER",
    "CITY": "LOC", "COUNTRY": "LOC", "REGION": "LOC", "RIVER": "LOC",
    "COMPANY": "ORG", "AIRLINE": "ORG", "INST": "ORG", "PARTY": "ORG", "CLUB": "ORG", "PAPER": "ORG", "UNIV": "ORG", "EXCHANGE": "ORG",
    "NAT": "MISC", "NATS": "MISC", "LANG": "MISC", "EVENT": "MISC", "PRIZE": "MISC", "PRODUCT": "MISC", "SPORTEVENT": "MISC",
}
# Inside a span the article "the" of REGION (the Alps) stays O, as in CoNLL.
_SLOT = re.compile(r"\{([A-Z]+)\}")


def split_holdout(items: list, rng: random.Random, pinned: tuple = ()) -> tuple[list, list]:
    """(train items, all items): every HOLDOUT_EVERY-th item (after a shuffle) is dev-only."""
    order = list(items)
    rng.shuffle(order)
    held = {x for i, x in enumerate(order) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 and x not in pinned}
    return [x for x in items if x not in held], list(items)


class Fillers:
    """Draws slot values for one split (train uses the non-held-out lists)."""

    def __init__(self, rng: random.Random, pools: dict[str, list]):
        self.rng = rng
        self.pools = pools

    def person(self) -> str:
        rng, p = self.rng, self.pools
        first = rng.choice(p["first"])
        roll = rng.random()
        if roll < 0.10:
            return f"{first} {rng.choice(p['odd_last'])}"
        if roll < 0.16:
            return f"{first} {rng.choice('ABCDEFGHJKLMNPRST')}. {rng.choice(p['last'])}"
        return f"{first} {rng.choice(p['last'])}"

    def club(self) -> str:
        rng, p = self.rng, self.pools
        stem = rng.choice(p["club_stem"] + p["city"][:10])  # some clubs carry a city name
        return f"{stem} {rng.choice(CLUB_SUFFIXES)}"

    def value(self, slot: str) -> str:
        rng, p = self.rng, self.pools
        if slot == "PER":
            return self.person()
        if slot == "LAST":
            return rng.choice(p["last"] + p["odd_last"][:2])
        if slot == "CLUB":
            return self.club()
        if slot == "UNIV":
            return rng.choice([f"University of {rng.choice(p['city'])}", f"{rng.choice(p['city'])} Institute of Technology",
                               f"{rng.choice(p['last'])} Institute"])
        if slot == "EXCHANGE":
            return f"{rng.choice(p['city'])} Stock Exchange"
        if slot in ("NAT", "NATS", "LANG"):
            adj, plural, lang = rng.choice(p["nat"])
            return {"NAT": adj, "NATS": plural, "LANG": lang}[slot]
        if slot == "CITY" and rng.random() < 0.4:
            return rng.choice(MAJOR_CITIES)
        simple = {"CITY": "city", "COUNTRY": "country", "REGION": "region", "RIVER": "river", "COMPANY": "company", "AIRLINE": "airline",
                  "INST": "inst", "PARTY": "party", "PAPER": "paper", "EVENT": "event", "SPORTEVENT": "sportevent", "PRIZE": "prize",
                  "PRODUCT": "product"}
        if slot in simple:
            return rng.choice(p[simple[slot]])
        # O slots: numbers and dates in a few realistic shapes
        if slot == "NUM":
            return rng.choice([str(rng.randint(2, 60)), str(rng.randint(100, 999)), f"{rng.randint(1, 99)},{rng.randint(0, 999):03d}"])
        if slot == "POP":
            return f"{rng.randint(2, 250)},{rng.choice(['000', '500'])}"
        if slot == "EFFICACY":
            return str(rng.randint(55, 95))
        if slot == "SMALL":
            return rng.choice(["two", "three", "four", "six", "eight", str(rng.randint(2, 12))])
        if slot == "SECONDS":
            return f"{rng.randint(0, 59)}.{rng.randint(0, 9)}"
        if slot == "TEMP":
            return str(rng.randint(31, 46))
        if slot == "SEATS":
            return str(rng.randint(12, 420))
        if slot == "PCT":
            return f"{rng.randint(0, 12)}.{rng.randint(1, 9)}"
        if slot == "PRICE":
            return f"{rng.randint(5, 150)}.{rng.randint(0, 99):02d}"
        if slot == "MONEY":
            size, currency = rng.choice(["million", "million", "billion"]), rng.choice(["euros", "dollars", "pounds"])
            amount = f"{rng.randint(1, 9)}.{rng.randint(1, 9)}" if size == "billion" or rng.random() < 0.3 else str(rng.randint(2, 900))
            return f"{amount} {size} {currency}"
        if slot == "FINE":
            return f"{rng.randint(2, 90)},000 {rng.choice(['euros', 'dollars', 'pounds'])}"
        if slot == "SCORE":
            loser = rng.randint(0, 3)  # scores follow "beat" / "win", so the first side leads
            return f"{loser + rng.randint(1, 3)}-{loser}"
        if slot == "TIME":
            return rng.choice([f"9.{rng.randint(80, 99)}", f"10.{rng.randint(0, 49):02d}"])
        if slot == "YEAR":
            return str(rng.randint(1989, 2023))
        if slot == "DATE":
            return str(rng.randint(1, 28))
        if slot == "AGE":
            return str(rng.randint(19, 84))
        if slot == "MAG":
            return f"{rng.randint(4, 7)}.{rng.randint(0, 9)}"
        if slot == "DAY":
            return rng.choice(DAYS)
        if slot == "MONTH":
            return rng.choice(MONTHS)
        if slot == "TOPIC":
            return rng.choice(TOPICS)
        if slot == "JOB":
            return rng.choice(JOBS)
        raise KeyError(f"template slot {{{slot}}} has no filler")


def realise(template: str, fill: Fillers) -> list[tuple[str, str]]:
    """One sentence as (token, IOB2 tag) pairs; the same slot twice gets different values."""
    first = template.split(" ", 1)[0]
    upper = len(first) > 1 and first.isalpha() and first.isupper()  # "SOCCER - ..." headlines
    used: dict[str, set] = {}
    pairs: list[tuple[str, str]] = []
    for piece in template.split(" "):
        match = _SLOT.fullmatch(piece)
        if not match:
            pairs.append((piece, "O"))
            continue
        slot = match.group(1)
        seen = used.setdefault(slot, set())
        value = fill.value(slot)
        for _ in range(20):  # "France and France" reads wrong; redraw
            if value not in seen:
                break
            value = fill.value(slot)
        seen.add(value)
        kind = SLOT_TYPES.get(slot)
        tokens = value.split(" ")
        if kind and tokens[0] == "the":  # "the Alps": the article is not part of the name
            pairs.append(("the", "O"))
            tokens = tokens[1:]
        for i, token in enumerate(tokens):
            pairs.append((token, "O" if kind is None else f"{'B' if i == 0 else 'I'}-{kind}"))
    pairs[0] = (pairs[0][0][:1].upper() + pairs[0][0][1:], pairs[0][1])  # "the Netherlands ..." opens a sentence
    if upper:  # headline style: everything upper-case, as wire headlines are
        pairs = [(t.upper(), tag) for t, tag in pairs]
    return pairs


def pools_for(rng: random.Random) -> tuple[dict, dict]:
    """(train pools, dev pools): dev sees every filler, train misses the held-out ones."""
    lists = {
        "first": FIRST_NAMES, "last": LAST_NAMES, "odd_last": ODD_LAST_NAMES, "city": CITIES,
        "country": COUNTRIES, "region": REGIONS, "river": RIVERS, "nat": NATIONALITIES, "company": COMPANIES, "airline": AIRLINES,
        "inst": INSTITUTIONS, "sportevent": SPORT_EVENTS, "party": PARTIES, "club_stem": CLUB_STEMS, "paper": PAPERS, "event": EVENTS,
        "prize": PRIZES, "product": PRODUCTS,
    }
    pinned = ("Angela", *MAJOR_CITIES, "Germany", "France")
    train, dev = {}, {}
    for name, items in lists.items():
        train[name], dev[name] = split_holdout(items, rng, pinned)
    return train, dev


def generate(seed: int = SEED, n_train: int = N_TRAIN, n_dev: int = N_DEV):
    """(train sentences, dev sentences), each a list of (token, tag) lists."""
    rng = random.Random(seed)
    train_pools, dev_pools = pools_for(rng)
    dev_only = list(DEV_ONLY_TEMPLATES)
    train_fill, dev_fill = Fillers(rng, train_pools), Fillers(rng, dev_pools)

    def draw(templates, fill, n, exclude):
        out, seen = [], set(exclude)
        order = []
        while len(out) < n:
            if not order:  # go through the templates in shuffled rounds so every one is used
                order = list(templates)
                rng.shuffle(order)
            sentence = realise(order.pop(), fill)
            key = " ".join(t for t, _ in sentence)
            if key in seen:
                continue
            seen.add(key)
            out.append(sentence)
        return out, seen

    train, train_keys = draw(TEMPLATES, train_fill, n_train, ())
    dev, _ = draw(TEMPLATES + dev_only, dev_fill, n_dev, train_keys)
    return train, dev


def to_conll(sentences) -> str:
    return "".join("".join(f"{tok} _ _ {tag}\n" for tok, tag in s) + "\n" for s in sentences)


def stats(sentences) -> str:
    kinds: Counter = Counter()
    for s in sentences:
        kinds.update(tag[2:] for _, tag in s if tag.startswith("B-"))
    tokens = sum(len(s) for s in sentences)
    empty = sum(all(tag == "O" for _, tag in s) for s in sentences)
    per_kind = ", ".join(f"{k} {kinds[k]}" for k in ("PER", "LOC", "ORG", "MISC"))
    return f"{len(sentences)} sentences, {tokens} tokens, {sum(kinds.values())} entities ({per_kind}), {empty} without entities"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder to write into")
    args = parser.parse_args(argv)
    train, dev = generate()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.conll").write_text(to_conll(train), encoding="utf-8")
    (args.out / "dev.conll").write_text(to_conll(dev), encoding="utf-8")
    print("train:", stats(train))
    print("dev:  ", stats(dev))


if __name__ == "__main__":
    main()
