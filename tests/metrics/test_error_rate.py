"""WER/CER wrappers agree with jiwer 4 (random cases, empty references), and stream exactly."""
from __future__ import annotations

import random

import jiwer
import pytest

from seqlab.core.errors import ConfigError, DataError
from seqlab.metrics.error_rate import CERAccumulator, EditCounts, ErrorRateAccumulator, WERAccumulator, align, cer, wer
from seqlab.metrics.normalization import normalize_text

# The "standard" normalisation written with jiwer's own transforms, for comparison
# (re's \s is exactly the Unicode white space str.split() splits on).
JIWER_STANDARD = jiwer.Compose([
    jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.SubstituteRegexes({r"\s+": " "}), jiwer.Strip(),
])


def test_agrees_with_jiwer_on_random_corpora(text_tools):
    rng = random.Random(1234)
    seen_all_empty = seen_empty_hyp = 0
    for case in range(1000):
        refs, hyps = text_tools.random_pairs(rng, rng.randint(1, 5))
        seen_all_empty += all(not r.strip() for r in refs)
        seen_empty_hyp += any(not h for h in hyps)
        words, chars = jiwer.process_words(refs, hyps), jiwer.process_characters(refs, hyps)
        got_w, got_c = wer(refs, hyps), cer(refs, hyps)
        assert got_w == pytest.approx(words.wer, abs=1e-9), (case, refs, hyps)
        assert got_c == pytest.approx(chars.cer, abs=1e-9), (case, refs, hyps)
        counts = WERAccumulator().update(refs, hyps).counts
        assert (counts.hits, counts.substitutions, counts.deletions, counts.insertions) == (
            words.hits, words.substitutions, words.deletions, words.insertions)
    # the generator really produced the edge cases this test is meant to cover
    assert seen_all_empty > 10 and seen_empty_hyp > 50


def test_standard_normalisation_agrees_with_jiwer(text_tools):
    rng = random.Random(7)
    for _ in range(1000):
        refs, hyps = text_tools.random_pairs(rng, rng.randint(1, 4))
        hyps = [h.upper() if rng.random() < 0.3 else h for h in hyps]  # case must not matter
        refs = [r.replace(" ", rng.choice([" ", "\t", "\xa0", "\u2009 "]), 1) for r in refs]
        expected_w = jiwer.wer(JIWER_STANDARD(refs), JIWER_STANDARD(hyps))
        expected_c = jiwer.cer(JIWER_STANDARD(refs), JIWER_STANDARD(hyps))
        assert wer(refs, hyps, normalize="standard") == pytest.approx(expected_w, abs=1e-9)
        assert cer(refs, hyps, normalize="standard") == pytest.approx(expected_c, abs=1e-9)


def test_standard_normalisation_is_what_the_docs_say():
    assert normalize_text("  Don't STOP, me\tnow! ", "standard") == "dont stop me now"
    assert normalize_text("well-known «quote» (x)", "standard") == "wellknown quote x"
    assert normalize_text("ca. 120\xa0cm\u2028end", "standard") == "ca 120 cm end"
    assert wer(["120\xa0cm"], ["120 cm"]) == 2.0  # none, as jiwer: one reference word (S + I)
    assert wer(["120\xa0cm"], ["120 cm"], normalize="standard") == 0.0
    assert normalize_text("  A,  b ", "none") == "  A,  b "
    assert wer(["Hello, World!"], ["hello world"]) == 1.0  # none: two substitutions
    assert wer(["Hello, World!"], ["hello world"], normalize="standard") == 0.0
    with pytest.raises(ConfigError, match="normalize 'lower' is not one of 'none', 'standard'"):
        normalize_text("x", "lower")


@pytest.mark.parametrize("refs, hyps", [
    ("", "a b"), ([""], [""]), ([""], ["a b c"]), (["", ""], ["a", "b c"]), (["   "], ["a"]),
    (["", "x y"], ["a", "x y"]), (["a b"], [""]), ([], []),
])
def test_empty_references_match_jiwer_exactly(refs, hyps):
    # jiwer 4: with no reference word in the whole corpus the "rate" is the insertion count.
    assert wer(refs, hyps) == jiwer.wer(refs, hyps)
    assert cer(refs, hyps) == jiwer.cer(refs, hyps)


def test_empty_reference_values_are_the_documented_ones():
    assert wer([""], ["a b"]) == 2.0
    assert wer([""], [""]) == 0.0
    assert wer([], []) == 0.0
    assert cer([""], ["ab"]) == 2.0
    assert wer(["", "x y"], ["a", "x y"]) == 0.5  # a normal ratio once some reference word exists
    assert isinstance(wer([""], ["a b"]), float)


@pytest.mark.parametrize("accumulator", [WERAccumulator, CERAccumulator])
def test_streaming_equals_one_shot(accumulator, text_tools):
    rng = random.Random(99)
    for _ in range(200):
        refs, hyps = text_tools.random_pairs(rng, rng.randint(0, 12))
        normalize = rng.choice(["none", "standard"])
        whole = accumulator(normalize).update(refs, hyps)
        streamed = accumulator(normalize)
        for start, end in text_tools.random_batches(refs, rng):
            streamed.update(refs[start:end], hyps[start:end])
        assert streamed.counts == whole.counts
        assert streamed.compute() == whole.compute()
        unit = "word" if accumulator is WERAccumulator else "char"
        assert whole.counts.utterances == len(refs)
        if refs:
            reference = jiwer.process_words if unit == "word" else jiwer.process_characters
            if normalize == "standard":
                expected = reference(JIWER_STANDARD(refs), JIWER_STANDARD(hyps))
            else:
                expected = reference(refs, hyps)
            assert streamed.counts.insertions == expected.insertions


def test_accumulator_reset_and_generic_unit():
    acc = ErrorRateAccumulator(unit="char")
    acc.update(["abc"], ["abd"])
    assert acc.compute() == pytest.approx(1 / 3)
    acc.reset()
    assert acc.counts == EditCounts() and acc.compute() == 0.0
    with pytest.raises(ConfigError, match="unit 'token'"):
        ErrorRateAccumulator(unit="token")


def test_edit_counts_arithmetic():
    a = EditCounts(hits=3, substitutions=1, deletions=2, insertions=1, utterances=2)
    b = EditCounts(hits=1, substitutions=0, deletions=0, insertions=4, utterances=1)
    total = a + b
    assert total == EditCounts(4, 1, 2, 5, 3)
    assert total.reference_length == 7 and total.hypothesis_length == 10 and total.errors == 8
    assert total.rate == 8 / 7
    assert EditCounts(insertions=3, utterances=1).rate == 3.0


def test_align_returns_jiwer_output():
    out = align(["the cat sat"], ["the cat sat down"])
    assert isinstance(out, jiwer.WordOutput)
    assert [c.type for c in out.alignments[0]] == ["equal", "insert"]
    chars = align(["Ab"], ["ab"], unit="char", normalize="standard")
    assert isinstance(chars, jiwer.CharacterOutput) and chars.cer == 0.0


def test_bad_inputs_are_data_errors():
    with pytest.raises(DataError, match="references has 2 items but hypotheses has 1"):
        wer(["a", "b"], ["a"])
    with pytest.raises(DataError, match=r"hypotheses\[1\]: expected a string, got int"):
        wer(["a", "b"], ["a", 3])
    with pytest.raises(DataError, match="expected a list of strings"):
        cer(["a"], None)
