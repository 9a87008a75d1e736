"""Training-time augmentation: speed perturbation and edge trimming/padding of the waveform, SpecAugment on the features.

**Speed perturbation** (Ko, Peddinti, Povey & Khudanpur 2015, "Audio Augmentation for Speech
Recognition", Interspeech; Kaldi's ``speed`` factors 0.9/1.0/1.1): a clip played ``factor``
times faster — shorter by ``1/factor``, every frequency times ``factor`` (tempo and pitch
together, like a different speaker) — made by resampling it from ``factor · rate`` to
``rate`` (:func:`seqlab.audio.resample_clips`). :func:`speed_perturb_data` adds one copy of
the training set per factor; transcripts are unchanged.

**Edge trimming and padding**: a recogniser trained only on clips that begin and end with
silence learns that they do, and fails on recordings cut tight around the speech (FSDD's
connected digits: 0.55% WER with 50–300 ms of edge silence, 5.2% without). The speech
boundaries come from an energy detector (:func:`speech_bounds`: the first and last frame
whose energy is within ``threshold_db`` of the clip's loudest frame, the usual
energy-based endpointing, cf. ``librosa.effects.trim``); :func:`trim_edges` keeps a given
fraction of the silence at each edge (0: cut to the onset/offset). :func:`edge_augment`
draws, per clip and per edge, a trim (probability ``trim_p``, kept fraction
``U[0, max_keep]``) and then a pad of zeros (probability ``pad_p``, ``U[0, max_pad_s]``
seconds), from a seeded generator; :func:`edge_augment_data` adds augmented copies of a
training set (or replaces it, ``keep_originals=False``). Transcripts are unchanged: the
trim only removes frames below the threshold, never the speech between the bounds.

**SpecAugment**:
Park et al. 2019, "SpecAugment: A Simple Data Augmentation Method for Automatic Speech
Recognition" (arXiv:1904.08779), §2: each of ``freq_masks`` masks sets channels
``[f0, f0 + f)`` to a constant, ``f ~ U{0..F}``, ``f0 ~ U{0..D − f}``; each of
``time_masks`` masks sets frames ``[t0, t0 + t)``, ``t ~ U{0..min(T, p·τ)}``,
``t0 ~ U{0..τ − t}``, where τ is the clip's own length — so a mask never reaches the
padding of a shorter clip. Time warping (the paper's third policy, the least useful
one in its ablation) is left out.

The module is the identity in ``eval()`` mode, so a model can keep it in its forward.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, InputError


@dataclasses.dataclass
class SpecAugmentConfig:
    """Mask counts and widths (Park et al.'s LibriSpeech "LB" policy is F=27, m_F=1, T=100, p=1, m_T=1 on 80 mels)."""

    freq_masks: int = 2
    freq_width: int = 8
    time_masks: int = 2
    time_width: int = 20
    #: A time mask covers at most this fraction of the clip (the paper's p).
    time_ratio: float = 0.2
    mask_value: float = 0.0

    def validate(self, where: str = "config") -> None:
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.time_ratio <= 1.0:
            raise ConfigError(f"{where}.time_ratio: must be in [0, 1], got {self.time_ratio}")


def check_speed_factor(factor: Any, where: str = "speed_perturb") -> None:
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0.5 <= factor <= 2.0:
        raise ConfigError(f"{where}: a speed factor must be a number in [0.5, 2] (Kaldi uses 0.9 and 1.1), got {factor!r}")


def speed_perturb(clips: Sequence[Any], sample_rate: int, factor: float, device: str = "cpu") -> list[np.ndarray]:
    """``clips`` (1-D float arrays at ``sample_rate``) played ``factor`` times faster, at the same rate.

    >>> [len(c) for c in speed_perturb([np.zeros(8000, np.float32)], 8000, 1.1)]
    [7273]
    """
    from .resample import resample_clips
    from .signal import parse_sample_rate, prepare

    rate = parse_sample_rate(sample_rate, "speed_perturb")
    check_speed_factor(factor)
    source = int(round(rate * factor))
    clips = [prepare(c, f"speed_perturb: clip {i}") for i, c in enumerate(clips)]
    return resample_clips(clips, source, rate, device) if source != rate else clips


def speed_perturb_data(
    data: Mapping[str, Sequence[Any]], factors: Sequence[float] = (0.9, 1.1), sample_rate: int = 16000,
    audio_column: str = "audio", device: str = "cpu",
) -> dict[str, list]:
    """The rows of ``data`` (audio arrays at ``sample_rate``), then a speed-perturbed copy per factor.

    Every other column is repeated as is, so transcripts stay aligned; a ``sample_rate``
    column, if any, says ``sample_rate`` for the new rows.

    >>> out = speed_perturb_data({"audio": [np.zeros(800, np.float32)], "text": ["a"]}, (0.9, 1.1), 8000)
    >>> [len(a) for a in out["audio"]], out["text"]
    ([800, 889, 728], ['a', 'a', 'a'])
    """
    if audio_column not in data:
        raise ConfigError(f"speed_perturb_data: no column {audio_column!r} (columns: {sorted(data)})")
    out = {name: list(values) for name, values in data.items()}
    originals = list(data[audio_column])
    for factor in factors:
        out[audio_column] += speed_perturb(originals, sample_rate, factor, device)
        for name, values in data.items():
            if name == audio_column:
                continue
            out[name] += [sample_rate] * len(originals) if name == "sample_rate" else list(values)
    return out


@dataclasses.dataclass
class EdgeAugmentConfig:
    """Random edge trimming and padding of training clips (``copies: 0`` turns it off)."""

    #: Augmented copies of the training set to make (0: none).
    copies: int = 0
    #: Keep the original clips beside the copies (False: the copies replace them, same epoch cost).
    keep_originals: bool = True
    #: Probability that an edge (start and end drawn independently) is trimmed.
    trim_p: float = 0.5
    #: A trimmed edge keeps a fraction ``U[0, max_keep]`` of its silence (0: cut to the onset/offset).
    max_keep: float = 0.5
    #: Probability that an edge is then padded with zeros.
    pad_p: float = 0.0
    #: Longest pad, in seconds.
    max_pad_s: float = 0.3
    #: Frames within this many dB of the loudest frame are speech (see :func:`speech_bounds`).
    threshold_db: float = -35.0
    #: Energy frame length, in milliseconds.
    frame_ms: float = 10.0
    seed: int = 0

    def validate(self, where: str = "edge_augment") -> None:
        if self.copies < 0:
            raise ConfigError(f"{where}.copies: must be >= 0, got {self.copies}")
        for name in ("trim_p", "max_keep", "pad_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{where}.{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.max_pad_s < 0:
            raise ConfigError(f"{where}.max_pad_s: must be >= 0, got {self.max_pad_s}")
        if self.threshold_db >= 0:
            raise ConfigError(f"{where}.threshold_db: must be negative (dB below the loudest frame), got {self.threshold_db}")
        if self.frame_ms <= 0:
            raise ConfigError(f"{where}.frame_ms: must be positive, got {self.frame_ms}")


def speech_bounds(clip: Any, sample_rate: int, threshold_db: float = -35.0, frame_ms: float = 10.0) -> tuple[int, int]:
    """``(start, end)`` samples of the speech in ``clip``: from the first to the end of the last frame
    whose mean energy is within ``threshold_db`` of the loudest frame's. A silent clip is all speech
    (nothing to trim); a last partial frame counts as a frame.

    >>> clip = np.r_[np.zeros(400), np.ones(800), np.zeros(400)].astype(np.float32)
    >>> speech_bounds(clip, 8000)
    (400, 1200)
    """
    from .signal import parse_sample_rate, prepare

    rate = parse_sample_rate(sample_rate, "speech_bounds")
    clip = prepare(clip, "speech_bounds")
    n = len(clip)
    size = max(1, int(round(frame_ms * rate / 1000)))
    frames = -(-n // size)
    if frames == 0:
        return 0, 0
    padded = np.zeros(frames * size, np.float64)
    padded[:n] = clip
    counts = np.full(frames, size, np.float64)
    counts[-1] = n - (frames - 1) * size
    energy = (padded.reshape(frames, size) ** 2).sum(axis=1) / counts
    top = energy.max()
    if top <= 0:
        return 0, n
    loud = np.flatnonzero(energy >= top * 10.0 ** (threshold_db / 10.0))
    return int(loud[0] * size), int(min(n, (loud[-1] + 1) * size))


def trim_edges(
    clip: Any, sample_rate: int, keep_start: float = 0.0, keep_end: float = 0.0,
    threshold_db: float = -35.0, frame_ms: float = 10.0,
) -> np.ndarray:
    """``clip`` with all but ``keep_start`` / ``keep_end`` (fractions) of its leading / trailing silence cut off.

    >>> clip = np.r_[np.zeros(400), np.ones(800), np.zeros(400)].astype(np.float32)
    >>> len(trim_edges(clip, 8000)), len(trim_edges(clip, 8000, keep_start=0.5, keep_end=1.0))
    (800, 1400)
    """
    for name, value in (("keep_start", keep_start), ("keep_end", keep_end)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"trim_edges: {name} must be in [0, 1], got {value}")
    from .signal import prepare

    clip = prepare(clip, "trim_edges")
    start, end = speech_bounds(clip, sample_rate, threshold_db, frame_ms)
    first = start - int(round(keep_start * start))
    last = end + int(round(keep_end * (len(clip) - end)))
    return clip[first:last]


def edge_augment(clips: Sequence[Any], sample_rate: int, config: EdgeAugmentConfig,
                 rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Each clip randomly trimmed and/or padded at each edge (see :class:`EdgeAugmentConfig`).

    ``rng`` defaults to ``np.random.default_rng(config.seed)``, so a config gives the same clips every time.

    >>> clip = np.r_[np.zeros(400), np.ones(800), np.zeros(400)].astype(np.float32)
    >>> out = edge_augment([clip], 8000, EdgeAugmentConfig(trim_p=1.0, max_keep=0.0))
    >>> len(out[0])
    800
    """
    from .signal import parse_sample_rate, prepare

    rate = parse_sample_rate(sample_rate, "edge_augment")
    rng = np.random.default_rng(config.seed) if rng is None else rng
    out = []
    for i, clip in enumerate(clips):
        clip = prepare(clip, f"edge_augment: clip {i}")
        # Draw every number whatever the outcome, so one clip's draws never shift the next clip's.
        trim = rng.random(2) < config.trim_p
        keep = np.where(trim, rng.uniform(0.0, config.max_keep, 2), 1.0)
        pad = np.where(rng.random(2) < config.pad_p, rng.uniform(0.0, config.max_pad_s, 2), 0.0)
        if trim.any():
            clip = trim_edges(clip, rate, float(keep[0]), float(keep[1]), config.threshold_db, config.frame_ms)
        n_start, n_end = (int(round(s * rate)) for s in pad)
        if n_start or n_end:
            clip = np.concatenate([np.zeros(n_start, np.float32), clip, np.zeros(n_end, np.float32)])
        out.append(clip)
    return out


def edge_augment_data(
    data: Mapping[str, Sequence[Any]], config: EdgeAugmentConfig, sample_rate: int = 16000, audio_column: str = "audio",
) -> dict[str, list]:
    """The rows of ``data`` (unless ``config.keep_originals`` is False), then ``config.copies`` edge-augmented copies.

    Other columns are repeated as they are. With ``copies: 0`` the data come back unchanged.

    >>> clip = np.r_[np.zeros(400), np.ones(800), np.zeros(400)].astype(np.float32)
    >>> out = edge_augment_data({"audio": [clip], "text": ["a"]}, EdgeAugmentConfig(copies=1, trim_p=1.0, max_keep=0.0), 8000)
    >>> [len(a) for a in out["audio"]], out["text"]
    ([1600, 800], ['a', 'a'])
    """
    if audio_column not in data:
        raise ConfigError(f"edge_augment_data: no column {audio_column!r} (columns: {sorted(data)})")
    config.validate("edge_augment")
    if config.copies == 0:
        return {name: list(values) for name, values in data.items()}
    keep = config.keep_originals
    out = {name: list(values) if keep else [] for name, values in data.items()}
    rng = np.random.default_rng(config.seed)
    for _ in range(config.copies):
        out[audio_column] += edge_augment(list(data[audio_column]), sample_rate, config, rng)
        for name, values in data.items():
            if name != audio_column:
                out[name] += list(values)
    return out


def _uniform_int(high: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw from U{0..high[b]} per element (``high`` ≥ 0, integer tensor)."""
    u = torch.rand(high.shape, generator=generator, device=high.device)
    return torch.minimum((u * (high + 1).to(u.dtype)).long(), high)


def spec_augment(
    features: torch.Tensor, lengths: torch.Tensor | None, config: SpecAugmentConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Masked copy of ``features (B, frames, dims)``; only frames below ``lengths`` are touched.

    >>> x = torch.ones(2, 50, 40)
    >>> y = spec_augment(x, torch.tensor([50, 30]), SpecAugmentConfig(), torch.Generator().manual_seed(0))
    >>> bool((y[1, 30:] == 1).all())   # padding untouched
    True
    """
    if features.dim() != 3:
        raise InputError(f"spec_augment: expected features (batch, frames, dims), got shape {tuple(features.shape)}")
    b, t_max, dims = features.shape
    device = features.device
    if lengths is None:
        lengths = torch.full((b,), t_max, device=device, dtype=torch.long)
    lengths = lengths.to(device).long().clamp(0, t_max)
    t = torch.arange(t_max, device=device)
    d = torch.arange(dims, device=device)
    valid = t.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    time_mask = torch.zeros(b, t_max, dtype=torch.bool, device=device)
    freq_mask = torch.zeros(b, dims, dtype=torch.bool, device=device)
    for _ in range(config.freq_masks):
        width = _uniform_int(torch.full((b,), min(config.freq_width, dims), device=device, dtype=torch.long), generator)
        start = _uniform_int(dims - width, generator)
        freq_mask |= (d.unsqueeze(0) >= start.unsqueeze(1)) & (d.unsqueeze(0) < (start + width).unsqueeze(1))
    for _ in range(config.time_masks):
        cap = torch.minimum(torch.full_like(lengths, config.time_width), (config.time_ratio * lengths).floor().long())
        width = _uniform_int(cap, generator)
        start = _uniform_int(lengths - width, generator)
        time_mask |= (t.unsqueeze(0) >= start.unsqueeze(1)) & (t.unsqueeze(0) < (start + width).unsqueeze(1))
    mask = (time_mask.unsqueeze(2) | freq_mask.unsqueeze(1)) & valid.unsqueeze(2)
    return features.masked_fill(mask, config.mask_value)


class SpecAugment(nn.Module):
    """Frequency and time masking in training mode; the identity in eval mode.

    >>> aug = SpecAugment(freq_masks=1, freq_width=4, time_masks=1, time_width=5)
    >>> x = torch.randn(2, 20, 13)
    >>> bool(torch.equal(aug.eval()(x, torch.tensor([20, 10])), x))
    True
    """

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__()
        if config is None or isinstance(config, dict):
            config = from_dict(SpecAugmentConfig, {**(config or {}), **overrides}, where="SpecAugment")
        elif overrides:
            config = dataclasses.replace(config, **overrides)
            config.validate("SpecAugment")
        self.config = config

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if not self.training:
            return features
        return spec_augment(features, lengths, self.config, generator)

    def extra_repr(self) -> str:
        return str(self.config)
