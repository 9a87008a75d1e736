"""BLEU/chrF wrappers agree with sacrebleu 2.6 (score and signature) and stream exactly."""
from __future__ import annotations

import random

import pytest
import sacrebleu

from seqlab.core.errors import ConfigError, DataError
from seqlab.metrics.translation import BLEUAccumulator, ChrFAccumulator, CorpusScore, bleu, chrf


def _reference_bleu(refs_per_sentence, hyps, **options):
    width = max(len(r) for r in refs_per_sentence)
    streams = [[r[k] if k < len(r) else None for r in refs_per_sentence] for k in range(width)]
    metric = sacrebleu.BLEU(**options)
    return metric.corpus_score(hyps, streams), metric.get_signature().format()


def _reference_chrf(refs_per_sentence, hyps, **options):
    width = max(len(r) for r in refs_per_sentence)
    streams = [[r[k] if k < len(r) else None for r in refs_per_sentence] for k in range(width)]
    metric = sacrebleu.CHRF(**options)
    return metric.corpus_score(hyps, streams), metric.get_signature().format()


def _random_corpus(rng, text_tools, max_refs=1):
    refs, hyps = text_tools.random_pairs(rng, rng.randint(1, 5))
    per_sentence = []
    for ref in refs:
        extra = [" ".join(text_tools.corrupt(ref.split(), rng, 0.3)) for _ in range(rng.randint(0, max_refs - 1))]
        per_sentence.append([ref, *extra])
    return per_sentence, hyps


def test_bleu_agrees_with_sacrebleu_on_random_corpora(text_tools):
    rng = random.Random(2024)
    for case in range(1000):
        refs, hyps = _random_corpus(rng, text_tools, max_refs=rng.choice([1, 1, 3]))
        expected, signature = _reference_bleu(refs, hyps)
        # single references may be given as plain strings; several as lists
        given = [r[0] if len(r) == 1 and rng.random() < 0.5 else r for r in refs]
        got = bleu(given, hyps)
        assert got.score == pytest.approx(expected.score, abs=1e-9), (case, refs, hyps)
        assert got.signature == signature
        assert got.formatted == expected.format()


def test_chrf_agrees_with_sacrebleu_on_random_corpora(text_tools):
    rng = random.Random(77)
    for case in range(1000):
        refs, hyps = _random_corpus(rng, text_tools, max_refs=rng.choice([1, 2]))
        word_order = rng.choice([0, 2])
        expected, signature = _reference_chrf(refs, hyps, word_order=word_order)
        got = chrf(refs, hyps, word_order=word_order)
        assert got.score == pytest.approx(expected.score, abs=1e-9), (case, refs, hyps)
        assert got.signature == signature and got.name == expected.name


@pytest.mark.parametrize("options", [{"tokenize": "char"}, {"tokenize": "intl", "lowercase": True},
                                     {"tokenize": "none", "smooth_method": "floor"}])
def test_bleu_options_reach_sacrebleu(options, text_tools):
    rng = random.Random(5)
    refs, hyps = text_tools.random_pairs(rng, 30, min_words=1)
    expected, signature = _reference_bleu([[r] for r in refs], hyps, **options)
    got = bleu(refs, hyps, **options)
    assert got.score == pytest.approx(expected.score, abs=1e-9)
    assert got.signature == signature


def test_chrf_options_reach_sacrebleu(text_tools):
    rng = random.Random(6)
    refs, hyps = text_tools.random_pairs(rng, 30, min_words=1)
    expected, signature = _reference_chrf([[r] for r in refs], hyps, char_order=4, beta=1, lowercase=True)
    got = chrf(refs, hyps, char_order=4, beta=1, lowercase=True)
    assert got.score == pytest.approx(expected.score, abs=1e-9) and got.signature == signature


@pytest.mark.parametrize("make", [BLEUAccumulator, ChrFAccumulator, lambda: ChrFAccumulator(word_order=2)])
def test_streaming_equals_one_shot(make, text_tools):
    rng = random.Random(31)
    for _ in range(100):
        refs, hyps = _random_corpus(rng, text_tools, max_refs=rng.choice([1, 2]))
        refs, hyps = refs * 3, hyps * 3
        whole = make().update(refs, hyps).compute()
        acc = make()
        for start, end in text_tools.random_batches(refs, rng):
            acc.update(refs[start:end], hyps[start:end])
        streamed = acc.compute()
        assert streamed == whole  # bit-identical score, same signature and summary
        assert acc.sentences == len(hyps)


def test_variable_reference_count_signature():
    got = bleu([["a b c d", "a b c e"], ["x y z w"]], ["a b c d", "x y z w"])
    assert got.signature.startswith("nrefs:var|")
    acc = BLEUAccumulator().update([["a b c d", "a b c e"]], ["a b c d"]).update([["x y z w"]], ["x y z w"])
    assert acc.compute().signature.startswith("nrefs:var|")


def test_corpus_score_value_object():
    score = bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert isinstance(score, CorpusScore) and float(score) == score.score
    assert 0.0 < score.score < 100.0
    assert score.as_dict()["signature"] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    assert score.formatted.startswith("BLEU = ")


def test_bad_inputs():
    with pytest.raises(DataError, match="no sentences"):
        BLEUAccumulator().compute()
    with pytest.raises(DataError, match="no sentences"):
        chrf([], [])
    with pytest.raises(DataError, match="references has 2 items but hypotheses has 1"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(DataError, match=r"references\[0\]: the sentence has no reference"):
        bleu([[]], ["a"])
    with pytest.raises(DataError, match=r"references\[1\]: expected a string or a list of strings"):
        bleu(["a", 5], ["a", "b"])
    with pytest.raises(ConfigError, match="BLEU tokenize 'spm'"):
        bleu(["a"], ["a"], tokenize="spm")
    with pytest.raises(ConfigError, match="word_order must be an integer >= 0"):
        chrf(["a"], ["a"], word_order=-1)
