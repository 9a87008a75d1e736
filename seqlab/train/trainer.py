"""The Trainer: global mini-batches, optimizers and schedule, clipping, AMP, dev evaluation,
best-model keeping, checkpoints and exact resume, data-parallel training, logs.

It knows a task only through the training section of ``seqlab.core.task.TaskModel``, called
directly: ``train_batches`` (None: ``seqlab.data.collate.default_train_batches``),
``forward(batch) -> loss`` (``forward`` so that DDP's gradient hooks see the call),
``build_optimizers``, the ``stateful`` TBPTT part (``tbptt_state``, ``reset_tbptt_state``,
called at each epoch start), ``custom_train_step``/``train_step`` for a model that steps its
own optimisers (a GAN), and ``selection_metric``/``selection_mode``/``selection_tiebreak``;
plus an ``evaluate`` callback (given by the pipeline) that returns dev metrics.

A run reads as its steps (``_Run``): restore (``--resume``), then per epoch its batches,
and per batch a train step, the evaluations due, a checkpoint when due and the stop check.
The default train step, as in PyTorch's word-language-model example plus what a long run
needs::

    lr = schedule(epoch, step)                     # schedules.py, on every optimizer
    loss = model(shard) [autocast bf16/fp16 on CUDA; bf16 on the CPU with cpu_amp]
    objective = weight · loss + penalty            # distributed.py, regularization.py
    backward (through a GradScaler for fp16)
    skip the step if the (all-reduced) loss is NaN/inf; stop after N in a row
    norm = clip_gradients(...)                     # pre-clip norm, logged per epoch
    optimizer.step()

Exact resume: a checkpoint stores the position (epoch, batches consumed), every random
generator — both now and at the start of the epoch, since a model's ``train_batches`` may
draw on them — the optimizers', schedule's and scaler's states and the carried TBPTT state.
On resume the epoch's batches are rebuilt from the epoch-start generators, the consumed ones
skipped, and the generators set to where they were, so the continued run computes what the
uninterrupted one would have, bit for bit on the CPU.

A stop for the time budget happens between two batches, after the evaluations that an
uninterrupted run does at that step (a step evaluation due, or the epoch end's): the state
it checkpoints is one the uninterrupted run passed through. A stop in the middle of an epoch
runs no epoch-end evaluation; it evaluates the current weights once for the user, a record
marked ``partial_epoch`` that feeds neither the schedule, early stopping nor the best-model
state (so ``--resume`` continues exactly); the model ends with these weights only if they beat
the best completed evaluation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.config import to_dict
from ..core.device import autocast, cpu_has_bf16, set_threads, to_device
from ..core.errors import DataError, ModelFileError, TrainingError
from ..core.task import StepContext, TaskModel
from ..data.collate import default_train_batches
from ..nn.clipping import clip_gradients
from .averaging import WeightAverage
from .checkpoint import (
    CheckpointManager, capture_rng_state, load_latest_checkpoint, move_tensors, restore_rng_state, seed_everything,
    to_cpu,
)
from .config import TrainConfig
from .distributed import DistributedContext
from .metrics_log import MetricsLog
from .optimizers import build_optimizer
from .regularization import penalized_parameters, weight_penalty
from .schedules import LRSchedule

__all__ = ["TrainResult", "Trainer", "amp_settings", "build_optimizer", "show_progress"]

logger = logging.getLogger("seqlab.train")

#: Settings a resumed run may change without a warning (they do not alter the trajectory so far).
_FREE_ON_RESUME = {"epochs", "time_budget_s", "progress", "patience", "checkpoint_every_steps", "keep_checkpoints", "tensorboard"}


def show_progress(setting: str) -> bool:
    """Bars on a terminal (or when forced on); quiet in logs and CI."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return sys.stderr.isatty()


def amp_settings(mode: str, device: torch.device, cpu: bool = False) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a GradScaler)`` for ``train.amp`` on ``device``;
    ``cpu`` is ``train.cpu_amp`` (the CPU gets bf16 autocast, never a GradScaler).

    >>> amp_settings("bf16", torch.device("cpu"))
    (None, False)
    >>> amp_settings("fp16", torch.device("cpu"), cpu=True)
    (torch.bfloat16, False)
    """
    if mode == "off":
        return None, False
    if device.type == "cpu" and cpu:
        return torch.bfloat16, False  # the Trainer warns where the CPU has no native bf16
    if device.type != "cuda":
        return None, False
    if mode == "bf16":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        logger.warning("seqlab: this GPU has no bf16; training with fp16 autocast and a GradScaler instead")
    return torch.float16, True


@dataclass
class TrainResult:
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    stopped_by: str = "epochs"
    #: Steps skipped because the loss or gradient was NaN/inf.
    skipped_steps: int = 0
    #: The checkpoint a resumed run started from, and the last one written.
    resumed_from: str | None = None
    checkpoint: str | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds else 0.0


@dataclass
class TrainProgress:
    """Every counter of a run, as plain values (it goes into checkpoints as is)."""

    epoch: int = 1
    #: Batches of ``epoch`` already consumed (stepped or skipped).
    batch_index: int = 0
    step: int = 0
    best_value: float = math.inf
    #: The tie-breaking dev metric at the best evaluation (``TaskModel.selection_tiebreak``).
    best_tiebreak: float = math.inf
    best_step: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    nonfinite_in_row: int = 0
    nonfinite_total: int = 0
    overflow_total: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    elapsed_s: float = 0.0
    finished: bool = False
    stopped_by: str = "epochs"
    #: Step of the checkpoint holding the best evaluation (kept when pruning).
    best_checkpoint_step: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # Sums over the current epoch, for its means.
    loss_sum: float = 0.0
    loss_count: int = 0
    grad_norm_sum: float = 0.0
    penalty_sum: float = 0.0
    epoch_skipped: int = 0
    epoch_overflow: int = 0
    #: Sums of the other losses a custom ``train_step`` returns (logged as ``train_<name>``).
    part_sums: dict[str, float] = field(default_factory=dict)

    def start_epoch(self) -> None:
        self.batch_index = 0
        self.loss_sum, self.loss_count, self.grad_norm_sum, self.penalty_sum = 0.0, 0, 0.0, 0.0
        self.epoch_skipped = self.epoch_overflow = 0
        self.part_sums = {}


@dataclass
class StepOutcome:
    """What one train step did (before it is counted into ``TrainProgress``)."""

    loss: float
    norm: float = 0.0
    penalty: float = 0.0
    tokens: int = 0
    #: Other losses of a custom step, by name.
    parts: dict[str, float] = field(default_factory=dict)
    #: "loss" or "gradient norm" when NaN/inf made the step a skipped one.
    nonfinite: str | None = None
    #: The fp16 GradScaler skipped the step (overflow).
    overflow: bool = False
    #: The time budget is spent (decided on rank 0, known to every rank).
    out_of_time: bool = False


def _pick(per_rank: list[Any], rank: int) -> Any:
    return per_rank[rank] if rank < len(per_rank) else per_rank[0]


class Trainer:
    """Train a task model on processed columns.

    >>> from seqlab.train import TrainConfig
    >>> Trainer(TrainConfig(epochs=1)).config.epochs
    1

    ``checkpoint_dir`` turns on checkpoints (each epoch end, and every
    ``checkpoint_every_steps``); ``fit(..., resume_from=DIR)`` continues from the newest
    good checkpoint under ``DIR``. ``clock`` (seconds, monotonic) measures the time budget
    and the logged timings; tests give a scripted one.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        device: torch.device | str = "cpu",
        log_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.clock = clock

    def batches(self, model: TaskModel, columns: Mapping[str, list], epoch: int) -> list[dict[str, Any]]:
        """The epoch's *global* batches (the same on every process)."""
        batches = model.train_batches(columns, self.config, epoch)
        if batches is None:
            c = self.config
            batches = default_train_batches(
                columns, model.pad_values(training=True), model.length_column(), batch_size=c.batch_size,
                seed=c.seed + epoch, bucket_factor=c.bucket_factor, max_tokens=c.max_tokens,
            )
        return list(batches)

    def fit(
        self,
        model: TaskModel,
        columns: Mapping[str, list],
        evaluate: Callable[[], dict[str, float]] | None = None,
        resume_from: str | Path | None = None,
    ) -> TrainResult:
        """Train ``model`` (in place; it ends holding the best weights); returns the result."""
        size = len(next(iter(columns.values()))) if columns else 0
        if size == 0:
            raise DataError("the training data is empty: nothing to train on")
        ctx = DistributedContext.from_environment(self.device)
        try:
            run = _Run(self, ctx, model, columns, evaluate)
            run.restore(resume_from)
            result = run.train()
        except BaseException:
            ctx.close(wait=False)
            raise
        ctx.close()
        return result

    def warn_changed_settings(self, saved: dict[str, Any], path: Path) -> None:
        current = to_dict(self.config)
        changed = sorted(k for k in current if k not in _FREE_ON_RESUME and k in saved and saved[k] != current[k])
        if changed:
            logger.warning(
                "seqlab: resuming from %s with changed train settings %s; the run will not match an uninterrupted one",
                path, ", ".join(f"{k}: {saved[k]!r} → {current[k]!r}" for k in changed),
            )


class _Run:
    """One call of ``Trainer.fit``: the model, its optimizers, every counter, and the steps."""

    # -- setting up --------------------------------------------------------------------
    def __init__(self, trainer: Trainer, ctx: DistributedContext, model: TaskModel, columns: Mapping[str, list],
                 evaluate: Callable[[], dict[str, float]] | None) -> None:
        config = self.config = trainer.config
        self.trainer, self.ctx, self.model, self.columns, self.evaluate_fn = trainer, ctx, model, columns, evaluate
        self.device, self.clock = ctx.device, trainer.clock
        if model.custom_train_step and ctx.distributed:
            raise TrainingError(
                f"{type(model).__name__} runs its own train step, which does not run under torchrun yet; "
                "train it in one process"
            )
        set_threads(config.threads)  # None: seqlab's auto default (core/device.py)
        seed_everything(config.seed)
        model.to(self.device)
        # Weight averaging (train.average): evaluations, selection and the result use the average.
        self.average = WeightAverage(model, config.average_decay) if config.average == "ema" else None
        self.amp_dtype, use_scaler = amp_settings(config.amp, self.device, config.cpu_amp) if not model.custom_train_step else (None, False)
        if self.amp_dtype is not None and self.device.type == "cpu" and not cpu_has_bf16():
            logger.warning("seqlab: train.cpu_amp is on, but this CPU has no native bf16 (AVX512-BF16 or AMX); "
                           "bf16 autocast will likely be slower than float32 here")
        self.optimizers = self._build_optimizers()
        # The rates they were built with: the schedule scales each (checkpoints hold the scaled ones).
        self.base_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in self.optimizers.items()}
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.schedule = LRSchedule(config)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        # Without dev data the best model is the one with the lowest training loss.
        if evaluate is not None:
            self.metric, self.mode, self.tiebreak = model.selection_metric, model.selection_mode, model.selection_tiebreak
        else:
            self.metric, self.mode, self.tiebreak = "loss", "min", None
        self.progress = TrainProgress(best_value=-math.inf if self.mode == "max" else math.inf)
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epoch_rng: dict[str, Any] | None = None
        self.restored_tbptt: Any = None
        self.resumed = False
        self.result = TrainResult()
        # A mid-epoch stop for time: its evaluation, and whether its weights are the result's.
        self.stop_record: dict[str, Any] | None = None
        self.stop_is_best = False
        self.penalized = penalized_parameters(model) if (config.l1 or config.l2) else []
        self.length_key = f"{model.length_column()}_lengths"

    def _build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = self.model.build_optimizers(functools.partial(build_optimizer, config=self.config))
        if not optimizers or not all(isinstance(k, str) and isinstance(v, torch.optim.Optimizer) for k, v in optimizers.items()):
            raise TrainingError(
                f"{type(self.model).__name__}.build_optimizers must return a non-empty dict of name → "
                f"torch.optim.Optimizer, got {optimizers!r:.120}"
            )
        return optimizers

    # -- restore -------------------------------------------------------------------------
    def restore(self, resume_from: str | Path | None) -> None:
        """Put back everything the newest good checkpoint under ``resume_from`` holds."""
        if resume_from is None:
            return
        state, path = load_latest_checkpoint(resume_from)
        try:
            self.model.load_state_dict(state["model"])
            self._load_optimizers(state)
            self.schedule.load_state_dict(state["schedule"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.progress = TrainProgress(**state["progress"])
            if self.average is not None:
                if state.get("average") is None:
                    raise KeyError("the checkpoint holds no weight average (it was written with train.average: off)")
                self.average.load_state_dict(state["average"])
        except (RuntimeError, KeyError, TypeError, ValueError) as err:
            raise ModelFileError(
                f"checkpoint {str(path)!r} does not fit this model or trainer ({type(err).__name__}: {str(err)[:300]}); "
                "resume with the same recipe that wrote it"
            ) from None
        self.trainer.warn_changed_settings(state.get("config") or {}, path)
        if state.get("best_is_current"):
            self.best_state = to_cpu(self._evaluated_state())
        elif state.get("best_model") is not None:
            self.best_state = state["best_model"]
        self._restore_carried_state(state, path)
        restore_rng_state(_pick(state["rng"], self.ctx.rank))
        self.epoch_rng = _pick(state["epoch_rng"], self.ctx.rank)
        self.resumed = True
        self.result.resumed_from = str(path)

    def _load_optimizers(self, state: dict[str, Any]) -> None:
        # Checkpoints written before models could have several optimizers hold one, "optimizer".
        saved = state["optimizers"] if "optimizers" in state else {"model": state["optimizer"]}
        if set(saved) != set(self.optimizers):
            raise KeyError(f"the checkpoint has optimizer(s) {sorted(saved)}, the model {sorted(self.optimizers)}")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(saved[name])

    def _restore_carried_state(self, state: dict[str, Any], path: Path) -> None:
        saved_world = int(state.get("world_size", 1))
        carried = state.get("tbptt_state")
        if self.model.stateful and carried is not None and any(s is not None for s in carried):
            if saved_world != self.ctx.world_size:
                raise TrainingError(
                    f"checkpoint {str(path)!r} carries truncated-BPTT state from {saved_world} process(es); "
                    f"resume it with the same number of processes, not {self.ctx.world_size}"
                )
            self.restored_tbptt = move_tensors(carried[self.ctx.rank], self.device)
        elif saved_world != self.ctx.world_size:
            logger.warning(
                "seqlab: checkpoint %s was written by %d process(es), resuming with %d: random draws "
                "(dropout) will differ from an uninterrupted run", path, saved_world, self.ctx.world_size,
            )

    def _open_outputs(self) -> None:
        """The DDP wrapper, the checkpoint directory and the metrics log; the clocks start."""
        config, ctx, progress = self.config, self.ctx, self.progress
        self.wrapped = ctx.wrap(self.model, config.find_unused_parameters)
        self.manager = None
        if self.trainer.checkpoint_dir is not None and ctx.is_main:
            self.manager = CheckpointManager(self.trainer.checkpoint_dir, config.keep_checkpoints)
            self.manager.remove_partial_writes()
            old = self.manager.files() if not self.resumed else []
            if old:
                # A fresh run replaces the run that was there (as saving replaces its model);
                # its checkpoints would otherwise be mistaken for this run's by --resume.
                logger.warning("seqlab: starting a new run: removing %d checkpoint(s) of the previous run in %s", len(old), self.manager.directory)
                for path in old:
                    path.unlink(missing_ok=True)
        self.log = MetricsLog(
            self.trainer.log_dir if ctx.is_main else None, tensorboard=config.tensorboard,
            history=progress.history, purge_step=progress.step if self.resumed else None,
        )
        self.start = self.clock() - progress.elapsed_s  # for the logs: the whole run's time
        self.budget_start = self.clock()  # the time budget counts this invocation only
        if not progress.finished:
            progress.stopped_by = "epochs"

    # -- the epochs ----------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Epochs until the last one, early stopping or the time budget; returns the result."""
        self._open_outputs()
        resume_mid_epoch = self.resumed and self.progress.batch_index > 0
        stop, epoch = self.progress.finished, self.progress.epoch
        while not stop and epoch <= self.config.epochs:
            batches = self._epoch_batches(epoch, resume_mid_epoch)
            resume_mid_epoch = False
            stop = self._train_epoch(epoch, batches)
            epoch += 1
        return self._finish()

    def _epoch_batches(self, epoch: int, resume_mid_epoch: bool) -> list[dict[str, Any]]:
        """The epoch's batches; resuming mid-epoch, rebuilt as they were from the epoch-start generators."""
        model = self.model
        if resume_mid_epoch:
            now = capture_rng_state()
            restore_rng_state(self.epoch_rng)
            if model.stateful:
                model.reset_tbptt_state()
            batches = self.trainer.batches(model, self.columns, epoch)
            restore_rng_state(now)
            if model.stateful:
                model.tbptt_state = self.restored_tbptt
            return batches
        self.epoch_rng = capture_rng_state()
        if model.stateful:
            model.reset_tbptt_state()
        batches = self.trainer.batches(model, self.columns, epoch)
        self.progress.start_epoch()
        return batches

    def _train_epoch(self, epoch: int, batches: list[dict[str, Any]]) -> bool:
        """Train on the epoch's remaining batches; True when the run stops."""
        progress = self.progress
        self.wrapped.train()
        bar = tqdm(
            total=len(batches), initial=progress.batch_index, desc=f"epoch {epoch}/{self.config.epochs}",
            disable=not (self.ctx.is_main and show_progress(self.config.progress)), leave=False,
        )
        stop = False
        for index in range(progress.batch_index, len(batches)):
            step_start = self.clock()
            outcome = self._train_step(epoch, batches[index])
            progress.batch_index = index + 1
            stepped = self._count(outcome, epoch, step_start)
            bar.update(1)
            if not stepped:
                continue
            if self.average is not None:
                self.average.update(self.model)
            bar.set_postfix(
                loss=f"{progress.loss_sum / progress.loss_count:.4f}",
                tok_s=f"{progress.train_tokens / max(progress.train_seconds, 1e-9):.0f}",
            )
            stop = self._after_step(epoch, outcome.out_of_time)
            if stop:
                break
        bar.close()
        return self._end_epoch(epoch, len(batches), stop)

    def _after_step(self, epoch: int, out_of_time: bool) -> bool:
        """The step evaluation and checkpoint when due, and the stop check; True to stop."""
        config, progress = self.config, self.progress
        improved = stop = False
        # A due evaluation runs even when the time is up: the uninterrupted run has it too.
        if config.eval_every_steps and progress.step % config.eval_every_steps == 0:
            improved, stop = self._evaluate(epoch)
            if stop:
                progress.stopped_by = "early_stopping"
        if out_of_time and not stop:
            stop, progress.stopped_by = True, "time_budget"
        every = config.checkpoint_every_steps
        if not stop and (improved or (every and progress.step % every == 0)):
            self._write_checkpoint()
        return stop

    def _end_epoch(self, epoch: int, n_batches: int, stop: bool) -> bool:
        """After the epoch's last batch, or a stop: the epoch-end evaluation if it is complete,
        then the checkpoint; after a stop for time in mid-epoch, an evaluation for the user."""
        progress = self.progress
        complete = progress.batch_index >= n_batches
        if complete:
            if (progress.loss_count or progress.epoch_skipped) and not self._evaluated_at_this_step(epoch):
                _, early = self._evaluate(epoch)
                if early:  # final, unlike a stop for time (which --resume continues)
                    stop, progress.stopped_by = True, "early_stopping"
            # The checkpoint then is the start of the next epoch; after a stop in mid-epoch
            # it is the batch where the run stopped, so that --resume finishes the epoch.
            progress.epoch = epoch + 1
            progress.start_epoch()
        progress.finished = stop and progress.stopped_by == "early_stopping"
        self._write_checkpoint()
        if stop and not complete and progress.stopped_by == "time_budget" and not self._evaluated_at_this_step(epoch):
            self._evaluate_at_stop(epoch)
        return stop

    def _evaluated_at_this_step(self, epoch: int) -> bool:
        last = self.progress.history[-1] if self.progress.history else None
        return last is not None and last["step"] == self.progress.step and last["epoch"] == epoch

    # -- the train step ------------------------------------------------------------------
    def _train_step(self, epoch: int, batch: dict[str, Any]) -> StepOutcome:
        self._apply_schedule(epoch)
        if self.model.custom_train_step:
            return self._custom_step(epoch, batch)
        return self._default_step(batch)

    def _apply_schedule(self, epoch: int) -> None:
        """Every optimizer's rate for the coming step: the schedule's, relative to its built rate."""
        rate, lr0 = self.schedule.lr(epoch - 1, self.progress.step), self.config.lr
        for name, optimizer in self.optimizers.items():
            for group, base in zip(optimizer.param_groups, self.base_lrs[name]):
                group["lr"] = rate if base == lr0 else rate * (base / lr0)

    def _default_step(self, batch: dict[str, Any]) -> StepOutcome:
        """loss → backward → clip → step on this rank's shard of the global batch."""
        config, scaler = self.config, self.scaler
        shard, weight = self.ctx.shard(batch)
        shard = to_device(shard, self.device)
        with autocast(self.device, self.amp_dtype is not None, self.amp_dtype):
            loss = self.wrapped(shard)
        loss = loss.float()
        objective = loss * weight if weight != 1.0 else loss
        penalty = weight_penalty(self.penalized, config.l1, config.l2) if self.penalized else None
        if penalty is not None:
            objective = objective + penalty
        self._zero_grad()
        # Backward even for a NaN loss: under DDP every rank must join the gradient
        # all-reduce of every step; the step is dropped below if need be.
        (scaler.scale(objective) if scaler is not None else objective).backward()
        tokens = int(shard[self.length_key].sum()) if weight > 0 and self.length_key in shard else 0
        outcome = self._reduce(loss.detach(), weight, tokens)
        outcome.penalty = float(penalty.detach()) if penalty is not None else 0.0
        if not (math.isfinite(outcome.loss) and math.isfinite(outcome.penalty)):
            outcome.nonfinite = "loss"
            return outcome
        if scaler is not None:
            for optimizer in self.optimizers.values():
                scaler.unscale_(optimizer)
        outcome.norm = clip_gradients(self.trainable, config.clip_norm, config.clip_value)
        if scaler is not None:
            scale = scaler.get_scale()
            for optimizer in self.optimizers.values():
                scaler.step(optimizer)
            scaler.update()
            outcome.overflow = scaler.get_scale() < scale  # fp16 overflow: the scaler skipped this step
        elif not math.isfinite(outcome.norm):
            outcome.nonfinite = "gradient norm"
        else:
            for optimizer in self.optimizers.values():
                optimizer.step()
        return outcome

    def _reduce(self, loss: torch.Tensor, weight: float, tokens: int) -> StepOutcome:
        """The global batch's loss and tokens, and the time-budget decision, on every rank."""
        out_of_time = float(self.ctx.is_main and self._over_budget())
        if not self.ctx.distributed:
            return StepOutcome(loss=float(loss), tokens=tokens, out_of_time=out_of_time > 0)
        stats = torch.zeros(3, dtype=torch.float64, device=self.device)
        stats[0] = loss.double() * (weight / self.ctx.world_size)
        stats[1], stats[2] = tokens, out_of_time
        loss_value, tokens_f, over_f = self.ctx.all_reduce_sum(stats).tolist()
        return StepOutcome(loss=loss_value, tokens=int(tokens_f), out_of_time=over_f > 0)

    def _over_budget(self) -> bool:
        budget = self.config.time_budget_s
        return budget is not None and self.clock() - self.budget_start > budget

    def _custom_step(self, epoch: int, batch: dict[str, Any]) -> StepOutcome:
        """The model's own ``train_step`` (one process: ``_Run`` refuses it under torchrun)."""
        batch = to_device(batch, self.device)
        norms: list[float] = []
        context = StepContext(step=self.progress.step, epoch=epoch, device=self.device, clip=functools.partial(self._clip, norms))
        losses = self.model.train_step(batch, self.optimizers, context)
        if not isinstance(losses, Mapping) or "loss" not in losses:
            raise TrainingError(f"{type(self.model).__name__}.train_step must return a dict with a 'loss', got {losses!r:.120}")
        parts = {name: float(value) for name, value in losses.items() if name != "loss"}
        tokens = int(batch[self.length_key].sum()) if self.length_key in batch else 0
        outcome = StepOutcome(
            loss=float(losses["loss"]), norm=sum(norms) / len(norms) if norms else 0.0, tokens=tokens, parts=parts,
            out_of_time=self._over_budget(),
        )
        if not math.isfinite(outcome.loss):
            outcome.nonfinite = "loss"
        return outcome

    def _clip(self, norms: list[float], parameters: Any) -> float:
        norm = clip_gradients(list(parameters), self.config.clip_norm, self.config.clip_value)
        norms.append(norm)
        return norm

    def _zero_grad(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def _count(self, outcome: StepOutcome, epoch: int, step_start: float) -> bool:
        """Add the step to the counters; False when it was skipped (NaN/inf, fp16 overflow)."""
        progress = self.progress
        if outcome.nonfinite is not None:
            self._skip_step(outcome.nonfinite, epoch)
            return False
        if outcome.overflow:
            progress.overflow_total += 1
            progress.epoch_overflow += 1
            return False
        progress.nonfinite_in_row = 0
        progress.step += 1
        progress.loss_sum += outcome.loss
        progress.loss_count += 1
        progress.grad_norm_sum += outcome.norm
        progress.penalty_sum += outcome.penalty
        for name, value in outcome.parts.items():
            progress.part_sums[name] = progress.part_sums.get(name, 0.0) + value
        progress.train_tokens += outcome.tokens
        progress.train_seconds += self.clock() - step_start
        return True

    def _skip_step(self, what: str, epoch: int) -> None:
        progress = self.progress
        self._zero_grad()
        progress.nonfinite_in_row += 1
        progress.nonfinite_total += 1
        progress.epoch_skipped += 1
        if self.ctx.is_main:
            logger.warning(
                "seqlab: epoch %d, step %d: the %s is NaN/inf; step skipped (%d in a row, %d in all)",
                epoch, progress.step, what, progress.nonfinite_in_row, progress.nonfinite_total,
            )
        if progress.nonfinite_in_row >= self.config.max_nonfinite_steps:
            raise TrainingError(
                f"the {what} was NaN/inf for {progress.nonfinite_in_row} steps in a row (step {progress.step}); "
                "lower train.lr, set train.clip_norm, or check the data"
            )

    # -- evaluate ------------------------------------------------------------------------
    def _evaluate(self, epoch: int) -> tuple[bool, bool]:
        """Evaluate on dev, log, update best/early stopping/plateau; (improved, stop)."""
        metrics, record = self._dev_record(epoch)
        self.progress.history.append(record)
        self.log.write(record)
        train_loss = record["train_loss"]
        value = metrics.get(self.metric, train_loss if self.metric == "loss" else None)
        if value is None and self.metric == "loss" and train_loss is None:
            return False, False  # nothing was learned and there is nothing to compare
        if value is None:
            raise TrainingError(f"evaluation returned no {self.metric!r} (got {sorted(metrics)})")
        self.schedule.observe(value, self.mode)
        return self._select(value, metrics, train_loss)

    def _dev_record(self, epoch: int) -> tuple[dict[str, float], dict[str, Any]]:
        """The dev metrics (rank 0 evaluates; the carried TBPTT state is kept) and the log record."""
        model, progress = self.model, self.progress
        carried = model.tbptt_state if model.stateful else None
        metrics: dict[str, float] = {}
        if self.evaluate_fn is not None:
            with self.average.applied(model) if self.average is not None else contextlib.nullcontext():
                metrics = self.ctx.broadcast_object(self.evaluate_fn() if self.ctx.is_main else None)
        if model.stateful:
            model.tbptt_state = carried
        model.train()
        count = progress.loss_count
        record: dict[str, Any] = {
            # None when every step since the epoch start was skipped (NaN/inf).
            "epoch": epoch, "step": progress.step, "train_loss": progress.loss_sum / count if count else None,
            "lr": next(iter(self.optimizers.values())).param_groups[0]["lr"],
            "grad_norm": progress.grad_norm_sum / count if count else None,
            "skipped_steps": progress.epoch_skipped,
            "elapsed_s": round(self.clock() - self.start, 2),
            "tokens_per_s": round(progress.train_tokens / max(progress.train_seconds, 1e-9), 1),
        }
        record.update({f"train_{name}": total / count for name, total in progress.part_sums.items() if count})
        if self.penalized:
            record["penalty"] = progress.penalty_sum / count if count else None
        if self.scaler is not None:
            record["overflow_steps"] = progress.epoch_overflow
        record.update({f"dev_{k}": v for k, v in metrics.items()})
        return metrics, record

    def _beats_best(self, value: float, metrics: dict[str, float]) -> bool:
        progress, tiebreak = self.progress, self.tiebreak
        if value > progress.best_value if self.mode == "max" else value < progress.best_value:
            return True
        # As good on the selection metric, better on the tie-breaker.
        return bool(tiebreak) and value == progress.best_value and metrics.get(tiebreak, math.inf) < progress.best_tiebreak

    def _select(self, value: float, metrics: dict[str, float], train_loss: float | None) -> tuple[bool, bool]:
        """Keep the weights if ``value`` is the best so far; count evaluations without improvement."""
        progress = self.progress
        improved = self._beats_best(value, metrics)
        if improved:
            second = metrics.get(self.tiebreak, math.inf) if self.tiebreak else math.inf
            progress.best_value, progress.best_tiebreak, progress.bad_evals = value, second, 0
            self.best_state = to_cpu(self._evaluated_state())
            # Without a dev "loss" the selection metric was the training loss: report that one.
            progress.best_metrics = dict(metrics) if self.metric in metrics else dict(metrics, loss=train_loss)
            progress.best_step = progress.step
        else:
            progress.bad_evals += 1
        return improved, self.config.patience is not None and progress.bad_evals >= self.config.patience

    def _evaluated_state(self) -> dict[str, torch.Tensor]:
        """The weights evaluations see: the average under ``train.average``, else the model's."""
        return self.average.state if self.average is not None else self.model.state_dict()

    def _evaluate_at_stop(self, epoch: int) -> None:
        """Evaluate the weights of a run stopped for time in mid-epoch, for the user only.

        The record goes to the log (``partial_epoch: true``) and the result, not into the
        history that checkpoints hold; it feeds neither the schedule, early stopping nor the
        best-model state, so ``--resume`` continues as if the run had not stopped. The model
        keeps these weights when they beat the best completed evaluation (or there is none).
        Without dev data there is nothing to evaluate: the best completed epoch is kept.
        """
        if self.evaluate_fn is None:
            return
        metrics, record = self._dev_record(epoch)
        record["partial_epoch"] = True
        self.log.write(record)
        self.stop_record = record
        value = metrics.get(self.metric)
        if value is None:
            raise TrainingError(f"evaluation returned no {self.metric!r} (got {sorted(metrics)})")
        if self.best_state is None or self._beats_best(value, metrics):
            self.stop_is_best = True

    # -- checkpoint ----------------------------------------------------------------------
    def _write_checkpoint(self) -> None:
        if self.trainer.checkpoint_dir is None:
            return
        model, ctx = self.model, self.ctx
        # Every rank's generators (and TBPTT state) go to rank 0, the only writer.
        gathered = ctx.all_gather_object((capture_rng_state(), self.epoch_rng, to_cpu(model.tbptt_state) if model.stateful else None))
        if self.manager is None:
            return
        progress = self.progress
        progress.elapsed_s = self.clock() - self.start
        # When the best evaluation was at this step, this file is "the best checkpoint", kept
        # when pruning; its best weights are then the current ones, unless they are an average.
        best_at_this_step = self.best_state is not None and progress.best_step == progress.step
        best_is_current = best_at_this_step and self.average is None
        if best_at_this_step:
            progress.best_checkpoint_step = progress.step
        state = {
            "progress": dataclasses.asdict(progress),
            "model": model.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": [g[0] for g in gathered],
            "epoch_rng": [g[1] for g in gathered],
            "tbptt_state": [g[2] for g in gathered] if model.stateful else None,
            "best_is_current": best_is_current,
            "best_model": None if best_is_current else self.best_state,
            "average": self.average.state_dict() if self.average is not None else None,
            "world_size": ctx.world_size,
            "config": to_dict(self.config),
        }
        protect = [progress.best_checkpoint_step] if progress.best_checkpoint_step is not None else []
        try:
            self.result.checkpoint = str(self.manager.save(state, progress.step, protect=protect))
        except OSError as err:
            # A full disk must not end a long run: the previous checkpoint is intact
            # and the next one will be tried again.
            logger.warning("seqlab: could not write checkpoint at step %d (%s); the previous one is kept", progress.step, err)

    # -- stop ----------------------------------------------------------------------------
    def _finish(self) -> TrainResult:
        """The model takes the best weights; the result is filled in."""
        progress, result = self.progress, self.result
        result.best_metrics, result.best_step = progress.best_metrics, progress.best_step
        result.history = list(progress.history)
        if self.stop_record is not None:
            result.history.append(self.stop_record)
        if self.stop_is_best:  # the weights of a mid-epoch stop for time, which beat the completed evaluations
            result.best_metrics = {k[4:]: v for k, v in self.stop_record.items() if k.startswith("dev_")}
            result.best_step = progress.step
            if self.average is not None:
                self.model.load_state_dict(self.average.state)
        elif self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.log.close()
        result.steps, result.train_tokens, result.train_seconds = progress.step, progress.train_tokens, progress.train_seconds
        result.stopped_by, result.skipped_steps = progress.stopped_by, progress.nonfinite_total
        return result
