"""Anomaly detection: an autoencoder of MFCC patches of in-class audio; a clip far from it is "not a digit".

An autoencoder learns to reconstruct MFCC patches (``frames`` consecutive frames) of
in-class audio (spoken digits) only; a clip's anomaly score is the mean (or max)
reconstruction error of its patches (Goodfellow, Bengio & Courville, 2016, *Deep Learning*
§14; the reconstruction error as novelty score: Japkowicz, Myers & Gluck, 1995). A clip is
flagged when its score exceeds a threshold chosen on dev data (``seqlab.metrics.detection``):
a quantile of the in-class scores, or Youden's J when dev anomalies exist. Quality: the area
under the ROC curve.

Stages: ``audio_loader`` → ``mfcc`` (global CMVN fitted on the training clips). The Trainer
trains the autoencoder on shuffled patches (``train_batches``); every dev evaluation during
training also recalibrates the threshold, a buffer of the model, so the threshold saved is
the one of the best weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch

from ..audio.features import MFCCConfig
from ..core.errors import ConfigError, DataError
from ..core.task import TaskModel
from ..train.config import TrainConfig
from .audio_clips import (
    AutoencoderConfig, ClipData, ClipRecipe, PatchConfig, PatchLayout, build_autoencoder, check_dim, clip_features,
    default_features, mfcc_stage_of, shuffled_batches,
)

__all__ = ["AnomalyConfig", "AnomalyModel", "AnomalyRecipe", "ThresholdConfig", "anomaly_metrics"]


@dataclass
class ThresholdConfig:
    """How the anomaly threshold is chosen on dev data (see ``seqlab.metrics.detection.choose_threshold``)."""

    method: Literal["quantile", "youden"] = "quantile"
    quantile: float = 0.95

    def validate(self, where: str = "threshold") -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"{where}.quantile: must be in (0, 1), got {self.quantile}")


@dataclass
class AnomalyConfig:
    """The autoencoder, its patches and the threshold rule; ``dim`` comes from the fitted mfcc stage."""

    autoencoder: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(code_size=16, hidden_sizes=[256, 64]))
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=10, hop=2))
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    dim: int = 0


def anomaly_metrics(scores: np.ndarray, flags: np.ndarray, threshold: float | None) -> dict[str, float]:
    """``auc`` (needs both classes), mean scores, and at the threshold: detection rate (anomalies
    flagged), false-alarm rate (in-class clips flagged), accuracy.

    >>> anomaly_metrics(np.array([0.1, 0.2, 0.9]), np.array([False, False, True]), 0.5)["auc"]
    1.0
    """
    from ..metrics.detection import roc_auc

    out: dict[str, float] = {}
    if (~flags).any():
        out["inlier_score_mean"] = float(scores[~flags].mean())
    if flags.any():
        out["outlier_score_mean"] = float(scores[flags].mean())
    if flags.any() and (~flags).any():
        out["auc"] = roc_auc(scores, flags)
    if threshold is not None:
        flagged = scores > threshold
        out["threshold"] = float(threshold)
        out["accuracy"] = float((flagged == flags).mean())
        if flags.any():
            out["detection_rate"] = float(flagged[flags].mean())
        if (~flags).any():
            out["false_alarm_rate"] = float(flagged[~flags].mean())
    return out


class AnomalyModel(TaskModel):
    """Autoencoder of MFCC patches; ``decode`` gives ``{"label", "score", "anomaly"}`` per clip.

    >>> model = AnomalyModel(AnomalyConfig(AutoencoderConfig(code_size=4, hidden_sizes=[8]), PatchConfig(frames=3), dim=5)).eval()
    >>> feats = torch.randn(2, 7, 5)
    >>> out = model.decode({"features": feats, "features_lengths": torch.tensor([7, 4])})
    >>> sorted(out[0]), out[0]["label"]     # no threshold until a dev evaluation calibrates one
    (['anomaly', 'label', 'score'], None)
    """

    task = "anomaly"
    Config = AnomalyConfig
    input_column = "audio"
    target_columns = ("anomalous",)
    selection_metric = "inlier_score_mean"
    selection_mode = "min"

    def __init__(self, config: AnomalyConfig) -> None:
        super().__init__(config)
        if config.dim < 1:
            raise ConfigError("the anomaly model needs dim >= 1 (MFCC coefficients); build it with Pipeline.fit")
        self.autoencoder = build_autoencoder(config.autoencoder, config.dim, config.patches.frames, "anomaly.model")
        self.layout = PatchLayout(config.autoencoder.kind, config.patches.frames, config.dim)
        # Buffers, not config: they travel with the weights the Trainer keeps as the best.
        self.register_buffer("threshold", torch.zeros((), dtype=torch.float64))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))

    @classmethod
    def configure(cls, config: AnomalyConfig, stages: list) -> AnomalyConfig:
        import dataclasses

        return dataclasses.replace(config, dim=mfcc_stage_of(stages, cls.task).dim)

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"features": 0.0}

    @property
    def sequence(self) -> bool:
        return self.config.autoencoder.kind == "sequence"

    # -- training ---------------------------------------------------------------------
    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> list[dict[str, Any]]:
        """Shuffled patches of every training clip (whole clips for a ``sequence`` autoencoder)."""
        from ..audio.patches import frame_patches
        from ..data.collate import pad_collate

        features = [np.asarray(f, np.float32) for f in columns["features"]]
        check_dim(features, self.config.dim, self.task)
        if self.sequence:
            return shuffled_batches(len(features), config.batch_size, config.seed + epoch,
                                    lambda idx: pad_collate({"features": [features[int(i)] for i in idx]}, {"features": 0.0}))
        frames = self.config.patches.frames
        patches = self.layout.to_model(frame_patches(features, frames, self.config.patches.hop)[0])
        # ``features_lengths``: the frames each example holds, the Trainer's "tokens" per second.
        return shuffled_batches(len(patches), config.batch_size, config.seed + epoch,
                                lambda idx: {"patches": patches[idx], "features_lengths": torch.full((len(idx),), frames)})

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.sequence:
            return self.autoencoder.loss(batch["features"], batch["features_lengths"])[0]
        return self.autoencoder.loss(batch["patches"])[0]

    # -- scoring ------------------------------------------------------------------------
    @torch.no_grad()
    def clip_scores(self, features: list[np.ndarray], device: Any = None) -> np.ndarray:
        """Per-clip anomaly scores of normalised MFCC matrices: the mean (or max) patch error."""
        from ..audio.patches import frame_patches
        from ..data.collate import pad_collate

        check_dim(features, self.config.dim, self.task)
        device = device if device is not None else self.threshold.device
        n = len(features)
        if self.sequence:
            errors = []
            for s in range(0, n, 256):
                b = pad_collate({"features": features[s:s + 256]}, {"features": 0.0})
                errors.append(self.autoencoder.reconstruction_error(b["features"].to(device), b["features_lengths"].to(device)).cpu())
            return torch.cat(errors).double().numpy()
        patches, owner = frame_patches(features, self.config.patches.frames, self.config.patches.hop)
        x = self.layout.to_model(patches)
        errors = torch.cat([self.autoencoder.reconstruction_error(x[s:s + 2048].to(device)).cpu()
                            for s in range(0, len(x), 2048)]).double().numpy()
        if self.config.patches.clip_score == "max":
            scores = np.full(n, -np.inf)
            np.maximum.at(scores, owner, errors)
            return scores
        return np.bincount(owner, weights=errors, minlength=n) / np.maximum(np.bincount(owner, minlength=n), 1)

    def calibrate(self, scores: np.ndarray, flags: np.ndarray) -> float:
        """Choose the threshold on dev scores (in-class ones, and anomalies for ``youden``)."""
        from ..metrics.detection import choose_threshold

        t = self.config.threshold
        value = choose_threshold(scores[~flags], scores[flags] if flags.any() else None, t.method, t.quantile)
        self.threshold.fill_(value)
        self.calibrated.fill_(True)
        return value

    def current_threshold(self) -> float | None:
        return float(self.threshold) if bool(self.calibrated) else None

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[dict[str, Any]]:
        scores = self.clip_scores(clip_features(batch), batch["features"].device)
        threshold = self.current_threshold()
        out = []
        for s in scores.tolist():
            flagged = None if threshold is None else s > threshold
            label = None if flagged is None else ("not a digit" if flagged else "digit")
            out.append({"label": label, "score": s, "anomaly": flagged})
        return out

    def metrics(self, outputs: list[dict[str, Any]], references: dict[str, list]) -> dict[str, float]:
        flags = np.asarray([bool(a) for a in references["anomalous"]], dtype=bool)
        return anomaly_metrics(np.asarray([o["score"] for o in outputs]), flags, self.current_threshold())

    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list],
                             decode: Any, device: Any) -> dict[str, float]:
        """Dev metrics; during training (the model in training mode) the threshold is recalibrated first."""
        calibrating = self.training
        self.eval()
        try:
            scores = self.clip_scores([np.asarray(f, np.float32) for f in processed["features"]], device)
        finally:
            self.train(calibrating)
        flags = np.asarray([bool(a) for a in references["anomalous"]], dtype=bool)
        if calibrating and (~flags).any():
            self.calibrate(scores, flags)
        return anomaly_metrics(scores, flags, self.current_threshold())

    def format_output(self, output: Any, out_dir: Path | None = None) -> str:
        if output.get("label") is None:
            return f"score {output['score']:.4f} (no threshold: train with dev data to calibrate one)"
        return f"{output['label']} (score {output['score']:.4f}, threshold {self.current_threshold():.4f})"


# -- recipe ---------------------------------------------------------------------------------
@dataclass
class AnomalyRecipe(ClipRecipe):
    """``pipelines/anomaly.yaml`` maps onto this: in-class = clips whose label is a digit string."""

    task: str = "anomaly"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=default_features)
    patches: PatchConfig = field(default_factory=lambda: PatchConfig(frames=10, hop=2))
    model: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(code_size=16, hidden_sizes=[256, 64]))
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=30, batch_size=128, schedule="plateau", plateau_patience=3, patience=8))
    output: str = "runs/anomaly"
    device: str = "auto"
    #: Audio files to score after training, to show the model at work.
    examples: list[str] = field(default_factory=list)

    def datasets(self) -> tuple[Any, Any]:
        d = self.data
        table = self.read_clips(d.train, d.limit_train)
        train = table.inliers()
        if len(train) == 0:
            raise DataError(f"data: {d.train!r} has no in-class (digit) clips to learn from")
        if d.dev:
            dev = self.read_clips(d.dev, d.limit_dev)
        else:
            train, dev = self.split_off(train)
        if d.outliers_from_train and len(table.outliers()):
            dev = dev + table.outliers()
        if d.outliers:
            dev = dev + self.outlier_segments()
        return train, dev

    def outlier_segments(self) -> Any:
        """The ``data.outliers`` recordings cut into ``segment_seconds`` pieces (out-of-class)."""
        import glob

        from ..audio.io import AudioLoader
        from ..audio.noise import cut_segments
        from ..data.clips import ClipSet
        from ..data.paths import resolve_path

        files: list[str] = []
        for pattern in self.data.outliers:
            expanded = str(resolve_path(pattern, must_exist=False))
            found = sorted(glob.glob(expanded))
            if not found:
                raise DataError(f"data.outliers: {pattern!r} matches no file (expanded to {expanded!r})")
            files.extend(found)
        rate = self.features.sample_rate
        rng = np.random.default_rng(self.data.seed)
        audio, names = [], []
        for path, clip in zip(files, AudioLoader(sample_rate=rate)({"audio": files})["audio"]):
            for k, seg in enumerate(cut_segments(clip, rate, *self.data.segment_seconds, rng=rng)):
                audio.append(seg)
                names.append(f"{path}#{k}")
        return ClipSet(audio, anomalous=[True] * len(audio), names=names)

    def build(self):
        return self.mfcc_pipeline(AnomalyModel, AnomalyConfig(self.model, self.patches, self.threshold))

