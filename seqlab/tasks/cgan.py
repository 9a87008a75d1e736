"""Conditional generation: a conditional DCGAN draws the MFCC "image" of a requested spoken digit.

Each single-digit clip's MFCCs are brought to a fixed number of frames (linear resizing in
time, or centre crop / edge padding) and scaled to [−1, 1] (global CMVN, then ÷ ``scale``,
clipped): a ``1 × n_mfcc × frames`` image (the ``mfcc_image`` stage, training only). A
conditional DCGAN (Radford, Metz & Chintala, 2016; Mirza & Osindero, 2014;
``seqlab.nn.gan.DCGAN``) learns to generate the image of a requested digit; a small CNN
digit classifier, trained on the real training images during the first
``classifier.epochs`` epochs, judges whether the samples show the requested digit
(``class_accuracy``, the selection metric).

The input at prediction time is a digit ("3" or "three"; the ``digit_label`` stage), the
output a generated image; ``seqlab predict`` writes it as a PNG. The Trainer runs the
model's own step (``custom_train_step``): one update of D, one of G, one of the classifier,
each with its own optimiser (``build_optimizers``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.features import MFCCConfig
from ..core.errors import ConfigError, DataError, InputError
from ..core.stage import Stage
from ..core.task import TaskModel
from ..train.config import TrainConfig
from ..nn.blocks import MLP, ConvStack
from .audio_clips import ClipData, ClipRecipe, default_features, next_free, shuffled_batches

__all__ = ["CGANConfig", "CGANModel", "CGANRecipe", "ClassifierConfig", "DigitClassifier", "DigitLabel", "GANConfig",
           "ImageConfig", "MFCCImage"]


# -- stages -----------------------------------------------------------------------------------
@dataclass
class DigitLabelConfig:
    column: str = "digit"


class DigitLabel(Stage):
    """``digit`` ("3", "three" or 3) → ``labels`` (int); anything else is an ``InputError`` naming it.

    >>> DigitLabel()({"digit": ["three", 7]})
    {'labels': [3, 7]}
    """

    kind = "digit_label"
    Config = DigitLabelConfig
    takes = ("digit",)
    provides = ("labels",)

    def map(self, batch):
        from ..data.clips import digit_of

        labels = []
        for i, value in enumerate(batch[self.config.column]):
            digit = digit_of(value) if value is not None else None
            if digit is None:
                raise InputError(f"example {i}: {value!r} is not a digit (0–9 or its English name)")
            labels.append(digit)
        return {"labels": labels}


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
class MFCCImageConfig:
    features: MFCCConfig = field(default_factory=default_features)
    image: ImageConfig = field(default_factory=ImageConfig)


class MFCCImage(Stage):
    """``audio`` (files or arrays) → ``image``: ``(n_mfcc, frames)`` MFCCs (global CMVN ÷ scale, clipped to [−1, 1]).

    Training only: the generator's targets. Fitting fits the MFCC stage's global CMVN.
    """

    kind = "mfcc_image"
    Config = MFCCImageConfig
    training_only = True
    needs_fit = True
    takes = ("audio",)
    provides = ("image",)

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        from ..audio.features import MFCC
        from ..audio.io import AudioLoader

        super().__init__(config, **overrides)
        self.loader = AudioLoader(sample_rate=self.config.features.sample_rate)
        self.mfcc = MFCC(self.config.features)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.config.features.dim, self.config.image.frames)

    def fit(self, data: Any) -> "MFCCImage":
        columns = data.to_dict() if hasattr(data, "to_dict") else data
        self.mfcc.fit(self.loader({"audio": list(columns["audio"])}))
        self.fitted = True
        return self

    def features(self, audio: list) -> list[np.ndarray]:
        """Normalised MFCC matrices ``(frames, n_mfcc)`` of clips."""
        return [np.asarray(f, np.float32) for f in self.mfcc(self.loader({"audio": audio}))["features"]]

    def map(self, batch):
        from ..audio.patches import fixed_frames

        image = self.config.image
        return {"image": [np.clip(fixed_frames(f, image.frames, image.mode).T / image.scale, -1.0, 1.0).astype(np.float32)
                          for f in self.features(list(batch["audio"]))]}

    def save_state(self, directory: Path) -> None:
        self.mfcc.save_state(directory)

    def load_state(self, directory: Path) -> None:
        self.mfcc.load_state(directory)
        self.mfcc.fitted = True


# -- models -----------------------------------------------------------------------------------
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
    #: It trains during the first ``epochs`` epochs of the GAN's training, then stays fixed.
    epochs: int = 30
    lr: float = 1e-3
    #: Generated samples per digit for ``class_accuracy``.
    eval_samples_per_class: int = 50


@dataclass
class CGANConfig:
    """The GAN and its judge; ``image_shape`` comes from the fitted ``mfcc_image`` stage."""

    gan: GANConfig = field(default_factory=GANConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    image_shape: list[int] = field(default_factory=list)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """A block with its own seeded RNG that leaves the global RNG state as it was."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


class CGANModel(TaskModel):
    """Conditional DCGAN + CNN judge; ``decode`` gives ``{"digit", "image", "classified_as"}`` per requested digit.

    >>> model = CGANModel(CGANConfig(GANConfig(channels=[8, 16]), ClassifierConfig(channels=[4, 8]), [1, 13, 16])).eval()
    >>> out = model.decode({"labels": torch.tensor([3])})[0]
    >>> out["digit"], out["image"].shape
    (3, (13, 16))
    """

    task = "cgan"
    Config = CGANConfig
    input_column = "digit"
    target_columns = ("audio",)
    selection_metric = "class_accuracy"
    selection_mode = "max"
    custom_train_step = True
    writes_files = True

    def __init__(self, config: CGANConfig) -> None:
        from ..nn.gan import DCGAN

        super().__init__(config)
        if len(config.image_shape) != 3:
            raise ConfigError("the cgan model needs image_shape (1, n_mfcc, frames); build it with Pipeline.fit")
        shape, g = tuple(config.image_shape), config.gan
        try:
            self.gan = DCGAN(shape, latent_size=g.latent_size, channels=tuple(g.channels), num_classes=g.num_classes,
                             embedding_size=g.embedding_size, lr_generator=g.lr_generator, lr_discriminator=g.lr_discriminator,
                             betas=tuple(g.betas))
        except (ConfigError, InputError) as err:
            raise ConfigError(f"cgan.model: {err} (images are 1 × n_mfcc × image.frames = {shape})") from None
        self.classifier: DigitClassifier | None = None
        c = config.classifier
        if c.enabled:
            try:
                self.classifier = DigitClassifier(shape, g.num_classes, c.channels, c.hidden_size, c.dropout)
            except ConfigError as err:
                raise ConfigError(f"cgan.classifier: {err}") from None

    @classmethod
    def configure(cls, config: CGANConfig, stages: list) -> CGANConfig:
        stage = next((s for s in stages if isinstance(s, MFCCImage)), None)
        if stage is None:
            raise ConfigError("the cgan pipeline needs an mfcc_image stage (audio → image)")
        return dataclasses.replace(config, image_shape=list(stage.shape))

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"labels": None, "image": 0.0} if training else {"labels": None}

    def length_column(self) -> str:
        return "labels"

    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> list[dict[str, Any]]:
        """Shuffled (image, label) batches; a last batch of one is dropped (batch norm)."""
        from ..data.collate import pad_collate, select_rows

        rows = {"image": columns["image"], "labels": columns["labels"]}
        pads = self.pad_values(training=True)
        return shuffled_batches(len(rows["labels"]), config.batch_size, config.seed + epoch,
                                lambda idx: pad_collate(select_rows(rows, idx.tolist()), pads), drop_single=True)

    def check_input(self, value: Any, index: int) -> Any:
        from ..data.clips import digit_of

        digit = digit_of(value) if value is not None else None
        if digit is None or digit >= self.config.gan.num_classes:
            raise InputError(f"input {index}: {value!r} is not a digit this model draws (0..{self.config.gan.num_classes - 1} "
                             "or its English name)")
        return value

    # -- training (the Trainer's per-step hook) ------------------------------------------
    def build_optimizers(self, make: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]) -> dict[str, torch.optim.Optimizer]:
        """Adam(lr, betas) for D and G (the DCGAN settings of ``model``), Adam for the classifier."""
        g = self.config.gan
        optimizers = {
            "discriminator": torch.optim.Adam(self.gan.discriminator.parameters(), lr=g.lr_discriminator, betas=tuple(g.betas)),
            "generator": torch.optim.Adam(self.gan.generator.parameters(), lr=g.lr_generator, betas=tuple(g.betas)),
        }
        if self.classifier is not None:
            optimizers["classifier"] = torch.optim.Adam(self.classifier.parameters(), lr=self.config.classifier.lr)
        return optimizers

    def train_step(self, batch: dict[str, Tensor], optimizers: dict[str, torch.optim.Optimizer], step: Any) -> dict[str, float]:
        real, labels = batch["image"].unsqueeze(1).float(), batch["labels"]
        if real.shape[0] < 2:  # batch norm cannot train on one example
            return {"loss": math.nan}
        stats = self.gan.train_step(real, labels, optimizers=(optimizers["discriminator"], optimizers["generator"]), clip=step.clip)
        out = {"loss": stats["g_loss"], **stats}
        if self.classifier is not None and step.epoch <= self.config.classifier.epochs:
            self.classifier.train()
            loss = F.cross_entropy(self.classifier(real), labels)
            optimizers["classifier"].zero_grad(set_to_none=True)
            loss.backward()
            step.clip(self.classifier.parameters())
            optimizers["classifier"].step()
            out["classifier_loss"] = float(loss.detach())
        return out

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The discriminator's loss on the batch (for monitoring; training runs ``train_step``)."""
        from ..nn.gan import discriminator_loss

        real, labels = batch["image"].unsqueeze(1).float(), batch["labels"]
        fake = self.gan.generate(torch.randn(real.shape[0], self.gan.latent_size, device=real.device), labels)
        return discriminator_loss(self.gan.discriminate(real, labels), self.gan.discriminate(fake, labels))

    # -- generating and judging -----------------------------------------------------------
    def sample(self, n: int, labels: Any) -> Tensor:
        """``n`` generated images ``(n, 1, n_mfcc, frames)`` of ``labels`` (an int or one per image);
        a label outside the trained ones is the GAN's ``InputError``."""
        return self.gan.sample(n, labels)

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[dict[str, Any]]:
        labels = batch["labels"].long()
        images = self.sample(len(labels), labels)
        heard = self.classifier.predict(images).tolist() if self.classifier is not None else [None] * len(labels)
        return [{"digit": int(d), "image": img[0].float().cpu().numpy(), "classified_as": h}
                for d, img, h in zip(labels.tolist(), images, heard)]

    def class_accuracies(self, per_class: int | None = None, seed: int = 0) -> list[float]:
        """Per digit: the fraction of ``per_class`` generated samples the classifier calls that digit."""
        if self.classifier is None:
            raise ConfigError("cgan: the classifier is disabled (classifier.enabled: false)")
        per_class = per_class or self.config.classifier.eval_samples_per_class
        device = next(self.parameters()).device
        accs = []
        with seeded(seed, device):
            for digit in range(self.config.gan.num_classes):
                accs.append(float((self.classifier.predict(self.sample(per_class, digit)) == digit).float().mean()))
        return accs

    def metrics(self, outputs: list[dict[str, Any]], references: dict[str, list]) -> dict[str, float]:
        judged = [o for o in outputs if o["classified_as"] is not None]
        return {"class_accuracy": sum(o["classified_as"] == o["digit"] for o in judged) / len(judged)} if judged else {}

    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list],
                             decode: Any, device: Any) -> dict[str, float]:
        """``class_accuracy``: generated samples of every digit (``eval_samples_per_class`` each, seeded) the classifier recognises."""
        if self.classifier is None:
            return {}
        was = self.training
        self.eval()
        try:
            return {"class_accuracy": float(np.mean(self.class_accuracies(seed=99)))}
        finally:
            self.train(was)

    def save_grid(self, path: str | Path, per_class: int = 8, seed: int = 0, title: str | None = None) -> Path:
        """A PNG grid of ``per_class`` samples of every digit (row = requested digit)."""
        from ..train.plots import save_sample_grid

        labels = [d for d in range(self.config.gan.num_classes) for _ in range(per_class)]
        with seeded(seed, next(self.parameters()).device):
            images = self.sample(len(labels), labels)
        return save_sample_grid(images, labels, path, title=title)

    def format_output(self, output: Any, out_dir: Path | None = None) -> str:
        """Write the generated image as a PNG (MFCC coefficients up, time right); returns its path."""
        from ..train.plots import save_sample_grid

        path = next_free(out_dir if out_dir is not None else Path("seqlab-predictions"), f"cgan-digit{output['digit']}", ".png")
        heard = f"; the classifier hears {output['classified_as']}" if output.get("classified_as") is not None else ""
        save_sample_grid(output["image"][None, None], [output["digit"]], path, cell_inches=4.0,
                         title=f"generated MFCCs of digit {output['digit']}{heard}")
        return str(path)


# -- recipe ---------------------------------------------------------------------------------
@dataclass
class CGANRecipe(ClipRecipe):
    """``pipelines/cgan.yaml`` maps onto this: single-digit clips only."""

    task: str = "cgan"
    data: ClipData = field(default_factory=ClipData)
    features: MFCCConfig = field(default_factory=default_features)
    image: ImageConfig = field(default_factory=ImageConfig)
    model: GANConfig = field(default_factory=GANConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=200, batch_size=64, clip_norm=None))
    output: str = "runs/cgan"
    device: str = "auto"
    #: Digits to draw after training (PNGs under ``output/predictions``).
    examples: list[str] = field(default_factory=lambda: ["3", "seven"])

    def keep(self, label: Any) -> bool:
        from ..data.clips import digit_of

        return digit_of(label) is not None

    def build(self):
        from ..pipeline import Pipeline

        stages = [DigitLabel(), MFCCImage(MFCCImageConfig(self.features, self.image))]
        return Pipeline(stages, CGANModel, CGANConfig(self.model, self.classifier), device=self.device)
