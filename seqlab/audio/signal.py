"""Raw-signal hygiene: sample formats to float32, channels to mono, finite checks, levels.

Everything downstream (resampling, MFCC) assumes a 1-D ``float32`` array in roughly
[-1, 1]. This module is the one place that gets any user-given audio there, and the one
place that refuses what cannot be made so, with an :class:`~seqlab.core.errors.InputError`
that names the example:

- integer PCM is scaled by its full-scale value (int16 / 32768, int32 / 2**31, uint8
  offset by 128), the convention of libsndfile and ``librosa.util.buf_to_float``;
- float16/float64 are converted to float32; object, string, bool and complex arrays are
  refused, as is int64 (it has no agreed full scale — a list of Python ints ends up so);
- 2-D input is mixed down to mono by averaging the channels; the channel axis is the
  shorter one, which reads both soundfile's ``(frames, channels)`` and torchaudio's
  ``(channels, frames)`` layouts;
- NaN/inf samples are an error, or replaced by zeros when asked.

Peak and RMS normalisation (``peak_normalize``, ``rms_normalize``) leave silence silent
instead of dividing by zero.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from seqlab.core.errors import InputError

#: Full-scale divisors for integer PCM (signed: 2**(bits-1)).
_INT_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def as_array(audio: Any, where: str) -> np.ndarray:
    """``audio`` (ndarray, list, torch tensor) as an ndarray, without changing its dtype."""
    if hasattr(audio, "detach") and hasattr(audio, "cpu"):  # a torch tensor, without importing torch
        audio = audio.detach().cpu()
        if str(audio.dtype) == "torch.bfloat16":  # numpy has no bfloat16; float32 holds it exactly
            audio = audio.float()
        audio = audio.numpy()
    if isinstance(audio, (str, bytes)):
        raise InputError(f"{where}: expected audio samples, got the {type(audio).__name__} {audio!r:.60}")
    try:
        arr = np.asarray(audio)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise InputError(f"{where}: cannot read the audio as an array of samples ({err})") from None
    return arr


def to_float32(audio: Any, where: str = "audio") -> np.ndarray:
    """Samples of any supported dtype as float32 in the usual [-1, 1] scale (shape unchanged).

    >>> to_float32(np.array([0, 16384, -32768], dtype=np.int16))
    array([ 0. ,  0.5, -1. ], dtype=float32)
    """
    arr = as_array(audio, where)
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float32, copy=False)
    if kind == "i" and arr.dtype in _INT_SCALE:
        return (arr.astype(np.float32) / np.float32(_INT_SCALE[arr.dtype])).astype(np.float32, copy=False)
    if kind == "u" and arr.dtype == np.uint8:
        return ((arr.astype(np.float32) - 128.0) / 128.0).astype(np.float32, copy=False)
    if arr.dtype == object:
        raise InputError(
            f"{where}: the audio is an array of Python objects (dtype object, e.g. ragged lists or None); "
            "expected a 1-D array of numbers (float32/float64, or int16/int32 PCM)"
        )
    if kind in "iu":
        raise InputError(
            f"{where}: integer samples of dtype {arr.dtype} have no standard full scale; give float samples in "
            "[-1, 1] or int8/int16/int32/uint8 PCM"
        )
    raise InputError(
        f"{where}: audio samples of dtype {arr.dtype} are not numbers this library reads; "
        "expected float32/float64 or int16/int32 PCM"
    )


def to_mono(audio: np.ndarray, where: str = "audio") -> np.ndarray:
    """Average the channels of a 2-D array; a 1-D array passes through.

    The channel axis is the shorter one (soundfile gives ``(frames, channels)``,
    torchaudio ``(channels, frames)``).

    >>> to_mono(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.5]], dtype=np.float32))  # 2 channels, 3 frames
    array([0.5 , 0.  , 0.75], dtype=float32)
    """
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        if 0 in audio.shape:
            return np.zeros(0, dtype=audio.dtype)
        axis = 0 if audio.shape[0] <= audio.shape[1] else 1
        return audio.mean(axis=axis, dtype=np.float64).astype(audio.dtype, copy=False)
    raise InputError(
        f"{where}: expected a 1-D (samples) or 2-D (channels × samples) audio array, got shape {audio.shape}"
    )


def parse_sample_rate(rate: Any, where: str) -> int:
    """A sample rate given by a user (int, integral float, numpy scalar) as a positive int.

    >>> parse_sample_rate(16000.0, "example 0")
    16000
    """
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InputError(f"{where}: the sample rate must be a number of samples per second, got {rate!r:.60}")
    if not math.isfinite(rate) or rate <= 0 or rate != int(rate):
        raise InputError(f"{where}: the sample rate must be a positive whole number of Hz, got {rate!r}")
    return int(rate)


def check_finite(audio: np.ndarray, where: str, nonfinite: str = "error") -> np.ndarray:
    """Refuse (``"error"``) or zero (``"zero"``) NaN/inf samples."""
    finite = np.isfinite(audio)
    if finite.all():
        return audio
    bad = int(audio.size - np.count_nonzero(finite))
    if nonfinite == "zero":
        return np.where(finite, audio, np.float32(0)).astype(audio.dtype, copy=False)
    first = int(np.flatnonzero(~finite)[0])
    raise InputError(
        f"{where}: {bad} of {audio.size} samples are NaN or infinite (first at sample {first}); "
        "fix the source, or set nonfinite: zero to replace them by silence"
    )


#: Largest sample magnitude accepted. Audio is about ±1 (int32 PCM read as unscaled floats is
#: ±2.1e9); far above, the float32 power spectrum (|FFT|² ≤ (n_fft · peak)²) overflows to inf
#: and the features become NaN without a word.
MAX_SAMPLE = 1e12


def check_range(audio: np.ndarray, where: str) -> np.ndarray:
    """Refuse samples whose magnitude exceeds :data:`MAX_SAMPLE` (finite samples assumed)."""
    if audio.size and not (np.max(np.abs(audio)) <= MAX_SAMPLE):
        first = int(np.flatnonzero(np.abs(audio) > MAX_SAMPLE)[0])
        raise InputError(
            f"{where}: samples reach {float(np.max(np.abs(audio))):.3g} (first at sample {first}); "
            f"audio is expected within about ±1 and at most ±{MAX_SAMPLE:.0e}: scale it down"
        )
    return audio


def prepare(audio: Any, where: str, nonfinite: str = "error") -> np.ndarray:
    """Any supported input → 1-D float32 mono finite samples of sane magnitude (may be empty)."""
    return check_range(check_finite(to_mono(to_float32(audio, where), where), where, nonfinite), where)


def peak(audio: np.ndarray) -> float:
    return float(np.max(np.abs(audio))) if audio.size else 0.0


def clipped_fraction(audio: np.ndarray, threshold: float = 0.999) -> float:
    """The fraction of samples at or beyond full scale — a sign of clipping."""
    if not audio.size:
        return 0.0
    return float(np.count_nonzero(np.abs(audio) >= threshold)) / audio.size


def peak_normalize(audio: np.ndarray, level: float = 1.0, eps: float = 1e-8) -> np.ndarray:
    """Scale so that max |x| equals ``level``; silence (peak below ``eps``) is returned as is.

    >>> peak_normalize(np.array([0.1, -0.25], dtype=np.float32))
    array([ 0.4, -1. ], dtype=float32)
    """
    top = peak(audio)
    if top < eps:
        return audio
    return (audio * np.float32(level / top)).astype(np.float32, copy=False)


def rms_normalize(audio: np.ndarray, level_db: float = -20.0, eps: float = 1e-8) -> np.ndarray:
    """Scale so that the RMS equals ``level_db`` dBFS; silence is returned as is.

    Peaks may exceed 1.0 afterwards (they are not clipped: features do not need it).

    >>> x = rms_normalize(np.array([0.5, -0.5], dtype=np.float32), level_db=-6.0206)
    >>> np.round(x, 4)
    array([ 0.5, -0.5], dtype=float32)
    """
    if not audio.size:
        return audio
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < eps:
        return audio
    return (audio * np.float32(10.0 ** (level_db / 20.0) / rms)).astype(np.float32, copy=False)
