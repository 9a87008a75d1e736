"""Denoising: a denoising autoencoder maps MFCC patches of noisy speech to those of the clean speech.

Noise is added to the *waveform* at a signal-to-noise ratio (white noise, or pink noise with
power ∝ 1/f; ``seqlab.audio.noise``), the MFCCs of the noisy and the clean clip are computed,
and a denoising autoencoder maps noisy patches to clean ones (Vincent et al., 2010, JMLR 11:
the corruption is real noise here, given as the autoencoder's x̃; ``seqlab.nn.paired_denoiser``).
Overlapping denoised patches are averaged back into frames.

Quality: SNR_dB(ref, x) = 10·log10(Σ ref² / Σ (ref − x)²) over every coefficient of every
frame of every held-out clip (``seqlab.metrics.snr``), for x = noisy and x = denoised, both
against the clean reference, all three normalised the same way: global CMVN with the
statistics of the clean training MFCCs. The gain is the difference of the two.

Stages: ``audio_loader`` → ``mfcc``. The model keeps a copy of the fitted MFCC settings and
statistics in its config (``FeatureSettings``): its training batches draw new noise every
epoch and compute the noisy MFCCs themselves, and a prediction can be turned back into audio.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..audio.features import MFCCConfig
from ..core.errors import ConfigError, DataError
from ..core.task import TaskModel
from ..train.config import TrainConfig
from .audio_clips import (
    AutoencoderConfig, ClipData, ClipRecipe, FeatureSettings, PatchConfig, PatchLayout, build_autoencoder, check_dim,
    clip_features, default_features, mfcc_stage_of, next_free, shuffled_batches,
)

__all__ = ["DenoiseConfig", "DenoiseModel", "DenoiseRecipe", "NoiseConfig"]


@dataclass
class NoiseConfig:
    """The waveform noise.

    Training: ``copies`` noisy versions of each clip, each with a kind from ``kinds`` and an
    SNR drawn uniformly from ``train_snr_db`` = [low, high], drawn anew every epoch with
    ``fresh_each_epoch``. Evaluation: every kind at ``eval_snr_db``, with noise drawn from
    ``eval_seed``.
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
        from ..audio.noise import NOISE_KINDS

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
class DenoiseConfig:
    """The autoencoder, its patches and the noise; ``dim`` and ``features`` come from the fitted mfcc stage."""

    autoencoder: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(code_size=256, hidden_sizes=[1024]))
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=21, hop=2, inference_hop=1))
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    dim: int = 0
    features: FeatureSettings = field(default_factory=FeatureSettings)


class DenoiseModel(TaskModel):
    """Noisy MFCCs → denoised MFCCs; ``decode`` gives one ``(frames, n_mfcc)`` array per clip (normalised)."""

    task = "denoise"
    Config = DenoiseConfig
    input_column = "audio"
    target_columns = ()
    selection_metric = "snr_gain_db"
    selection_mode = "max"
    writes_files = True

    def __init__(self, config: DenoiseConfig) -> None:
        super().__init__(config)
        if config.dim < 1 or config.features.mfcc is None:
            raise ConfigError("the denoise model needs dim >= 1 and the MFCC settings; build it with Pipeline.fit")
        if config.features.mfcc.cmvn == "utterance":
            raise ConfigError(
                "denoise.features.cmvn: 'utterance' would normalise the noisy and the clean MFCCs with different "
                "statistics; use 'global' (fitted on clean training speech, applied to both) or 'none'"
            )
        self.autoencoder = build_autoencoder(config.autoencoder, config.dim, config.patches.frames, "denoise.model", paired=True)
        self.layout = PatchLayout(config.autoencoder.kind, config.patches.frames, config.dim)
        self.mfcc = config.features.stage()  # a plain attribute: no weights of its own

    @classmethod
    def configure(cls, config: DenoiseConfig, stages: list) -> DenoiseConfig:
        stage = mfcc_stage_of(stages, cls.task)
        return dataclasses.replace(config, dim=stage.dim, features=FeatureSettings.of(stage))

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"features": 0.0}

    # -- noise ------------------------------------------------------------------------
    def noisy_copies(self, clips: Sequence[np.ndarray], copies: int, rng: np.random.Generator, snr: float | None = None,
                     kinds: Sequence[str] | None = None) -> tuple[list[int], list[np.ndarray], list[str]]:
        """(clip of each copy, noisy MFCCs, noise kind) for ``copies`` noisy versions of each clip.

        Without ``snr``, each copy's SNR is drawn from ``noise.train_snr_db``; without
        ``kinds``, each copy's kind from ``noise.kinds`` (else kind ``c`` for copy ``c``)."""
        from ..audio.noise import add_noise

        noise = self.config.noise
        owner, audio, kind_of = [], [], []
        for i, clip in enumerate(clips):
            for c in range(copies):
                kind = kinds[c % len(kinds)] if kinds else noise.kinds[int(rng.integers(len(noise.kinds)))]
                level = snr if snr is not None else float(rng.uniform(*noise.train_snr_db))
                audio.append(add_noise(np.asarray(clip, np.float32), level, kind, rng))
                owner.append(i)
                kind_of.append(kind)
        features = []
        for s in range(0, len(audio), 256):
            features.extend(self.mfcc({"audio": audio[s:s + 256]})["features"])
        return owner, [np.asarray(f, np.float32) for f in features], kind_of

    # -- training ---------------------------------------------------------------------
    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> list[dict[str, Any]]:
        """(clean, noisy) patch pairs of ``noise.copies`` noisy versions of every training clip, shuffled."""
        from ..audio.patches import frame_patches

        noise, p = self.config.noise, self.config.patches
        clean = [np.asarray(f, np.float32) for f in columns["features"]]
        check_dim(clean, self.config.dim, self.task)
        rng = np.random.default_rng([noise.seed, epoch if noise.fresh_each_epoch else 0])
        owner, noisy, _ = self.noisy_copies(columns["audio"], noise.copies, rng)
        clean_patches = self.layout.to_model(frame_patches([clean[i] for i in owner], p.frames, p.hop)[0])
        noisy_patches = self.layout.to_model(frame_patches(noisy, p.frames, p.hop)[0])
        return shuffled_batches(len(clean_patches), config.batch_size, config.seed + epoch,
                                lambda idx: {"clean": clean_patches[idx], "noisy": noisy_patches[idx],
                                             "features_lengths": torch.full((len(idx),), p.frames)})  # frames/s as tokens/s

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.autoencoder.paired_loss(batch["clean"], batch["noisy"])[0]

    # -- denoising ----------------------------------------------------------------------
    @torch.no_grad()
    def denoise_features(self, noisy: list[np.ndarray], device: Any = None) -> list[np.ndarray]:
        """Clean estimates of normalised noisy MFCC matrices: overlapping patches denoised and averaged."""
        from ..audio.patches import frame_patches, overlap_average

        check_dim(noisy, self.config.dim, self.task)
        device = device if device is not None else next(self.parameters()).device
        hop, frames = self.config.patches.inference_hop, self.config.patches.frames
        x = self.layout.to_model(frame_patches(noisy, frames, hop)[0])
        outs = [self.layout.from_model(self.autoencoder.denoise(x[s:s + 2048].to(device))).float().cpu()
                for s in range(0, x.shape[0], 2048)]
        patches = torch.cat(outs).numpy() if outs else np.zeros((0, frames, self.config.dim), np.float32)
        return overlap_average(patches, [len(f) for f in noisy], frames, hop)

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[np.ndarray]:
        return self.denoise_features(clip_features(batch), batch["features"].device)

    def metrics(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        raise DataError("denoise: metrics need the clean clips; use Pipeline.evaluate on clean audio (noise is added there)")

    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list],
                             decode: Any, device: Any) -> dict[str, float]:
        """MFCC SNR (dB) of noisy and denoised features against the clean ones, per noise kind and overall.

        Every clip gets each kind of ``noise.kinds`` at ``noise.eval_snr_db``, drawn from
        ``noise.eval_seed``, so two evaluations see the same noise."""
        from ..metrics.snr import snr_db

        noise = self.config.noise
        if not processed["audio"]:
            raise DataError("denoise: the evaluation data is empty")
        clean = [np.asarray(f, np.float32) for f in processed["features"]]
        owner, noisy, kind_of = self.noisy_copies(processed["audio"], len(noise.kinds), np.random.default_rng(noise.eval_seed),
                                                  snr=noise.eval_snr_db, kinds=noise.kinds)
        was = self.training
        self.eval()
        try:
            denoised = self.denoise_features(noisy, device)
        finally:
            self.train(was)
        ref = [clean[i] for i in owner]
        out: dict[str, float] = {"input_snr_db": float(noise.eval_snr_db)}
        out["snr_noisy_db"] = snr_db(ref, noisy)
        out["snr_denoised_db"] = snr_db(ref, denoised)
        out["snr_gain_db"] = out["snr_denoised_db"] - out["snr_noisy_db"]
        for kind in noise.kinds:
            idx = [i for i, k in enumerate(kind_of) if k == kind]
            pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
            out[f"{kind}_snr_gain_db"] = snr_db(pick(ref), pick(denoised)) - snr_db(pick(ref), pick(noisy))
        return out

    def format_output(self, output: Any, out_dir: Path | None = None) -> str:
        """Write the denoised MFCCs (``.npy``, CMVN undone) and a Griffin-Lim rendering (``.wav``); returns both paths."""
        import soundfile

        features = self.config.features
        npy = next_free(out_dir if out_dir is not None else Path("seqlab-predictions"), "denoised", ".npy")
        np.save(npy, features.raw(np.asarray(output, np.float32)))
        wav = npy.with_suffix(".wav")
        soundfile.write(wav, features.to_audio(output), features.mfcc.sample_rate)
        return f"{npy}, {wav}"


# -- recipe ---------------------------------------------------------------------------------
@dataclass
class DenoiseRecipe(ClipRecipe):
    """``pipelines/denoise.yaml`` maps onto this: every clip is clean speech to be denoised."""

    task: str = "denoise"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=default_features)
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=21, hop=2, inference_hop=1))
    model: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(kind="dense", code_size=256, hidden_sizes=[1024]))
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=128, schedule="plateau", plateau_patience=3, patience=8))
    output: str = "runs/denoise"
    device: str = "auto"
    #: Noisy audio files to denoise after training (written under ``output/predictions``).
    examples: list[str] = field(default_factory=list)

    def build(self):
        if self.features.cmvn == "utterance":
            raise ConfigError("features.cmvn: the denoise task takes 'global' or 'none' ('utterance' would normalise "
                              "the noisy and the clean MFCCs with different statistics)")
        return self.mfcc_pipeline(DenoiseModel, DenoiseConfig(self.model, self.patches, self.noise))
