"""The Trainer's settings (one dataclass; recipes' ``train:`` section maps onto it).

Every key has a default that works for a small model on a CPU; ``validate`` (called by
``seqlab.core.config.from_dict``) refuses values that cannot work, naming the key.
The formulas behind the schedule and penalty keys are in ``schedules.py`` and
``regularization.py``; ``docs/training.md`` shows them in recipes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.errors import ConfigError

AMP_MODES = ("off", "bf16", "fp16")
SCHEDULES = ("constant", "exponential", "step", "plateau")


@dataclass
class TrainConfig:
    """How to train. Defaults suit a small model on a CPU.

    >>> TrainConfig(epochs=2).batch_size
    32
    >>> TrainConfig(amp=False).amp      # YAML reads ``amp: off`` as false
    'off'
    """

    epochs: int = 10
    #: Examples per *global* batch (split across the processes under torchrun).
    batch_size: int = 32
    #: Cap on padded tokens per batch (``batch × longest``), in addition to ``batch_size``.
    max_tokens: int | None = None
    #: Examples per bucket = ``bucket_factor × batch_size`` (sorted by length inside a bucket).
    bucket_factor: int = 50
    optimizer: Literal["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    #: The optimizer's own weight decay (every parameter, biases included; see regularization.py).
    weight_decay: float = 0.0
    #: Penalties added to the loss, on weights (tensors with >= 2 dims) only, not biases:
    #: ``l1 · Σ|w| + l2 · Σw²`` (both > 0: elastic net).
    l1: float = 0.0
    l2: float = 0.0

    #: Learning-rate schedule: constant, exponential (``lr0·e^(−decay_rate·epoch)``),
    #: step (``lr0·gamma^⌊epoch/step_size⌋``) or plateau (× ``plateau_factor`` when the
    #: selection metric has not improved for more than ``plateau_patience`` evaluations).
    schedule: Literal["constant", "exponential", "step", "plateau"] = "constant"
    decay_rate: float = 0.1
    step_size: int = 1
    gamma: float = 0.5
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    #: Floor of the decayed learning rate (warmup may start below it).
    min_lr: float = 0.0
    #: Linear warmup over the first N optimizer steps, multiplied into any schedule.
    warmup_steps: int = 0

    #: Clip the global gradient norm to this (None: no clipping by norm).
    clip_norm: float | None = 5.0
    #: Clip each gradient value to ±this (None: no clipping by value).
    clip_value: float | None = None
    #: Stop when the selection metric has not improved for this many evaluations.
    patience: int | None = None
    #: Stop training after this many seconds of this invocation, between two batches. A stop
    #: in mid-epoch feeds no partial-epoch evaluation to the schedule, early stopping or model
    #: selection; the model ends with the better of the best completed evaluation and the
    #: current weights; ``--resume`` continues exactly, with a fresh budget (docs/training.md).
    time_budget_s: float | None = None
    #: Evaluate on dev every N optimizer steps as well as at each epoch end.
    eval_every_steps: int | None = None
    seed: int = 0
    progress: Literal["auto", "on", "off"] = "auto"
    #: Mixed precision on CUDA: bf16 autocast, fp16 autocast with a GradScaler, or off.
    #: Ignored on the CPU unless ``cpu_amp``. ``true``/``false`` mean bf16/off.
    amp: Literal["off", "bf16", "fp16"] | bool = "bf16"
    #: Apply ``amp`` on the CPU too, always as bf16 autocast (fp16 is CUDA-only): the matrix
    #: products run in bfloat16, 2–2.5x faster where the CPU has AVX512-BF16 or AMX, slower
    #: where it has neither (a warning says so). Off by default: it changes the numbers.
    cpu_amp: bool = False
    #: Skip a step whose loss (or gradient) is NaN/inf; stop after this many in a row.
    max_nonfinite_steps: int = 10
    #: CPU threads for torch while training. None (auto): half the usable cores, 1 to 4, and never
    #: more than torch already uses (``seqlab.core.device.auto_threads``): torch's own default of
    #: one thread per core collapses when other jobs share the cores (docs/training.md).
    threads: int | None = None

    #: Weight averaging: "ema" evaluates, selects and saves an exponential moving average of
    #: the weights (``averaging.py``: ``avg ← d·avg + (1 − d)·θ`` after each step, ``d`` warming
    #: up to ``average_decay``) while training goes on with the current ones; "off": no average.
    average: Literal["off", "ema"] = "off"
    #: The EMA's decay ``d``: the average spans about ``1 / (1 − d)`` steps.
    average_decay: float = 0.999

    #: Write a checkpoint every N optimizer steps (None: only at each epoch end).
    checkpoint_every_steps: int | None = None
    #: How many of the newest checkpoints to keep (the best one is kept as well).
    keep_checkpoints: int = 3
    #: Also log scalars for TensorBoard (``<logs>/tensorboard``) when it is installed.
    tensorboard: bool = False
    #: DDP only: let DDP look for parameters a step did not use (slower; needed by
    #: models whose forward skips some parameters).
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        if self.amp is True:
            self.amp = "bf16"
        elif self.amp is False:
            self.amp = "off"

    def validate(self, where: str = "train") -> None:
        def positive_int(name: str, allow_none: bool = False, minimum: int = 1) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{where}.{name} must be an integer >= {minimum}{' or null' if allow_none else ''}, got {value!r}")

        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{where}.threads must be >= 1 or null, got {self.threads}")
        for name in ("epochs", "batch_size", "bucket_factor", "keep_checkpoints", "max_nonfinite_steps", "step_size"):
            positive_int(name)
        for name in ("max_tokens", "patience", "eval_every_steps", "checkpoint_every_steps"):
            positive_int(name, allow_none=True)
        positive_int("warmup_steps", minimum=0)
        positive_int("plateau_patience", minimum=0)
        if not self.lr > 0:
            raise ConfigError(f"{where}.lr must be > 0, got {self.lr}")
        for name in ("clip_norm", "clip_value", "time_budget_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{where}.{name} must be > 0 or null, got {value}")
        for name in ("weight_decay", "l1", "l2", "decay_rate", "min_lr", "momentum"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{where}.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"{where}.gamma (step decay factor) must be in (0, 1], got {self.gamma}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"{where}.plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if not 0 < self.average_decay < 1:
            raise ConfigError(f"{where}.average_decay must be in (0, 1), got {self.average_decay}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"{where}.amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
