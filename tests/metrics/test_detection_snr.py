"""roc_auc and choose_threshold (seqlab.metrics.detection), snr_db (seqlab.metrics.snr)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.metrics.detection import choose_threshold, roc_auc
from seqlab.metrics.snr import snr_db


def test_roc_auc_equals_sklearn_on_random_cases():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for case in range(30):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        labels[0], labels[1] = 0, 1  # both classes present
        # Integer scores make ties common, which is where rank formulas go wrong.
        scores = rng.integers(0, 5, n) if case % 2 else rng.normal(size=n) + labels
        assert roc_auc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_values_and_errors():
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75   # 3 of the 4 (pos, neg) pairs ordered
    with pytest.raises(DataError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(InputError, match="NaN"):
        roc_auc([float("nan"), 0.2], [0, 1])


def test_snr_db_is_the_formula():
    rng = np.random.default_rng(1)
    ref = [rng.normal(size=(7, 13)), rng.normal(size=(3, 13))]
    est = [r + 0.3 * rng.normal(size=r.shape) for r in ref]
    signal = sum(float((r ** 2).sum()) for r in ref)
    error = sum(float(((r - e) ** 2).sum()) for r, e in zip(ref, est))
    assert snr_db(ref, est) == pytest.approx(10 * math.log10(signal / error), rel=1e-12)
    # An error with exactly 1/100 of the reference's energy is 20 dB.
    r = np.array([3.0, 4.0])
    assert snr_db(r, r + np.array([0.3, 0.4])) == pytest.approx(20.0)
    assert snr_db(r, r) == math.inf
    with pytest.raises(InputError, match="shape"):
        snr_db(np.zeros((2, 3)) + 1, np.zeros((3, 2)))


def test_choose_threshold():
    inl, out = np.linspace(0, 1, 101), np.linspace(2, 3, 11)
    assert choose_threshold(inl, method="quantile", quantile=0.9) == pytest.approx(0.9)
    cut = choose_threshold(inl, out, method="youden")
    assert 1.0 < cut < 2.0   # separates the two perfectly
    with pytest.raises(DataError, match="youden"):
        choose_threshold(inl, None, method="youden")
    with pytest.raises(ConfigError, match="quantile"):
        choose_threshold(inl, quantile=1.5)
