"""Corpus BLEU and chrF as thin wrappers around sacrebleu 2.

BLEU (Papineni et al. 2002) is the brevity penalty times the geometric mean of the modified
n-gram precisions, n = 1..4, each a ratio of *corpus-summed* clipped matches to
corpus-summed hypothesis n-grams; chrF (Popović 2015) is a character n-gram F-beta (β = 2)
over corpus-summed matches. Both are therefore functions of integer statistics summed over
sentences. sacrebleu extracts those statistics per sentence and sums them
(``Metric._extract_corpus_statistics`` then ``_compute_score_from_stats``); the accumulators
here call the same two steps per batch and keep the running sums, so streaming gives the
bit-identical score of one ``corpus_score`` call on the whole corpus.

Every score comes with sacrebleu's signature (``nrefs:1|case:mixed|eff:no|tok:13a|…``),
which says exactly how it was computed. Scores are on sacrebleu's 0–100 scale.

References have one shape: ``references[i]`` is the reference of sentence ``i`` — a
string, or a list of strings when the sentence has several references (the count may vary
per sentence; sacrebleu's signature then says ``nrefs:var``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sacrebleu

from ..core.errors import ConfigError, DataError
from .base import Accumulator, as_texts, check_choice, check_same_length

#: sacrebleu BLEU tokenizers that work without extra downloads or packages.
BLEU_TOKENIZERS = ("13a", "intl", "char", "none", "zh")
#: sacrebleu BLEU smoothing methods.
BLEU_SMOOTHING = ("exp", "floor", "add-k", "none")


@dataclass(frozen=True)
class CorpusScore:
    """A sacrebleu corpus score: the number, sacrebleu's signature and its one-line summary.

    >>> s = bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
    >>> round(float(s), 6), s.name
    (100.0, 'BLEU')
    """

    name: str
    score: float
    signature: str
    formatted: str
    #: BLEU only: hypothesis length / reference length (sacrebleu's tokens), the brevity penalty's input.
    length_ratio: float | None = None

    def __float__(self) -> float:
        return self.score

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "signature": self.signature, "formatted": self.formatted}


def _reference_streams(references: Any, n_sentences: int) -> tuple[list[list[str | None]], set[int]]:
    """Per-sentence references → sacrebleu's reference streams (padded with ``None``)."""
    if isinstance(references, str):
        references = [references]
    if not isinstance(references, Sequence):
        raise DataError(f"references: expected a list, got {type(references).__name__}")
    per_sentence: list[list[str]] = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, Sequence) or not all(isinstance(r, str) for r in refs):
            raise DataError(f"references[{i}]: expected a string or a list of strings, got {refs!r:.80}")
        if len(refs) == 0:
            raise DataError(f"references[{i}]: the sentence has no reference (an empty list)")
        per_sentence.append(list(refs))
    check_same_length(per_sentence, range(n_sentences))
    counts = {len(refs) for refs in per_sentence}
    width = max(counts, default=0)
    streams = [[refs[k] if k < len(refs) else None for refs in per_sentence] for k in range(width)]
    return streams, counts


class SacreBLEUAccumulator(Accumulator):
    """Streaming corpus score for one sacrebleu metric object; subclasses pick the metric."""

    def __init__(self, metric: sacrebleu.metrics.base.Metric) -> None:
        self._metric = metric
        self.reset()

    def update(self, references: Any, hypotheses: str | Sequence[str]) -> "SacreBLEUAccumulator":
        hyps = as_texts(hypotheses, "hypotheses")
        streams, counts = _reference_streams(references, len(hyps))
        if not hyps:
            return self
        # The two steps of sacrebleu's Metric.corpus_score: per-sentence statistics, then sums.
        stats = self._metric._extract_corpus_statistics(hyps, streams)
        batch = [sum(column) for column in zip(*stats)]
        self._stats = batch if self._stats is None else [a + b for a, b in zip(self._stats, batch)]
        self._ref_counts |= counts
        self.sentences += len(hyps)
        return self

    def compute(self) -> CorpusScore:
        if self._stats is None:
            raise DataError(f"{type(self).__name__}: no sentences were given; a corpus score needs at least one")
        # What sacrebleu's _cache_references records for the signature (-1: variable).
        self._metric.num_refs = next(iter(self._ref_counts)) if len(self._ref_counts) == 1 else -1
        score = self._metric._compute_score_from_stats(self._stats)
        return CorpusScore(
            name=score.name,
            score=float(score.score),
            signature=self._metric.get_signature().format(),
            formatted=score.format(),
            length_ratio=score.sys_len / score.ref_len if getattr(score, "ref_len", 0) else None,
        )

    def reset(self) -> None:
        self._stats: list | None = None
        self._ref_counts: set[int] = set()
        self.sentences = 0


class BLEUAccumulator(SacreBLEUAccumulator):
    """Streaming corpus BLEU; ``compute()`` equals ``sacrebleu.corpus_bleu`` on the whole corpus.

    >>> acc = BLEUAccumulator()
    >>> acc.update(["the cat sat on the mat"], ["the cat sat on a mat"]).compute().signature
    'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'
    """

    def __init__(self, tokenize: str = "13a", lowercase: bool = False, smooth_method: str = "exp") -> None:
        check_choice(tokenize, BLEU_TOKENIZERS, "BLEU tokenize")
        check_choice(smooth_method, BLEU_SMOOTHING, "BLEU smooth_method")
        self.tokenize, self.lowercase, self.smooth_method = tokenize, bool(lowercase), smooth_method
        super().__init__(sacrebleu.BLEU(tokenize=tokenize, lowercase=bool(lowercase), smooth_method=smooth_method))


class ChrFAccumulator(SacreBLEUAccumulator):
    """Streaming corpus chrF (``word_order=2``: chrF++); equals ``sacrebleu.corpus_chrf``.

    >>> ChrFAccumulator().update(["hello there"], ["hello their"]).compute().name
    'chrF2'
    """

    def __init__(self, char_order: int = 6, word_order: int = 0, beta: int = 2, lowercase: bool = False) -> None:
        for name, value, low in (("char_order", char_order, 1), ("word_order", word_order, 0), ("beta", beta, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"chrF {name} must be an integer >= {low}, got {value!r}")
        self.char_order, self.word_order, self.beta, self.lowercase = char_order, word_order, beta, bool(lowercase)
        super().__init__(sacrebleu.CHRF(char_order=char_order, word_order=word_order, beta=beta,
                                        lowercase=bool(lowercase)))


def bleu(references: Any, hypotheses: str | Sequence[str], *, tokenize: str = "13a", lowercase: bool = False,
         smooth_method: str = "exp") -> CorpusScore:
    """Corpus BLEU (0–100) with its sacrebleu signature.

    ``references[i]`` is a string, or a list of strings for several references.

    >>> s = bleu([["the cat is on the mat", "there is a cat on the mat"]], ["the cat is on the mat"])
    >>> round(s.score, 6), s.signature.split("|")[0]
    (100.0, 'nrefs:2')
    """
    acc = BLEUAccumulator(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
    return acc.update(references, hypotheses).compute()


def chrf(references: Any, hypotheses: str | Sequence[str], *, char_order: int = 6, word_order: int = 0,
         beta: int = 2, lowercase: bool = False) -> CorpusScore:
    """Corpus chrF (0–100; chrF++ with ``word_order=2``) with its sacrebleu signature.

    >>> round(chrf(["hello there"], ["hello their"]).score, 2)
    73.48
    """
    acc = ChrFAccumulator(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)
    return acc.update(references, hypotheses).compute()
