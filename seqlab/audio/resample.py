"""Band-limited resampling with torchaudio, kernels cached, clips batched.

``torchaudio.functional.resample`` (windowed-sinc interpolation, Hann window, 6 zero
crossings, roll-off 0.99: J. O. Smith, "Digital Audio Resampling",
https://ccrma.stanford.edu/~jos/resample/) rebuilds its polyphase kernel on every
call; for many short clips that rebuild costs more than the filtering. We keep one
``torchaudio.transforms.Resample`` (which builds the kernel once) per
(source rate, target rate, device) in a small cache, and filter clips of similar length
together as one zero-padded batch: the kernel sees zeros past the end of a clip either
way, so a batched clip equals the clip resampled alone.

The polyphase kernel has ``new/g`` phases of about ``orig/g`` taps each (``g`` the rates'
greatest common divisor): tiny for the usual pairs (44.1 → 16 kHz: 76k taps), but a rate
that shares no large factor with the target (16,001 Hz, 44,101 Hz) or an absurd one
(1e12 Hz) would need hundreds of millions of taps, gigabytes. Above :data:`MAX_KERNEL_TAPS`
a clip is resampled in the frequency domain instead: its real FFT is cut (or zero-padded)
to the new length and inverted, which is exact band-limited resampling of the clip taken as
periodic (only the first and last few milliseconds see the wrap-around), in memory linear in
the clip's length.
"""
from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from seqlab.core.errors import InputError

#: Clips filtered together in one call (sorted by length, so padding stays small).
_BATCH = 32
#: Largest polyphase kernel (phases × taps) built for a rate pair; above it, FFT resampling.
MAX_KERNEL_TAPS = 1 << 22
#: torchaudio's defaults, used to size its kernel (``lowpass_filter_width``, ``rolloff``).
_WIDTH, _ROLLOFF = 6, 0.99


def kernel_taps(orig_sr: int, new_sr: int) -> int:
    """Weights in torchaudio's polyphase kernel for this rate pair (phases × taps per phase)."""
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    width = math.ceil(_WIDTH * orig / (min(orig, new) * _ROLLOFF))
    return new * (orig + 2 * width)


def _fft_resample(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """Band-limited resampling of ``x (..., n)`` to ``n_out`` samples by cutting/padding its spectrum."""
    n = x.shape[-1]
    if n == 0 or n_out == 0:
        return x.new_zeros(*x.shape[:-1], n_out)
    spectrum = torch.fft.rfft(x.to(torch.float64), dim=-1)
    keep = min(spectrum.shape[-1], n_out // 2 + 1)
    out = spectrum.new_zeros(*spectrum.shape[:-1], n_out // 2 + 1)
    out[..., :keep] = spectrum[..., :keep]
    return (torch.fft.irfft(out, n=n_out, dim=-1) * (n_out / n)).to(torch.float32)


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
    if kernel_taps(orig_sr, new_sr) > MAX_KERNEL_TAPS:
        return _fft_resample(x, resampled_length(x.shape[-1], orig_sr, new_sr))
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
    if kernel_taps(orig_sr, new_sr) > MAX_KERNEL_TAPS:  # one clip at a time: the FFT sees each whole clip
        with torch.no_grad():
            return [_fft_resample(torch.as_tensor(np.asarray(c, dtype=np.float32)).to(device),
                                  resampled_length(len(c), orig_sr, new_sr)).cpu().numpy() for c in clips]
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


def resample_mixed(
    clips: list[np.ndarray], rates: Sequence[int | None], target: int, device: str | torch.device,
    warned: set, before: str = "", stacklevel: int = 2,
) -> list[np.ndarray]:
    """Bring clips of mixed rates to ``target`` in place: the clips of each other rate resampled as one batch.

    ``rates[i]`` is clip ``i``'s rate (``None``: already at ``target``). The first time a stage
    (its ``warned`` set) meets a rate it warns ``resampled R Hz → T Hz{before} (first seen at
    example i)``: resampling is a cost the user may want to avoid by preparing the data.

    >>> clips = [np.ones(80, np.float32), np.ones(160, np.float32)]
    >>> [len(c) for c in resample_mixed(clips, [8000, 16000], 16000, "cpu", {8000})]
    [160, 160]
    """
    for rate in sorted({r for r in rates if r is not None and r != target}):
        idx = [i for i, r in enumerate(rates) if r == rate]
        if rate not in warned:
            warned.add(rate)
            warnings.warn(f"resampled {rate} Hz → {target} Hz{before} (first seen at example {idx[0]})",
                          stacklevel=stacklevel + 1)
        for i, y in zip(idx, resample_clips([clips[i] for i in idx], rate, target, device)):
            clips[i] = y
    return clips
