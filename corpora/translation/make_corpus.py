"""Write the small English→German corpus in this folder: train.{en,de} and dev.{en,de}.

Simple descriptive sentences about people, animals, places and actions, generated from a
small hand-written bilingual grammar (lexicon, agreement and word-order rules below) written
for this project; nothing is taken from Multi30k or any other corpus.

The German side is built with real agreement rather than word-for-word substitution:

- articles and adjective endings by gender, number and case (strong / weak / mixed
  declension: "ein alter Mann", "einen roten Ball", "in einer blauen Jacke", "die kleinen
  Kinder", "zwei junge Frauen"), weak nouns ("den Jungen", "dem Polizisten");
- the verb agrees with the subject ("liest" / "lesen", "läuft" / "laufen"); the English
  progressive ("is reading") becomes the German simple present;
- German word order: subject, finite verb, time, place, then the object or the rest of
  the predicate ("Ein Kind lässt am Strand einen Drachen steigen", "Ein Mann wartet am
  Bahnhof auf den Bus", "Ein Mann geht im Park spazieren").

Selectional restrictions keep sentences sensible (animals do not read; only water
places for swimming; "frisst" for animals that eat). The dev sentences are all different
from the training sentences.

Run ``python corpora/translation/make_corpus.py`` to rewrite the files (the seed is fixed,
so the output is byte-for-byte the same).
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from pathlib import Path

SEED = 30
N_TRAIN = 400
N_DEV = 100


# ------------------------------------------------------------------------------- nouns
@dataclass(frozen=True)
class Noun:
    en: str
    en_pl: str
    gender: str  # m f n
    nom: str
    pl: str
    dat_pl: str
    #: Accusative/dative singular when they differ from the nominative (weak nouns).
    oblique: str | None = None
    kinds: frozenset = field(default_factory=frozenset)

    def form(self, case: str, plural: bool) -> str:
        if plural:
            return self.dat_pl if case == "dat" else self.pl
        if case == "nom" or self.oblique is None:
            return self.nom
        return self.oblique


def N(en, en_pl, gender, nom, pl, dat_pl=None, oblique=None, kinds=""):
    return Noun(en, en_pl, gender, nom, pl, dat_pl or pl, oblique, frozenset(kinds.split()))


PEOPLE = [
    N("man", "men", "m", "Mann", "Männer", "Männern", kinds="adult male"),
    N("woman", "women", "f", "Frau", "Frauen", kinds="adult female"),
    N("boy", "boys", "m", "Junge", "Jungen", oblique="Jungen", kinds="child male"),
    N("girl", "girls", "n", "Mädchen", "Mädchen", kinds="child female"),
    N("child", "children", "n", "Kind", "Kinder", "Kindern", kinds="child"),
    N("worker", "workers", "m", "Arbeiter", "Arbeiter", "Arbeitern", kinds="adult"),
    N("musician", "musicians", "m", "Musiker", "Musiker", "Musikern", kinds="adult"),
    N("cook", "cooks", "m", "Koch", "Köche", "Köchen", kinds="adult"),
    N("tourist", "tourists", "m", "Tourist", "Touristen", oblique="Touristen", kinds="adult"),
    N("student", "students", "m", "Student", "Studenten", oblique="Studenten", kinds="adult"),
    N("teacher", "teachers", "m", "Lehrer", "Lehrer", "Lehrern", kinds="adult"),
    N("police officer", "police officers", "m", "Polizist", "Polizisten", oblique="Polizisten", kinds="adult"),
]
ANIMALS = [
    N("dog", "dogs", "m", "Hund", "Hunde", "Hunden", kinds="dog pet"),
    N("cat", "cats", "f", "Katze", "Katzen", kinds="cat pet"),
    N("horse", "horses", "n", "Pferd", "Pferde", "Pferden", kinds="horse"),
    N("bird", "birds", "m", "Vogel", "Vögel", "Vögeln", kinds="bird"),
    N("cow", "cows", "f", "Kuh", "Kühe", "Kühen", kinds="farm"),
    N("sheep", "sheep", "n", "Schaf", "Schafe", "Schafen", kinds="farm"),
    N("duck", "ducks", "f", "Ente", "Enten", kinds="bird swimmer"),
]
THINGS = {n.en: n for n in [
    N("ball", "balls", "m", "Ball", "Bälle", "Bällen"),
    N("book", "books", "n", "Buch", "Bücher", "Büchern"),
    N("newspaper", "newspapers", "f", "Zeitung", "Zeitungen"),
    N("letter", "letters", "m", "Brief", "Briefe", "Briefen"),
    N("apple", "apples", "m", "Apfel", "Äpfel", "Äpfeln"),
    N("sandwich", "sandwiches", "n", "Sandwich", "Sandwiches"),
    N("cake", "cakes", "m", "Kuchen", "Kuchen"),
    N("fish", "fish", "m", "Fisch", "Fische", "Fischen"),
    N("flower", "flowers", "f", "Blume", "Blumen"),
    N("bag", "bags", "f", "Tasche", "Taschen"),
    N("box", "boxes", "f", "Kiste", "Kisten"),
    N("picture", "pictures", "n", "Bild", "Bilder", "Bildern"),
    N("car", "cars", "n", "Auto", "Autos"),
    N("bicycle", "bicycles", "n", "Fahrrad", "Fahrräder", "Fahrrädern"),
    N("boat", "boats", "n", "Boot", "Boote", "Booten"),
    N("camera", "cameras", "f", "Kamera", "Kameras"),
    N("umbrella", "umbrellas", "m", "Regenschirm", "Regenschirme", "Regenschirmen"),
    N("cup", "cups", "f", "Tasse", "Tassen"),
    N("stick", "sticks", "m", "Stock", "Stöcke", "Stöcken"),
    N("hat", "hats", "m", "Hut", "Hüte", "Hüten"),
]}
ANIMAL = {n.en: n for n in ANIMALS}

# ---------------------------------------------------------------------- declension
ARTICLE = {
    "indef": {"nom": {"m": "ein", "f": "eine", "n": "ein"}, "acc": {"m": "einen", "f": "eine", "n": "ein"},
              "dat": {"m": "einem", "f": "einer", "n": "einem"}},
    "def": {"nom": {"m": "der", "f": "die", "n": "das"}, "acc": {"m": "den", "f": "die", "n": "das"},
            "dat": {"m": "dem", "f": "der", "n": "dem"}},
}
#: Adjective endings after ein- (mixed declension) and der- (weak declension), singular.
ENDING = {
    "indef": {"nom": {"m": "er", "f": "e", "n": "es"}, "acc": {"m": "en", "f": "e", "n": "es"},
              "dat": {"m": "en", "f": "en", "n": "en"}},
    "def": {"nom": {"m": "e", "f": "e", "n": "e"}, "acc": {"m": "en", "f": "e", "n": "e"},
            "dat": {"m": "en", "f": "en", "n": "en"}},
}


@dataclass(frozen=True)
class Adjective:
    en: str
    stem: str  # German stem the endings attach to ("müd" + "e")


A = Adjective
PEOPLE_ADJ = [A("old", "alt"), A("young", "jung"), A("tall", "groß"), A("happy", "fröhlich"), A("tired", "müd")]
CHILD_ADJ = [A("little", "klein"), A("happy", "fröhlich"), A("tired", "müd")]
ANIMAL_ADJ = [A("small", "klein"), A("big", "groß"), A("black", "schwarz"), A("white", "weiß"), A("brown", "braun"),
              A("young", "jung")]
THING_ADJ = [A("red", "rot"), A("blue", "blau"), A("green", "grün"), A("yellow", "gelb"), A("old", "alt"),
             A("new", "neu"), A("big", "groß"), A("small", "klein"), A("white", "weiß")]
#: Food takes only the adjectives that suit it (no "blue apple", no "old cake").
FOOD_ADJ = {
    "apple": [A("red", "rot"), A("green", "grün"), A("big", "groß"), A("small", "klein")],
    "sandwich": [A("big", "groß"), A("small", "klein")],
    "cake": [A("big", "groß"), A("small", "klein")],
    "fish": [A("big", "groß"), A("small", "klein")],
}
COLOURS = [A("red", "rot"), A("blue", "blau"), A("green", "grün"), A("yellow", "gelb"), A("black", "schwarz"),
           A("white", "weiß"), A("brown", "braun")]


def en_article(det: str, next_word: str) -> str:
    if det == "def":
        return "the"
    return "an" if next_word[0] in "aeiou" else "a"


def np_en(noun: Noun, det: str, adj: Adjective | None = None) -> str:
    words = ([adj.en] if adj else []) + [noun.en]
    return " ".join([en_article(det, words[0])] + words)


def np_de(noun: Noun, det: str, case: str, adj: Adjective | None = None) -> str:
    """Singular noun phrase with article ``det`` (indef/def) in ``case``."""
    words = [ARTICLE[det][case][noun.gender]]
    if adj:
        words.append(adj.stem + ENDING[det][case][noun.gender])
    words.append(noun.form(case, plural=False))
    return " ".join(words)


NUMBERS = [("two", "zwei"), ("three", "drei"), ("several", "mehrere")]


def plural_np(noun: Noun, number: tuple[str, str] | None, adj: Adjective | None) -> tuple[str, str]:
    """Plural subject (nominative): a number word (strong endings) or the definite article (weak)."""
    if number is None:  # "the little children" / "die kleinen Kinder"
        en = " ".join(["the"] + ([adj.en] if adj else []) + [noun.en_pl])
        de = " ".join(["die"] + ([adj.stem + "en"] if adj else []) + [noun.pl])
    else:
        en = " ".join([number[0]] + ([adj.en] if adj else []) + [noun.en_pl])
        de = " ".join([number[1]] + ([adj.stem + "e"] if adj else []) + [noun.pl])
    return en, de


# ------------------------------------------------------------------------------- places
@dataclass(frozen=True)
class Place:
    en: str
    de: str
    kinds: frozenset


def P(en, de, kinds):
    return Place(en, de, frozenset(kinds.split()))


PLACES = [
    P("in the park", "im Park", "out animal"),
    P("on the street", "auf der Straße", "out street"),
    P("in the garden", "im Garten", "out animal rest"),
    P("on the grass", "auf dem Rasen", "out animal rest"),
    P("in the snow", "im Schnee", "out animal"),
    P("in the rain", "im Regen", "out street"),
    P("next to a tree", "neben einem Baum", "out animal"),
    P("under a tree", "unter einem Baum", "out animal rest"),
    P("in front of a house", "vor einem Haus", "out street animal"),
    P("in front of a church", "vor einer Kirche", "out street"),
    P("on a bridge", "auf einer Brücke", "out street"),
    P("on the beach", "am Strand", "out animal beach"),
    P("in a field", "auf einem Feld", "out animal farm"),
    P("at the market", "auf dem Markt", "out street market"),
    P("in the city", "in der Stadt", "out street"),
    P("on the sidewalk", "auf dem Gehweg", "out street"),
    P("at the station", "am Bahnhof", "out street"),
    P("in the forest", "im Wald", "out animal"),
    P("on a bench", "auf einer Bank", "rest bench"),
    P("in the kitchen", "in der Küche", "in kitchen"),
    P("in a restaurant", "in einem Restaurant", "in kitchen"),
    P("in a classroom", "in einem Klassenzimmer", "in"),
    P("on a stage", "auf einer Bühne", "in stage"),
    P("on a sofa", "auf einem Sofa", "in rest pet"),
    P("in a café", "in einem Café", "in"),
    P("in the living room", "im Wohnzimmer", "in rest pet"),
    P("in the water", "im Wasser", "water"),
    P("in a lake", "in einem See", "water"),
    P("in the sea", "im Meer", "water"),
    P("in a swimming pool", "in einem Schwimmbecken", "water"),
]
TIMES = [("in the morning", "am Morgen"), ("in the evening", "am Abend"), ("on a sunny day", "an einem sonnigen Tag"),
         ("on a cold day", "an einem kalten Tag")]
CLOTHES = [  # (English noun, German noun, gender, who may wear it)
    ("jacket", "Jacke", "f", "any"), ("shirt", "Hemd", "n", "any"), ("coat", "Mantel", "m", "any"),
    ("dress", "Kleid", "n", "female"), ("sweater", "Pullover", "m", "any"),
]
WITH = [  # (English, German, who may have it)
    ("with a hat", "mit einem Hut", "any"), ("with glasses", "mit Brille", "any"),
    ("with a backpack", "mit einem Rucksack", "any"), ("with a beard", "mit Bart", "adult"),
]


# ------------------------------------------------------------------------------- verbs
@dataclass(frozen=True)
class Verb:
    en: str  # -ing form, possibly with its fixed English object ("riding a bicycle")
    en_pl: str  # plural subjects ("riding bicycles")
    sg: str  # German finite verb, 3rd person singular
    pl: str  # … plural
    tail: str = ""  # what goes to the end of the German clause ("Fahrrad", "spazieren", "auf den Bus")
    subjects: str = "person"  # person | animal | both | or a noun kind ("dog pet")
    places: str = "out"  # place kinds allowed ("" = no place phrase)
    objects: tuple[str, ...] = ()  # transitive: the things (or animals) it takes
    plural_ok: bool = True


def V(en, sg, pl, tail="", subjects="person", places="out", objects=(), en_pl=None, plural_ok=True):
    return Verb(en, en_pl or en, sg, pl, tail, subjects, places, tuple(objects), plural_ok)


INTRANSITIVE = [
    V("running", "läuft", "laufen", subjects="both", places="out animal beach"),
    V("walking", "geht", "gehen", "spazieren", places="out beach"),
    V("sitting", "sitzt", "sitzen", subjects="both", places="out rest in bench"),
    V("standing", "steht", "stehen", subjects="both", places="out street animal"),
    V("sleeping", "schläft", "schlafen", subjects="both", places="rest pet"),
    V("lying", "liegt", "liegen", subjects="both", places="rest pet beach"),
    V("playing", "spielt", "spielen", subjects="both", places="out animal"),
    V("swimming", "schwimmt", "schwimmen", subjects="person dog swimmer horse", places="water"),
    V("dancing", "tanzt", "tanzen", places="stage street out in"),
    V("singing", "singt", "singen", places="stage street in out"),
    V("waiting", "wartet", "warten", subjects="both", places="street bench"),
    V("jumping", "springt", "springen", subjects="both", places="out animal"),
    V("laughing", "lacht", "lachen", places="out in"),
    V("working", "arbeitet", "arbeiten", subjects="adult", places="kitchen market street farm"),
    V("reading", "liest", "lesen", places="rest bench in"),
    V("eating", "isst", "essen", places="in kitchen bench rest"),
    V("eating", "frisst", "fressen", subjects="animal", places="animal farm"),
    V("cooking", "kocht", "kochen", subjects="adult", places="kitchen"),
    V("smiling", "lächelt", "lächeln", places="out in"),
]
FIXED = [
    V("riding a bicycle", "fährt", "fahren", "Fahrrad", en_pl="riding bicycles", places="out street"),
    V("playing the guitar", "spielt", "spielen", "Gitarre", places="stage street in rest"),
    V("playing soccer", "spielt", "spielen", "Fußball", places="out farm beach"),
    V("playing chess", "spielt", "spielen", "Schach", places="in rest"),
    V("drinking coffee", "trinkt", "trinken", "Kaffee", subjects="adult", places="in bench"),
    V("drinking water", "trinkt", "trinken", "Wasser", subjects="both", places="out"),
    V("taking a photo", "macht", "machen", "ein Foto", places="out street beach"),
    V("talking on the phone", "telefoniert", "telefonieren", places="street in bench"),
    V("waiting for the bus", "wartet", "warten", "auf den Bus", places="street"),
    V("selling fruit", "verkauft", "verkaufen", "Obst", subjects="adult", places="market"),
    V("climbing a tree", "klettert", "klettern", "auf einen Baum", subjects="child", places="out"),
    V("flying a kite", "lässt", "lassen", "einen Drachen steigen", places="beach farm"),
    V("building a sandcastle", "baut", "bauen", "eine Sandburg", subjects="child", places="beach"),
    V("jumping into the water", "springt", "springen", "ins Wasser", subjects="person dog", places=""),
    V("crossing the street", "überquert", "überqueren", "die Straße", subjects="both", places=""),
    V("looking out of a window", "schaut", "schauen", "aus einem Fenster", subjects="person cat", places=""),
]
TRANSITIVE = [
    V("reading", "liest", "lesen", places="rest bench in", objects=["book", "newspaper", "letter"]),
    V("carrying", "trägt", "tragen", subjects="person dog", places="out street",
      objects=["bag", "box", "ball", "stick", "umbrella"]),
    V("throwing", "wirft", "werfen", places="out beach", objects=["ball", "stick"]),
    V("catching", "fängt", "fangen", subjects="person dog", places="out beach", objects=["ball"]),
    V("eating", "isst", "essen", places="bench in rest", objects=["apple", "sandwich", "cake"]),
    V("eating", "frisst", "fressen", subjects="cat", places="animal", objects=["fish"], plural_ok=False),
    V("eating", "frisst", "fressen", subjects="horse farm", places="animal farm", objects=["apple"], plural_ok=False),
    V("holding", "hält", "halten", places="out street in", objects=["umbrella", "camera", "cup", "flower", "book", "hat"],
      plural_ok=False),
    V("painting", "malt", "malen", places="out in", objects=["picture"]),
    V("washing", "wäscht", "waschen", subjects="adult", places="street out", objects=["car", "dog"]),
    V("repairing", "repariert", "reparieren", subjects="adult", places="street out", objects=["car", "bicycle", "boat"]),
    V("buying", "kauft", "kaufen", places="market", objects=["apple", "flower", "newspaper", "cake", "fish"]),
    V("pushing", "schiebt", "schieben", places="street out", objects=["bicycle", "box", "car"]),
    V("watching", "beobachtet", "beobachten", subjects="person cat", places="out rest",
      objects=["bird", "dog", "horse", "duck"]),
    V("chasing", "jagt", "jagen", subjects="dog cat", places="out animal", objects=["cat", "bird", "duck"], plural_ok=False),
    V("feeding", "füttert", "füttern", places="out farm", objects=["dog", "cat", "horse", "bird", "duck", "cow", "sheep"]),
    V("hugging", "umarmt", "umarmen", places="out in", objects=["dog", "cat", "horse"], plural_ok=False),
    V("riding", "reitet", "reiten", subjects="adult child", places="out beach farm", objects=["horse"], plural_ok=False),
]


# ------------------------------------------------------------------------------- subjects
@dataclass
class Subject:
    en: str
    de: str
    plural: bool
    nouns: list  # the nouns (for selectional restrictions)


def _is_animal(noun: Noun) -> bool:
    return noun in ANIMALS


def fits(noun: Noun, subjects: str) -> bool:
    allowed = set(subjects.split())
    if "both" in allowed:
        return True
    if "person" in allowed and not _is_animal(noun):
        return True
    if "animal" in allowed and _is_animal(noun):
        return True
    return bool(allowed & noun.kinds)


def person_adjectives(noun: Noun) -> list[Adjective]:
    return CHILD_ADJ if "child" in noun.kinds else PEOPLE_ADJ


def adjectives_for(noun: Noun) -> list[Adjective]:
    return ANIMAL_ADJ if _is_animal(noun) else person_adjectives(noun)


def make_subject(rng: random.Random) -> Subject:
    roll = rng.random()
    pool = PEOPLE if rng.random() < 0.7 else ANIMALS
    noun = rng.choice(pool)
    adj = rng.choice(adjectives_for(noun)) if rng.random() < 0.45 else None
    if roll < 0.62:  # a/an … (the most common in descriptive captions)
        det = "indef" if rng.random() < 0.85 else "def"
        en, de = np_en(noun, det, adj), np_de(noun, det, "nom", adj)
        if not _is_animal(noun) and rng.random() < 0.3:  # what the person wears / has
            if rng.random() < 0.65:
                options = [c for c in CLOTHES if c[3] == "any" or c[3] in noun.kinds]
                cloth_en, cloth_de, gender, _ = rng.choice(options)
                colour = rng.choice(COLOURS)
                en += f" in {en_article('indef', colour.en)} {colour.en} {cloth_en}"
                de += f" in {ARTICLE['indef']['dat'][gender]} {colour.stem}{ENDING['indef']['dat'][gender]} {cloth_de}"
            else:
                w_en, w_de, _ = rng.choice([w for w in WITH if w[2] == "any" or (w[2] in noun.kinds and "female" not in noun.kinds)])
                en, de = f"{en} {w_en}", f"{de} {w_de}"
        return Subject(en, de, False, [noun])
    if roll < 0.9:  # two / three / several …, or the …
        number = rng.choice(NUMBERS) if rng.random() < 0.8 else None
        en, de = plural_np(noun, number, adj)
        return Subject(en, de, True, [noun])
    # a man and a woman …
    first, second = rng.sample(PEOPLE, 2) if pool is PEOPLE else rng.sample(ANIMALS, 2)
    en = f"{np_en(first, 'indef')} and {np_en(second, 'indef')}"
    de = f"{np_de(first, 'indef', 'nom')} und {np_de(second, 'indef', 'nom')}"
    return Subject(en, de, True, [first, second])


# ------------------------------------------------------------------------------- sentences
def place_for(rng: random.Random, kinds: str, subject: Subject) -> Place | None:
    allowed = set(kinds.split())
    options = [p for p in PLACES if p.kinds & allowed]
    if any(_is_animal(n) for n in subject.nouns):  # animals: no stations, cafés or benches; sofas for pets
        pets = all("pet" in n.kinds for n in subject.nouns)
        options = [p for p in options if p.kinds & {"animal", "water", "farm", "beach"} or (pets and "pet" in p.kinds)]
    return rng.choice(options) if options else None


def capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def make_sentence(rng: random.Random) -> tuple[str, str] | None:
    subject = make_subject(rng)
    be_en = "are" if subject.plural else "is"
    roll = rng.random()
    if roll < 0.06:  # "A dog is in the garden." / "Ein Hund ist im Garten."
        place = place_for(rng, "out animal rest in", subject)
        if place is None:
            return None
        de_verb = "sind" if subject.plural else "ist"
        return f"{capitalise(subject.en)} {be_en} {place.en}.", f"{capitalise(subject.de)} {de_verb} {place.de}."
    verbs = INTRANSITIVE if roll < 0.45 else FIXED if roll < 0.7 else TRANSITIVE
    verb = rng.choice(verbs)
    if not all(fits(n, verb.subjects) for n in subject.nouns):
        return None
    if subject.plural and not verb.plural_ok:
        return None
    obj_en = obj_de = ""
    if verb.objects:
        name = rng.choice(verb.objects)
        noun = THINGS.get(name) or ANIMAL[name]
        if noun in subject.nouns:
            return None
        adj = None
        if rng.random() < 0.4:
            adj = rng.choice(FOOD_ADJ.get(name, THING_ADJ) if name in THINGS else ANIMAL_ADJ)
        obj_en, obj_de = np_en(noun, "indef", adj), np_de(noun, "indef", "acc", adj)
    place = None
    if verb.places and rng.random() < 0.85:
        place = place_for(rng, verb.places, subject)
    time = rng.choice(TIMES) if rng.random() < 0.12 else None
    en = [capitalise(subject.en), be_en, verb.en_pl if subject.plural else verb.en]
    if obj_en:
        en.append(obj_en)
    if place:
        en.append(place.en)
    if time:
        en.append(time[0])
    # German: subject, finite verb, time, place, object / rest of the predicate.
    de = [capitalise(subject.de), verb.pl if subject.plural else verb.sg]
    if time:
        de.append(time[1])
    if place:
        de.append(place.de)
    if obj_de:
        de.append(obj_de)
    if verb.tail:
        de.append(verb.tail)
    return " ".join(en) + ".", " ".join(de) + "."


def generate(n: int, rng: random.Random, exclude: set[str]) -> list[tuple[str, str]]:
    pairs, seen = [], set(exclude)
    while len(pairs) < n:
        pair = make_sentence(rng)
        if pair is None or pair[0] in seen:
            continue
        seen.add(pair[0])
        pairs.append(pair)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = parser.parse_args()
    rng = random.Random(SEED)
    train = generate(N_TRAIN, rng, set())
    dev = generate(N_DEV, rng, {en for en, _ in train})
    out = Path(args.out)
    for name, pairs in (("train", train), ("dev", dev)):
        for side, index in (("en", 0), ("de", 1)):
            (out / f"{name}.{side}").write_text("".join(p[index] + "\n" for p in pairs), encoding="utf-8")
    print(f"wrote {len(train)} train and {len(dev)} dev sentence pairs to {out}")


if __name__ == "__main__":
    main()
