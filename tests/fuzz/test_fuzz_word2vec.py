"""Fuzzing the word2vec stage: training on random token lists, its files, the embedding matrix."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import bad_token_lists, call, check_explained, fuzz_settings, tokens
from seqlab.core.errors import DataError
from seqlab.embeddings.word2vec import Word2VecStage, embedding_matrix
from seqlab.text.vocab import SPECIALS


@fuzz_settings(scale=0.5)
@given(corpus=st.lists(tokens, min_size=1, max_size=6), vocab=st.lists(st.text(max_size=4), max_size=8))
def test_word2vec_trains_on_any_tokens_and_round_trips(corpus, vocab, tmp_path_factory):
    stage = Word2VecStage(dim=4, epochs=1, workers=1, min_count=1)
    _, err = call(stage.fit, {"tokens": corpus})
    if err is not None:
        assert isinstance(err, DataError) and not any(corpus), err  # only an all-empty corpus is refused
        return
    words = {t for row in corpus for t in row}
    assert set(stage.vectors.index_to_key) == words
    directory = tmp_path_factory.mktemp("w2v")
    stage.save_state(directory)
    loaded = Word2VecStage(dim=4)
    loaded.load_state(directory)
    assert loaded.vectors.index_to_key == stage.vectors.index_to_key  # any word survives the vocabulary file
    assert np.array_equal(loaded.vectors.vectors, stage.vectors.vectors)
    matrix, coverage = embedding_matrix(stage.vectors, list(SPECIALS) + vocab)
    assert matrix.shape == (len(SPECIALS) + len(vocab), 4) and bool(matrix[0].eq(0).all())
    assert bool(np.isfinite(matrix.numpy()).all()) and coverage["total"] == sum(t not in SPECIALS for t in vocab)


@fuzz_settings(scale=0.5)
@given(value=bad_token_lists, position=st.integers(0, 2))
def test_word2vec_refuses_bad_rows_naming_them(value, position):
    rows = [["a", "b"]] * 3
    rows[position] = value
    _, err = call(Word2VecStage(dim=4, epochs=1, workers=1).fit, {"tokens": rows})
    if err is None:
        assert not isinstance(value, (str, list)) and len(value) == 0, value  # an empty sequence is an empty sentence
        return
    assert isinstance(err, DataError)
    check_explained(err, index=position)
