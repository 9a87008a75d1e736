"""The Trainer's settings (one dataclass; recipes' ``train:`` section maps onto it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.errors import ConfigError


@dataclass
class TrainConfig:
    """How to train. Defaults suit a small model on a CPU.

    >>> TrainConfig(epochs=2).batch_size
    32
    """

    epochs: int = 10
    batch_size: int = 32
    #: Cap on padded tokens per batch (``batch × longest``), in addition to ``batch_size``.
    max_tokens: int | None = None
    #: Examples per bucket = ``bucket_factor × batch_size`` (sorted by length inside a bucket).
    bucket_factor: int = 50
    optimizer: Literal["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    #: Clip the global gradient norm to this (None: no clipping by norm).
    clip_norm: float | None = 5.0
    #: Clip each gradient value to ±this (None: no clipping by value).
    clip_value: float | None = None
    #: Stop when the selection metric has not improved for this many evaluations.
    patience: int | None = None
    #: Stop training after this many seconds (the best model so far is kept).
    time_budget_s: float | None = None
    #: Evaluate on dev every N optimizer steps as well as at each epoch end.
    eval_every_steps: int | None = None
    seed: int = 0
    progress: Literal["auto", "on", "off"] = "auto"
    #: Mixed precision on CUDA (ignored on CPU).
    amp: bool = True
    #: Skip a step whose loss is NaN/inf; stop after this many in a row.
    max_nonfinite_steps: int = 10

    def validate(self, where: str = "train") -> None:
        if self.epochs < 1:
            raise ConfigError(f"{where}.epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr must be > 0, got {self.lr}")
        for name in ("clip_norm", "clip_value", "time_budget_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{where}.{name} must be > 0 or null, got {value}")
