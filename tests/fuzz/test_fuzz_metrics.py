"""Fuzzing the metric wrappers: WER/CER/BLEU/chrF on any Unicode equal the reference libraries;
entity F1 on random tag sequences works or names the sentence and token."""
from __future__ import annotations

import math

import jiwer
import sacrebleu
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import call, check_explained, fuzz_settings, iob2_sequences, non_texts, tag_sequences, texts
from seqlab.core.errors import DataError
from seqlab.metrics import bleu, cer, chrf, entity_f1, wer

pairs = st.lists(st.tuples(texts, texts), min_size=1, max_size=5)


@fuzz_settings()
@given(data=pairs)
def test_error_rates_equal_jiwer(data):
    refs, hyps = [r for r, _ in data], [h for _, h in data]
    for ours, theirs in ((wer, jiwer.wer), (cer, jiwer.cer)):
        expected, their_err = call(theirs, refs, hyps)
        got, err = call(ours, refs, hyps)
        if their_err is None:
            assert err is None and math.isclose(got, expected, rel_tol=1e-12), (got, expected)
        else:
            # Documented: equal to jiwer. So where jiwer cannot score an input, seqlab must not
            # quietly return a number either; it refuses with its own explained error.
            assert err is not None, f"jiwer raised {their_err!r} but seqlab {ours.__name__} returned {got!r}"
            check_explained(err)


def test_error_rates_documented_edge_cases_equal_jiwer():
    """The empty-reference cases error_rate.py documents, which the fuzzer rarely lands on exactly."""
    assert wer([""], ["a b"]) == jiwer.wer([""], ["a b"]) == 2.0  # no reference word: the insertion count
    assert cer([""], ["a b"]) == jiwer.cer([""], ["a b"]) == 3.0
    assert wer([""], [""]) == jiwer.wer([""], [""]) == 0.0
    assert wer([], []) == jiwer.wer([], []) == 0.0
    assert wer(["", "a b"], ["x", "a b"]) == jiwer.wer(["", "a b"], ["x", "a b"]) == 0.5  # an ordinary ratio


@fuzz_settings()
@given(data=pairs)
def test_bleu_and_chrf_equal_sacrebleu(data):
    refs, hyps = [r for r, _ in data], [h for _, h in data]
    assert math.isclose(bleu(refs, hyps).score, sacrebleu.corpus_bleu(hyps, [refs]).score, abs_tol=1e-9)
    assert math.isclose(chrf(refs, hyps).score, sacrebleu.corpus_chrf(hyps, [refs]).score, abs_tol=1e-9)


@fuzz_settings()
@given(value=non_texts, position=st.integers(0, 2))
def test_metrics_refuse_non_text_naming_the_row(value, position):
    refs = ["a b c"] * 3
    refs[position] = value
    for fn in (wer, cer, bleu, chrf):
        _, err = call(fn, refs, ["a b c"] * 3)
        if isinstance(value, (list, tuple)) and fn in (bleu, chrf) and all(isinstance(v, str) for v in value) and value:
            assert err is None  # several references for one sentence
            continue
        assert isinstance(err, DataError), (fn.__name__, value, err)
        check_explained(err, index=position)


@fuzz_settings()
@given(gold=st.lists(iob2_sequences(), min_size=1, max_size=4))
def test_entity_f1_is_100_on_itself(gold):
    scores = entity_f1(gold, gold)
    has_entities = any(t != "O" for row in gold for t in row)
    assert scores.micro.f1 == (1.0 if has_entities else 0.0)


@fuzz_settings()
@given(row=tag_sequences, position=st.integers(0, 2), mode=st.sampled_from(["default", "strict"]))
def test_entity_f1_on_random_tags_names_the_sentence(row, position, mode):
    refs = [["B-PER", "O"]] * 3
    refs[position] = row
    preds = [["B-PER", "O"]] * 3
    preds[position] = ["O"] * len(row) if isinstance(row, list) else row
    kwargs = {"scheme": "IOB2"} if mode == "strict" else {}
    _, err = call(entity_f1, refs, preds, mode=mode, **kwargs)
    if err is not None:
        check_explained(err, index=position)
