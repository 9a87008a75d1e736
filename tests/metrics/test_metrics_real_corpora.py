"""The metrics on real text: Multi30k val (WER/CER/BLEU/chrF) and CoNLL-2003 valid tags (entity F1).

Hypotheses are seeded synthetic corruptions of the references. The corpora are read in place
from ``$SEQLAB_CORPORA`` (default ``<repo>/../shared/corpora``); never copied into the repo.
"""
from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import jiwer
import pytest
import sacrebleu
import torch
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from seqlab.metrics.edit_distance import edit_distance_batch
from seqlab.metrics.entities import EntityF1Accumulator, entity_f1
from seqlab.metrics.error_rate import CERAccumulator, WERAccumulator, cer, wer
from seqlab.metrics.translation import BLEUAccumulator, ChrFAccumulator, bleu, chrf


CORPORA = Path(os.environ.get("SEQLAB_CORPORA", Path(__file__).resolve().parents[2].parent / "shared" / "corpora"))


def _need(relative: str) -> Path:
    path = CORPORA / relative
    if not path.is_file():
        pytest.skip(f"{path} not found: the shared corpora are absent (set SEQLAB_CORPORA to the folder "
                    "holding translation/multi30k and ner/conll2003)")
    return path


def corrupt(words: list[str], rng: random.Random, rate: float, vocab: list[str]) -> list[str]:
    """Seeded word deletions, substitutions (from ``vocab``) and adjacent swaps, each at ``rate``/3."""
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            continue
        out.append(rng.choice(vocab) if r < 2 * rate / 3 else w)
    for k in range(len(out) - 1):
        if rng.random() < rate / 3:
            out[k], out[k + 1] = out[k + 1], out[k]
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


@pytest.fixture(scope="module")
def multi30k() -> dict:
    de = _lines(_need("translation/multi30k/val.de"))
    en = _lines(_need("translation/multi30k/val.en"))
    assert len(de) == len(en) > 1000
    rng = random.Random(30)
    vocab = sorted({w for line in de for w in line.split()})
    hyp = [" ".join(corrupt(line.split(), rng, 0.25, vocab)) for line in de]
    ref2 = [" ".join(corrupt(line.split(), rng, 0.1, vocab)) for line in de]
    return {"de": de, "en": en, "hyp": hyp, "ref2": ref2}


def test_multi30k_wer_cer_equal_jiwer(multi30k):
    refs, hyps = multi30k["de"], multi30k["hyp"]
    expected = jiwer.wer(refs, hyps)
    assert 0.2 < expected < 0.6  # the corruption is real, not a no-op
    assert wer(refs, hyps) == pytest.approx(expected, abs=1e-9)
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-9)
    # "standard" written with jiwer's transforms; \s+ (re) is the white space str.split() knows,
    # e.g. the no-break spaces in "ca. 120\xa0cm" that Multi30k contains.
    standard = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(),
                              jiwer.SubstituteRegexes({r"\s+": " "}), jiwer.Strip()])
    assert any("\xa0" in line for line in refs)
    hyps_upper = [h.upper() for h in hyps]
    assert wer(refs, hyps_upper, normalize="standard") == pytest.approx(
        jiwer.wer(standard(refs), standard(hyps_upper)), abs=1e-9)


def test_multi30k_streaming_equals_one_shot(multi30k):
    refs, hyps, ref2 = multi30k["de"], multi30k["hyp"], multi30k["ref2"]
    both = [list(pair) for pair in zip(refs, ref2)][:400]  # chrF is the slow one: 400 lines, 2 references
    for make, r in [(WERAccumulator, refs), (CERAccumulator, refs), (BLEUAccumulator, refs), (ChrFAccumulator, both)]:
        acc = make()
        for k in range(0, len(r), 100):
            acc.update(r[k:k + 100], hyps[k:k + 100])
        assert acc.compute() == make().update(r, hyps[: len(r)]).compute(), make.__name__


def test_multi30k_bleu_chrf_equal_sacrebleu(multi30k):
    refs, hyps, ref2 = multi30k["de"], multi30k["hyp"], multi30k["ref2"]
    expected = sacrebleu.corpus_bleu(hyps, [refs])
    got = bleu(refs, hyps)
    assert 10.0 < expected.score < 90.0
    assert got.score == pytest.approx(expected.score, abs=1e-9)
    assert got.length_ratio == pytest.approx(expected.sys_len / expected.ref_len, abs=1e-12) and got.length_ratio != 1.0
    assert got.signature == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    two = bleu([list(p) for p in zip(refs, ref2)][:400], hyps[:400])
    assert two.score == pytest.approx(sacrebleu.corpus_bleu(hyps[:400], [refs[:400], ref2[:400]]).score, abs=1e-9)
    assert two.signature.startswith("nrefs:2|")
    assert chrf(refs, hyps).score == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=1e-9)
    assert chrf(refs, hyps, word_order=2).score == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score, abs=1e-9)


def test_multi30k_torch_edit_distance_equals_jiwer(multi30k):
    refs, hyps = multi30k["de"][:300], multi30k["hyp"][:300]
    out = jiwer.process_words(refs, hyps)
    vocab: dict[str, int] = {}
    # jiwer's own word split (spaces only: "120\xa0cm" is one word), as token ids
    ids = [[vocab.setdefault(w, len(vocab)) for w in words] for words in out.references + out.hypotheses]
    width = max(map(len, ids))
    padded = torch.tensor([s + [0] * (width - len(s)) for s in ids])
    lengths = torch.tensor([len(s) for s in ids])
    n = len(refs)
    distance = edit_distance_batch(padded[:n], padded[n:], lengths[:n], lengths[n:])
    assert int(distance.sum()) == out.substitutions + out.deletions + out.insertions
    assert int(distance.sum()) / int(lengths[:n].sum()) == pytest.approx(out.wer, abs=1e-9)


@pytest.fixture(scope="module")
def conll() -> tuple[list[list[str]], list[list[str]]]:
    path = _need("ner/conll2003/valid.txt")
    sentences, tags = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if tags:
                sentences.append(tags)
            tags = []
        else:
            tags.append(columns[-1])  # the NER tag is the last column
    if tags:
        sentences.append(tags)
    rng = random.Random(2003)
    alphabet = sorted({t for s in sentences for t in s})
    predictions = [[rng.choice(alphabet) if rng.random() < 0.08 else t for t in s] for s in sentences]
    return sentences, predictions


def _report(gold, pred, **kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)


@pytest.mark.parametrize("mode", ["default", "strict"])
def test_conll2003_entity_f1_equals_seqeval(conll, mode):
    gold, pred = conll
    assert len(gold) > 3000
    report = _report(gold, pred, mode="strict", scheme=IOB2) if mode == "strict" else _report(gold, pred)
    got = entity_f1(gold, pred, mode=mode, scheme="IOB2" if mode == "strict" else None)
    assert 0.5 < got.f1 < 0.99
    assert set(got.per_type) == {"LOC", "MISC", "ORG", "PER"}
    for name, score in [*got.per_type.items(), ("micro avg", got.micro)]:
        assert score.precision == pytest.approx(float(report[name]["precision"]), abs=1e-9)
        assert score.recall == pytest.approx(float(report[name]["recall"]), abs=1e-9)
        assert score.f1 == pytest.approx(float(report[name]["f1-score"]), abs=1e-9)
        assert score.support == int(report[name]["support"])
    acc = EntityF1Accumulator(mode, "IOB2" if mode == "strict" else None)
    for k in range(0, len(gold), 250):
        acc.update(gold[k:k + 250], pred[k:k + 250])
    assert acc.compute() == got
