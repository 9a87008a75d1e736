"""Accuracy and macro-averaged F1 for single-label classification (e.g. sentiment).

Accuracy = correct / total. Macro F1 is the unweighted mean over classes of the per-class
F1 = 2·TP / (2·TP + FP + FN) (= 2PR/(P+R)), where the classes are every label that occurs
in the references or the predictions — scikit-learn's ``f1_score(average="macro")``
convention (Sokolova & Lapalme 2009, "A systematic analysis of performance measures for
classification tasks"), which the tests check against. Both are fractions in [0, 1].

Labels may be any hashable values (strings, ints). Both need at least one example; an empty
corpus is a ``DataError`` rather than a silent NaN. The accumulators keep counts (correct
and total; per-class TP/FP/FN), so streaming equals the one-shot value.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

from ..core.errors import DataError
from .base import Accumulator, as_list_of, check_same_length


def _as_labels(values: Sequence[Hashable], name: str) -> list[Hashable]:
    return as_list_of(values, name, Hashable, "labels", "a label must be hashable (str, int …)")


class AccuracyAccumulator(Accumulator):
    """Streaming accuracy.

    >>> AccuracyAccumulator().update(["pos", "neg"], ["pos", "pos"]).update(["neg"], ["neg"]).compute()
    0.6666666666666666
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, references: Sequence[Hashable], predictions: Sequence[Hashable]) -> "AccuracyAccumulator":
        refs = _as_labels(references, "references")
        preds = _as_labels(predictions, "predictions")
        check_same_length(refs, preds, "references", "predictions")
        self.correct += sum(1 for r, p in zip(refs, preds) if r == p)
        self.total += len(refs)
        return self

    def compute(self) -> float:
        if self.total == 0:
            raise DataError("accuracy of no examples is undefined; give at least one reference/prediction pair")
        return self.correct / self.total


class MacroF1Accumulator(Accumulator):
    """Streaming macro-averaged F1 over the labels seen in references or predictions.

    >>> MacroF1Accumulator().update([0, 0, 1, 1], [0, 1, 1, 1]).compute()
    0.7333333333333334
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.true_positives: Counter = Counter()
        self.false_positives: Counter = Counter()
        self.false_negatives: Counter = Counter()
        self.total = 0

    def update(self, references: Sequence[Hashable], predictions: Sequence[Hashable]) -> "MacroF1Accumulator":
        refs = _as_labels(references, "references")
        preds = _as_labels(predictions, "predictions")
        check_same_length(refs, preds, "references", "predictions")
        for r, p in zip(refs, preds):
            if r == p:
                self.true_positives[r] += 1
            else:
                self.false_negatives[r] += 1
                self.false_positives[p] += 1
        self.total += len(refs)
        return self

    def per_class(self) -> dict[Hashable, float]:
        """F1 of each label seen so far."""
        labels = set(self.true_positives) | set(self.false_positives) | set(self.false_negatives)
        out = {}
        for label in labels:
            tp, fp, fn = self.true_positives[label], self.false_positives[label], self.false_negatives[label]
            out[label] = 2 * tp / (2 * tp + fp + fn)  # never 0/0: the label occurred somewhere
        return out

    def compute(self) -> float:
        if self.total == 0:
            raise DataError("macro F1 of no examples is undefined; give at least one reference/prediction pair")
        scores = self.per_class()
        # fsum: exactly rounded, so the result does not depend on the (hash-seeded) label order.
        return math.fsum(scores.values()) / len(scores)


def accuracy(references: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
    """Fraction of predictions equal to their reference, in [0, 1].

    >>> accuracy(["pos", "neg", "pos"], ["pos", "pos", "pos"])
    0.6666666666666666
    """
    return AccuracyAccumulator().update(references, predictions).compute()


def macro_f1(references: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
    """Unweighted mean of per-class F1 over all labels in references ∪ predictions, in [0, 1].

    >>> macro_f1(["pos", "neg", "pos"], ["pos", "pos", "pos"])
    0.4
    """
    return MacroF1Accumulator().update(references, predictions).compute()
