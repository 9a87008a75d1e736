"""Band-limited resampling with torchaudio, kernels cached, clips batched.

``torchaudio.functional.resample`` (windowed-sinc interpolation, Hann window, 6 zero
crossings, roll-off 0.99: J. O. Smith, "Digital Audio Resampling",
https://ccrma.stanford.edu/~jos/resample/) rebuilds its polyphase kernel on every
call; for many short clips that rebuild costs more than the filtering. We keep one
``torchaudio.transforms.Resample`` (which builds the kernel once) per
(source rate, target rate, device) in a small cache, and filter clips of similar length
together as one zero-padded batch: the kernel sees zeros past the end of a clip either
way, so a batched clip equals the clip resampled alone.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from seqlab.core.errors import InputError

#: Clips filtered together in one call (sorted by length, so padding stays small).
_BATCH = 32


@functools.lru_cache(maxsize=32)
def _resampler(orig_sr: int, new_sr: int, device: str) -> torch.nn.Module:
    import torchaudio

    return torchaudio.transforms.Resample(orig_sr, new_sr).to(device)


def resampled_length(n: int, orig_sr: int, new_sr: int) -> int:
    """Samples after resampling ``n`` samples (torchaudio's ``ceil(n * new / orig)``)."""
    g = math.gcd(int(orig_sr), int(new_sr))
    return -(-n * (new_sr // g) // (orig_sr // g))


def _check_rates(orig_sr: int, new_sr: int) -> None:
    for name, rate in (("source", orig_sr), ("target", new_sr)):
        if not isinstance(rate, (int, np.integer)) or isinstance(rate, bool) or rate <= 0:
            raise InputError(f"resample: the {name} sample rate must be a positive integer, got {rate!r}")


def resample(audio: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample a tensor ``(..., time)`` on its own device (float32).

    >>> x = torch.zeros(8000)
    >>> resample(x, 8000, 16000).shape
    torch.Size([16000])
    """
    _check_rates(orig_sr, new_sr)
    if orig_sr == new_sr:
        return audio
    x = audio.to(torch.float32)
    return _resampler(int(orig_sr), int(new_sr), str(x.device))(x)


def resample_clips(
    clips: Sequence[np.ndarray], orig_sr: int, new_sr: int, device: str | torch.device = "cpu"
) -> list[np.ndarray]:
    """Resample 1-D float32 clips of one source rate; returns float32 numpy arrays.

    Clips are sorted by length and filtered ``_BATCH`` at a time as a padded batch.

    >>> out = resample_clips([np.ones(80, np.float32), np.ones(160, np.float32)], 8000, 16000)
    >>> [len(o) for o in out]
    [160, 320]
    """
    _check_rates(orig_sr, new_sr)
    if orig_sr == new_sr:
        return [np.asarray(c, dtype=np.float32) for c in clips]
    device = torch.device(device)
    module = _resampler(int(orig_sr), int(new_sr), str(device))
    out: list[np.ndarray | None] = [None] * len(clips)
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    for s in range(0, len(order), _BATCH):
        group = order[s : s + _BATCH]
        longest = max(len(clips[i]) for i in group)
        if longest == 0:
            for i in group:
                out[i] = np.zeros(0, dtype=np.float32)
            continue
        batch = np.zeros((len(group), longest), dtype=np.float32)
        for row, i in enumerate(group):
            batch[row, : len(clips[i])] = clips[i]
        with torch.no_grad():
            y = module(torch.from_numpy(batch).to(device)).cpu().numpy()
        for row, i in enumerate(group):
            out[i] = np.ascontiguousarray(y[row, : resampled_length(len(clips[i]), orig_sr, new_sr)])
    return out  # type: ignore[return-value]
