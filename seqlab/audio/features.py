"""Log-mel and MFCC features, batched on any device: the ``log_mel`` and ``mfcc`` stages and their nn.Modules.

The computation is the textbook one (Davis & Mermelstein 1980; librosa's
``feature.melspectrogram`` → ``power_to_db`` → ``scipy.fft.dct``):

    frames (hop, window) → |rFFT|^power → mel filterbank → log (dB) → [DCT-II, lifter]
    → [deltas (Savitzky–Golay, as librosa.feature.delta)] → [CMVN]

and the defaults reproduce ``librosa.feature.mfcc(y, sr=16000, n_mfcc=13, n_fft=512,
hop_length=160, n_mels=40)`` to float32 rounding (see docs/audio.md for the settings
that must match).

Why it is fast on a CPU (and unchanged on CUDA — every step is a torch op):

- **No padding waste.** A list of clips is packed into ONE signal: each clip, with
  its own centre padding, starts at a multiple of the hop, so one strided view
  (``unfold``) holds the frames of every clip; an index list picks the real frames.
  A padded batch of a 0.5 s and a 10 s clip would transform 20× the audio.
- **Cache-sized blocks.** On the CPU the frames go through window → rFFT → power →
  mel in blocks of 512 frames (1 MiB), so each step reads what the last one left in
  L2 instead of streaming a 50 MB spectrogram through memory five times; this alone
  is ~3× on a 2-core machine, where these element-wise steps are memory-bound.
- **Power spectrum without complex math.** ``|X|²`` is the in-place square of the
  real view ``(re, im)``, and the mel matrix is stored row-interleaved so the GEMM
  adds re² and im² while applying the filters: no ``abs``/``sqrt``, no temporaries.
- **A banded GEMM.** Once the FFT is fast, the mel product is the largest cost; but
  each triangular filter touches only a few bins, so on the CPU the filters are
  multiplied in 4 groups, each with just the bins it covers (~¼ of the flops,
  ~2.5× less time), in the wide ``(filters × bins) @ (bins × frames)`` orientation.
- **Built once.** Window, filterbank, DCT and lifter are float32 buffers made at
  construction, not per call; the DCT is a (n_mels × n_mfcc) matmul.
- float32 throughout (float64 input is converted), as librosa does for float32 input.

Per-clip operations (top_db floor, deltas, utterance CMVN) work on the packed frames
with a clip id per frame, so padding never changes a clip's features.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, InputError, ModelFileError
from seqlab.core.stage import Stage

from . import filters
from .resample import resample_mixed
from .signal import parse_sample_rate, prepare

#: Added to variances before CMVN divides by the deviation: a constant feature (a delta of
#: a 4-frame clip, silence) must come out 0, not its float rounding noise blown up.
CMVN_EPS = 1e-5

#: Frames per block on the CPU: 512 frames × 512 samples × 4 B = 1 MiB, inside L2.
CPU_BLOCK_FRAMES = 512
#: Groups of mel filters multiplied separately on the CPU (banded filterbank).
MEL_GROUPS = 4


# --------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class LogMelConfig:
    """Settings of log-mel features; the defaults match librosa with the same sizes.

    ``log``: ``"db"`` is librosa's ``power_to_db`` (``10·log10(max(amin, S)) −
    10·log10(max(amin, ref))``, floored at ``top_db`` below the clip's maximum);
    ``"ln"`` the natural log with the same floor; ``"none"`` linear mel energies.
    ``deltas``: 0, 1 (+Δ) or 2 (+Δ+ΔΔ), stacked along the feature axis.
    ``cmvn``: per-utterance mean/variance normalisation, or ``"global"`` statistics
    fitted on training data (the stage then needs ``fit``).
    ``device``: where the stage computes (``auto``: CUDA when present).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int | None = None
    hop_length: int = 160
    window: Literal["hann", "hamming", "blackman", "rectangular"] = "hann"
    center: bool = True
    pad_mode: Literal["constant", "reflect"] = "constant"
    power: float = 2.0
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: Literal["slaney", "htk"] = "slaney"
    mel_norm: Literal["slaney", "none"] = "slaney"
    log: Literal["db", "ln", "none"] = "db"
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = 80.0
    deltas: int = 0
    delta_width: int = 9
    cmvn: Literal["none", "utterance", "global"] = "none"
    cmvn_variance: bool = True
    device: str = "auto"
    #: CPU threads for the stage (None: torch's setting); see ``LogMel``.
    threads: int | None = None

    @property
    def base_dim(self) -> int:
        return self.n_mels

    @property
    def dim(self) -> int:
        """Feature dimensions per frame (including deltas)."""
        return self.base_dim * (1 + self.deltas)

    def num_frames(self, num_samples: int) -> int:
        """Frames for a clip of ``num_samples`` (librosa's count)."""
        return _num_frames(num_samples, self.n_fft, self.hop_length, self.center)

    def validate(self, where: str = "config") -> None:
        def bad(field: str, msg: str) -> ConfigError:
            return ConfigError(f"{where}.{field}: {msg}")

        if self.sample_rate <= 0:
            raise bad("sample_rate", f"must be positive, got {self.sample_rate}")
        if self.n_fft < 2:
            raise bad("n_fft", f"must be at least 2, got {self.n_fft}")
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise bad("win_length", f"must be in [1, n_fft={self.n_fft}], got {self.win_length}")
        if self.hop_length < 1:
            raise bad("hop_length", f"must be positive, got {self.hop_length}")
        if self.power <= 0:
            raise bad("power", f"must be positive (2: power, 1: magnitude), got {self.power}")
        if self.n_mels < 1:
            raise bad("n_mels", f"must be positive, got {self.n_mels}")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise bad("f_max", f"need 0 <= f_min < f_max <= sample_rate/2 = {nyquist:g}, got f_min={self.f_min}, f_max={f_max}")
        if self.amin <= 0 or self.ref <= 0:
            raise bad("amin", f"amin and ref must be positive, got amin={self.amin}, ref={self.ref}")
        if self.top_db is not None and self.top_db < 0:
            raise bad("top_db", f"must be non-negative or null, got {self.top_db}")
        if self.deltas not in (0, 1, 2):
            raise bad("deltas", f"must be 0, 1 or 2, got {self.deltas}")
        if self.deltas and (self.delta_width < 3 or self.delta_width % 2 == 0):
            raise bad("delta_width", f"must be an odd number >= 3, got {self.delta_width}")
        if self.threads is not None and self.threads < 1:
            raise bad("threads", f"must be positive or null, got {self.threads}")


@dataclasses.dataclass
class MFCCConfig(LogMelConfig):
    """Log-mel settings plus the cepstrum: ``n_mfcc`` DCT-II coefficients (``dct_norm``), ``lifter``."""

    n_mfcc: int = 13
    dct_norm: Literal["ortho", "none"] = "ortho"
    lifter: float = 0.0

    @property
    def base_dim(self) -> int:
        return self.n_mfcc

    def validate(self, where: str = "config") -> None:
        super().validate(where)
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ConfigError(f"{where}.n_mfcc: must be in [1, n_mels={self.n_mels}], got {self.n_mfcc}")
        if self.lifter < 0:
            raise ConfigError(f"{where}.lifter: must be >= 0, got {self.lifter}")
        if self.log == "none":
            raise ConfigError(f"{where}.log: MFCCs are the DCT of LOG mel energies; use db or ln")


def _num_frames(n: int, n_fft: int, hop: int, center: bool) -> int:
    if center:
        return 1 + (n + 2 * (n_fft // 2) - n_fft) // hop
    return 0 if n < n_fft else 1 + (n - n_fft) // hop


def _make_config(cls: type, config: Any, overrides: dict, where: str) -> Any:
    if config is None:
        return from_dict(cls, overrides, where=where)
    if isinstance(config, dict):
        return from_dict(cls, {**config, **overrides}, where=where)
    if not isinstance(config, cls):
        raise ConfigError(f"{where}: expected a {cls.__name__} or a mapping, got {type(config).__name__}")
    if overrides:
        config = dataclasses.replace(config, **overrides)
    config.validate(where)
    return config


@functools.lru_cache(maxsize=64)
def _savgol_short(n: int, order: int) -> np.ndarray:
    """Weights giving the ``order``-th derivative of a degree-``order`` fit to all ``n`` frames."""
    return filters.savgol_derivative(n, order) if n > order else np.zeros(n)


# --------------------------------------------------------------------------------------
# the transforms (nn.Modules)
# --------------------------------------------------------------------------------------
class LogMelTransform(nn.Module):
    """Log-mel filterbank features of a padded batch ``(B, samples)`` + lengths, on the input's device.

    Returns ``(features (B, frames, dim), frame_lengths (B,))``; frames past a clip's
    length are zero. Deltas, top_db and CMVN are computed per clip, so padding never
    changes a clip's features. Not differentiable (runs under ``no_grad``, autocast off).

    >>> t = LogMelTransform(n_mels=40)
    >>> feats, n = t(torch.zeros(2, 16000), torch.tensor([16000, 8000]))
    >>> tuple(feats.shape), n.tolist()
    ((2, 101, 40), [101, 51])
    """

    Config: type = LogMelConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__()
        cfg = _make_config(self.Config, config, overrides, type(self).__name__)
        self.config = cfg
        win = filters.window(cfg.window, cfg.win_length or cfg.n_fft, cfg.n_fft)
        fb = filters.mel_filterbank(
            cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, cfg.mel_scale,
            None if cfg.mel_norm == "none" else cfg.mel_norm,
        ).T  # (n_freqs, n_mels)
        if cfg.power == 2.0:
            # Rows interleaved (re, im, re, im, …) so that (re², im²) @ W = |X|² @ fb.
            fb = np.repeat(fb, 2, axis=0)
        self.register_buffer("window", torch.tensor(win, dtype=torch.float32), persistent=False)
        self.register_buffer("mel_weights", torch.tensor(fb, dtype=torch.float32).contiguous(), persistent=False)
        # The filterbank is banded: each filter covers a few neighbouring bins. On the CPU
        # the mel GEMM is the largest cost, so it is split into MEL_GROUPS groups of
        # filters, each multiplied only with the bins it touches (~4× fewer flops).
        self._groups: list[tuple[int, int, int, int]] = []
        bounds = np.linspace(0, cfg.n_mels, min(MEL_GROUPS, cfg.n_mels) + 1).round().astype(int)
        for g, (r0, r1) in enumerate(zip(bounds[:-1], bounds[1:])):
            used = np.flatnonzero(np.any(fb[:, r0:r1] != 0, axis=1))
            lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
            self._groups.append((int(r0), int(r1), lo, hi))
            self.register_buffer(f"mel_group_{g}", torch.tensor(fb[lo:hi, r0:r1].T, dtype=torch.float32).contiguous(), persistent=False)
        self._register_extra(cfg)
        if cfg.cmvn == "global":
            self.register_buffer("cmvn_mean", torch.zeros(cfg.dim))
            self.register_buffer("cmvn_std", torch.ones(cfg.dim))
        self.cmvn_fitted = False

    def _register_extra(self, cfg: Any) -> None:
        """Subclasses add their buffers (MFCC: DCT matrix, lifter)."""

    @property
    def dim(self) -> int:
        return self.config.dim

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames per clip for sample ``lengths`` (tensor, any device)."""
        cfg = self.config
        lengths = lengths.long()
        if cfg.center:
            return 1 + torch.div(lengths + 2 * (cfg.n_fft // 2) - cfg.n_fft, cfg.hop_length, rounding_mode="floor")
        n = 1 + torch.div(lengths - cfg.n_fft, cfg.hop_length, rounding_mode="floor")
        return torch.where(lengths < cfg.n_fft, torch.zeros_like(n), n)

    # -- the shared core: packed frames ----------------------------------------------
    def _power(self, rows: torch.Tensor) -> torch.Tensor:
        """Windowed frames ``(b, n_fft)`` → |rFFT|^power, interleaved (re², im²) when power is 2."""
        spec = torch.fft.rfft(rows)
        if self.config.power == 2.0:
            power = torch.view_as_real(spec).reshape(rows.shape[0], -1)
            return power.square_()
        if self.config.power == 1.0:
            return spec.abs()
        return spec.abs().pow_(self.config.power)

    def _mel(self, signal: torch.Tensor, frame_index: torch.Tensor) -> torch.Tensor:
        """Mel energies ``(N, n_mels)`` of the frames of ``signal`` starting at ``frame_index · hop``."""
        cfg = self.config
        frames = signal.unfold(0, cfg.n_fft, cfg.hop_length)  # a strided view, no copy
        n = frame_index.numel()
        if signal.device.type != "cpu":  # one block, one dense GEMM: what a GPU wants
            rows = frames.index_select(0, frame_index).mul_(self.window)
            return self._power(rows) @ self.mel_weights
        # CPU: blocks of CPU_BLOCK_FRAMES frames. When nearly every frame of the signal is
        # wanted (packed clips), transform them all straight from the strided view and pick
        # the wanted rows of the small mel output; else (a padded batch) gather first.
        dense = n >= 0.75 * frames.shape[0]
        total = frames.shape[0] if dense else n
        out = signal.new_empty(total, cfg.n_mels)
        groups = [(bounds, getattr(self, f"mel_group_{g}")) for g, bounds in enumerate(self._groups)]
        for start in range(0, total, CPU_BLOCK_FRAMES):
            stop = min(start + CPU_BLOCK_FRAMES, total)
            if dense:
                rows = frames[start:stop] * self.window
            else:
                rows = frames.index_select(0, frame_index[start:stop]).mul_(self.window)
            power = self._power(rows)
            # (filters × bins) @ (bins × frames): the wide, GEMM-friendly orientation.
            mel_t = signal.new_empty(cfg.n_mels, stop - start)
            for (r0, r1, lo, hi), weights in groups:
                torch.mm(weights, power[:, lo:hi].t(), out=mel_t[r0:r1])
            out[start:stop] = mel_t.t()
        return out.index_select(0, frame_index) if dense else out

    def _log(self, mel: torch.Tensor, clip_id: torch.Tensor, n_clips: int) -> torch.Tensor:
        cfg = self.config
        if cfg.log == "none":
            return mel
        if cfg.log == "db":
            out = torch.log10(mel.clamp_min_(cfg.amin)).mul_(10.0)
            out.sub_(10.0 * math.log10(max(cfg.amin, cfg.ref)))
            floor_units = cfg.top_db
        else:
            out = torch.log(mel.clamp_min_(cfg.amin))
            out.sub_(math.log(max(cfg.amin, cfg.ref)))
            floor_units = None if cfg.top_db is None else cfg.top_db * math.log(10.0) / 10.0
        if floor_units is not None and out.shape[0]:
            top = out.new_full((n_clips,), -math.inf).scatter_reduce_(0, clip_id, out.amax(dim=1), "amax")
            torch.maximum(out, (top - floor_units)[clip_id].unsqueeze(1), out=out)
        return out

    def _static(self, logmel: torch.Tensor) -> torch.Tensor:
        return logmel

    def _deltas(self, x: torch.Tensor, counts: torch.Tensor, starts: torch.Tensor, clip_id: torch.Tensor) -> torch.Tensor:
        """Δ and ΔΔ as ``librosa.feature.delta(width, order, mode="interp")``, per clip."""
        cfg = self.config
        if x.shape[0] == 0:
            return x.new_zeros(0, x.shape[1] * (1 + cfg.deltas))
        width, half = cfg.delta_width, cfg.delta_width // 2
        # One frame index per row: its clip's start + position clamped to the interior.
        # savgol "interp" fits a degree-`order` polynomial to the first/last `width`
        # frames; its order-th derivative is constant, i.e. the value at the first/last
        # interior position — so the edges copy those (librosa's result exactly).
        local = torch.arange(x.shape[0], device=x.device) - starts[clip_id]
        last = counts[clip_id] - 1 - half
        src = starts[clip_id] + torch.minimum(local.clamp_min(half), last).clamp_min(0)
        short = (counts < width).nonzero().flatten().tolist() if x.shape[0] else []
        outs = [x]
        for order in range(1, cfg.deltas + 1):
            kernel = torch.tensor(filters.savgol_derivative(width, order), dtype=x.dtype, device=x.device)
            d = F.conv1d(x.t().unsqueeze(1), kernel.view(1, 1, -1), padding=half).squeeze(1).t()
            d = d.index_select(0, src)
            for i in short:  # clips shorter than the window: fit all their frames (librosa refuses these)
                s, n = int(starts[i]), int(counts[i])
                w = torch.tensor(_savgol_short(n, order), dtype=x.dtype, device=x.device)
                d[s : s + n] = (w @ x[s : s + n]).unsqueeze(0)
            outs.append(d)
        return torch.cat(outs, dim=1)

    def _cmvn(self, x: torch.Tensor, counts: torch.Tensor, clip_id: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if cfg.cmvn == "global":
            if not self.cmvn_fitted:
                from seqlab.core.errors import NotFittedError

                raise NotFittedError(f"{type(self).__name__}: cmvn='global' needs statistics; call fit_cmvn(clips) first")
            x = x - self.cmvn_mean
            return x / self.cmvn_std if cfg.cmvn_variance else x
        if cfg.cmvn == "utterance" and x.shape[0]:
            n = counts.clamp_min(1).to(x.dtype).unsqueeze(1)
            mean = x.new_zeros(counts.shape[0], x.shape[1]).index_add_(0, clip_id, x) / n
            x = x - mean[clip_id]
            if cfg.cmvn_variance:
                var = x.new_zeros(counts.shape[0], x.shape[1]).index_add_(0, clip_id, x * x) / n
                x = x / (var + CMVN_EPS).sqrt()[clip_id]
        return x

    def _features(self, signal: torch.Tensor, frame_index: torch.Tensor, counts: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Packed frames → packed features ``(N, dim)``; ``counts`` frames per clip, in order."""
        n_clips = counts.shape[0]
        clip_id = torch.repeat_interleave(torch.arange(n_clips, device=counts.device), counts)
        starts = torch.cumsum(counts, 0) - counts
        x = self._static(self._log(self._mel(signal, frame_index), clip_id, n_clips))
        if self.config.deltas:
            x = self._deltas(x, counts, starts, clip_id)
        return self._cmvn(x, counts, clip_id) if normalize else x

    # -- padded batch (inside a model) -------------------------------------------------
    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        if audio.dim() == 1:
            audio = audio.unsqueeze(0)
        if audio.dim() != 2:
            raise InputError(f"{type(self).__name__}: expected audio of shape (batch, samples), got {tuple(audio.shape)}")
        with torch.no_grad(), torch.autocast(device_type=audio.device.type, enabled=False):
            x = audio.to(torch.float32)
            b, s = x.shape
            if b == 0:
                return x.new_zeros(0, 0, self.dim), torch.zeros(0, dtype=torch.long, device=x.device)
            pos = torch.arange(s, device=x.device)
            if lengths is None:
                lengths = torch.full((b,), s, device=x.device, dtype=torch.long)
            lengths = lengths.to(x.device).long().clamp(0, s)
            counts = self.frame_lengths(lengths)
            pad = cfg.n_fft // 2 if cfg.center else 0
            if cfg.center and cfg.pad_mode == "reflect":
                j = torch.arange(s + 2 * pad, device=x.device) - pad
                period = (2 * (lengths - 1)).clamp_min(1).unsqueeze(1)
                m = torch.remainder(j.unsqueeze(0), period)
                m = torch.where(m >= lengths.unsqueeze(1), period - m, m).clamp(0, max(s - 1, 0))
                x = torch.gather(x, 1, m) if s else x.new_zeros(b, 2 * pad)
                x = x * ((j.unsqueeze(0) < lengths.unsqueeze(1) + pad) & (lengths.unsqueeze(1) > 0))
            else:
                x = x.masked_fill(pos.unsqueeze(0) >= lengths.unsqueeze(1), 0.0)
                x = F.pad(x, (pad, pad))
            # Rows padded to a whole number of hops (≥ one frame), so the flattened batch
            # is one signal whose frames never straddle two rows.
            row = max(-(-x.shape[1] // cfg.hop_length) * cfg.hop_length, -(-cfg.n_fft // cfg.hop_length) * cfg.hop_length)
            x = F.pad(x, (0, row - x.shape[1]))
            t_max = int(counts.max()) if b else 0
            t = torch.arange(t_max, device=x.device)
            mask = t.unsqueeze(0) < counts.unsqueeze(1)
            frame_index = (torch.arange(b, device=x.device).unsqueeze(1) * (row // cfg.hop_length) + t.unsqueeze(0))[mask]
            packed = self._features(x.reshape(-1), frame_index, counts)
            out = packed.new_zeros(b, t_max, packed.shape[1])
            out[mask] = packed
        return out, counts

    # -- list of clips (the stage) -------------------------------------------------------
    def packed(self, clips: Sequence[Any], normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of variable-length clips (1-D float arrays) → ``(N, dim)`` packed + frames per clip.

        >>> t = LogMelTransform()
        >>> feats, n = t.packed([np.zeros(1600, np.float32), np.zeros(320, np.float32)])
        >>> tuple(feats.shape), n.tolist()
        ((14, 40), [11, 3])
        """
        cfg = self.config
        device = self.window.device
        hop, n_fft = cfg.hop_length, cfg.n_fft
        pad = n_fft // 2 if cfg.center else 0
        arrays = [c.detach().cpu().numpy() if isinstance(c, torch.Tensor) else np.asarray(c) for c in clips]
        lengths = np.array([a.shape[-1] for a in arrays], dtype=np.int64)
        counts = np.array([_num_frames(int(n), n_fft, hop, cfg.center) for n in lengths], dtype=np.int64)
        # Each clip gets a segment of whole hops holding [pad | clip | pad] and all its frames.
        need = np.maximum(lengths + 2 * pad, (counts - 1) * hop + n_fft)
        seg = -(-need // hop) * hop
        offsets = np.concatenate([[0], np.cumsum(seg)[:-1]]).astype(np.int64)
        signal = np.zeros(int(seg.sum()) + n_fft, dtype=np.float32)
        for a, off, n in zip(arrays, offsets, lengths):
            if cfg.center and cfg.pad_mode == "reflect" and n > 0:
                signal[off : off + n + 2 * pad] = np.pad(a, pad, mode="reflect")
            else:
                signal[off + pad : off + pad + n] = a
        n_total = int(counts.sum())
        first = np.cumsum(counts) - counts
        frame_index = np.arange(n_total, dtype=np.int64) - np.repeat(first - offsets // hop, counts)
        sig = torch.from_numpy(signal).to(device)
        with torch.no_grad(), torch.autocast(device_type=device.type, enabled=False):
            feats = self._features(sig, torch.from_numpy(frame_index).to(device), torch.from_numpy(counts).to(device), normalize)
        return feats, torch.from_numpy(counts)

    def clips(self, clips: Sequence[Any]) -> list[np.ndarray]:
        """Features of each clip as a float32 numpy array ``(frames, dim)``."""
        feats, counts = self.packed(clips)
        arr = feats.cpu().numpy()
        return np.split(arr, np.cumsum(counts.numpy())[:-1]) if len(counts) else []

    # -- global CMVN --------------------------------------------------------------------
    def fit_cmvn(self, batches: Iterable[Sequence[Any]]) -> "LogMelTransform":
        """Fit global mean/std from an iterable of clip lists (training data only)."""
        total = np.zeros(self.dim, dtype=np.float64)
        total_sq = np.zeros(self.dim, dtype=np.float64)
        count = 0
        for clips in batches:
            feats, _ = self.packed(clips, normalize=False)
            f = feats.double()
            total += f.sum(0).cpu().numpy()
            total_sq += (f * f).sum(0).cpu().numpy()
            count += f.shape[0]
        if count == 0:
            from seqlab.core.errors import DataError

            raise DataError(f"{type(self).__name__}.fit_cmvn: no frames in the training data")
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0) + CMVN_EPS)
        self.set_cmvn(mean, std)
        return self

    def set_cmvn(self, mean: Any, std: Any) -> None:
        if self.config.cmvn != "global":
            raise ConfigError(f"{type(self).__name__}: set_cmvn needs cmvn='global' (it is {self.config.cmvn!r})")
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std = torch.as_tensor(np.asarray(std, dtype=np.float32)).clamp_min(math.sqrt(CMVN_EPS))
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ModelFileError(f"CMVN statistics have shape {tuple(mean.shape)}/{tuple(std.shape)}; these features have {self.dim} dims")
        self.cmvn_mean.copy_(mean)
        self.cmvn_std.copy_(std)
        self.cmvn_fitted = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - nn.Module hook
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.config.cmvn == "global" and prefix + "cmvn_mean" in state_dict:
            self.cmvn_fitted = True


class MFCCTransform(LogMelTransform):
    """MFCCs (DCT-II of log-mel, optional lifter, deltas, CMVN) of a padded batch; see :class:`LogMelTransform`.

    >>> t = MFCCTransform(n_mfcc=13, deltas=2)
    >>> feats, n = t(torch.randn(3, 4000), torch.tensor([4000, 2000, 100]))
    >>> tuple(feats.shape), n.tolist()
    ((3, 26, 39), [26, 13, 1])
    """

    Config = MFCCConfig

    def _register_extra(self, cfg: MFCCConfig) -> None:
        dct = filters.dct_matrix(cfg.n_mels, cfg.n_mfcc, None if cfg.dct_norm == "none" else cfg.dct_norm)
        dct = dct * filters.lifter_weights(cfg.n_mfcc, cfg.lifter)[None, :]  # lifting folded into the matrix
        self.register_buffer("dct", torch.tensor(dct, dtype=torch.float32), persistent=False)

    def _static(self, logmel: torch.Tensor) -> torch.Tensor:
        return logmel @ self.dct


# --------------------------------------------------------------------------------------
# CPU threads for the stages
# --------------------------------------------------------------------------------------
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """A persistent pool per process (a forked child must not reuse its parent's dead threads)."""
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="seqlab-features")
    return _POOLS[key]


@contextlib.contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _balanced_chunks(clips: list[np.ndarray], parts: int) -> list[list[np.ndarray]]:
    """Split ``clips`` into ``parts`` contiguous runs of about equal total length."""
    sizes = np.cumsum([len(c) for c in clips])
    cuts = np.searchsorted(sizes, sizes[-1] * np.arange(1, parts) / parts, side="right")
    bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < len(clips))), len(clips)]
    return [clips[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------------------
# the stages
# --------------------------------------------------------------------------------------
class LogMel(Stage):
    """``audio`` (1-D float arrays) → ``features`` (float32 ``(frames, n_mels·(1+deltas))`` per example).

    If the batch has a ``sample_rate`` column that differs from ``sample_rate``, the
    clips are resampled (with a warning, once per rate).

    >>> stage = LogMel(n_mels=40, device="cpu")
    >>> out = stage({"audio": [np.zeros(1600, np.float32)]})
    >>> out["features"][0].shape
    (11, 40)
    """

    kind = "log_mel"
    Config = LogMelConfig
    Transform: type = LogMelTransform
    takes = ("audio",)
    provides = ("features",)

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.needs_fit = self.config.cmvn == "global"  # type: ignore[misc]
        self.fitted = not self.needs_fit
        self._transform: LogMelTransform | None = None
        self._device: torch.device | None = None
        self._warned: set = set()

    # Only plain data crosses a pickle (datasets' num_proc); the module is rebuilt.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        transform = state.pop("_transform")
        state["_transform"] = None
        state["_warned"] = set()
        if transform is not None and transform.cmvn_fitted:
            state["_cmvn"] = (transform.cmvn_mean.cpu().numpy(), transform.cmvn_std.cpu().numpy())
        return state

    def __setstate__(self, state: dict) -> None:
        cmvn = state.pop("_cmvn", None)
        self.__dict__.update(state)
        if cmvn is not None:
            self.transform.set_cmvn(*cmvn)

    @property
    def device(self) -> torch.device:
        if self._device is None:
            from seqlab.core.device import resolve_device

            self._device = resolve_device(self.config.device)
        return self._device

    def to(self, device: str | torch.device) -> "LogMel":
        """Compute on ``device`` from now on (the pipeline calls this with its device)."""
        from seqlab.core.device import resolve_device

        self._device = resolve_device(device)
        if self._transform is not None:
            self._transform.to(self._device)
        return self

    @property
    def transform(self) -> LogMelTransform:
        if self._transform is None:
            self._transform = self.Transform(self.config).to(self.device)
        return self._transform

    @property
    def dim(self) -> int:
        return self.config.dim

    def _clips(self, batch: Any) -> list[np.ndarray]:
        cfg = self.config
        clips = []
        for i, value in enumerate(batch["audio"]):
            if value is None:
                raise InputError(f"{self.kind}: example {i}: the audio is missing (None)")
            clip = prepare(value, f"{self.kind}: example {i}")
            if clip.size == 0:
                raise InputError(f"{self.kind}: example {i}: the audio is empty (0 samples); drop it before feature extraction")
            if not cfg.center and clip.size < cfg.n_fft:
                raise InputError(
                    f"{self.kind}: example {i}: {clip.size} samples is shorter than one frame (n_fft={cfg.n_fft}) "
                    "with center: false; use center: true or pad the clip"
                )
            clips.append(clip)
        rates = batch.get("sample_rate") if hasattr(batch, "get") else None
        if rates is not None:
            rates = [None if r is None else parse_sample_rate(r, f"example {i}") for i, r in enumerate(rates)]
            resample_mixed(clips, rates, cfg.sample_rate, self.device, self._warned, f" before {self.kind}", stacklevel=5)
        return clips

    def map(self, batch):
        return {"features": self.compute(self._clips(batch))}

    def compute(self, clips: list[np.ndarray]) -> list[np.ndarray]:
        """Features of prepared clips (1-D float32 at ``sample_rate``), in order.

        On the CPU with ``threads`` > 1 (default: torch's thread count), the clips are split
        into that many runs of equal duration, each computed by its own worker with torch
        set to ONE thread for the duration of the call. Coarse-grained threads need no
        synchronisation inside each op; torch's own intra-op threads meet at a barrier
        after every op, and on a busy machine, where the OS parks one of them, a batch
        took 10–100× longer (measured: 18–400 vs ~3000 audio-s/s with 2 cores shared).
        """
        transform = self.transform
        workers = min(self.config.threads or torch.get_num_threads(), len(clips))
        if self.device.type != "cpu" or workers <= 1:
            return transform.clips(clips)
        with _torch_threads(1):
            parts = list(_pool(workers).map(transform.clips, _balanced_chunks(clips, workers)))
        return [f for part in parts for f in part]

    # -- global CMVN ----------------------------------------------------------------------
    def fit(self, data: Any, batch_size: int = 256) -> "LogMel":
        """Fit global CMVN statistics on training ``data`` (Dataset or dict of lists); no-op otherwise."""
        if self.config.cmvn == "global":
            self.transform.fit_cmvn(self._batches(data, batch_size))
        self.fitted = True
        return self

    def _batches(self, data: Any, batch_size: int):
        columns = ["audio"] + (["sample_rate"] if "sample_rate" in _column_names(data) else [])
        if hasattr(data, "iter") and hasattr(data, "column_names"):
            for batch in data.select_columns(columns).iter(batch_size=batch_size):
                yield self._clips(batch)
        else:
            n = len(data["audio"])
            for s in range(0, n, batch_size):
                yield self._clips({c: data[c][s : s + batch_size] for c in columns})

    def save_state(self, directory: Path) -> None:
        if self.config.cmvn == "global" and self.fitted:
            t = self.transform
            Path(directory).mkdir(parents=True, exist_ok=True)
            payload = {"dim": self.dim, "mean": t.cmvn_mean.tolist(), "std": t.cmvn_std.tolist()}
            (Path(directory) / "cmvn.json").write_text(json.dumps(payload))

    def load_state(self, directory: Path) -> None:
        if self.config.cmvn != "global":
            return
        path = Path(directory) / "cmvn.json"
        if not path.is_file():
            raise ModelFileError(f"{str(path)!r} is missing: the {self.kind} stage uses global CMVN and needs its statistics")
        try:
            from ..core.files import read_json_file

            payload = read_json_file(path)  # a regular file inside the model folder
            self.transform.set_cmvn(payload["mean"], payload["std"])
        except (ValueError, KeyError, TypeError) as err:
            raise ModelFileError(f"{str(path)!r} is not a valid CMVN file: {err}") from None
        self.fitted = True


class MFCC(LogMel):
    """``audio`` → ``features``: MFCCs ``(frames, n_mfcc·(1+deltas))`` per example; see :class:`LogMel`.

    >>> stage = MFCC(n_mfcc=13, deltas=1, device="cpu")
    >>> out = stage({"audio": [np.zeros(1600, np.float32), np.zeros(800, np.float32)]})
    >>> [f.shape for f in out["features"]]
    [(11, 26), (6, 26)]
    """

    kind = "mfcc"
    Config = MFCCConfig
    Transform = MFCCTransform


def _column_names(data: Any) -> list[str]:
    names = getattr(data, "column_names", None)
    return list(names) if names is not None else list(data.keys())


# --------------------------------------------------------------------------------------
# the reference: the same features computed with librosa (tests, benchmark, docs)
# --------------------------------------------------------------------------------------
def librosa_reference(audio: np.ndarray, config: LogMelConfig | MFCCConfig) -> np.ndarray:
    """What librosa computes for ``config`` on one clip, as ``(frames, dim)`` (no CMVN).

    For the default MFCC config this is exactly
    ``librosa.feature.mfcc(y, sr=16000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40).T``.
    """
    import librosa
    import scipy.fft

    cfg = config
    y = np.asarray(audio)
    S = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
        window={"rectangular": "boxcar"}.get(cfg.window, cfg.window), center=cfg.center, pad_mode=cfg.pad_mode,
        power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max, htk=cfg.mel_scale == "htk",
        norm=None if cfg.mel_norm == "none" else cfg.mel_norm,
    )
    if cfg.log == "db":
        X = librosa.power_to_db(S, ref=cfg.ref, amin=cfg.amin, top_db=cfg.top_db)
    elif cfg.log == "ln":
        X = np.log(np.maximum(S, cfg.amin)) - np.log(max(cfg.amin, cfg.ref))
        if cfg.top_db is not None:
            X = np.maximum(X, X.max() - cfg.top_db * np.log(10.0) / 10.0)
    else:
        X = S
    if isinstance(cfg, MFCCConfig):
        X = scipy.fft.dct(X, axis=-2, type=2, norm=None if cfg.dct_norm == "none" else "ortho")[: cfg.n_mfcc]
        if cfg.lifter > 0:
            X = X * filters.lifter_weights(cfg.n_mfcc, cfg.lifter)[:, None]
    parts = [X] + [librosa.feature.delta(X, width=cfg.delta_width, order=o) for o in range(1, cfg.deltas + 1)]
    return np.concatenate(parts, axis=0).T
