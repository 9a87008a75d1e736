"""Detection scores: the area under the ROC curve and an anomaly threshold chosen on validation scores.

AUC from ranks as the Mann–Whitney statistic, AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋), tied
scores given their average rank (Hanley & McNeil, 1982, *Radiology* 143, eq. 2). The
threshold: a quantile of the in-class scores (needs no anomalies), or the cut maximising
Youden's J = TPR − FPR (Youden, 1950) when validation anomalies exist.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import ConfigError, DataError, InputError

__all__ = ["choose_threshold", "roc_auc"]


def roc_auc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve of ``scores`` for the positives ``labels == 1`` (higher = more positive).

    The Mann–Whitney form: AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋), R₊ the sum of the positives'
    ranks among all scores, ties sharing their average rank — the probability that a random
    positive scores above a random negative, ties counting ½.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> roc_auc([1.0, 1.0], [0, 1])
    0.5
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise InputError(f"roc_auc: {s.size} scores for {y.size} labels")
    if not np.isfinite(s).all():
        raise InputError(f"roc_auc: {int((~np.isfinite(s)).sum())} score(s) are NaN or infinite")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"roc_auc: labels must be 0/1 (or booleans), got values {sorted(set(y.tolist()))[:5]}")
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"roc_auc needs both classes; got {n_pos} positive(s) and {n_neg} negative(s)")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # ranks start at 1; a tie group shares its mean rank
    rank_sum = float(average_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)



def choose_threshold(
    inlier_scores: Sequence[float], outlier_scores: Sequence[float] | None = None,
    method: str = "quantile", quantile: float = 0.95,
) -> float:
    """The anomaly threshold (flag ``score > threshold``) chosen on validation scores.

    ``quantile``: that quantile of the in-class scores (a false-alarm rate of about
    1 − quantile; no anomalies needed). ``youden``: the cut between two sorted scores
    that maximises TPR − FPR (needs ``outlier_scores``).

    >>> choose_threshold([1, 2, 3, 4], method="quantile", quantile=0.5)
    2.5
    >>> choose_threshold([1, 2, 3], [5, 6], method="youden")
    4.0
    """
    inl = np.asarray(inlier_scores, dtype=np.float64).reshape(-1)
    if inl.size == 0:
        raise DataError("choose_threshold: no in-class validation scores to choose a threshold from")
    if method == "quantile":
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"threshold.quantile must be in (0, 1), got {quantile!r}")
        return float(np.quantile(inl, quantile))
    if method == "youden":
        out = np.asarray(outlier_scores if outlier_scores is not None else [], dtype=np.float64).reshape(-1)
        if out.size == 0:
            raise DataError(
                "choose_threshold: method 'youden' needs out-of-class validation scores; give validation anomalies "
                "or use method 'quantile'"
            )
        values = np.unique(np.concatenate([inl, out]))
        cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1.0]])
        tpr = (out[None, :] > cuts[:, None]).mean(1)
        fpr = (inl[None, :] > cuts[:, None]).mean(1)
        return float(cuts[int(np.argmax(tpr - fpr))])
    raise ConfigError(f"threshold.method: unknown method {method!r}; valid: quantile, youden")


