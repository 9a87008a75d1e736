"""Tiny synthetic clips for the clip tasks' tests (anomaly, denoise, cgan): tones and noise at 8 kHz."""
from __future__ import annotations

import numpy as np

from seqlab.data.clips import ClipSet

RATE = 8000
FEATURES = {"sample_rate": RATE, "n_fft": 256, "hop_length": 80, "n_mels": 20, "n_mfcc": 13, "cmvn": "global", "device": "cpu"}


def tone(f0: float, rng: np.random.Generator, seconds: float = 0.3) -> np.ndarray:
    """A voiced-sounding clip: three harmonics of f0 under a smooth envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    return (0.3 * np.hanning(t.size) * x).astype(np.float32)


def noise_clip(rng: np.random.Generator, seconds: float = 0.3) -> np.ndarray:
    return (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def tones(n: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    return ClipSet([tone(rng.uniform(200, 400), rng) for _ in range(n)])


def stages(features: dict = FEATURES) -> list:
    """The clip tasks' front end: audio_loader → mfcc."""
    from seqlab.audio.features import MFCC
    from seqlab.audio.io import AudioLoader

    return [AudioLoader(sample_rate=features["sample_rate"]), MFCC(features)]
