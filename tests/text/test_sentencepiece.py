"""SentencePieceTokenizer: lossless round trip, seqlab's special ids, files, bad corpora."""
import pickle
from pathlib import Path

import datasets
import pytest

from seqlab.core.errors import ConfigError, DataError, InputError, NotFittedError
from seqlab.text.sentencepiece import SentencePieceTokenizer

REPO = Path(__file__).resolve().parents[2]


def corpus_lines() -> list[str]:
    """The project's sentiment corpora if the repository has them, else gensim's Lee corpus."""
    lines = []
    for path in sorted((REPO / "corpora" / "sentiment").glob("**/*.tsv")):
        rows = path.read_text(encoding="utf-8").splitlines()[1:]
        lines += [r.split("\t")[0] for r in rows if r.strip()]
    if not lines:
        from gensim.test.utils import datapath

        lines = [l for l in Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines() if l.strip()]
    return lines


@pytest.fixture(scope="module")
def corpus():
    return {"text": corpus_lines()}


@pytest.fixture(scope="module")
def unigram(corpus):
    return SentencePieceTokenizer(vocab_size=300, model_type="unigram").fit(corpus)


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_round_trip_on_the_corpus(corpus, model_type, unigram):
    sp = unigram if model_type == "unigram" else SentencePieceTokenizer(vocab_size=300, model_type="bpe").fit(corpus)
    assert sp.vocab_size == 300
    ids = sp({"text": corpus["text"]})["input_ids"]
    # Default normalisation collapses runs of white space; everything else comes back.
    assert [sp.decode(x) for x in ids] == [" ".join(t.split()) for t in corpus["text"]]
    assert all(1 not in x for x in ids)  # character_coverage 1.0: no <unk> on the training text
    # Subwords compress: clearly fewer pieces than characters.
    assert sum(map(len, ids)) < 0.6 * sum(len(t) for t in corpus["text"])


def test_identity_normalisation_keeps_white_space_exactly():
    texts = ["  two  spaces ", "Tab\tand ﬁ ligature"] * 10
    sp = SentencePieceTokenizer(
        vocab_size=40, model_type="bpe", normalization="identity", remove_extra_whitespaces=False
    ).fit({"text": texts})
    assert [sp.decode(sp.encode(t)) for t in texts[:2]] == texts[:2]
    nfkc = SentencePieceTokenizer(vocab_size=40, model_type="bpe").fit({"text": texts})
    assert nfkc.decode(nfkc.encode(texts[1])) == "Tab and fi ligature"  # NFKC unfolds the ligature


def test_byte_fallback_is_lossless_for_unseen_characters(corpus):
    with pytest.raises(ConfigError, match="too small .*byte_fallback"):
        SentencePieceTokenizer(vocab_size=100, model_type="bpe", byte_fallback=True).fit(corpus)
    sp = SentencePieceTokenizer(vocab_size=400, model_type="bpe", byte_fallback=True).fit(corpus)
    plain = SentencePieceTokenizer(vocab_size=100, model_type="bpe").fit(corpus)
    assert sp.decode(sp.encode("unseen: Ω")) == "unseen: Ω"
    assert plain.unk_id in plain.encode("Ω") and plain.decode(plain.encode("Ω")) != "Ω"


def test_special_ids_user_symbols_pieces_and_bos_eos(corpus):
    sp = SentencePieceTokenizer(
        vocab_size=200, model_type="bpe", user_symbols=["<sep>"], output_type="pieces", add_bos=True, add_eos=True,
        output="pieces",
    ).fit(corpus)
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "<bos>", "<eos>", "<sep>"]
    assert (sp.pad_id, sp.unk_id, sp.bos_id, sp.eos_id) == (0, 1, 2, 3)
    pieces = sp({"text": ["the<sep>the"]})["pieces"][0]
    assert pieces[0] == "<bos>" and pieces[-1] == "<eos>" and "<sep>" in pieces
    ids = sp.encode("the<sep>the", output_type="ids")
    assert ids[0] == 2 and ids[-1] == 3 and 4 in ids
    assert sp.decode(ids) == "the<sep>the" == sp.decode(pieces)
    assert sp.decode([0, 0] + ids + [0]) == "the<sep>the"  # padding is dropped
    with pytest.raises(InputError, match="outside"):
        sp.decode([10_000])


def test_training_is_deterministic_and_state_round_trips(tmp_path, corpus, unigram):
    again = SentencePieceTokenizer(vocab_size=300, model_type="unigram").fit(datasets.Dataset.from_dict(corpus))
    assert again.model_proto == unigram.model_proto
    unigram.save_state(tmp_path)
    assert (tmp_path / "sentencepiece.model").is_file()
    loaded = SentencePieceTokenizer(unigram.to_config()["config"])
    loaded.load_state(tmp_path)
    sample = {"text": corpus["text"][:5]}
    assert loaded(sample) == unigram(sample)
    copy = pickle.loads(pickle.dumps(unigram))
    assert copy._processor is None and copy(sample) == unigram(sample)


def test_vocab_size_larger_than_the_corpus_supports():
    texts = {"text": ["a tiny corpus", "with few words"]}
    for model_type in ("bpe", "unigram"):
        with pytest.raises(ConfigError, match=r"vocab_size 5000 is larger than this corpus supports.*≤ \d+"):
            SentencePieceTokenizer(vocab_size=5000, model_type=model_type).fit(texts)
    # As a soft limit, unigram takes what there is.
    soft = SentencePieceTokenizer(vocab_size=5000, hard_vocab_limit=False).fit(texts)
    assert 4 < soft.vocab_size < 5000


def test_empty_corpus_and_bad_rows():
    for data in ({"text": []}, {"text": ["", "   ", "\n"]}):
        with pytest.raises(DataError, match="no text"):
            SentencePieceTokenizer(vocab_size=50).fit(data)
    with pytest.raises(DataError, match="row 1 .*int"):
        SentencePieceTokenizer(vocab_size=50).fit({"text": ["a", 3]})
    with pytest.raises(ConfigError, match="no room"):
        SentencePieceTokenizer(vocab_size=4)
    with pytest.raises(NotFittedError):
        SentencePieceTokenizer()({"text": ["a"]})


def test_non_string_input_at_map_time(unigram):
    with pytest.raises(InputError, match="row 1 .*NoneType"):
        unigram({"text": ["ok", None]})
