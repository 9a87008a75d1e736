"""accuracy and macro_f1 agree with scikit-learn and stream exactly."""
from __future__ import annotations

import random

import pytest
from sklearn.metrics import accuracy_score, f1_score

from seqlab.core.errors import DataError
from seqlab.metrics.classification import AccuracyAccumulator, MacroF1Accumulator, accuracy, macro_f1


def _random_labels(rng: random.Random) -> tuple[list, list]:
    labels = rng.choice([["pos", "neg"], ["pos", "neg", "neutral"], [0, 1, 2, 3, 4]])
    n = rng.randint(1, 30)
    refs = [rng.choice(labels) for _ in range(n)]
    skill = rng.random()
    preds = [r if rng.random() < skill else rng.choice(labels) for r in refs]
    return refs, preds


def test_agrees_with_sklearn_on_random_cases():
    rng = random.Random(11)
    for case in range(300):  # scikit-learn's checks cost ~2 ms a call
        refs, preds = _random_labels(rng)
        got_acc, got_f1 = accuracy(refs, preds), macro_f1(refs, preds)
        assert isinstance(got_acc, float) and isinstance(got_f1, float)
        assert 0.0 <= got_acc <= 1.0 and 0.0 <= got_f1 <= 1.0
        assert got_acc == pytest.approx(accuracy_score(refs, preds), abs=1e-9), case
        assert got_f1 == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0), abs=1e-9), case


def test_known_values():
    assert accuracy(["a", "b", "b"], ["a", "b", "a"]) == 2 / 3
    # a: TP=1 FP=1 FN=1, F=1/2; b: TP=1 FN=1, F=2/3; c (only predicted): F=0
    assert macro_f1(["a", "b", "b", "a"], ["a", "b", "a", "c"]) == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert macro_f1([1, 1], [1, 1]) == 1.0


def test_streaming_equals_one_shot():
    rng = random.Random(12)
    for _ in range(100):
        refs, preds = _random_labels(rng)
        acc, f1 = AccuracyAccumulator(), MacroF1Accumulator()
        for k in range(0, len(refs), 7):
            acc.update(refs[k:k + 7], preds[k:k + 7])
            f1.update(refs[k:k + 7], preds[k:k + 7])
        assert acc.compute() == accuracy(refs, preds)
        assert f1.compute() == macro_f1(refs, preds)
    f1.reset()
    with pytest.raises(DataError):
        f1.compute()


def test_bad_inputs():
    with pytest.raises(DataError, match="no examples"):
        accuracy([], [])
    with pytest.raises(DataError, match="no examples"):
        macro_f1([], [])
    with pytest.raises(DataError, match="references has 2 items but predictions has 1"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(DataError, match="expected a list of labels, got str"):
        macro_f1("ab", "ab")
    with pytest.raises(DataError, match=r"predictions\[0\]: a label must be hashable"):
        accuracy(["a"], [["a"]])
