"""WordTokenizer and CharTokenizer: splitting rules, options, bad input, datasets.map."""
import datasets
import pytest

from seqlab.core.errors import ConfigError, InputError
from seqlab.core.registry import stage_class
from seqlab.text.tokenizers import CharTokenizer, WordTokenizer


def test_whitespace_split_keeps_punctuation_attached():
    out = WordTokenizer()({"text": ["Hello,  world!\tBye", ""]})
    assert out == {"tokens": [["Hello,", "world!", "Bye"], []]}


def test_punct_split_separates_punctuation_but_keeps_words_and_numbers_whole():
    tok = WordTokenizer(split="punct")
    out = tok({"text": ['He said: "don\'t pay $3.50, it\'s state-of-the-art."']})["tokens"][0]
    assert out == ["He", "said", ":", '"', "don't", "pay", "$", "3.50", ",", "it's", "state-of-the-art", ".", '"']


def test_lowercase_and_number_normalisation():
    tok = WordTokenizer(lowercase=True, normalize_numbers=True)
    assert tok({"text": ["In 1984 Orwell had 2 cats"]})["tokens"][0] == ["in", "0000", "orwell", "had", "0", "cats"]
    # Off by default: the text is untouched.
    assert WordTokenizer()({"text": ["In 1984"]})["tokens"][0] == ["In", "1984"]


def test_columns_are_configurable_and_only_new_columns_are_returned():
    tok = WordTokenizer(input="sentence", output="words")
    assert tok.takes == ("sentence",) and tok.provides == ("words",)
    assert tok({"sentence": ["a b"], "label": [1]}) == {"words": [["a", "b"]]}


def test_non_string_row_is_an_input_error_naming_row_and_type():
    with pytest.raises(InputError, match=r"row 1 .*'text'.* int"):
        WordTokenizer()({"text": ["fine", 42]})
    with pytest.raises(InputError, match=r"row 0 .*NoneType"):
        WordTokenizer()({"text": [None]})


def test_config_errors():
    with pytest.raises(ConfigError, match="split"):
        WordTokenizer(split="spaces")
    with pytest.raises(ConfigError, match="lowercas"):
        WordTokenizer({"lowercas": True})
    with pytest.raises(ConfigError, match="both"):
        WordTokenizer(output="text")


def test_registry_and_config_round_trip():
    tok = WordTokenizer(split="punct", lowercase=True)
    data = tok.to_config()
    assert data["kind"] == "word_tokenizer"
    again = stage_class(data["kind"])(data["config"])
    text = {"text": ["A, B"]}
    assert again(text) == tok(text) == {"tokens": [["a", ",", "b"]]}


def test_char_tokenizer_text_and_per_token():
    assert CharTokenizer()({"text": ["ab c"]}) == {"chars": [["a", "b", " ", "c"]]}
    assert CharTokenizer(keep_spaces=False, lowercase=True)({"text": ["Ab c"]}) == {"chars": [["a", "b", "c"]]}
    per = CharTokenizer(input="tokens", output="token_chars", per_token=True)
    assert per({"tokens": [["EU", "re"], []]}) == {"token_chars": [[["E", "U"], ["r", "e"]], []]}
    with pytest.raises(InputError, match="row 0 .*token 1"):
        per({"tokens": [["ok", 3]]})
    with pytest.raises(InputError, match="row 0 .*list of string tokens"):
        per({"tokens": ["not a list"]})


def test_usable_in_datasets_map():
    ds = datasets.Dataset.from_dict({"text": ["The cat.", "A dog!"]})
    out = ds.map(WordTokenizer(split="punct", lowercase=True), batched=True)
    assert out[:]["tokens"] == [["the", "cat", "."], ["a", "dog", "!"]]
    assert out.column_names == ["text", "tokens"]


# -- grapheme clusters stay whole --------------------------------------------------------------------
FLAG, THUMB, FAMILY, KEYCAP = "🇩🇪", "👍🏽", "👨\u200d👩\u200d👧", "1\ufe0f\u20e3"
E_ACUTE = "e\u0301"  # e + combining acute accent (NFD)


def test_graphemes_are_what_a_reader_sees_as_one_character():
    from seqlab.text.tokenizers import graphemes

    assert graphemes(f"a{FLAG}{THUMB}{FAMILY}{E_ACUTE}{KEYCAP}") == ["a", FLAG, THUMB, FAMILY, E_ACUTE, KEYCAP]
    assert graphemes("🇩🇪🇫🇷") == ["🇩🇪", "🇫🇷"]  # regional indicators pair up in order
    assert graphemes("") == []


def test_word_tokenizer_never_splits_a_grapheme_cluster():
    punct = WordTokenizer(split="punct")
    assert punct.tokenize(f"Angela Merkel {FLAG} visited Paris.") == ["Angela", "Merkel", FLAG, "visited", "Paris", "."]
    assert punct.tokenize(f"great{THUMB}{FAMILY}!") == ["great", THUMB, FAMILY, "!"]
    assert punct.tokenize(f"caf{E_ACUTE} ok") == [f"caf{E_ACUTE}", "ok"]
    assert punct.tokenize(f"{FLAG}{FLAG}") == [FLAG, FLAG]
    # Every token is a run of whole graphemes of the text, in order.
    from seqlab.text.tokenizers import graphemes

    text = f"Hi {FAMILY}{THUMB}, caf{E_ACUTE}-au-lait {KEYCAP} {FLAG}."
    tokens = punct.tokenize(text)
    assert "".join(tokens) == text.replace(" ", "")
    assert [g for t in tokens for g in graphemes(t)] == [g for g in graphemes(text) if not g.isspace()]
    assert WordTokenizer().tokenize(f"Merkel {FLAG}") == ["Merkel", FLAG]


def test_char_tokenizer_gives_grapheme_clusters():
    assert CharTokenizer()({"text": [f"o{FLAG} {THUMB}"]}) == {"chars": [["o", FLAG, " ", THUMB]]}
    assert CharTokenizer(keep_spaces=False)({"text": [f"{E_ACUTE} {FAMILY}"]}) == {"chars": [[E_ACUTE, FAMILY]]}
    per = CharTokenizer(input="tokens", per_token=True)
    assert per({"tokens": [[f"caf{E_ACUTE}", FLAG]]}) == {"chars": [[["c", "a", "f", E_ACUTE], [FLAG]]]}
