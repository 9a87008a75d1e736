"""Reading audio and the ``audio_loader`` stage: paths or arrays → mono float32 at one rate.

Files are read with soundfile (libsndfile: WAV, FLAC, OGG, MP3 …); formats it lacks fall
back to ``librosa.load`` (audioread). Arrays may come as numpy arrays, lists, torch
tensors, Hugging Face ``datasets.Audio`` dicts (``{"array", "sampling_rate"}`` or
``{"path"/"bytes"}``, e.g. with ``Audio(decode=False)``) or the torchcodec decoders that
``datasets`` ≥ 4 decodes ``Audio`` columns to. Whatever arrives leaves as a 1-D float32 array at
``sample_rate`` (resampled with a warning the first time a rate is seen), optionally
peak- or RMS-normalised, together with a ``sample_rate`` column.

Bad input never crashes deep inside: a missing or non-audio file, an object array, NaNs,
an empty clip or one longer than ``max_seconds`` raise :class:`InputError` naming the
file or example; clipped audio only warns.
"""
from __future__ import annotations

import dataclasses
import io
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from seqlab.core.errors import ConfigError, InputError
from seqlab.core.stage import Stage

from .resample import resample_mixed
from .signal import clipped_fraction, parse_sample_rate, peak, peak_normalize, prepare, rms_normalize


def _quoted(error: Exception, source: Any) -> str:
    """An error's text, with an in-memory source's repr (``<_io.BytesIO object at 0x…>``) as "the bytes"."""
    text = str(error)
    return text.replace(repr(source), "the bytes") if isinstance(source, io.BytesIO) else text


def _read_with_librosa(source: Any, name: str, first_error: Exception) -> tuple[np.ndarray, int]:
    import librosa

    with warnings.catch_warnings():
        # librosa announces its own soundfile → audioread fallback; we already know.
        warnings.simplefilter("ignore")
        try:
            data, sr = librosa.load(source, sr=None, mono=True)
        except Exception as err:  # noqa: BLE001 - any failure here means "not audio we can read"
            raise InputError(
                f"{name} is not an audio file soundfile or librosa can read "
                f"(soundfile: {_quoted(first_error, source)}; librosa: {type(err).__name__}: {_quoted(err, source)})"
            ) from None
    return np.asarray(data, dtype=np.float32), int(sr)


def read_audio(path: str | os.PathLike | bytes, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read one file (or its bytes) → (1-D float32 mono samples, sample rate).

    >>> import tempfile, soundfile as sf
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((160, 2), np.int16), 16000)
    >>> x, sr = read_audio(path)
    >>> x.shape, x.dtype, sr
    ((160,), dtype('float32'), 16000)
    """
    import soundfile as sf

    if isinstance(path, (bytes, bytearray)):
        source: Any = io.BytesIO(path)
        name = name or "audio bytes"
    else:
        p = Path(path)
        name = name or f"audio file {str(p)!r}"
        try:
            exists = p.exists()
        except OSError as err:  # e.g. a name longer than the file system allows
            raise InputError(f"{name:.300} cannot be a file here: {err.strerror or err}") from None
        if not exists:
            raise InputError(f"{name} does not exist")
        if p.is_dir():
            raise InputError(f"{name} is a directory, not an audio file")
        source = str(p)
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - libsndfile raises several types
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return _read_with_librosa(source, name, err)
    # always_2d gives (frames, channels): average the channels.
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


@dataclasses.dataclass
class AudioLoaderConfig:
    """Settings of :class:`AudioLoader`.

    ``column`` holds file paths, arrays or ``datasets.Audio`` dicts. Arrays without a
    rate of their own take it from the ``sample_rate_column`` of the batch, else from
    ``input_sample_rate``, else they are taken to be at ``sample_rate`` already.
    """

    column: str = "audio"
    sample_rate: int = 16000
    input_sample_rate: int | None = None
    sample_rate_column: str = "sample_rate"
    #: Relative paths are read from here (default: the working directory).
    root: str | None = None
    normalize: Literal["none", "peak", "rms"] = "none"
    peak_level: float = 1.0
    rms_level_db: float = -20.0
    #: Longer clips are refused (``too_long: error``) or cut (``truncate``); None: no limit.
    max_seconds: float | None = 120.0
    too_long: Literal["error", "truncate"] = "error"
    nonfinite: Literal["error", "zero"] = "error"
    allow_empty: bool = False
    #: Where resampling runs; loading is I/O-bound, so the CPU is the default.
    device: str = "cpu"

    def validate(self, where: str = "config") -> None:
        if self.sample_rate <= 0:
            raise ConfigError(f"{where}.sample_rate: must be a positive number of Hz, got {self.sample_rate}")
        if self.input_sample_rate is not None and self.input_sample_rate <= 0:
            raise ConfigError(f"{where}.input_sample_rate: must be positive, got {self.input_sample_rate}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"{where}.max_seconds: must be positive or null, got {self.max_seconds}")
        if not 0 < self.peak_level <= 1e3:
            raise ConfigError(f"{where}.peak_level: must be in (0, 1000], got {self.peak_level}")


class AudioLoader(Stage):
    """Paths or arrays in ``column`` → ``audio`` (1-D float32 mono at ``sample_rate``) and ``sample_rate``.

    >>> loader = AudioLoader(sample_rate=16000)
    >>> out = loader({"audio": [np.full(800, 16384, np.int16)]})
    >>> out["audio"][0][:3], out["sample_rate"]
    (array([0.5, 0.5, 0.5], dtype=float32), [16000])
    """

    kind = "audio_loader"
    Config = AudioLoaderConfig
    provides = ("audio", "sample_rate")

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.column,)
        self._warned: set = set()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_warned": set()}

    # -- one value -------------------------------------------------------------------
    def _path(self, value: str | os.PathLike) -> Path:
        p = Path(value)
        if self.config.root is not None and not p.is_absolute():
            p = Path(self.config.root) / p
        return p

    def _read_one(self, value: Any, rate: Any, index: int) -> tuple[np.ndarray, int, str]:
        cfg = self.config
        where = f"example {index}"
        if isinstance(value, (str, os.PathLike)):
            path = self._path(value)
            where = f"example {index} (audio file {str(path)!r})"
            data, sr = read_audio(path, name=where)
            return data, sr, where
        if isinstance(value, dict):  # datasets.Audio: {"array", "sampling_rate", "path"} or {"bytes", "path"}
            if value.get("array") is not None:
                rate = value.get("sampling_rate", rate)
                value = value["array"]
            elif value.get("bytes") is not None:
                data, sr = read_audio(value["bytes"], name=f"{where} (audio bytes of {value.get('path')!r})")
                return data, sr, where
            elif value.get("path"):
                return self._read_one(value["path"], rate, index)
            else:
                raise InputError(f"{where}: an audio dict needs 'array' (+ 'sampling_rate'), 'bytes' or 'path'; got keys {sorted(value)}")
        if value is None:
            raise InputError(f"{where}: the audio is missing (None)")
        if hasattr(value, "get_all_samples"):  # datasets >= 4 decodes Audio to torchcodec AudioDecoders
            samples = value.get_all_samples()
            value, rate = samples.data, samples.sample_rate
        data = prepare(value, where, cfg.nonfinite)
        if rate is None:
            rate = cfg.input_sample_rate or cfg.sample_rate
        return data, parse_sample_rate(rate, where), where

    def _check(self, data: np.ndarray, sr: int, where: str) -> np.ndarray:
        cfg = self.config
        if data.size == 0:
            if cfg.allow_empty:
                return data
            raise InputError(f"{where}: the audio is empty (0 samples); drop it or set allow_empty: true")
        data = prepare(data, where, cfg.nonfinite)  # files: NaN check; arrays: already done (cheap)
        if cfg.max_seconds is not None and data.size > cfg.max_seconds * sr:
            seconds = data.size / sr
            if cfg.too_long == "error":
                raise InputError(
                    f"{where}: the audio lasts {seconds:.1f} s, longer than max_seconds={cfg.max_seconds:g}; "
                    "split it into shorter clips (seqlab.audio.split_clip), raise max_seconds, "
                    "or set too_long: truncate"
                )
            data = data[: int(cfg.max_seconds * sr)]
        top = peak(data)
        if top > 1.0 and "scale" not in self._warned:
            self._warned.add("scale")
            warnings.warn(
                f"{where}: peak |x| = {top:.3g} > 1.0; the audio is not scaled to [-1, 1] "
                "(float samples holding integer PCM values?); features are computed anyway",
                stacklevel=5,
            )
        elif top <= 1.0 and "clip" not in self._warned and clipped_fraction(data) > 0.01:
            self._warned.add("clip")
            warnings.warn(
                f"{where}: {100 * clipped_fraction(data):.1f}% of the samples are at full scale; "
                "the audio looks clipped (features are computed anyway)",
                stacklevel=5,
            )
        return data

    # -- the stage -------------------------------------------------------------------
    def map(self, batch):
        cfg = self.config
        values = batch[cfg.column]
        rates = batch.get(cfg.sample_rate_column)
        if rates is not None and len(rates) != len(values):
            raise InputError(f"column {cfg.sample_rate_column!r} has {len(rates)} values for {len(values)} clips")
        clips: list[np.ndarray] = []
        srs: list[int] = []
        for i, value in enumerate(values):
            data, sr, where = self._read_one(value, None if rates is None else rates[i], i)
            clips.append(self._check(data, sr, where))
            srs.append(sr)
        resample_mixed(clips, srs, cfg.sample_rate, cfg.device, self._warned, stacklevel=4)
        if cfg.normalize == "peak":
            clips = [peak_normalize(c, cfg.peak_level) for c in clips]
        elif cfg.normalize == "rms":
            clips = [rms_normalize(c, cfg.rms_level_db) for c in clips]
        return {"audio": clips, "sample_rate": [cfg.sample_rate] * len(clips)}


def split_clip(audio: np.ndarray, sample_rate: int, max_seconds: float, overlap_seconds: float = 0.0) -> list[np.ndarray]:
    """Cut a long clip into pieces of at most ``max_seconds`` (optionally overlapping).

    >>> [len(p) for p in split_clip(np.zeros(25), 10, 1.0)]
    [10, 10, 5]
    """
    size = int(round(max_seconds * sample_rate))
    step = size - int(round(overlap_seconds * sample_rate))
    if size <= 0 or step <= 0:
        raise ConfigError(f"split_clip: need 0 <= overlap_seconds < max_seconds, got {overlap_seconds} and {max_seconds}")
    if len(audio) <= size:
        return [audio]
    return [audio[s : s + size] for s in range(0, max(len(audio) - (size - step), 1), step)]
