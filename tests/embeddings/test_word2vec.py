"""word2vec: training on real text, vector files, the embedding matrix and the stage's files."""
import numpy as np
import pytest
import torch

from seqlab.core.errors import ConfigError, DataError, InputError, ModelFileError
from seqlab.embeddings.word2vec import (
    Word2VecStage, embedding_matrix, load_vectors, pretrained_embedding, save_vectors, train_word2vec,
)
from seqlab.text.vocab import Vocabulary


@pytest.fixture(scope="module")
def lee_tokens():
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as handle:
        return [simple_preprocess(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def lee_stage(lee_tokens):
    return Word2VecStage(dim=32, epochs=8, min_count=2, seed=0).fit({"tokens": lee_tokens})


def test_skipgram_on_lee_gives_sensible_neighbours(lee_stage):
    kv = lee_stage.vectors
    assert kv.vector_size == 32
    assert "laden" in [w for w, _ in lee_stage.most_similar("bin", topn=5)]
    assert "bush" in [w for w, _ in lee_stage.most_similar("president", topn=5)]
    assert kv.similarity("bin", "laden") > kv.similarity("bin", "water") + 0.3


def test_training_is_deterministic_with_one_worker(lee_tokens):
    small = lee_tokens[:60]
    a = train_word2vec(small, dim=10, epochs=2, algorithm="cbow", seed=3)
    b = train_word2vec(small, dim=10, epochs=2, algorithm="cbow", seed=3)
    c = train_word2vec(small, dim=10, epochs=2, algorithm="cbow", seed=4)
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, c.vectors)


def test_empty_corpus_and_bad_settings():
    with pytest.raises(DataError, match="no tokens"):
        train_word2vec([])
    with pytest.raises(DataError, match="no tokens"):
        Word2VecStage().fit({"tokens": [[], []]})
    with pytest.raises(DataError, match="min_count=5"):
        train_word2vec([["a", "b"]], min_count=5)
    with pytest.raises(DataError, match="row 0 .*str"):
        train_word2vec(["not tokenized"])
    with pytest.raises(ConfigError, match="dim"):
        Word2VecStage(dim=0)


def test_embedding_matrix_rows_scale_pad_and_coverage(lee_stage):
    kv = lee_stage.vectors
    vocab = Vocabulary(["bin", "Laden", "zzunseen", "police"])
    matrix, cov = embedding_matrix(kv, vocab, seed=0)
    assert matrix.shape == (8, 32) and matrix.dtype == torch.float32
    assert cov == {"total": 4, "exact": 2, "lowercase": 1, "missing": 1, "coverage": 0.75}
    torch.testing.assert_close(matrix[vocab.token_to_id("bin")], torch.tensor(kv["bin"]))
    torch.testing.assert_close(matrix[vocab.token_to_id("Laden")], torch.tensor(kv["laden"]))
    assert matrix[vocab.pad_id].abs().sum() == 0
    # Random rows (unk, bos, eos, the missing word) at the vectors' scale.
    random_rows = matrix[[1, 2, 3, vocab.token_to_id("zzunseen")]]
    ratio = random_rows.std().item() / float(kv.vectors.std())
    assert 0.7 < ratio < 1.3
    again, _ = embedding_matrix(kv, vocab, seed=0)
    torch.testing.assert_close(again, matrix)
    no_lower, cov2 = embedding_matrix(kv, vocab, lowercase_fallback=False)
    assert cov2["lowercase"] == 0 and cov2["missing"] == 2
    with pytest.raises(InputError):
        embedding_matrix(None, vocab)
    # The stage's method gives the matrix alone (what a task model copies) and keeps the coverage.
    torch.testing.assert_close(lee_stage.embedding_matrix(vocab), matrix)
    assert lee_stage.coverage == cov


def test_pretrained_embedding_freeze_or_fine_tune():
    matrix = torch.randn(6, 3)
    frozen = pretrained_embedding(matrix, freeze=True)
    tuned = pretrained_embedding(matrix, freeze=False)
    assert not frozen.weight.requires_grad and tuned.weight.requires_grad
    torch.testing.assert_close(tuned(torch.tensor([2])), matrix[2:3])
    tuned(torch.tensor([0, 1])).sum().backward()
    assert tuned.weight.grad[0].abs().sum() == 0  # padding row gets no gradient
    assert tuned.weight.grad[1].abs().sum() > 0


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_files_round_trip(tmp_path, lee_stage, binary):
    kv = lee_stage.vectors
    path = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    save_vectors(kv, path, binary=binary)
    back = load_vectors(path)  # the format is detected
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_allclose(back.vectors, kv.vectors, atol=1e-5 if not binary else 0)
    stage = Word2VecStage(pretrained=str(path)).fit(None)
    assert stage.vectors.index_to_key == kv.index_to_key


def test_keyedvectors_pickle_only_when_named_explicitly(tmp_path, lee_stage):
    path = tmp_path / "mine.kv"
    lee_stage.vectors.save(str(path))
    with pytest.raises(ConfigError, match="pickle"):
        load_vectors(path)
    back = load_vectors(path, format="keyedvectors")
    np.testing.assert_array_equal(back["bin"], lee_stage.vectors["bin"])


def test_bad_vector_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_vectors(tmp_path / "none.txt")
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_vectors(tmp_path / "e.txt")
    (tmp_path / "h.txt").write_text("no header here\n")
    with pytest.raises(DataError, match="header"):
        load_vectors(tmp_path / "h.txt")
    (tmp_path / "t.txt").write_text("2 3\na 1 2 3\n")
    with pytest.raises(DataError, match="cannot read"):
        load_vectors(tmp_path / "t.txt")


def test_stage_state_is_safetensors_and_text(tmp_path, lee_stage):
    assert lee_stage({"tokens": [["bin"]]}) == {} and lee_stage.provides == ()
    lee_stage.save_state(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["word2vec.safetensors", "word2vec.vocab.txt"]
    assert (tmp_path / "word2vec.safetensors").read_bytes()[:1] != b"\x80"  # not a pickle
    loaded = Word2VecStage(lee_stage.to_config()["config"])
    loaded.load_state(tmp_path)
    assert loaded.vectors.index_to_key == lee_stage.vectors.index_to_key
    np.testing.assert_array_equal(loaded.vectors.vectors, lee_stage.vectors.vectors)
    (tmp_path / "word2vec.vocab.txt").write_text("just\nthree\nwords\n")
    with pytest.raises(ModelFileError, match="3 words"):
        Word2VecStage().load_state(tmp_path)
