"""Noise at a chosen signal-to-noise ratio (white, pink ∝ 1/f), and cutting long recordings into segments.

``add_noise`` scales the noise so that 10·log10(P_audio / P_noise) equals the requested SNR,
powers being mean squares over the whole clip. Pink noise is white noise shaped by 1/√f in
the frequency domain (power ∝ 1/f).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..core.errors import ConfigError, InputError

__all__ = ["NOISE_KINDS", "add_noise", "cut_segments", "pink_noise", "white_noise"]


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-variance Gaussian white noise (float32)."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink noise (power ∝ 1/f), unit RMS: white noise shaped by 1/√f in the frequency domain.

    >>> x = pink_noise(4096, np.random.default_rng(0))
    >>> round(float(np.sqrt(np.mean(x ** 2))), 4)
    1.0
    """
    if n < 2:
        return np.zeros(n, np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    scale = np.zeros_like(freqs)
    scale[1:] = 1.0 / np.sqrt(freqs[1:])  # no DC: pink noise has zero mean
    x = np.fft.irfft(spectrum * scale, n)
    return (x / max(float(np.sqrt(np.mean(x * x))), 1e-12)).astype(np.float32)


NOISE_KINDS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {"white": white_noise, "pink": pink_noise}


def add_noise(audio: np.ndarray, snr: float, kind: str = "white", rng: np.random.Generator | None = None) -> np.ndarray:
    """``audio`` plus ``kind`` noise scaled so that 10·log10(P_audio / P_noise) = ``snr`` dB.

    Powers are means of squares over the whole clip (silences included).

    >>> x = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    >>> y = add_noise(x, 10.0, "pink", np.random.default_rng(0))
    >>> round(float(10 * np.log10(np.mean(x ** 2) / np.mean((y - x) ** 2))), 6)
    10.0
    """
    if kind not in NOISE_KINDS:
        raise ConfigError(f"add_noise: unknown noise {kind!r}; valid: {', '.join(NOISE_KINDS)}")
    rng = rng if rng is not None else np.random.default_rng()
    x = np.asarray(audio, dtype=np.float32)
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    if power == 0.0:
        raise InputError("add_noise: the clip is silent (or empty); a signal-to-noise ratio is undefined for it")
    noise = NOISE_KINDS[kind](x.size, rng).astype(np.float64)
    noise *= math.sqrt(power / (10.0 ** (snr / 10.0) * max(float(np.mean(noise * noise)), 1e-20)))
    return (x + noise).astype(np.float32)



def cut_segments(
    audio: np.ndarray, sample_rate: int, min_seconds: float = 0.5, max_seconds: float = 1.0,
    rng: np.random.Generator | None = None, silence_db: float | None = -20.0,
) -> list[np.ndarray]:
    """Cut a long recording into consecutive segments of random length in [min, max] seconds.

    A tail shorter than ``min_seconds`` is dropped, and so is every segment whose RMS is
    more than ``-silence_db`` dB below the whole recording's (a pause, not content).

    >>> x = np.ones(16000, np.float32)
    >>> [len(s) for s in cut_segments(x, 8000, 0.5, 0.5)]
    [4000, 4000, 4000, 4000]
    """
    if not 0 < min_seconds <= max_seconds:
        raise ConfigError(f"cut_segments: need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
    rng = rng if rng is not None else np.random.default_rng(0)
    x = np.asarray(audio, dtype=np.float32)
    whole = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    floor = whole * 10.0 ** (silence_db / 20.0) if silence_db is not None else -1.0
    out, start = [], 0
    while True:
        size = int(round(rng.uniform(min_seconds, max_seconds) * sample_rate))
        if start + size > x.size:
            break
        seg = x[start:start + size]
        if float(np.sqrt(np.mean(np.square(seg, dtype=np.float64)))) > floor:
            out.append(seg)
        start += size
    return out

