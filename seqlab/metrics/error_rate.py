"""Word and character error rate (WER, CER) as thin wrappers around jiwer 4.

WER = (S + D + I) / (H + S + D) = (S + D + I) / N, where S, D, I are the substitutions,
deletions and insertions of a minimum-edit (Levenshtein) alignment of hypothesis to
reference, H the hits and N the number of reference words (Morris, Maier & Green 2004,
"From WER and RIL to MER and WIL"). Corpus WER is a micro-average: the counts are summed
over all utterances before dividing, so a long utterance weighs more than a short one. CER
is the same on characters (spaces included, as in jiwer).

jiwer does the alignment (rapidfuzz's Levenshtein opcodes); this module only sums its counts
per batch (``WERAccumulator`` / ``CERAccumulator``) and applies jiwer's formula to the sums.

Empty references (jiwer 4.0 behaviour, mirrored exactly): an empty reference utterance is
allowed and every hypothesis word aligned to it is an insertion. If the *whole corpus* has
no reference word at all (N = 0), jiwer does not divide: the WER is the number of inserted
words, ``0.0`` when the hypotheses are empty too. So ``wer([""], ["a b"]) == 2.0`` and
``wer([""], [""]) == 0.0`` (and ``wer([], []) == 0.0``). A non-empty corpus with some empty
references is an ordinary ratio.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from .base import Accumulator, as_texts, check_choice, check_same_length
from .normalization import NORMALIZATIONS, normalize_text

#: Units an error rate is counted in: ``"word"`` (WER) or ``"char"`` (CER).
UNITS = ("word", "char")


@dataclass(frozen=True)
class EditCounts:
    """Summed edit operations of a corpus and the error rate jiwer derives from them.

    >>> counts = EditCounts(hits=3, substitutions=1, deletions=0, insertions=1, utterances=2)
    >>> counts.reference_length, counts.errors, counts.rate
    (4, 2, 0.5)
    """

    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    utterances: int = 0

    @property
    def reference_length(self) -> int:
        """N: words (or characters) in the references, ``H + S + D``."""
        return self.hits + self.substitutions + self.deletions

    @property
    def hypothesis_length(self) -> int:
        """Words (or characters) in the hypotheses, ``H + S + I``."""
        return self.hits + self.substitutions + self.insertions

    @property
    def errors(self) -> int:
        """``S + D + I``: the summed Levenshtein distance."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """``(S + D + I) / N``; with no reference word at all, the insertion count (jiwer 4)."""
        if self.reference_length == 0:
            # jiwer.process_words: ``if num_rf_words == 0: wer = num_insertions``.
            return float(self.insertions)
        return float(self.substitutions + self.deletions + self.insertions) / float(
            self.hits + self.substitutions + self.deletions
        )

    def __add__(self, other: "EditCounts") -> "EditCounts":
        if not isinstance(other, EditCounts):
            return NotImplemented
        return EditCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def align(references: str | Sequence[str], hypotheses: str | Sequence[str], unit: str = "word",
          normalize: str = "none") -> jiwer.WordOutput | jiwer.CharacterOutput:
    """jiwer's full output (counts, per-utterance alignment chunks) after ``normalize``.

    Pass the result to ``jiwer.visualize_alignment`` for the REF/HYP/edit-marks picture.

    >>> out = align(["the cat sat"], ["the cat sat down"])
    >>> out.hits, out.insertions, out.alignments[0][-1].type
    (3, 1, 'insert')
    """
    check_choice(unit, UNITS, "unit")
    check_choice(normalize, NORMALIZATIONS, "normalize")
    refs = as_texts(references, "references")
    hyps = as_texts(hypotheses, "hypotheses")
    check_same_length(refs, hyps)
    if normalize != "none":
        refs = [normalize_text(t, normalize) for t in refs]
        hyps = [normalize_text(t, normalize) for t in hyps]
    process = jiwer.process_words if unit == "word" else jiwer.process_characters
    return process(refs, hyps)


class ErrorRateAccumulator(Accumulator):
    """Streaming WER/CER: sums jiwer's hits/substitutions/deletions/insertions per batch.

    >>> acc = ErrorRateAccumulator(unit="word")
    >>> acc.update(["the cat sat"], ["the cat sat"]).update(["on the mat"], ["on a mat"]).compute()
    0.16666666666666666
    """

    def __init__(self, unit: str = "word", normalize: str = "none") -> None:
        self.unit = check_choice(unit, UNITS, "unit")
        self.normalize = check_choice(normalize, NORMALIZATIONS, "normalize")
        self.counts = EditCounts()

    def update(self, references: str | Sequence[str], hypotheses: str | Sequence[str]) -> "ErrorRateAccumulator":
        refs = as_texts(references, "references")
        hyps = as_texts(hypotheses, "hypotheses")
        check_same_length(refs, hyps)
        if not refs:
            return self  # jiwer would treat [] as one empty utterance; an empty batch adds nothing
        out = align(refs, hyps, unit=self.unit, normalize=self.normalize)
        self.counts = self.counts + EditCounts(
            out.hits, out.substitutions, out.deletions, out.insertions, len(refs)
        )
        return self

    def compute(self) -> float:
        return self.counts.rate

    def reset(self) -> None:
        self.counts = EditCounts()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(unit={self.unit!r}, normalize={self.normalize!r}, counts={self.counts})"


class WERAccumulator(ErrorRateAccumulator):
    """Streaming word error rate; ``compute()`` equals ``jiwer.wer`` on the whole corpus.

    >>> WERAccumulator().update(["a b c"], ["a x c"]).compute()
    0.3333333333333333
    """

    def __init__(self, normalize: str = "none") -> None:
        super().__init__("word", normalize)


class CERAccumulator(ErrorRateAccumulator):
    """Streaming character error rate; ``compute()`` equals ``jiwer.cer`` on the whole corpus.

    >>> CERAccumulator().update(["abcd"], ["abed"]).compute()
    0.25
    """

    def __init__(self, normalize: str = "none") -> None:
        super().__init__("char", normalize)


def wer(references: str | Sequence[str], hypotheses: str | Sequence[str], normalize: str = "none") -> float:
    """Corpus word error rate (a fraction; may exceed 1), equal to ``jiwer.wer``.

    >>> wer(["the cat sat on the mat"], ["the cat sat on a mat"])
    0.16666666666666666
    >>> wer(["Hello, world!"], ["hello world"], normalize="standard")
    0.0
    >>> wer([""], ["a b"])  # empty reference corpus: the insertion count, as jiwer 4 does
    2.0
    """
    return WERAccumulator(normalize).update(references, hypotheses).compute()


def cer(references: str | Sequence[str], hypotheses: str | Sequence[str], normalize: str = "none") -> float:
    """Corpus character error rate (spaces count as characters), equal to ``jiwer.cer``.

    >>> cer(["abcd"], ["abd"])
    0.25
    """
    return CERAccumulator(normalize).update(references, hypotheses).compute()
