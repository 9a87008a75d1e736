"""Training-time augmentation: speed perturbation of the waveform, SpecAugment on the features.

**Speed perturbation** (Ko, Peddinti, Povey & Khudanpur 2015, "Audio Augmentation for Speech
Recognition", Interspeech; Kaldi's ``speed`` factors 0.9/1.0/1.1): a clip played ``factor``
times faster — shorter by ``1/factor``, every frequency times ``factor`` (tempo and pitch
together, like a different speaker) — made by resampling it from ``factor · rate`` to
``rate`` (:func:`seqlab.audio.resample_clips`). :func:`speed_perturb_data` adds one copy of
the training set per factor; transcripts are unchanged.

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
