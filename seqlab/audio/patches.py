"""MFCC matrices cut into overlapping patches and put back together, or brought to a fixed number of frames.

``frame_patches`` windows ``(frames, dim)`` feature matrices (every frame covered; the last
window flush with the end), ``overlap_average`` is its inverse (each frame the mean of the
patches covering it), ``fixed_frames`` resizes or centre-crops/pads one clip to a fixed
length (an "image" for a convolutional model).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.errors import ConfigError, InputError

__all__ = ["fixed_frames", "frame_patches", "overlap_average"]


def _starts(length: int, frames: int, hop: int) -> list[int]:
    """Window starts covering every frame: every ``hop``, plus one flush with the end."""
    if length <= frames:
        return [0]
    starts = list(range(0, length - frames + 1, hop))
    if starts[-1] != length - frames:
        starts.append(length - frames)
    return starts


def _edge_pad(feature: np.ndarray, frames: int) -> np.ndarray:
    if feature.shape[0] >= frames:
        return feature
    return np.pad(feature, ((0, frames - feature.shape[0]), (0, 0)), mode="edge")


def frame_patches(features: Sequence[np.ndarray], frames: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping windows of ``frames`` frames every ``hop`` frames → ``(N, frames, dim)`` and the clip of each.

    The last window of a clip ends at its last frame, so every frame is covered; a clip
    shorter than ``frames`` is padded by repeating its last frame.

    >>> p, owner = frame_patches([np.arange(10.0).reshape(5, 2), np.ones((2, 2))], frames=3, hop=2)
    >>> p.shape, owner.tolist()
    ((3, 3, 2), [0, 0, 1])
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1 or not isinstance(hop, int) or hop < 1:
        raise ConfigError(f"patches: frames and hop must be positive integers, got frames={frames!r}, hop={hop!r}")
    windows, owner = [], []
    dim = None
    for i, f in enumerate(features):
        f = np.asarray(f, dtype=np.float32)
        if f.ndim != 2 or f.shape[0] == 0:
            raise InputError(f"clip {i}: expected an MFCC matrix (frames, coefficients) with frames > 0, got shape {f.shape}")
        if dim is not None and f.shape[1] != dim:
            raise InputError(f"clip {i}: {f.shape[1]} coefficients per frame, the clips before it have {dim}")
        dim = f.shape[1]
        padded = _edge_pad(f, frames)
        for s in _starts(f.shape[0], frames, hop):
            windows.append(padded[s:s + frames])
            owner.append(i)
    if not windows:
        return np.zeros((0, frames, 0), np.float32), np.zeros(0, np.int64)
    return np.stack(windows), np.asarray(owner, dtype=np.int64)


def overlap_average(patches: np.ndarray, lengths: Sequence[int], frames: int, hop: int) -> list[np.ndarray]:
    """Inverse of ``frame_patches``: each frame is the mean of the patches that cover it.

    >>> f = [np.arange(12.0).reshape(6, 2)]
    >>> p, _ = frame_patches(f, frames=4, hop=1)
    >>> np.allclose(overlap_average(p, [6], 4, 1)[0], f[0])
    True
    """
    out, k = [], 0
    for length in lengths:
        starts = _starts(int(length), frames, hop)
        span = max(int(length), frames)
        total = np.zeros((span, patches.shape[-1]), np.float64)
        count = np.zeros((span, 1), np.float64)
        for s in starts:
            total[s:s + frames] += patches[k]
            count[s:s + frames] += 1
            k += 1
        out.append((total / np.maximum(count, 1))[: int(length)].astype(np.float32))
    if k != len(patches):
        raise InputError(f"overlap_average: {len(patches)} patches for clips needing {k}")
    return out


def fixed_frames(feature: np.ndarray, frames: int, mode: str = "resize") -> np.ndarray:
    """One clip's ``(T, dim)`` MFCCs brought to exactly ``frames`` frames.

    ``resize``: linear interpolation along time (the whole word, uniformly stretched);
    ``pad_crop``: the centre ``frames`` frames, or the clip padded on both sides by
    repeating its first / last frame.

    >>> fixed_frames(np.array([[0.0], [2.0]]), 3).ravel().tolist()
    [0.0, 1.0, 2.0]
    >>> fixed_frames(np.arange(5.0)[:, None], 3, "pad_crop").ravel().tolist()
    [1.0, 2.0, 3.0]
    """
    f = np.asarray(feature, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] == 0:
        raise InputError(f"fixed_frames: expected (frames, coefficients) with frames > 0, got shape {f.shape}")
    t = f.shape[0]
    if mode == "resize":
        if t == 1:
            return np.repeat(f, frames, axis=0)
        pos = np.linspace(0.0, t - 1.0, frames)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, t - 1)
        w = (pos - lo)[:, None].astype(np.float32)
        return (1 - w) * f[lo] + w * f[hi]
    if mode == "pad_crop":
        if t >= frames:
            start = (t - frames) // 2
            return f[start:start + frames].copy()
        left = (frames - t) // 2
        return np.pad(f, ((left, frames - t - left), (0, 0)), mode="edge")
    raise ConfigError(f"image.mode: unknown mode {mode!r}; valid: resize, pad_crop")
