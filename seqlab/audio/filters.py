"""The fixed matrices of speech features, built once in float64 numpy: windows, mel filters, DCT, lifter, delta kernels.

- Mel scale: Slaney's (Auditory Toolbox, 1998: linear below 1 kHz, logarithmic above)
  or HTK's ``2595·log10(1 + f/700)`` (Young et al., The HTK Book, §5.4).
- Mel filterbank: triangles between adjacent mel points; ``norm="slaney"`` scales each
  to unit area (``2 / (f[i+2] - f[i])``). The formulas follow ``librosa.filters.mel``
  step by step so the two agree to float32 rounding.
- DCT-II, orthonormal (Davis & Mermelstein 1980 use the DCT of log filterbank energies
  as cepstra): ``C[k, n] = sqrt(2/N)·cos(π k (2n + 1) / 2N)``, row 0 scaled by 1/√2.
- Lifter (Juang et al. 1987): ``1 + (L/2)·sin(π (k + 1) / L)``, as librosa.
- Delta kernels: Savitzky–Golay derivative filters (Savitzky & Golay 1964), what
  ``librosa.feature.delta`` applies; for order 1 this is the HTK regression formula
  ``Σ n (c[t+n] − c[t−n]) / (2 Σ n²)``.
"""
from __future__ import annotations

import math

import numpy as np

WINDOWS = ("hann", "hamming", "blackman", "rectangular")


def window(name: str, win_length: int, n_fft: int) -> np.ndarray:
    """A periodic ("fftbins") window of ``win_length`` centred in ``n_fft`` zeros (librosa's layout).

    >>> window("hann", 4, 4)
    array([0. , 0.5, 1. , 0.5])
    """
    n = np.arange(win_length, dtype=np.float64)
    phase = 2.0 * np.pi * n / win_length
    if name == "hann":
        w = 0.5 - 0.5 * np.cos(phase)
    elif name == "hamming":
        w = 0.54 - 0.46 * np.cos(phase)
    elif name == "blackman":
        w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    elif name == "rectangular":
        w = np.ones(win_length)
    else:
        raise ValueError(f"unknown window {name!r}; known: {', '.join(WINDOWS)}")
    out = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    out[left : left + win_length] = w
    return out


def hz_to_mel(freq: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """Hz → mel on the Slaney or HTK scale.

    >>> round(float(hz_to_mel(1000.0)), 6), round(float(hz_to_mel(1000.0, "htk")), 3)
    (15.0, 999.986)
    """
    f = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(mels: np.ndarray | float, scale: str = "slaney") -> np.ndarray:
    """mel → Hz, the inverse of :func:`hz_to_mel`."""
    m = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
    scale: str = "slaney", norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)`` (float64).

    >>> fb = mel_filterbank(16000, 512, 40)
    >>> fb.shape, bool((fb >= 0).all())
    ((40, 257), True)
    """
    f_max = sample_rate / 2.0 if f_max is None else float(f_max)
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(f_min, scale), hz_to_mel(f_max, scale), n_mels + 2), scale)
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    elif norm not in (None, "none"):
        raise ValueError(f"unknown mel norm {norm!r}; use 'slaney' or None")
    return weights


def dct_matrix(n_in: int, n_out: int, norm: str | None = "ortho") -> np.ndarray:
    """DCT-II as a matrix ``(n_in, n_out)``: ``x @ D`` equals ``scipy.fft.dct(x, norm=norm)[..., :n_out]``.

    >>> D = dct_matrix(4, 4)
    >>> bool(np.allclose(D.T @ D, np.eye(4)))
    True
    """
    n = np.arange(n_in, dtype=np.float64)
    k = np.arange(n_out, dtype=np.float64)
    basis = np.cos(np.pi / n_in * (n[:, None] + 0.5) * k[None, :])
    if norm == "ortho":
        basis *= math.sqrt(2.0 / n_in)
        basis[:, 0] /= math.sqrt(2.0)
    elif norm in (None, "none"):
        basis *= 2.0
    else:
        raise ValueError(f"unknown DCT norm {norm!r}; use 'ortho' or None")
    return basis


def lifter_weights(n_mfcc: int, lifter: float) -> np.ndarray:
    """Cepstral lifter ``1 + (L/2) sin(π (k+1) / L)``; all ones when ``lifter`` is 0."""
    if lifter <= 0:
        return np.ones(n_mfcc)
    k = np.arange(1, n_mfcc + 1, dtype=np.float64)
    return 1.0 + (lifter / 2.0) * np.sin(np.pi * k / lifter)


def savgol_derivative(width: int, order: int) -> np.ndarray:
    """The Savitzky–Golay filter for the ``order``-th derivative, polynomial degree ``order``, centred window ``width``.

    Returned as correlation weights: ``y[t] = Σ_j w[j] · x[t - width//2 + j]``.

    >>> np.round(savgol_derivative(5, 1) * 10, 6) + 0.0   # HTK deltas: (−2, −1, 0, 1, 2) / 10
    array([-2., -1.,  0.,  1.,  2.])
    """
    half = width // 2
    n = np.arange(-half, width - half, dtype=np.float64)
    vander = n[:, None] ** np.arange(order + 1)[None, :]
    return np.linalg.pinv(vander)[order] * math.factorial(order)
