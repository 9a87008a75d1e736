"""What the clip-level speech-feature tasks (anomaly, denoise, cgan) share: their recipe data, MFCC patches, autoencoders.

- ``ClipData`` / ``ClipRecipe``: TSV tables of audio files and labels → ``ClipSet`` datasets
  (the ``audio_loader`` stage reads the files), with a seeded dev split when there is no dev table;
- ``PatchConfig``, ``clip_features``, ``PatchLayout``: a batch's padded MFCCs back into one
  matrix per clip, and patches in the layout an autoencoder takes;
- ``AutoencoderConfig`` / ``build_autoencoder``: which ``seqlab.nn.autoencoder`` module, sized
  for ``frames × n_mfcc`` patches;
- ``mfcc_stage_of`` / ``FeatureSettings``: the fitted MFCC stage's settings and CMVN statistics,
  copied into a model config so a model that computes features itself (the noisy copies of a
  denoiser) or inverts them (MFCC → audio) is rebuilt from ``config.json`` alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..audio.features import MFCC, MFCCConfig
from ..core.errors import ConfigError, DataError, InputError

AE_KINDS = ("dense", "undercomplete", "denoising", "sparse", "contractive", "variational", "conv", "sequence")


# -- recipe data --------------------------------------------------------------------------------
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


def default_features() -> MFCCConfig:
    return MFCCConfig(cmvn="global")


class ClipRecipe:
    """Mixin of the clip recipes: ``datasets()`` and ``read_eval`` from clip tables."""

    task: str
    data: ClipData
    features: MFCCConfig

    def keep(self, label: Any) -> bool:
        """Whether a table row with this label is used (all rows by default)."""
        return True

    def read_clips(self, path: str, limit: int | None = None):
        from ..data.clips import ClipSet, digit_of, is_digit_string, read_clip_table

        d = self.data
        paths, labels = read_clip_table(path, d.audio_column, d.label_column, d.root)
        rows = [i for i, text in enumerate(labels) if self.keep(text)]
        if limit is not None:
            rows = rows[:limit]
        if not rows:
            raise DataError(f"data: {path!r} has no usable rows for the {self.task} task")
        return ClipSet([str(paths[i]) for i in rows], [digit_of(labels[i]) for i in rows],
                       [not is_digit_string(labels[i]) for i in rows], [str(paths[i]) for i in rows])

    def split_off(self, clips: Any) -> tuple[Any, Any]:
        """``data.dev_fraction`` of ``clips`` (seeded) as dev, the rest as training clips."""
        order = np.random.default_rng(self.data.seed).permutation(len(clips))
        n_dev = max(1, int(round(self.data.dev_fraction * len(clips))))
        if n_dev >= len(clips):
            raise DataError(f"data: {len(clips)} training clip(s) are too few to split a dev set off")
        return clips.subset(sorted(order[n_dev:])), clips.subset(sorted(order[:n_dev]))

    def datasets(self) -> tuple[Any, Any]:
        d = self.data
        train = self.read_clips(d.train, d.limit_train)
        if d.dev:
            return train, self.read_clips(d.dev, d.limit_dev)
        return self.split_off(train)

    def read_eval(self, path: str) -> Any:
        """Data for ``seqlab eval MODEL_DIR TABLE.tsv``."""
        return self.read_clips(path)

    def mfcc_pipeline(self, model: type, config: Any) -> Any:
        """The Pipeline ``audio_loader`` → ``mfcc`` → ``model`` (anomaly, denoise)."""
        from ..audio.io import AudioLoader
        from ..pipeline import Pipeline

        stages = [AudioLoader(sample_rate=self.features.sample_rate), MFCC(self.features)]
        return Pipeline(stages, model, config, device=getattr(self, "device", "auto"))


# -- features -------------------------------------------------------------------------------------
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


def clip_features(batch: dict[str, Tensor]) -> list[np.ndarray]:
    """The padded ``features`` of a batch as one float32 ``(frames, dim)`` matrix per clip."""
    x, lengths = batch["features"].float().cpu(), batch["features_lengths"].cpu().tolist()
    return [x[i, :n].numpy() for i, n in enumerate(lengths)]


def mfcc_stage_of(stages: list, task: str) -> Any:
    """The pipeline's MFCC stage (the last stage providing ``features``)."""
    stage = next((s for s in reversed(stages) if "features" in getattr(s, "provides", ())), None)
    if stage is None:
        raise ConfigError(f"the {task} pipeline needs an mfcc stage (audio → features)")
    return stage


@dataclass
class FeatureSettings:
    """The fitted MFCC stage's settings and global-CMVN statistics, as a model config holds them."""

    mfcc: MFCCConfig | None = None
    cmvn_mean: list[float] = field(default_factory=list)
    cmvn_std: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, stage: Any) -> "FeatureSettings":
        if stage.config.cmvn == "global":
            t = stage.transform
            return cls(stage.config, t.cmvn_mean.cpu().tolist(), t.cmvn_std.cpu().tolist())
        return cls(stage.config)

    def stage(self) -> MFCC:
        """An MFCC stage computing exactly what the pipeline's does (on the CPU)."""
        if self.mfcc is None:
            raise ConfigError("the model config has no MFCC settings; build the model with Pipeline.fit")
        stage = MFCC(self.mfcc).to("cpu")
        if self.mfcc.cmvn == "global":
            stage.transform.set_cmvn(self.cmvn_mean, self.cmvn_std)
        stage.fitted = True
        return stage

    def raw(self, features: np.ndarray) -> np.ndarray:
        """Normalised features back to MFCCs (global CMVN undone)."""
        if self.mfcc is not None and self.mfcc.cmvn == "global":
            return features * np.asarray(self.cmvn_std, np.float32) + np.asarray(self.cmvn_mean, np.float32)
        return features

    def to_audio(self, features: np.ndarray) -> np.ndarray:
        """A waveform whose MFCCs approximate ``features``: inverse DCT, mel → STFT magnitude, Griffin-Lim
        (``librosa.feature.inverse.mfcc_to_audio``). Pitch and fine spectral detail are gone from
        13 MFCCs, so the result is a rough, whispery rendering of the spectral envelope, for listening only."""
        import librosa

        c = self.mfcc
        if c is None or c.log != "db" or c.deltas or c.n_mfcc > c.n_mels:
            raise InputError("these features cannot be turned back into audio (MFCCs in dB without deltas only)")
        mfcc = self.raw(np.asarray(features, np.float32)).T.astype(np.float64)
        return librosa.feature.inverse.mfcc_to_audio(
            mfcc, n_mels=c.n_mels, dct_type=2, norm="ortho" if c.dct_norm == "ortho" else None, ref=c.ref,
            lifter=c.lifter, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
            window=c.window, center=c.center, pad_mode=c.pad_mode, power=c.power, fmin=c.f_min, fmax=c.f_max,
            htk=c.mel_scale == "htk",
        ).astype(np.float32)


# -- autoencoders ---------------------------------------------------------------------------------
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


def build_autoencoder(config: AutoencoderConfig, n_coeffs: int, frames: int, where: str = "model", paired: bool = False) -> nn.Module:
    """The autoencoder of ``config`` for ``frames × n_coeffs`` patches; ``paired``: one that trains
    on (clean, noisy) pairs (``seqlab.nn.paired_denoiser``). The module's own ConfigErrors (a
    sparsity target outside (0, 1), a patch too small for the conv stack …) come back prefixed
    with ``where``.

    >>> build_autoencoder(AutoencoderConfig(kind="sparse", sparsity_target=1.5), 13, 10, where="anomaly.model")
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: anomaly.model: SparseAutoencoder: sparsity_target ρ must be in (0, 1) (a target mean activation), got 1.5
    """
    from ..nn import autoencoder as ae
    from ..nn import paired_denoiser as pd

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
        raise ConfigError(f"{where}.kind: the denoise task takes dense, denoising or conv, got {c.kind!r}")
    if c.code_size is None and c.kind != "conv":
        raise ConfigError(f"{where}.code_size: a {c.kind} autoencoder needs a code size (null is only for conv)")
    try:
        if c.kind == "dense":
            return (pd.PairedDenseDenoiser if paired else ae.DenseAutoencoder)(flat, c.code_size, hidden, c.activation, **regs)
        if c.kind == "undercomplete":
            return ae.UndercompleteAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "denoising":
            regs["noise"] = c.noise or "gaussian"
            cls = pd.PairedDenoisingDenoiser if paired else ae.DenoisingAutoencoder
            return cls(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "sparse":
            regs["sparsity"] = c.sparsity or "kl"
            return ae.SparseAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "contractive":
            regs["contractive_weight"] = c.contractive_weight or 0.1
            return ae.ContractiveAutoencoder(flat, c.code_size, hidden, activation=c.activation, **regs)
        if c.kind == "variational":
            return ae.VariationalAutoencoder(flat, latent_size=c.code_size, hidden_sizes=hidden, activation=c.activation, beta=c.beta)
        if c.kind == "conv":
            if regs.get("contractive_weight"):
                raise ConfigError("contractive_weight applies to dense autoencoders only")
            cls = pd.PairedConvDenoiser if paired else ae.ConvAutoencoder
            return cls((1, n_coeffs, frames), channels=tuple(c.channels), kernel=c.kernel, activation=c.activation,
                       code_size=c.code_size, **regs)
        if c.kind == "sequence":
            return ae.SequenceAutoencoder(n_coeffs, hidden_size=hidden[0] if hidden else 64, code_size=c.code_size,
                                          cell=c.cell, **regs)
    except (ConfigError, InputError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from None
    raise ConfigError(f"{where}.kind: unknown autoencoder {c.kind!r}; valid: {', '.join(AE_KINDS)}")


@dataclass
class PatchLayout:
    """``(N, frames, dim)`` patches ↔ the layout an autoencoder of ``kind`` takes."""

    kind: str
    frames: int
    dim: int

    def to_model(self, patches: np.ndarray | Tensor) -> Tensor:
        x = torch.as_tensor(patches, dtype=torch.float32)
        if self.kind == "conv":
            return x.transpose(1, 2).unsqueeze(1)  # (N, 1, n_mfcc, frames): coefficients × time
        return x.reshape(x.shape[0], -1)

    def from_model(self, out: Tensor) -> Tensor:
        if self.kind == "conv":
            return out.squeeze(1).transpose(1, 2)
        return out.reshape(out.shape[0], self.frames, self.dim)


def shuffled_batches(n: int, batch_size: int, seed: int, make: Callable[[Tensor], dict[str, Any]], drop_single: bool = False) -> list[dict[str, Any]]:
    """``make(indices)`` for the batches of a seeded permutation of ``range(n)``."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    chunks = [order[s:s + batch_size] for s in range(0, n, batch_size)]
    if drop_single and len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()  # batch norm cannot train on one example
    return [make(idx) for idx in chunks]


def check_dim(features: Sequence[np.ndarray], dim: int, task: str) -> None:
    for i, f in enumerate(features):
        if np.ndim(f) != 2 or np.shape(f)[1] != dim:
            raise InputError(f"clip {i}: features of shape {np.shape(f)}; this {task} model takes (frames, {dim}) MFCCs")


def next_free(directory: Any, stem: str, suffix: str) -> Any:
    """``directory/stem-0001.suffix``, the first number not taken (predictions never overwrite)."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    k = 1
    while any((directory / f"{stem}-{k:04d}{s}").exists() for s in (suffix, ".wav")):
        k += 1
    return directory / f"{stem}-{k:04d}{suffix}"
