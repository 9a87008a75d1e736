"""Vocabulary: specials, frequency order, unknowns, file escaping; VocabularyStage."""
import datasets
import pytest

from seqlab.core.errors import ConfigError, DataError, InputError, NotFittedError
from seqlab.text.vocab import (
    BOS, EOS, PAD, UNK, Vocabulary, VocabularyStage, escape_token, read_token_file, unescape_token,
)


def test_specials_take_ids_0_to_3_and_tokens_follow_by_frequency():
    v = Vocabulary.build([["b", "a", "c"], ["a", "c", "a"]])
    assert v.tokens[:4] == [PAD, UNK, BOS, EOS]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    # a: 3, c: 2, b: 1
    assert v.tokens[4:] == ["a", "c", "b"]
    assert v.token_to_id("a") == 4 and v.id_to_token(6) == "b"


def test_ties_keep_first_occurrence_order():
    v = Vocabulary.build([["z", "y"], ["x", "y", "z", "x"]])  # all three twice
    assert v.tokens[4:] == ["z", "y", "x"]
    # Same corpus, same ids, every time.
    assert Vocabulary.build([["z", "y"], ["x", "y", "z", "x"]]) == v


def test_min_freq_and_max_size():
    rows = [["a", "a", "a", "b", "b", "c"]]
    assert Vocabulary.build(rows, min_freq=2).tokens[4:] == ["a", "b"]
    assert Vocabulary.build(rows, max_size=1).tokens[4:] == ["a"]
    assert len(Vocabulary.build(rows, specials=False)) == 3
    with pytest.raises(DataError, match="min_freq=5"):
        Vocabulary.build(rows, min_freq=5)
    with pytest.raises(ConfigError):
        Vocabulary.build(rows, min_freq=0)


def test_encode_decode_and_unknowns():
    v = Vocabulary.build([["the", "cat"]])
    assert v.encode(["the", "dog", "cat"]) == [4, 1, 5]
    assert v.decode([4, 1, 5]) == ["the", UNK, "cat"]
    assert "cat" in v and "dog" not in v
    with pytest.raises(InputError, match="outside"):
        v.decode([99])
    bare = Vocabulary.build([["x"]], specials=False)
    assert bare.unk_id is None
    with pytest.raises(InputError, match="no <unk>"):
        bare.encode(["y"])


def test_empty_corpus_is_a_data_error():
    with pytest.raises(DataError, match="no tokens"):
        Vocabulary.build([])
    with pytest.raises(DataError, match="no tokens"):
        Vocabulary.build([[], []])
    with pytest.raises(DataError, match="row 0 .*str"):
        Vocabulary.build(["not tokenized"])


ODD = ["plain", "with space", "new\nline", "tab\there", "back\\slash", "", "\\e", "\\n", "cr\r", "é中\u2028x", " "]


@pytest.mark.parametrize("token", ODD)
def test_escape_round_trip(token):
    line = escape_token(token)
    assert "\n" not in line and "\r" not in line
    assert unescape_token(line) == token


def test_save_load_keeps_ids_and_odd_tokens(tmp_path):
    v = Vocabulary.build([ODD, ["plain"]])
    path = tmp_path / "vocab.txt"
    v.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[:5] == [PAD, UNK, BOS, EOS, "plain"]
    assert text.count("\n") == len(v)  # one line per token
    back = Vocabulary.load(path)
    assert back == v and back.tokens == v.tokens
    assert back.encode(ODD) == v.encode(ODD)
    assert back.has_specials


def test_bad_vocab_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        Vocabulary.load(tmp_path / "empty.txt")
    (tmp_path / "dup.txt").write_bytes(b"a\nb\na\n")
    with pytest.raises(DataError, match="twice"):
        Vocabulary.load(tmp_path / "dup.txt")
    (tmp_path / "latin.txt").write_bytes(b"a\ncaf\xe9\n")
    with pytest.raises(DataError, match="line 2.*UTF-8"):
        read_token_file(tmp_path / "latin.txt")
    (tmp_path / "esc.txt").write_bytes(b"a\\q\n")
    with pytest.raises(DataError, match="line 1.*bad escape"):
        read_token_file(tmp_path / "esc.txt")


def test_stage_fit_map_bos_eos_and_state(tmp_path):
    ds = datasets.Dataset.from_dict({"tokens": [["a", "b"], ["a", "c"]]})
    stage = VocabularyStage(add_bos=True, add_eos=True)
    with pytest.raises(NotFittedError):
        stage({"tokens": [["a"]]})
    stage.fit(ds)
    assert stage({"tokens": [["a", "zzz"], []]}) == {"input_ids": [[2, 4, 1, 3], [2, 3]]}
    stage.save_state(tmp_path)
    again = VocabularyStage(stage.to_config()["config"])
    again.load_state(tmp_path)
    assert again.fitted and again.vocab == stage.vocab
    mapped = ds.map(again, batched=True)
    assert mapped[:]["input_ids"] == [[2, 4, 5, 3], [2, 4, 6, 3]]


def test_stage_errors():
    with pytest.raises(DataError, match="no column 'tokens'"):
        VocabularyStage().fit({"text": [["a"]]})
    with pytest.raises(DataError, match="no tokens"):
        VocabularyStage().fit({"tokens": []})
    stage = VocabularyStage().fit({"tokens": [["a"]]})
    with pytest.raises(InputError, match="row 1 .*str"):
        stage({"tokens": [["a"], "a b"]})
    with pytest.raises(ConfigError, match="max_size"):
        VocabularyStage(max_size=0)
