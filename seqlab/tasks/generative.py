"""Generative and unsupervised speech-feature pipelines: anomaly detection, MFCC denoising, conditional generation.

Three pipelines built on the common core (``seqlab.nn.autoencoder``, ``seqlab.nn.gan``)
and the audio front end (``seqlab.audio``), each trained with the modules' own
``loss`` / ``train_step``:

- **Anomaly detection** (``AnomalyDetector``, recipe task ``anomaly``). An autoencoder
  learns to reconstruct MFCC patches (``frames`` consecutive frames) of in-class audio
  (spoken digits) only; a clip's anomaly score is the mean reconstruction error of its
  patches (Goodfellow, Bengio & Courville, 2016, *Deep Learning* §14; the reconstruction
  error as novelty score: Japkowicz, Myers & Gluck, 1995). A clip is flagged when its
  score exceeds a threshold chosen on validation data: a quantile of the in-class
  scores (needs no anomalies), or the point maximising Youden's J = TPR − FPR (Youden,
  1950) when validation anomalies exist. Quality is the area under the ROC curve, computed
  from ranks as the Mann–Whitney statistic, AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋) with
  tied scores given their average rank (Hanley & McNeil, 1982, *Radiology* 143, eq. 2).
- **Denoising** (``MFCCDenoiser``, task ``denoise``). Noise is added to the *waveform* at a
  signal-to-noise ratio (white noise, or pink noise with power ∝ 1/f), the MFCCs of the
  noisy and the clean clip are computed, and a denoising autoencoder maps noisy patches to
  clean ones (Vincent et al., 2010, JMLR 11: the corruption is real noise here, given as
  the autoencoder's x̃). Overlapping denoised patches are averaged back into frames.
  Quality: SNR_dB(ref, x) = 10·log10(Σ ref² / Σ (ref − x)²) over every coefficient of
  every frame of every held-out clip, for x = noisy and x = denoised, both against the
  clean reference, all three **normalised the same way**: global CMVN with the mean and
  deviation of the clean training MFCCs (``features.cmvn: global``). The gain is the
  difference of the two.
- **Conditional generation** (``DigitGenerator``, task ``cgan``). Each clip's MFCCs are
  brought to a fixed number of frames (linear resizing in time, or centre crop / edge
  padding) and scaled to [−1, 1] (CMVN, then ÷ ``scale``, clipped): a ``1 × n_mfcc ×
  frames`` image. A conditional DCGAN (Radford, Metz & Chintala, 2016; Mirza & Osindero,
  2014) generates images of a requested digit; a small CNN digit classifier (``ConvStack``
  + ``MLP``) trained on the real training images judges whether the samples show the
  requested digit. ``save_sample_grid`` draws a PNG grid (one row per digit).

Every pipeline object has ``fit(train, dev, train_config, log_dir=...)`` (returning a
``TrainResult``), ``evaluate(data)``, ``predict``, ``save(directory)`` and
``load_generative(directory)``, so ``seqlab train`` runs the recipes once
``seqlab.core.registry.RECIPES`` names them, and ``python -m seqlab.tasks.generative
RECIPE.yaml`` runs them as is.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.features import MFCC, MFCCConfig
from ..audio.io import AudioLoader
from ..core.config import apply_overrides, from_dict, read_yaml, to_dict
from ..core.device import resolve_device
from ..core.errors import ConfigError, DataError, InputError, ModelFileError
from ..nn.autoencoder import (
    ConvAutoencoder,
    ContractiveAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
    SequenceAutoencoder,
    SparseAutoencoder,
    UndercompleteAutoencoder,
    VariationalAutoencoder,
)
from ..nn.blocks import MLP, ConvStack
from ..nn.gan import DCGAN

__all__ = [
    "AnomalyDetector", "AnomalyRecipe", "AutoencoderConfig", "CGANRecipe", "ClassifierConfig", "ClipData", "ClipSet",
    "DenoiseRecipe", "DigitClassifier", "DigitGenerator", "GANConfig", "GenerativeTrainConfig", "ImageConfig",
    "MFCCDenoiser", "NoiseConfig", "PatchConfig", "RECIPES", "ThresholdConfig", "add_noise", "build_autoencoder",
    "choose_threshold", "cut_segments", "digit_of", "fixed_frames", "frame_patches", "is_digit_string",
    "load_audio", "load_generative", "load_recipe", "main", "overlap_average", "pink_noise", "read_clip_table",
    "roc_auc", "save_sample_grid", "snr_db", "white_noise",
]

FORMAT = "seqlab.generative"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CLASSIFIER_FILE = "classifier.safetensors"
#: The PNG grid of samples a saved cgan pipeline holds.
GRID_FILE = "samples.png"
#: Sub-folders of an output directory that ``save`` keeps (written by ``fit``).
KEPT_ON_SAVE = ("logs", "checkpoints")

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# =====================================================================================
# metrics and signals
# =====================================================================================
def roc_auc(scores: Sequence[float], labels: Sequence[int | bool]) -> float:
    """Area under the ROC curve of ``scores`` for the positives ``labels == 1`` (higher = more positive).

    The Mann–Whitney form: AUC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋), R₊ the sum of the positives'
    ranks among all scores, ties sharing their average rank — the probability that a random
    positive scores above a random negative, ties counting ½.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> roc_auc([1.0, 1.0], [0, 1])
    0.5
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise InputError(f"roc_auc: {s.size} scores for {y.size} labels")
    if not np.isfinite(s).all():
        raise InputError(f"roc_auc: {int((~np.isfinite(s)).sum())} score(s) are NaN or infinite")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"roc_auc: labels must be 0/1 (or booleans), got values {sorted(set(y.tolist()))[:5]}")
    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"roc_auc needs both classes; got {n_pos} positive(s) and {n_neg} negative(s)")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # ranks start at 1; a tie group shares its mean rank
    rank_sum = float(average_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def snr_db(reference: Any, estimate: Any) -> float:
    """10·log10(Σ ref² / Σ (ref − x)²) over every entry of ``reference`` and ``estimate``.

    Both may be arrays or lists of arrays (e.g. one MFCC matrix per clip): the sums run
    over all of them, so long clips weigh more. A perfect estimate gives ``inf``.

    >>> snr_db(np.array([3.0, 4.0]), np.array([3.0, 3.0]))   # 25 / 1
    13.979400086720377
    """
    refs = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    ests = list(estimate) if isinstance(estimate, (list, tuple)) else [estimate]
    if len(refs) != len(ests):
        raise InputError(f"snr_db: {len(refs)} references for {len(ests)} estimates")
    signal = noise = 0.0
    for i, (r, x) in enumerate(zip(refs, ests)):
        r = np.asarray(r.detach().cpu() if isinstance(r, Tensor) else r, dtype=np.float64)
        x = np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
        if r.shape != x.shape:
            raise InputError(f"snr_db: item {i}: the reference has shape {r.shape}, the estimate {x.shape}")
        signal += float(np.sum(r * r))
        noise += float(np.sum((r - x) ** 2))
    if signal == 0.0:
        raise InputError("snr_db: the reference is all zeros; the SNR is undefined")
    return math.inf if noise == 0.0 else 10.0 * math.log10(signal / noise)


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


def choose_threshold(
    inlier_scores: Sequence[float], outlier_scores: Sequence[float] | None = None,
    method: str = "quantile", quantile: float = 0.95,
) -> float:
    """The anomaly threshold (flag ``score > threshold``) chosen on validation scores.

    ``quantile``: that quantile of the in-class scores (a false-alarm rate of about
    1 − quantile; no anomalies needed). ``youden``: the cut between two sorted scores
    that maximises TPR − FPR (needs ``outlier_scores``).

    >>> choose_threshold([1, 2, 3, 4], method="quantile", quantile=0.5)
    2.5
    >>> choose_threshold([1, 2, 3], [5, 6], method="youden")
    4.0
    """
    inl = np.asarray(inlier_scores, dtype=np.float64).reshape(-1)
    if inl.size == 0:
        raise DataError("choose_threshold: no in-class validation scores to choose a threshold from")
    if method == "quantile":
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"threshold.quantile must be in (0, 1), got {quantile!r}")
        return float(np.quantile(inl, quantile))
    if method == "youden":
        out = np.asarray(outlier_scores if outlier_scores is not None else [], dtype=np.float64).reshape(-1)
        if out.size == 0:
            raise DataError(
                "choose_threshold: method 'youden' needs out-of-class validation scores; give validation anomalies "
                "or use method 'quantile'"
            )
        values = np.unique(np.concatenate([inl, out]))
        cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1.0]])
        tpr = (out[None, :] > cuts[:, None]).mean(1)
        fpr = (inl[None, :] > cuts[:, None]).mean(1)
        return float(cuts[int(np.argmax(tpr - fpr))])
    raise ConfigError(f"threshold.method: unknown method {method!r}; valid: quantile, youden")


# =====================================================================================
# data: clips, labels, segments
# =====================================================================================
def digit_of(text: Any) -> int | None:
    """The digit a label names — ``"three"``, ``"3"`` or ``3`` → 3 — or None.

    >>> digit_of("Seven"), digit_of("7"), digit_of("seven one")
    (7, 7, None)
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text) if 0 <= int(text) <= 9 else None
    word = str(text).strip().lower()
    if word in DIGIT_WORDS:
        return DIGIT_WORDS.index(word)
    return int(word) if len(word) == 1 and word.isdigit() else None


def is_digit_string(text: Any) -> bool:
    """Whether every word of ``text`` names a digit ("three one four").

    >>> is_digit_string("three one four"), is_digit_string("turn left"), is_digit_string("")
    (True, False, False)
    """
    words = str(text).split()
    return bool(words) and all(digit_of(w) is not None for w in words)


@dataclass
class ClipSet:
    """Audio clips (1-D float32 arrays at one sample rate) with what is known about each.

    ``digits``: the spoken digit (or None); ``anomalous``: out-of-class (not a spoken digit);
    ``names``: where each clip came from (for messages).

    >>> clips = ClipSet([np.zeros(800, np.float32)] * 3, digits=[1, 2, None], anomalous=[False, False, True])
    >>> len(clips), clips.subset([2]).anomalous
    (3, [True])
    """

    audio: list[np.ndarray]
    digits: list[int | None] = field(default_factory=list)
    anomalous: list[bool] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.audio)
        self.digits = list(self.digits) if self.digits else [None] * n
        self.anomalous = [bool(a) for a in self.anomalous] if self.anomalous else [False] * n
        self.names = list(self.names) if self.names else [f"clip {i}" for i in range(n)]
        for name in ("digits", "anomalous", "names"):
            if len(getattr(self, name)) != n:
                raise DataError(f"ClipSet: {len(getattr(self, name))} {name} for {n} clips")

    def __len__(self) -> int:
        return len(self.audio)

    def subset(self, indices: Sequence[int]) -> "ClipSet":
        idx = [int(i) for i in indices]
        return ClipSet([self.audio[i] for i in idx], [self.digits[i] for i in idx],
                       [self.anomalous[i] for i in idx], [self.names[i] for i in idx])

    def __add__(self, other: "ClipSet") -> "ClipSet":
        return ClipSet(self.audio + other.audio, self.digits + other.digits,
                       self.anomalous + other.anomalous, self.names + other.names)

    def inliers(self) -> "ClipSet":
        return self.subset([i for i, a in enumerate(self.anomalous) if not a])

    def outliers(self) -> "ClipSet":
        return self.subset([i for i, a in enumerate(self.anomalous) if a])


def read_clip_table(
    path: str | Path, audio_column: str = "file", label_column: str = "text", root: str | None = None,
) -> tuple[list[Path], list[str]]:
    """A TSV of audio files and labels → (paths, labels). Relative paths are read from ``root``,
    by default the table's own folder."""
    from ..data.paths import resolve_path
    from ..data.readers import read_tsv

    table_path = resolve_path(path, what="clip table")
    table = read_tsv(table_path)
    for column in (audio_column, label_column):
        if column not in table.column_names:
            raise ConfigError(
                f"data: {str(path)!r} has no column {column!r} (columns: {', '.join(table.column_names)}); "
                "set data.audio_column / data.label_column"
            )
    base = resolve_path(root, what="audio root folder") if root else table_path.parent
    paths = [p if p.is_absolute() else base / p for p in map(Path, table[audio_column])]
    return paths, list(table[label_column])


def load_audio(sources: Sequence[Any], sample_rate: int, batch_size: int = 256) -> list[np.ndarray]:
    """Files (or arrays) → 1-D float32 clips at ``sample_rate``, through the ``audio_loader`` stage."""
    loader = AudioLoader(sample_rate=sample_rate)
    clips: list[np.ndarray] = []
    items = [str(s) if isinstance(s, Path) else s for s in sources]
    for start in range(0, len(items), batch_size):
        clips.extend(loader({"audio": items[start:start + batch_size]})["audio"])
    return clips


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


# =====================================================================================
# features: MFCC patches and fixed-size images
# =====================================================================================
def mfcc_stage(config: MFCCConfig, device: str | torch.device | None = None) -> MFCC:
    """The ``mfcc`` stage for ``config``, computing on ``device`` (default: the config's)."""
    stage = MFCC(config)
    if device is not None:
        stage.to(device)
    return stage


def compute_mfcc(stage: MFCC, clips: Sequence[np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
    """MFCC matrices ``(frames, dim)`` of ``clips``, computed in batches."""
    feats: list[np.ndarray] = []
    for start in range(0, len(clips), batch_size):
        feats.extend(stage({"audio": list(clips[start:start + batch_size])})["features"])
    return [np.asarray(f, dtype=np.float32) for f in feats]


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


# =====================================================================================
# configs
# =====================================================================================
@dataclass
class ClipData:
    """Where the clips come from: TSV tables of ``audio_column`` (file) and ``label_column``.

    ``dev: null`` splits ``dev_fraction`` of the training rows off (seeded) instead.
    ``outliers``: glob patterns of recordings that are not spoken digits; they are cut into
    ``segment_seconds`` pieces and join the dev data as out-of-class clips (anomaly only).
    ``outliers_from_train`` (anomaly): rows of the training table that are not digit
    strings are never trained on; they join the dev data as out-of-class clips.
    """

    train: str = "corpora/speech/train.tsv"
    dev: str | None = "corpora/speech/dev.tsv"
    audio_column: str = "file"
    label_column: str = "text"
    root: str | None = None
    dev_fraction: float = 0.1
    limit_train: int | None = None
    limit_dev: int | None = None
    outliers: list[str] = field(default_factory=list)
    outliers_from_train: bool = True
    segment_seconds: list[float] = field(default_factory=lambda: [0.5, 1.0])
    seed: int = 0

    def validate(self, where: str = "data") -> None:
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"{where}.dev_fraction: must be in (0, 1), got {self.dev_fraction}")
        if len(self.segment_seconds) != 2 or not 0 < self.segment_seconds[0] <= self.segment_seconds[1]:
            raise ConfigError(f"{where}.segment_seconds: give [min, max] with 0 < min <= max, got {self.segment_seconds}")


@dataclass
class PatchConfig:
    """Windows of ``frames`` MFCC frames every ``hop`` frames (``inference_hop`` when denoising)."""

    frames: int = 10
    hop: int = 4
    inference_hop: int = 1
    #: How a clip's patch errors become its anomaly score.
    clip_score: Literal["mean", "max"] = "mean"

    def validate(self, where: str = "patches") -> None:
        for name in ("frames", "hop", "inference_hop"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{where}.{name}: must be a positive integer, got {value}")


AE_KINDS = ("dense", "undercomplete", "denoising", "sparse", "contractive", "variational", "conv", "sequence")


@dataclass
class AutoencoderConfig:
    """Which autoencoder (``seqlab.nn.autoencoder``) and its sizes and regularisers.

    ``dense``/``undercomplete``/``denoising``/``sparse``/``contractive``/``variational`` work
    on flattened patches (``frames × n_mfcc`` inputs); ``conv`` on ``1 × n_mfcc × frames``
    patches (``channels`` per strided layer, ``code_size`` a linear bottleneck, null for
    none); ``sequence`` on whole clips (a GRU/LSTM of ``hidden_sizes[0]`` units).
    ``beta`` is the VAE's KL weight.
    """

    kind: Literal["dense", "undercomplete", "denoising", "sparse", "contractive", "variational", "conv", "sequence"] = "dense"
    code_size: int | None = 24
    hidden_sizes: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    code_activation: str | None = None
    channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel: int = 3
    cell: Literal["gru", "lstm", "rnn"] = "gru"
    noise: str | None = None
    noise_level: float = 0.1
    sparsity: str | None = None
    sparsity_weight: float = 0.01
    sparsity_target: float = 0.05
    contractive_weight: float = 0.0
    beta: float = 1.0


@dataclass
class ThresholdConfig:
    """How the anomaly threshold is chosen on validation data (see ``choose_threshold``)."""

    method: Literal["quantile", "youden"] = "quantile"
    quantile: float = 0.95

    def validate(self, where: str = "threshold") -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"{where}.quantile: must be in (0, 1), got {self.quantile}")


@dataclass
class NoiseConfig:
    """The waveform noise of the denoising pipeline.

    Training: ``copies`` noisy versions of each clip, each with a kind from ``kinds`` and an
    SNR drawn uniformly from ``train_snr_db`` = [low, high], drawn anew every epoch with
    ``fresh_each_epoch``. Evaluation: every kind at
    ``eval_snr_db``, with noise drawn from ``eval_seed``.
    """

    kinds: list[str] = field(default_factory=lambda: ["white", "pink"])
    train_snr_db: list[float] = field(default_factory=lambda: [5.0, 15.0])
    eval_snr_db: float = 10.0
    copies: int = 2
    #: Draw new noise for every epoch (the clean targets stay): more data, less over-fitting.
    fresh_each_epoch: bool = True
    seed: int = 0
    eval_seed: int = 1234

    def validate(self, where: str = "noise") -> None:
        if not self.kinds:
            raise ConfigError(f"{where}.kinds: give at least one of {', '.join(NOISE_KINDS)}")
        for kind in self.kinds:
            if kind not in NOISE_KINDS:
                raise ConfigError(f"{where}.kinds: unknown noise {kind!r}; valid: {', '.join(NOISE_KINDS)}")
        if len(self.train_snr_db) != 2 or self.train_snr_db[0] > self.train_snr_db[1]:
            raise ConfigError(f"{where}.train_snr_db: give [low, high] with low <= high, got {self.train_snr_db}")
        if self.copies < 1:
            raise ConfigError(f"{where}.copies: must be >= 1, got {self.copies}")


@dataclass
class ImageConfig:
    """Fixed-size MFCC "images": ``frames`` frames (``resize`` or ``pad_crop``), CMVN values ÷ ``scale``, clipped to [−1, 1]."""

    frames: int = 32
    mode: Literal["resize", "pad_crop"] = "resize"
    scale: float = 3.0

    def validate(self, where: str = "image") -> None:
        if self.frames < 1:
            raise ConfigError(f"{where}.frames: must be a positive integer, got {self.frames}")
        if self.scale <= 0:
            raise ConfigError(f"{where}.scale: must be > 0, got {self.scale}")


@dataclass
class GANConfig:
    """The conditional DCGAN (``seqlab.nn.gan.DCGAN``): widths of D's strided layers (G mirrors them)."""

    latent_size: int = 32
    channels: list[int] = field(default_factory=lambda: [32, 64])
    num_classes: int = 10
    embedding_size: int | None = None
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])


@dataclass
class ClassifierConfig:
    """The CNN digit classifier that judges generated images (trained on the real training images)."""

    enabled: bool = True
    channels: list[int] = field(default_factory=lambda: [32, 64])
    hidden_size: int = 128
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    #: Share of the training time budget the classifier may use (the GAN gets the rest).
    budget_share: float = 0.15
    #: Generated samples per digit for ``class_accuracy``.
    eval_samples_per_class: int = 50


@dataclass
class GenerativeTrainConfig:
    """The training loop of all three pipelines (``train:`` in the recipes).

    Autoencoders: Adam(``lr``), ``epochs`` over shuffled patches, the learning rate halved
    (``plateau_factor``) after ``plateau_patience`` epochs without a better dev loss, the
    weights with the lowest dev loss kept, stop after ``patience`` epochs without
    improvement or after ``time_budget_s``. GANs: ``epochs`` of ``train_step`` (their own Adam optimisers).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    clip_norm: float | None = 5.0
    #: Autoencoders: multiply the learning rate by this when the dev loss has not improved for
    #: ``plateau_patience`` epochs (null: a constant learning rate).
    plateau_factor: float | None = 0.5
    plateau_patience: int = 3
    patience: int | None = 8
    time_budget_s: float | None = None
    seed: int = 0
    progress: Literal["auto", "on", "off"] = "auto"

    def validate(self, where: str = "train") -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"{where}: epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr: must be > 0, got {self.lr}")
        if self.plateau_factor is not None and not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"{where}.plateau_factor: must be in (0, 1) or null, got {self.plateau_factor}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"{where}.time_budget_s: must be > 0 or null, got {self.time_budget_s}")


# =====================================================================================
# models
# =====================================================================================
class _PairedInput:
    """Mixin for ``Autoencoder`` subclasses: ``paired_loss(clean, noisy)`` is the module's own
    ``loss(clean)`` with the given noisy input as its corrupted x̃ (plus the module's own
    noise on top, if it has one)."""

    _given: Tensor | None = None

    def corrupt(self, x: Tensor) -> Tensor:
        if self._given is None:
            return super().corrupt(x)  # type: ignore[misc]
        given = self._given
        return super().corrupt(given) if self.noise is not None else given  # type: ignore[misc,attr-defined]

    def paired_loss(self, clean: Tensor, noisy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if clean.shape != noisy.shape:
            raise InputError(f"{type(self).__name__}: clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} differ")
        self._given = noisy
        try:
            return self.loss(clean)  # type: ignore[attr-defined]
        finally:
            self._given = None

    def denoise(self, noisy: Tensor) -> Tensor:
        """The clean estimate of ``noisy`` (eval mode, no grad)."""
        was = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        try:
            with torch.no_grad():
                return self(noisy)[0]  # type: ignore[operator]
        finally:
            self.train(was)  # type: ignore[attr-defined]


class PairedDenseDenoiser(_PairedInput, DenseAutoencoder):
    """A dense autoencoder trained on (clean, noisy) pairs; see ``_PairedInput``."""


class PairedDenoisingDenoiser(_PairedInput, DenoisingAutoencoder):
    """A denoising autoencoder (own Gaussian/masking noise on top) trained on (clean, noisy) pairs."""


class PairedConvDenoiser(_PairedInput, ConvAutoencoder):
    """A convolutional autoencoder trained on (clean, noisy) pairs."""


def build_autoencoder(config: AutoencoderConfig, n_coeffs: int, frames: int, where: str = "model", paired: bool = False) -> nn.Module:
    """The autoencoder of ``config`` for ``frames × n_coeffs`` patches; the module's own
    ConfigErrors (a sparsity target outside (0, 1), a negative β, a patch too small for
    the conv stack …) come back prefixed with ``where``.

    >>> build_autoencoder(AutoencoderConfig(kind="sparse", sparsity_target=1.5), 13, 10, where="anomaly.model")
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: anomaly.model: SparseAutoencoder: sparsity_target ρ must be in (0, 1) (a target mean activation), got 1.5
    """
    c = config
    flat = n_coeffs * frames
    hidden = list(c.hidden_sizes)
    regs: dict[str, Any] = dict(
        noise=c.noise, noise_level=c.noise_level, sparsity=c.sparsity, sparsity_weight=c.sparsity_weight,
        sparsity_target=c.sparsity_target, contractive_weight=c.contractive_weight,
    )
    if c.code_activation is not None:
        regs["code_activation"] = c.code_activation
    if paired and c.kind not in ("dense", "denoising", "conv"):
        raise ConfigError(f"{where}.kind: the denoising pipeline takes dense, denoising or conv, got {c.kind!r}")
    if c.code_size is None and c.kind != "conv":
        raise ConfigError(f"{where}.code_size: a {c.kind} autoencoder needs a code size (null is only for conv)")
    try:
        if c.kind == "dense":
            cls = PairedDenseDenoiser if paired else DenseAutoencoder
            return cls(flat, c.code_size, hidden, c.activation, **regs)
        if c.kind == "undercomplete":
            return UndercompleteAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "denoising":
            regs["noise"] = c.noise or "gaussian"
            cls = PairedDenoisingDenoiser if paired else DenoisingAutoencoder
            return cls(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "sparse":
            regs["sparsity"] = c.sparsity or "kl"
            return SparseAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "contractive":
            regs["contractive_weight"] = c.contractive_weight or 0.1
            return ContractiveAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "variational":
            return VariationalAutoencoder(flat, latent_size=c.code_size, hidden_sizes=hidden, activation=c.activation, beta=c.beta)
        if c.kind == "conv":
            if regs.get("contractive_weight"):
                raise ConfigError("contractive_weight applies to dense autoencoders only")
            cls = PairedConvDenoiser if paired else ConvAutoencoder
            return cls((1, n_coeffs, frames), channels=tuple(c.channels), kernel=c.kernel, activation=c.activation,
                       code_size=c.code_size, **regs)
        if c.kind == "sequence":
            return SequenceAutoencoder(n_coeffs, hidden_size=hidden[0] if hidden else 64, code_size=c.code_size,
                                       cell=c.cell, **regs)
    except (ConfigError, InputError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None
    raise ConfigError(f"{where}.kind: unknown autoencoder {c.kind!r}; valid: {', '.join(AE_KINDS)}")


def _to_model(patches: Tensor, kind: str) -> Tensor:
    """``(N, frames, n_mfcc)`` patches in the layout the autoencoder takes."""
    if kind == "conv":
        return patches.transpose(1, 2).unsqueeze(1)  # (N, 1, n_mfcc, frames): coefficients × time
    return patches.reshape(patches.shape[0], -1)


def _from_model(out: Tensor, kind: str, frames: int, dim: int) -> Tensor:
    if kind == "conv":
        return out.squeeze(1).transpose(1, 2)
    return out.reshape(out.shape[0], frames, dim)


class DigitClassifier(nn.Module):
    """A small CNN over ``(1, n_mfcc, frames)`` MFCC images → digit logits.

    Two ``ConvStack`` layers (3×3, same padding, batch norm, ReLU, 2×2 max pooling), then an
    ``MLP`` with dropout.

    >>> clf = DigitClassifier((1, 13, 32), num_classes=10).eval()
    >>> clf(torch.randn(4, 1, 13, 32)).shape
    torch.Size([4, 10])
    """

    def __init__(self, image_shape: Sequence[int], num_classes: int = 10, channels: Sequence[int] = (32, 64),
                 hidden_size: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        specs = [{"channels": ch, "kernel": 3, "padding": "same", "norm": "batch", "pool": "max"} for ch in channels]
        self.convs = ConvStack(self.image_shape[0], specs, dims=2)
        try:
            shape = self.convs.output_shape(self.image_shape)
        except InputError as err:
            raise ConfigError(f"DigitClassifier: images of shape {self.image_shape} are too small for {len(channels)} pooled layers: {err}") from None
        self.head = MLP([math.prod(shape), hidden_size, num_classes], dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.image_shape:
            raise InputError(f"DigitClassifier expects images (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        return self.head(self.convs(x).flatten(1))

    def loss(self, x: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(self(x), labels)

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 512) -> Tensor:
        was = self.training
        self.eval()
        try:
            return torch.cat([self(x[s:s + batch_size]).argmax(-1) for s in range(0, x.shape[0], batch_size)])
        finally:
            self.train(was)


# =====================================================================================
# training loops
# =====================================================================================
def _show_progress(setting: str) -> bool:
    return setting == "on" or (setting == "auto" and sys.stderr.isatty())


def _metrics_log(log_dir: str | Path | None):
    if log_dir is None:
        return None
    from ..train.metrics_log import MetricsLog

    return MetricsLog(log_dir)


def _train_result(history: list[dict], steps: int, units: int, seconds: float, stopped_by: str, best: dict, best_step: int):
    from ..train.trainer import TrainResult

    return TrainResult(best_metrics=best, best_step=best_step, history=history, steps=steps, train_tokens=units,
                       train_seconds=seconds, stopped_by=stopped_by)


def _batches(n: int, batch_size: int, generator: torch.Generator, drop_single: bool = False) -> list[Tensor]:
    order = torch.randperm(n, generator=generator)
    batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    if drop_single and len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()  # batch norm cannot train on one example
    return batches


def _pad_sequences(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([s.shape[0] for s in seqs])
    return nn.utils.rnn.pad_sequence(list(seqs), batch_first=True), lengths


def fit_autoencoder(
    model: nn.Module,
    train: Tensor | list[Tensor],
    dev: Tensor | list[Tensor] | None,
    config: GenerativeTrainConfig,
    device: torch.device,
    train_noisy: Tensor | None = None,
    dev_noisy: Tensor | None = None,
    log_dir: str | Path | None = None,
    units_per_example: int = 1,
    renew_noisy: Callable[[int], Tensor] | None = None,
):
    """Train ``model`` with its own ``loss`` (or ``paired_loss(clean, noisy)`` when
    ``train_noisy`` is given) by Adam; keep the weights with the lowest dev loss.

    ``renew_noisy(epoch)``, if given, returns new noisy inputs (same shape and order as
    ``train_noisy``) before every epoch after the first.

    ``train``/``dev`` are tensors of examples in the model's layout, or lists of
    ``(T, dim)`` sequences for a sequence autoencoder (padded per batch). The dev loss is
    the mean reconstruction error (of ``dev`` from ``dev_noisy`` when denoising).
    Returns a ``seqlab.train.TrainResult``.
    """
    sequences = isinstance(train, list)
    n = len(train)
    if n == 0:
        raise DataError("no training examples: every clip was dropped or the training data is empty")
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plateau = None
    if config.plateau_factor is not None:
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                                             patience=config.plateau_patience)
    generator = torch.Generator().manual_seed(config.seed)
    log = _metrics_log(log_dir)
    history: list[dict] = []
    best_value, best_state, best_step, bad = math.inf, None, 0, 0
    steps, seen, stopped_by = 0, 0, "epochs"
    start = time.perf_counter()
    show = _show_progress(config.progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, desc=f"training {type(model).__name__}", unit="epoch", leave=False)

    def batch_of(data, idx):
        if sequences:
            x, lengths = _pad_sequences([data[int(i)] for i in idx])
            return x.to(device), lengths.to(device)
        return data[idx].to(device), None

    def dev_loss() -> float:
        if dev is None or len(dev) == 0:
            return math.nan
        total, count = 0.0, 0
        for s in range(0, len(dev), 1024):
            idx = torch.arange(s, min(s + 1024, len(dev)))
            x, lengths = batch_of(dev, idx)
            if dev_noisy is not None:
                est = model.denoise(dev_noisy[idx].to(device))
                err = (est - x).pow(2).reshape(x.shape[0], -1).mean(1)
            elif lengths is not None:
                err = model.reconstruction_error(x, lengths)
            else:
                err = model.reconstruction_error(x)
            total += float(err.sum())
            count += x.shape[0]
        return total / count

    try:
        for epoch in range(1, config.epochs + 1):
            if renew_noisy is not None and epoch > 1:
                train_noisy = renew_noisy(epoch)
            model.train()
            losses = []
            for idx in _batches(n, config.batch_size, generator):
                x, lengths = batch_of(train, idx)
                if train_noisy is not None:
                    loss, _ = model.paired_loss(x, train_noisy[idx].to(device))
                elif lengths is not None:
                    loss, _ = model.loss(x, lengths)
                else:
                    loss, _ = model.loss(x)
                if not torch.isfinite(loss):
                    raise DataError(
                        f"the {type(model).__name__} loss became {float(loss)} at step {steps + 1}; lower train.lr "
                        "or check the features for extreme values"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                losses.append(float(loss.detach()))
                steps += 1
                seen += len(idx) * units_per_example
                if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                    stopped_by = "time_budget"
                    break
            value = dev_loss()
            record = {"epoch": epoch, "step": steps, "train_loss": float(np.mean(losses)) if losses else math.nan,
                      "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - start, 2)}
            if not math.isnan(value):
                record["dev_loss"] = value
            history.append(record)
            if log is not None:
                log.write(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['train_loss']:.4f}", dev=f"{value:.4f}")
            monitored = value if not math.isnan(value) else record["train_loss"]
            if plateau is not None and math.isfinite(monitored):
                plateau.step(monitored)
            if monitored < best_value:
                best_value, best_step, bad = monitored, steps, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
            if stopped_by == "time_budget":
                break
            if config.patience is not None and bad >= config.patience:
                stopped_by = "patience"
                break
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return _train_result(history, steps, seen, time.perf_counter() - start, stopped_by,
                         {"dev_loss": best_value} if best_value < math.inf else {}, best_step)


def fit_classifier(
    model: DigitClassifier, images: Tensor, labels: Tensor, config: ClassifierConfig, device: torch.device,
    seed: int = 0, time_budget_s: float | None = None,
) -> dict[str, float]:
    """Train the digit classifier with cross-entropy (Adam); returns its final training accuracy."""
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    epochs = 0
    for _ in range(config.epochs):
        model.train()
        for idx in _batches(images.shape[0], config.batch_size, generator, drop_single=True):
            loss = model.loss(images[idx].to(device), labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epochs += 1
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            break
    model.eval()
    accuracy = float((model.predict(images.to(device)).cpu() == labels).float().mean())
    return {"epochs": epochs, "train_accuracy": accuracy, "seconds": time.perf_counter() - start}


def fit_gan(
    gan: DCGAN, images: Tensor, labels: Tensor | None, config: GenerativeTrainConfig, device: torch.device,
    log_dir: str | Path | None = None, on_epoch: Callable[[], dict[str, float]] | None = None,
):
    """Play the GAN's own ``train_step`` over shuffled batches for ``epochs`` or ``time_budget_s``.

    ``on_epoch`` (optional) returns extra ``dev_*`` numbers for each epoch's record (e.g.
    the classifier's accuracy on samples), for the curves only: the last generator is kept.
    """
    n = images.shape[0]
    if n < 2:
        raise DataError(f"the GAN needs at least 2 training images (batch norm), got {n}")
    gan.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    log = _metrics_log(log_dir)
    history: list[dict] = []
    steps, stopped_by = 0, "epochs"
    start = time.perf_counter()
    show = _show_progress(config.progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, desc="training the GAN", unit="epoch", leave=False)
    try:
        for epoch in range(1, config.epochs + 1):
            stats: list[dict[str, float]] = []
            for idx in _batches(n, min(config.batch_size, n), generator, drop_single=True):
                real = images[idx].to(device)
                y = labels[idx].to(device) if labels is not None else None
                stats.append(gan.train_step(real, y))
                steps += 1
                if config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s:
                    stopped_by = "time_budget"
                    break
            record = {"epoch": epoch, "step": steps, "seconds": round(time.perf_counter() - start, 2)}
            for key in ("g_loss", "d_loss", "d_real", "d_fake"):
                record[key] = float(np.mean([s[key] for s in stats]))
            record["train_loss"] = record["g_loss"]
            if on_epoch is not None:
                record.update(on_epoch())
            history.append(record)
            if log is not None:
                log.write(record)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}")
            if stopped_by == "time_budget":
                break
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    gan.eval()
    return _train_result(history, steps, steps * config.batch_size, time.perf_counter() - start, stopped_by, {}, steps)


# =====================================================================================
# pipelines
# =====================================================================================
def save_sample_grid(images: Any, labels: Sequence[int], path: str | Path, title: str | None = None,
                     label_names: Sequence[str] | None = None) -> Path:
    """A PNG grid of ``(N, 1, H, W)`` images (MFCC coefficients up, time right), one row per label.

    >>> import tempfile, os
    >>> p = save_sample_grid(np.random.rand(4, 1, 13, 32) * 2 - 1, [0, 0, 1, 1], os.path.join(tempfile.mkdtemp(), "g.png"))
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = images.detach().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    if arr.ndim != 4 or arr.shape[0] != len(labels):
        raise InputError(f"save_sample_grid: expected (N, C, H, W) images with one label each, got {arr.shape} and {len(labels)} labels")
    rows = sorted(set(int(y) for y in labels))
    per_row = {r: [i for i, y in enumerate(labels) if int(y) == r] for r in rows}
    cols = max(len(v) for v in per_row.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.3 * cols + 0.6, 0.75 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(per_row[row]):
                ax.imshow(arr[per_row[row][c], 0], origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(label_names[row] if label_names else str(row), rotation=0, labelpad=12, va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


class _GenerativePipeline:
    """What the three pipelines share: the MFCC front end, the device, saving and loading."""

    task = ""

    def __init__(self, features: MFCCConfig | dict | None, device: str | torch.device = "auto") -> None:
        if features is None or isinstance(features, dict):
            features = from_dict(MFCCConfig, dict(features or {}), where=f"{self.task}.features")
        self.features_config = features
        self.device = resolve_device(device)
        self.mfcc = mfcc_stage(features, self.device)
        self.model: nn.Module | None = None
        self.train_result = None

    # -- features ---------------------------------------------------------------------
    def _audio(self, inputs: Any, where: str = "input") -> list[np.ndarray]:
        """ClipSet, file paths or arrays (at ``features.sample_rate``) → clips."""
        if isinstance(inputs, ClipSet):
            return list(inputs.audio)
        items = list(inputs)
        if not items:
            raise InputError(f"{where}: no clips given")
        return load_audio(items, self.features_config.sample_rate)

    def fit_features(self, clips: Sequence[np.ndarray]) -> None:
        """Fit the front end (global CMVN statistics) on training clips."""
        if self.features_config.cmvn == "global":
            self.mfcc.fit({"audio": list(clips)})

    def mfccs(self, clips: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.mfcc.fitted:
            from ..core.errors import NotFittedError

            raise NotFittedError(f"the {self.task} pipeline is used before fit(); its global CMVN has no statistics yet")
        return compute_mfcc(self.mfcc, clips)

    def _check_dim(self, features: Sequence[np.ndarray]) -> None:
        dim = self.features_config.dim
        for i, f in enumerate(features):
            if np.ndim(f) != 2 or np.shape(f)[1] != dim:
                raise InputError(
                    f"clip {i}: features of shape {np.shape(f)}; this {self.task} model takes (frames, {dim}) MFCCs "
                    f"(features.n_mfcc={self.features_config.n_mfcc}, deltas={self.features_config.deltas})"
                )

    def _require_model(self) -> nn.Module:
        if self.model is None:
            from ..core.errors import NotFittedError

            raise NotFittedError(f"the {self.task} pipeline has no model yet: call fit() or load_generative() first")
        return self.model

    # -- files ------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_settings(self, settings: dict[str, Any]) -> None:
        """Restore what ``fit`` learned besides the weights (thresholds …)."""

    def _save_extra(self, directory: Path) -> None:
        """Write files of the pipeline's own (into the temporary directory ``save`` fills)."""

    def save(self, directory: str | Path, meta: dict | None = None) -> Path:
        """``config.json`` (settings) + ``model.safetensors`` + ``mfcc/cmvn.json``, written atomically."""
        from ..core.serialization import atomic_directory, save_weights, write_json

        model = self._require_model()
        directory = Path(directory)
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": self.task,
                  "features": to_dict(self.features_config), **self._settings(), "meta": dict(meta or {})}
        with atomic_directory(directory) as tmp:
            (tmp / "mfcc").mkdir()
            self.mfcc.save_state(tmp / "mfcc")
            save_weights(model, tmp / WEIGHTS_FILE, metadata={"format": FORMAT, "task": self.task})
            write_json(tmp / CONFIG_FILE, json.loads(json.dumps(config, default=_json_default)))
            self._save_extra(tmp)
            for keep in KEPT_ON_SAVE:
                if (directory / keep).is_dir():
                    shutil.copytree(directory / keep, tmp / keep)
        return directory

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, fitted={self.model is not None})"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _no_resume(resume_from: Any, task: str) -> None:
    if resume_from:
        raise ConfigError(f"the {task} pipeline trains in one go (minutes); resuming from checkpoints is not supported")


class AnomalyDetector(_GenerativePipeline):
    """MFCC patches → autoencoder → per-clip reconstruction error → "not a spoken digit" above a threshold.

    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(2400) / 8000
    >>> tones = [0.5 * np.sin(2 * np.pi * f * t).astype(np.float32) for f in rng.uniform(300, 600, 8)]
    >>> det = AnomalyDetector(features={"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "cmvn": "global"},
    ...                       model={"code_size": 4, "hidden_sizes": [16]}, device="cpu")
    >>> _ = det.fit(ClipSet(tones), None, {"epochs": 2, "progress": "off"})
    >>> sorted(det.predict(tones[:1])[0])
    ['anomaly', 'label', 'score']
    """

    task = "anomaly"

    def __init__(
        self,
        features: MFCCConfig | dict | None = None,
        patches: PatchConfig | dict | None = None,
        model: AutoencoderConfig | dict | None = None,
        threshold: ThresholdConfig | dict | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(features, device)
        self.patches = _config(PatchConfig, patches, "anomaly.patches")
        self.model_config = _config(AutoencoderConfig, model, "anomaly.model")
        self.threshold_config = _config(ThresholdConfig, threshold, "anomaly.threshold")
        self.model = build_autoencoder(self.model_config, self.features_config.dim, self.patches.frames, "anomaly.model").to(self.device)
        self.threshold: float | None = None

    # -- data -> examples ---------------------------------------------------------------
    def _examples(self, features: Sequence[np.ndarray], hop: int) -> tuple[Tensor | list[Tensor], np.ndarray]:
        self._check_dim(features)
        if self.model_config.kind == "sequence":
            return [torch.from_numpy(np.ascontiguousarray(f)) for f in features], np.arange(len(features))
        patches, owner = frame_patches(features, self.patches.frames, hop)
        return _to_model(torch.from_numpy(patches), self.model_config.kind), owner

    def _errors(self, examples: Tensor | list[Tensor]) -> np.ndarray:
        model = self._require_model()
        out = []
        with torch.no_grad():
            for s in range(0, len(examples), 1024):
                chunk = examples[s:s + 1024]
                if isinstance(chunk, list):
                    x, lengths = _pad_sequences(chunk)
                    out.append(model.reconstruction_error(x.to(self.device), lengths.to(self.device)).cpu())
                else:
                    out.append(model.reconstruction_error(chunk.to(self.device)).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def scores_of_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Per-clip anomaly scores of (normalised) MFCC matrices: the mean (or max) patch error."""
        examples, owner = self._examples(features, self.patches.hop)
        errors = self._errors(examples)
        n = len(features)
        if self.patches.clip_score == "max":
            scores = np.full(n, -np.inf)
            np.maximum.at(scores, owner, errors)
            return scores
        return np.bincount(owner, weights=errors, minlength=n) / np.maximum(np.bincount(owner, minlength=n), 1)

    def scores(self, inputs: Any) -> np.ndarray:
        """Per-clip anomaly scores of a ClipSet, file paths or arrays."""
        return self.scores_of_features(self.mfccs(self._audio(inputs)))

    # -- the protocol -----------------------------------------------------------------------
    def fit(self, train: ClipSet, dev: ClipSet | None = None, train_config: Any = None, log_dir: str | Path | None = None,
            checkpoint_dir: str | Path | None = None, resume_from: Any = None):
        """Fit CMVN and the autoencoder on ``train``'s in-class clips, then the threshold on ``dev``
        (its in-class clips, and its anomalies for ``youden``; ``train`` itself when there is no dev)."""
        _no_resume(resume_from, self.task)
        config = _config(GenerativeTrainConfig, train_config, "train")
        inliers = train.inliers()
        if len(inliers) == 0:
            raise DataError("anomaly: the training data has no in-class clips to learn from")
        self.fit_features(inliers.audio)
        train_examples, _ = self._examples(self.mfccs(inliers.audio), self.patches.hop)
        dev_inliers = dev.inliers() if dev is not None else None
        dev_features = self.mfccs(dev_inliers.audio) if dev_inliers is not None and len(dev_inliers) else None
        dev_examples = self._examples(dev_features, self.patches.hop)[0] if dev_features is not None else None
        units = self.patches.frames if self.model_config.kind != "sequence" else 1
        self.train_result = fit_autoencoder(self.model, train_examples, dev_examples, config, self.device,
                                            log_dir=log_dir, units_per_example=units)
        self.calibrate(dev if dev is not None and len(dev_inliers) else inliers)
        return self.train_result

    def calibrate(self, data: ClipSet) -> float:
        """Choose the threshold on ``data`` (validation clips); returns it."""
        scores = self.scores(data)
        flags = np.asarray(data.anomalous, dtype=bool)
        self.threshold = choose_threshold(scores[~flags], scores[flags] if flags.any() else None,
                                          self.threshold_config.method, self.threshold_config.quantile)
        return self.threshold

    def predict(self, inputs: Any) -> list[dict[str, Any]]:
        """For each clip (path or array): ``{"label": "digit" | "not a digit", "score", "anomaly"}``."""
        scores = self.scores(inputs)
        if self.threshold is None:
            from ..core.errors import NotFittedError

            raise NotFittedError("anomaly: no threshold yet; fit() or calibrate() on validation clips first")
        return [{"label": "not a digit" if s > self.threshold else "digit", "score": float(s), "anomaly": bool(s > self.threshold)}
                for s in scores]

    def evaluate(self, data: ClipSet) -> dict[str, float]:
        """``auc`` (needs both classes), and at the threshold: detection rate (anomalies flagged),
        false-alarm rate (in-class clips flagged), accuracy."""
        scores = self.scores(data)
        flags = np.asarray(data.anomalous, dtype=bool)
        out: dict[str, float] = {"inlier_score_mean": float(scores[~flags].mean()) if (~flags).any() else math.nan}
        if flags.any():
            out["outlier_score_mean"] = float(scores[flags].mean())
        if flags.any() and (~flags).any():
            out["auc"] = roc_auc(scores, flags)
        if self.threshold is not None:
            flagged = scores > self.threshold
            out["threshold"] = float(self.threshold)
            out["accuracy"] = float((flagged == flags).mean())
            if flags.any():
                out["detection_rate"] = float(flagged[flags].mean())
            if (~flags).any():
                out["false_alarm_rate"] = float(flagged[~flags].mean())
        return out

    def _settings(self) -> dict[str, Any]:
        return {"patches": to_dict(self.patches), "model": to_dict(self.model_config),
                "threshold": to_dict(self.threshold_config), "threshold_value": self.threshold}

    def _load_settings(self, settings: dict[str, Any]) -> None:
        self.threshold = settings.get("threshold_value")


class MFCCDenoiser(_GenerativePipeline):
    """Noisy-speech MFCC patches → denoising autoencoder → clean MFCC patches, averaged back into frames.

    >>> den = MFCCDenoiser(features={"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "cmvn": "global"},
    ...                    model={"code_size": 8, "hidden_sizes": [32]}, device="cpu")
    >>> den.model.paired_loss is not None
    True
    """

    task = "denoise"

    def __init__(
        self,
        features: MFCCConfig | dict | None = None,
        patches: PatchConfig | dict | None = None,
        model: AutoencoderConfig | dict | None = None,
        noise: NoiseConfig | dict | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(features, device)
        if self.features_config.cmvn == "utterance":
            raise ConfigError(
                "denoise.features.cmvn: 'utterance' would normalise the noisy and the clean MFCCs with different "
                "statistics; use 'global' (fitted on clean training speech, applied to both) or 'none'"
            )
        self.patches = _config(PatchConfig, patches, "denoise.patches")
        self.model_config = _config(AutoencoderConfig, model, "denoise.model")
        self.noise = _config(NoiseConfig, noise, "denoise.noise")
        self.model = build_autoencoder(self.model_config, self.features_config.dim, self.patches.frames,
                                       "denoise.model", paired=True).to(self.device)

    def noisy_pairs(self, clips: Sequence[np.ndarray], copies: int, rng: np.random.Generator,
                    snr: float | None = None, kinds: Sequence[str] | None = None,
                    clean: Sequence[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
        """(clean MFCCs, noisy MFCCs, noise kind) for ``copies`` noisy versions of each clip, in
        the order clip 0 copy 0, clip 0 copy 1, …

        Without ``snr``, each copy's SNR is drawn from ``noise.train_snr_db``; without
        ``kinds``, each copy's kind from ``noise.kinds``. ``clean``: the clips' MFCCs, if known.
        """
        clean = self.mfccs(clips) if clean is None else clean
        noisy_audio, clean_out, kind_out = [], [], []
        for i, clip in enumerate(clips):
            for c in range(copies):
                kind = (kinds[c % len(kinds)] if kinds else self.noise.kinds[int(rng.integers(len(self.noise.kinds)))])
                level = snr if snr is not None else float(rng.uniform(*self.noise.train_snr_db))
                noisy_audio.append(add_noise(clip, level, kind, rng))
                clean_out.append(clean[i])
                kind_out.append(kind)
        return clean_out, self.mfccs(noisy_audio), kind_out

    def _patch_tensor(self, features: Sequence[np.ndarray], hop: int) -> Tensor:
        patches, _ = frame_patches(features, self.patches.frames, hop)
        return _to_model(torch.from_numpy(patches), self.model_config.kind)

    def denoise_features(self, noisy: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Clean estimates of (normalised) noisy MFCC matrices: overlapping patches denoised and averaged."""
        model = self._require_model()
        self._check_dim(noisy)
        hop, frames, dim = self.patches.inference_hop, self.patches.frames, self.features_config.dim
        x = self._patch_tensor(noisy, hop)
        outs = [_from_model(model.denoise(x[s:s + 2048].to(self.device)), self.model_config.kind, frames, dim).cpu()
                for s in range(0, x.shape[0], 2048)]
        patches = torch.cat(outs).numpy() if outs else np.zeros((0, frames, dim), np.float32)
        return overlap_average(patches, [len(f) for f in noisy], frames, hop)

    def fit(self, train: ClipSet, dev: ClipSet | None = None, train_config: Any = None, log_dir: str | Path | None = None,
            checkpoint_dir: str | Path | None = None, resume_from: Any = None):
        """Fit CMVN on the clean training clips, make ``noise.copies`` noisy versions of each, and train
        noisy → clean; the dev loss is measured on dev clips at ``noise.eval_snr_db``."""
        _no_resume(resume_from, self.task)
        config = _config(GenerativeTrainConfig, train_config, "train")
        if len(train) == 0:
            raise DataError("denoise: the training data is empty")
        self.fit_features(train.audio)
        rng = np.random.default_rng(self.noise.seed)
        clean_features = self.mfccs(train.audio)

        def noisy_patches() -> tuple[list[np.ndarray], Tensor]:
            clean, noisy, _ = self.noisy_pairs(train.audio, self.noise.copies, rng, clean=clean_features)
            return clean, self._patch_tensor(noisy, self.patches.hop)

        clean, train_noisy = noisy_patches()
        train_clean = self._patch_tensor(clean, self.patches.hop)
        # New noise every epoch: the same clean targets, never the same noisy input twice.
        renew = (lambda epoch: noisy_patches()[1]) if self.noise.fresh_each_epoch else None  # noqa: E731
        dev_clean = dev_noisy = None
        if dev is not None and len(dev):
            d_clean, d_noisy, _ = self.noisy_pairs(dev.audio, 1, np.random.default_rng(self.noise.seed + 1), snr=self.noise.eval_snr_db)
            dev_clean, dev_noisy = self._patch_tensor(d_clean, self.patches.hop), self._patch_tensor(d_noisy, self.patches.hop)
        self.train_result = fit_autoencoder(self.model, train_clean, dev_clean, config, self.device, train_noisy=train_noisy,
                                            dev_noisy=dev_noisy, log_dir=log_dir, units_per_example=self.patches.frames,
                                            renew_noisy=renew)
        return self.train_result

    def evaluate(self, data: ClipSet, snr: float | None = None) -> dict[str, float]:
        """MFCC SNR (dB) of noisy and denoised features against the clean ones, per noise kind and overall.

        Every clip gets each kind of ``noise.kinds`` at ``snr`` (default ``noise.eval_snr_db``),
        drawn from ``noise.eval_seed``, so two evaluations see the same noise. All three are the
        pipeline's features (global CMVN with clean-training statistics, when ``features.cmvn``
        is ``global``).
        """
        self._require_model()
        if len(data) == 0:
            raise DataError("denoise: the evaluation data is empty")
        snr = self.noise.eval_snr_db if snr is None else snr
        kinds = list(self.noise.kinds)
        clean, noisy, kind_of = self.noisy_pairs(data.audio, len(kinds), np.random.default_rng(self.noise.eval_seed), snr=snr, kinds=kinds)
        denoised = self.denoise_features(noisy)
        out: dict[str, float] = {"input_snr_db": float(snr)}
        out["snr_noisy_db"] = snr_db(clean, noisy)
        out["snr_denoised_db"] = snr_db(clean, denoised)
        out["snr_gain_db"] = out["snr_denoised_db"] - out["snr_noisy_db"]
        for kind in kinds:
            idx = [i for i, k in enumerate(kind_of) if k == kind]
            noisy_k = snr_db([clean[i] for i in idx], [noisy[i] for i in idx])
            out[f"{kind}_snr_gain_db"] = snr_db([clean[i] for i in idx], [denoised[i] for i in idx]) - noisy_k
        return out

    def predict(self, inputs: Any) -> list[np.ndarray]:
        """Denoised (normalised) MFCC matrices ``(frames, dim)`` of noisy clips (paths or arrays)."""
        return self.denoise_features(self.mfccs(self._audio(inputs)))

    def _settings(self) -> dict[str, Any]:
        return {"patches": to_dict(self.patches), "model": to_dict(self.model_config), "noise": to_dict(self.noise)}


class DigitGenerator(_GenerativePipeline):
    """A conditional DCGAN over fixed-size MFCC images of spoken digits, and the classifier that judges it.

    >>> gen = DigitGenerator(features={"sample_rate": 8000, "n_fft": 256, "hop_length": 80},
    ...                      image={"frames": 16}, model={"channels": [8, 16]}, device="cpu")
    >>> gen.image_shape
    (1, 13, 16)
    >>> gen.sample(2, labels=10)
    Traceback (most recent call last):
    ...
    seqlab.core.errors.InputError: DCGAN: label 10 is out of range; this GAN was trained on labels 0..9 (num_classes=10)
    """

    task = "cgan"

    def __init__(
        self,
        features: MFCCConfig | dict | None = None,
        image: ImageConfig | dict | None = None,
        model: GANConfig | dict | None = None,
        classifier: ClassifierConfig | dict | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__(features, device)
        self.image = _config(ImageConfig, image, "cgan.image")
        self.model_config = _config(GANConfig, model, "cgan.model")
        self.classifier_config = _config(ClassifierConfig, classifier, "cgan.classifier")
        self.image_shape = (1, self.features_config.dim, self.image.frames)
        m = self.model_config
        try:
            self.model = DCGAN(self.image_shape, latent_size=m.latent_size, channels=tuple(m.channels), num_classes=m.num_classes,
                               embedding_size=m.embedding_size, lr_generator=m.lr_generator, lr_discriminator=m.lr_discriminator,
                               betas=tuple(m.betas)).to(self.device)
        except (ConfigError, InputError) as err:
            raise ConfigError(f"cgan.model: {err} (images are 1 × n_mfcc × image.frames = {self.image_shape})") from None
        self.classifier: DigitClassifier | None = None
        if self.classifier_config.enabled:
            c = self.classifier_config
            try:
                self.classifier = DigitClassifier(self.image_shape, m.num_classes, c.channels, c.hidden_size, c.dropout).to(self.device)
            except ConfigError as err:
                raise ConfigError(f"cgan.classifier: {err}") from None
        self.classifier_report: dict[str, float] = {}

    @property
    def gan(self) -> DCGAN:
        return self._require_model()  # type: ignore[return-value]

    def images_of_features(self, features: Sequence[np.ndarray]) -> Tensor:
        """(Normalised) MFCC matrices → ``(N, 1, n_mfcc, frames)`` images in [−1, 1]."""
        self._check_dim(features)
        imgs = [fixed_frames(f, self.image.frames, self.image.mode).T for f in features]
        x = torch.from_numpy(np.stack(imgs)).unsqueeze(1) if imgs else torch.zeros(0, *self.image_shape)
        return (x / self.image.scale).clamp(-1.0, 1.0)

    def images(self, inputs: Any) -> Tensor:
        return self.images_of_features(self.mfccs(self._audio(inputs)))

    def _labels(self, data: ClipSet, where: str) -> Tensor:
        missing = [data.names[i] for i, d in enumerate(data.digits) if d is None]
        if missing:
            raise DataError(f"cgan: {len(missing)} {where} clip(s) have no digit label (first: {missing[0]}); keep only single-digit clips")
        labels = torch.tensor([int(d) for d in data.digits])
        bad = labels[(labels < 0) | (labels >= self.model_config.num_classes)]
        if bad.numel():
            raise DataError(f"cgan: {where} label {int(bad[0])} is outside 0..{self.model_config.num_classes - 1} (model.num_classes)")
        return labels

    def fit(self, train: ClipSet, dev: ClipSet | None = None, train_config: Any = None, log_dir: str | Path | None = None,
            checkpoint_dir: str | Path | None = None, resume_from: Any = None):
        """Fit CMVN on the training clips, train the classifier (``classifier.budget_share`` of the
        time budget) on the real images, then the GAN for the rest."""
        _no_resume(resume_from, self.task)
        config = _config(GenerativeTrainConfig, train_config, "train")
        labels = self._labels(train, "training")
        self.fit_features(train.audio)
        images = self.images_of_features(self.mfccs(train.audio))
        start = time.perf_counter()
        if self.classifier is not None:
            share = self.classifier_config.budget_share
            budget = config.time_budget_s * share if config.time_budget_s is not None else None
            self.classifier_report = fit_classifier(self.classifier, images, labels, self.classifier_config, self.device,
                                                    seed=config.seed, time_budget_s=budget)
            if dev is not None and len(dev):
                self.classifier_report["dev_accuracy"] = self.classifier_accuracy(dev)
        gan_config = config
        if config.time_budget_s is not None:
            gan_config = dataclasses.replace(config, time_budget_s=max(config.time_budget_s - (time.perf_counter() - start), 1.0))
        on_epoch = None
        if self.classifier is not None:
            on_epoch = lambda: {"dev_class_accuracy": self.class_accuracy(20, seed=99)}  # noqa: E731 - curves only
        self.train_result = fit_gan(self.gan, images, labels, gan_config, self.device, log_dir=log_dir, on_epoch=on_epoch)
        return self.train_result

    def sample(self, n: int, labels: Any) -> Tensor:
        """``n`` generated images ``(n, 1, n_mfcc, frames)`` of ``labels`` (an int or one per image).

        A label outside the trained ones is the GAN's ``InputError``."""
        return self.gan.sample(n, labels)

    def classifier_accuracy(self, data: ClipSet) -> float:
        """The classifier's accuracy on real clips (held-out data: the check that it can judge at all)."""
        if self.classifier is None:
            raise ConfigError("cgan: the classifier is disabled (classifier.enabled: false)")
        labels = self._labels(data, "evaluation")
        images = self.images_of_features(self.mfccs(data.audio)).to(self.device)
        return float((self.classifier.predict(images).cpu() == labels).float().mean())

    def class_accuracy(self, per_class: int | None = None, seed: int = 0) -> float:
        """The fraction of generated samples (``per_class`` of each digit) the classifier calls the requested digit."""
        return float(np.mean(self.class_accuracies(per_class, seed)))

    def class_accuracies(self, per_class: int | None = None, seed: int = 0) -> list[float]:
        if self.classifier is None:
            raise ConfigError("cgan: the classifier is disabled (classifier.enabled: false)")
        per_class = per_class or self.classifier_config.eval_samples_per_class
        accs = []
        with _seeded(seed, self.device):
            for digit in range(self.model_config.num_classes):
                samples = self.sample(per_class, digit)
                accs.append(float((self.classifier.predict(samples) == digit).float().mean()))
        return accs

    def evaluate(self, data: ClipSet | None = None) -> dict[str, float]:
        """``class_accuracy`` of generated samples and, given real clips, ``classifier_accuracy`` on them."""
        out: dict[str, float] = {}
        if self.classifier is not None:
            out["class_accuracy"] = self.class_accuracy()
            if data is not None and len(data):
                out["classifier_accuracy"] = self.classifier_accuracy(data)
        return out

    def save_grid(self, path: str | Path, per_class: int = 8, seed: int = 0, title: str | None = None) -> Path:
        """A PNG grid of ``per_class`` samples of every digit (row = requested digit)."""
        labels = [d for d in range(self.model_config.num_classes) for _ in range(per_class)]
        with _seeded(seed, self.device):
            images = self.sample(len(labels), labels)
        return save_sample_grid(images, labels, path, title=title)

    def predict(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        """For each requested digit: one generated image (as nested lists) and what the classifier hears."""
        labels = [digit_of(x) for x in inputs]
        bad = [x for x, d in zip(inputs, labels) if d is None]
        if bad:
            raise InputError(f"cgan: {bad[0]!r} is not a digit (0–9 or its English name)")
        images = self.sample(len(labels), labels)
        heard = self.classifier.predict(images).tolist() if self.classifier is not None else [None] * len(labels)
        return [{"label": d, "classified_as": h, "image": img[0].tolist()} for d, h, img in zip(labels, heard, images.cpu())]

    def _settings(self) -> dict[str, Any]:
        return {"image": to_dict(self.image), "model": to_dict(self.model_config),
                "classifier": to_dict(self.classifier_config), "classifier_report": self.classifier_report}

    def _load_settings(self, settings: dict[str, Any]) -> None:
        self.classifier_report = dict(settings.get("classifier_report") or {})

    def _save_extra(self, directory: Path) -> None:
        from ..core.serialization import save_weights

        if self.classifier is not None:
            save_weights(self.classifier, directory / CLASSIFIER_FILE)
        self.save_grid(directory / GRID_FILE, title="generated MFCC images, one row per requested digit")


def _seeded(seed: int, device: torch.device):
    """A block with its own seeded RNG that leaves the global RNG state as it was."""
    import contextlib

    @contextlib.contextmanager
    def block():
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    return block()


def _config(cls: type, value: Any, where: str) -> Any:
    if value is None:
        return from_dict(cls, {}, where=where)
    if isinstance(value, dict):
        return from_dict(cls, value, where=where)
    if not isinstance(value, cls):
        raise ConfigError(f"{where}: expected a {cls.__name__} or a mapping, got {type(value).__name__}")
    check = getattr(value, "validate", None)
    if callable(check):
        check(where)
    return value


PIPELINES: dict[str, type[_GenerativePipeline]] = {"anomaly": AnomalyDetector, "denoise": MFCCDenoiser, "cgan": DigitGenerator}


def load_generative(directory: str | Path, device: str | torch.device = "auto") -> _GenerativePipeline:
    """Read a directory written by a generative pipeline's ``save`` (safetensors + JSON; never a pickle)."""
    from ..core.serialization import load_weights

    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelFileError(f"{str(directory)!r} has no {CONFIG_FILE}; give a directory written by a generative pipeline's save()")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a seqlab generative pipeline (format {config.get('format') if isinstance(config, dict) else None!r}, expected {FORMAT!r})")
    if not isinstance(config.get("format_version"), int) or config["format_version"] > FORMAT_VERSION:
        raise ModelFileError(f"{str(path)!r}: format version {config.get('format_version')!r} is not one this seqlab reads ({FORMAT_VERSION})")
    task = config.get("task")
    if task not in PIPELINES:
        raise ModelFileError(f"{str(path)!r}: unknown task {task!r} (known: {', '.join(PIPELINES)})")
    kwargs = {k: config.get(k) for k in ("patches", "model", "threshold", "noise", "image", "classifier") if k in config}
    try:
        pipe = PIPELINES[task](features=config.get("features"), device=device, **kwargs)
        pipe.mfcc.load_state(directory / "mfcc")
        pipe.mfcc.fitted = True
    except ConfigError as err:
        raise ModelFileError(f"{str(path)!r} cannot be used: {err}") from None
    load_weights(pipe.model, directory / WEIGHTS_FILE)
    if isinstance(pipe, DigitGenerator) and pipe.classifier is not None:
        load_weights(pipe.classifier, directory / CLASSIFIER_FILE)
        pipe.classifier.to(pipe.device).eval()
    pipe.model.to(pipe.device).eval()
    pipe._load_settings(config)
    return pipe


# =====================================================================================
# recipes
# =====================================================================================
def _read_clips(recipe: Any, path: str, limit: int | None, keep: Callable[[str], bool] | None = None) -> ClipSet:
    d = recipe.data
    paths, labels = read_clip_table(path, d.audio_column, d.label_column, d.root)
    rows = [i for i, text in enumerate(labels) if keep is None or keep(text)]
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        raise DataError(f"data: {path!r} has no usable rows for the {recipe.task} pipeline")
    audio = load_audio([paths[i] for i in rows], recipe.features.sample_rate)
    return ClipSet(audio, [digit_of(labels[i]) for i in rows], [not is_digit_string(labels[i]) for i in rows],
                   [str(paths[i]) for i in rows])


def _split_off(clips: ClipSet, fraction: float, seed: int) -> tuple[ClipSet, ClipSet]:
    order = np.random.default_rng(seed).permutation(len(clips))
    n_dev = max(1, int(round(fraction * len(clips))))
    if n_dev >= len(clips):
        raise DataError(f"data: {len(clips)} training clip(s) are too few to split a dev set off")
    return clips.subset(sorted(order[n_dev:])), clips.subset(sorted(order[:n_dev]))


class _Recipe:
    """What the recipe dataclasses share: ``datasets()``, ``build()``, ``run()``, ``read_eval``."""

    task: str
    data: ClipData
    features: MFCCConfig
    train: GenerativeTrainConfig
    output: str
    device: str

    def _keep(self) -> Callable[[str], bool] | None:
        return None

    def datasets(self) -> tuple[ClipSet, ClipSet | None]:
        d = self.data
        keep = self._keep()
        train = _read_clips(self, d.train, d.limit_train, keep)
        if d.dev:
            dev = _read_clips(self, d.dev, d.limit_dev, keep)
        else:
            train, dev = _split_off(train, d.dev_fraction, d.seed)
        return train, dev

    def read_eval(self, path: str) -> ClipSet:
        return _read_clips(self, path, None, self._keep())

    def build(self) -> _GenerativePipeline:
        raise NotImplementedError

    def run(self, echo: Callable[[str], None] = print) -> dict[str, Any]:
        """Build, train, evaluate on dev, save to ``output`` (with a curves PNG); returns a summary."""
        from ..train.plots import plot_history

        start = time.perf_counter()
        pipe = self.build()
        train, dev = self.datasets()
        output = Path(self.output)
        echo(f"seqlab: training {self.task} on {len(train)} clips (dev: {len(dev) if dev is not None else 0}) on {pipe.device}")
        result = pipe.fit(train, dev, self.train, log_dir=output / "logs")
        metrics = pipe.evaluate(dev) if dev is not None else {}
        summary = {"task": self.task, "dev": metrics, "epochs_run": result.history[-1]["epoch"] if result.history else 0,
                   "steps": result.steps, "stopped_by": result.stopped_by, "wall_s": round(time.perf_counter() - start, 1)}
        pipe.save(output, meta={"recipe": to_dict(self), "summary": summary})
        plot_history(result.history, output / "logs" / "curves.png")
        echo("seqlab: dev metrics " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
        echo(f"seqlab: saved to {output} ({result.steps} steps, {summary['wall_s']} s)")
        if (output / GRID_FILE).is_file():
            echo(f"seqlab: sample grid {output / GRID_FILE}")
        examples = getattr(self, "examples", None)
        if examples:
            for example, prediction in zip(examples, pipe.predict(examples)):
                echo(f"seqlab: predict {example!r} → {prediction['label']} ({prediction['score']:.4f})")
        summary["pipeline"] = pipe
        return summary


def _default_features() -> MFCCConfig:
    return MFCCConfig(cmvn="global")


@dataclass
class AnomalyRecipe(_Recipe):
    """``pipelines/anomaly.yaml`` maps onto this: in-class = clips whose label is a digit string."""

    task: str = "anomaly"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=_default_features)
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=10, hop=2))
    model: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(code_size=16, hidden_sizes=[256, 64]))
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    train: GenerativeTrainConfig = field(default_factory=GenerativeTrainConfig)
    output: str = "runs/anomaly"
    device: str = "auto"
    #: Audio files to score after training, to show the model at work.
    examples: list[str] = field(default_factory=list)

    def datasets(self) -> tuple[ClipSet, ClipSet | None]:
        d = self.data
        table = _read_clips(self, d.train, d.limit_train)
        train = table.inliers()
        if d.dev:
            dev = _read_clips(self, d.dev, d.limit_dev)
        else:
            train, dev = _split_off(train, d.dev_fraction, d.seed)
        if d.outliers_from_train and len(table.outliers()):
            dev = dev + table.outliers()
        if d.outliers:
            dev = dev + self.outlier_segments()
        return train, dev

    def outlier_segments(self) -> ClipSet:
        """The ``data.outliers`` recordings cut into ``segment_seconds`` pieces (out-of-class)."""
        import glob

        from ..data.paths import resolve_path

        files: list[str] = []
        for pattern in self.data.outliers:
            expanded = str(resolve_path(pattern, must_exist=False))
            found = sorted(glob.glob(expanded))
            if not found:
                raise DataError(f"data.outliers: {pattern!r} matches no file (expanded to {expanded!r})")
            files.extend(found)
        rng = np.random.default_rng(self.data.seed)
        audio, names = [], []
        for path, clip in zip(files, load_audio(files, self.features.sample_rate)):
            for k, seg in enumerate(cut_segments(clip, self.features.sample_rate, *self.data.segment_seconds, rng=rng)):
                audio.append(seg)
                names.append(f"{path}#{k}")
        return ClipSet(audio, anomalous=[True] * len(audio), names=names)

    def build(self) -> AnomalyDetector:
        torch.manual_seed(self.train.seed)
        return AnomalyDetector(self.features, self.patches, self.model, self.threshold, self.device)


@dataclass
class DenoiseRecipe(_Recipe):
    """``pipelines/denoise.yaml`` maps onto this: every clip is clean speech to be denoised."""

    task: str = "denoise"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=_default_features)
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=21, hop=2, inference_hop=1))
    model: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(kind="dense", code_size=256, hidden_sizes=[1024]))
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: GenerativeTrainConfig = field(default_factory=GenerativeTrainConfig)
    output: str = "runs/denoise"
    device: str = "auto"

    def build(self) -> MFCCDenoiser:
        torch.manual_seed(self.train.seed)
        return MFCCDenoiser(self.features, self.patches, self.model, self.noise, self.device)


@dataclass
class CGANRecipe(_Recipe):
    """``pipelines/cgan.yaml`` maps onto this: single-digit clips only."""

    task: str = "cgan"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=_default_features)
    image: ImageConfig = field(default_factory=ImageConfig)
    model: GANConfig = field(default_factory=GANConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: GenerativeTrainConfig = field(default_factory=lambda: GenerativeTrainConfig(epochs=200, batch_size=64))
    output: str = "runs/cgan"
    device: str = "auto"

    def _keep(self) -> Callable[[str], bool]:
        return lambda text: digit_of(text) is not None

    def build(self) -> DigitGenerator:
        torch.manual_seed(self.train.seed)
        return DigitGenerator(self.features, self.image, self.model, self.classifier, self.device)


#: task name → recipe dataclass (the entries ``seqlab.core.registry.RECIPES`` needs).
RECIPES: dict[str, type] = {"anomaly": AnomalyRecipe, "denoise": DenoiseRecipe, "cgan": CGANRecipe}


def load_recipe(path: str | Path | None = None, overrides: Sequence[str] = (), data: dict | None = None) -> Any:
    """A generative recipe (YAML file or ``data``) with ``--set`` overrides → its dataclass."""
    where = str(path) if path is not None else "recipe"
    raw = read_yaml(path) if path is not None else dict(data or {})
    raw = apply_overrides(raw, list(overrides))
    task = raw.get("task")
    if task not in RECIPES:
        raise ConfigError(f"{where}: 'task:' must be one of {', '.join(RECIPES)}, got {task!r}")
    return from_dict(RECIPES[task], raw, where=where)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seqlab.tasks.generative RECIPE.yaml [--set KEY=VALUE ...] [--output DIR] [--json]``."""
    import argparse

    from ..core.errors import SeqlabError

    parser = argparse.ArgumentParser(prog="python -m seqlab.tasks.generative", description="Train a generative speech-feature recipe.")
    parser.add_argument("recipe", help="pipelines/anomaly.yaml, pipelines/denoise.yaml or pipelines/cgan.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value, e.g. train.epochs=3")
    parser.add_argument("--output", help="directory to save the trained pipeline (default: the recipe's output)")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        recipe = load_recipe(args.recipe, args.set)
        if args.output:
            recipe.output = args.output
        summary = recipe.run()
    except SeqlabError as err:
        print(f"seqlab train: {err}", file=sys.stderr)
        return 2
    summary.pop("pipeline", None)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
