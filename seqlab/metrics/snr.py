"""Signal-to-noise ratio of an estimate against a reference, in dB (denoising quality)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.errors import InputError

__all__ = ["snr_db"]


def snr_db(reference: Any, estimate: Any) -> float:
    """10·log10(Σ ref² / Σ (ref − x)²) over every entry of ``reference`` and ``estimate``.

    Both may be arrays or lists of arrays (e.g. one MFCC matrix per clip): the sums run
    over all of them, so long clips weigh more. A perfect estimate gives ``inf``.

    >>> snr_db(np.array([3.0, 4.0]), np.array([3.0, 3.0]))   # 25 / 1
    13.979400086720377
    """
    refs = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    ests = list(estimate) if isinstance(estimate, (list, tuple)) else [estimate]
    if len(refs) != len(ests):
        raise InputError(f"snr_db: {len(refs)} references for {len(ests)} estimates")
    signal = noise = 0.0
    for i, (r, x) in enumerate(zip(refs, ests)):
        r = np.asarray(r.detach().cpu() if hasattr(r, "detach") else r, dtype=np.float64)  # a tensor or an array
        x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
        if r.shape != x.shape:
            raise InputError(f"snr_db: item {i}: the reference has shape {r.shape}, the estimate {x.shape}")
        signal += float(np.sum(r * r))
        noise += float(np.sum((r - x) ** 2))
    if signal == 0.0:
        raise InputError("snr_db: the reference is all zeros; the SNR is undefined")
    return math.inf if noise == 0.0 else 10.0 * math.log10(signal / noise)

