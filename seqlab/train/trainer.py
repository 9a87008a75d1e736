"""The Trainer: global mini-batches, optimizer and schedule, clipping, AMP, dev evaluation,
best-model keeping, checkpoints and exact resume, data-parallel training, logs.

It knows a task only through the task-model interface (``seqlab.core.task.TaskModel``):
``pad_values``/``length_column`` to batch, ``forward(batch) -> loss`` to learn (``forward``
so that DDP's gradient hooks see the call), ``selection_metric``/``selection_mode``, and an
``evaluate`` callback (given by the pipeline) that returns dev metrics. A model may
override ``train_batches(columns, config, epoch)`` to make its own batches (the language
model yields truncated-BPTT windows in order), and may be *stateful*: an attribute
``tbptt_state`` that its loss reads and updates, and ``reset_tbptt_state()``, which the
Trainer calls at each epoch start. The state is saved in checkpoints and put back on resume.

One optimizer step, as in PyTorch's word-language-model example plus what a long run needs::

    lr = schedule(epoch, step)                     # schedules.py
    loss = model(shard) [autocast bf16/fp16 on CUDA]
    objective = weight · loss + penalty            # distributed.py, regularization.py
    backward (through a GradScaler for fp16)
    skip the step if the (all-reduced) loss is NaN/inf; stop after N in a row
    norm = clip_gradients(...)                     # pre-clip norm, logged per epoch
    optimizer.step()

Exact resume: a checkpoint stores the position (epoch, batches consumed), every random
generator — both now and at the start of the epoch, since a model's ``train_batches`` may
draw on them — the optimizer, schedule and scaler states and the carried TBPTT state. On
resume the epoch's batches are rebuilt from the epoch-start generators, the consumed ones
skipped, and the generators set to where they were, so the continued run computes what the
uninterrupted one would have, bit for bit on the CPU.
"""
from __future__ import annotations

import dataclasses
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
from ..core.device import autocast, set_threads, to_device
from ..core.errors import DataError, ModelFileError, TrainingError
from ..data.collate import bucket_batches, pad_collate, select_rows
from ..nn.clipping import clip_gradients
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


def amp_settings(mode: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a GradScaler)`` for ``train.amp`` on ``device``.

    >>> amp_settings("bf16", torch.device("cpu"))
    (None, False)
    """
    if device.type != "cuda" or mode == "off":
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

    def start_epoch(self) -> None:
        self.batch_index = 0
        self.loss_sum, self.loss_count, self.grad_norm_sum, self.penalty_sum = 0.0, 0, 0.0, 0.0
        self.epoch_skipped = self.epoch_overflow = 0


def _pick(per_rank: list[Any], rank: int) -> Any:
    return per_rank[rank] if rank < len(per_rank) else per_rank[0]


class Trainer:
    """Train a task model on processed columns.

    >>> from seqlab.train import TrainConfig
    >>> Trainer(TrainConfig(epochs=1)).config.epochs
    1

    ``checkpoint_dir`` turns on checkpoints (each epoch end, and every
    ``checkpoint_every_steps``); ``fit(..., resume_from=DIR)`` continues from the newest
    good checkpoint under ``DIR``.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        device: torch.device | str = "cpu",
        log_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    # -- batching -------------------------------------------------------------------
    def batches(self, model: Any, columns: Mapping[str, list], epoch: int) -> list[dict[str, torch.Tensor]]:
        """The epoch's *global* batches (the same on every process)."""
        custom = getattr(model, "train_batches", None)
        if callable(custom):
            return list(custom(columns, self.config, epoch))
        pads = model.pad_values(training=True)
        length_column = model.length_column()
        lengths = [len(v) for v in columns[length_column]]
        order = bucket_batches(
            lengths, self.config.batch_size, shuffle=True, seed=self.config.seed + epoch,
            bucket_factor=self.config.bucket_factor, max_tokens=self.config.max_tokens,
        )
        needed = {c: columns[c] for c in pads if c in columns}
        return [pad_collate(select_rows(needed, idx), pads) for idx in order]

    # -- the loop -------------------------------------------------------------------
    def fit(
        self,
        model: Any,
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
            result = self._fit(ctx, model, columns, evaluate, resume_from)
        except BaseException:
            ctx.close(wait=False)
            raise
        ctx.close()
        return result

    def _fit(self, ctx: DistributedContext, model: Any, columns: Mapping[str, list], evaluate, resume_from) -> TrainResult:
        config = self.config
        device = ctx.device
        set_threads(config.threads)  # None: seqlab's auto default (core/device.py)
        seed_everything(config.seed)
        model.to(device)
        amp_dtype, use_scaler = amp_settings(config.amp, device)
        optimizer = build_optimizer(model.parameters(), config)
        trainable = [p for p in model.parameters() if p.requires_grad]
        schedule = LRSchedule(config)
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        # Without dev data the best model is the one with the lowest training loss.
        metric, mode = (model.selection_metric, model.selection_mode) if evaluate is not None else ("loss", "min")
        tiebreak = getattr(model, "selection_tiebreak", None) if evaluate is not None else None
        progress = TrainProgress(best_value=-math.inf if mode == "max" else math.inf)
        best_state: dict[str, torch.Tensor] | None = None
        stateful = hasattr(model, "tbptt_state")
        reset_state = getattr(model, "reset_tbptt_state", None)
        result = TrainResult()

        # -- resume ---------------------------------------------------------------------
        epoch_rng = None
        restored_tbptt = None
        if resume_from is not None:
            state, path = load_latest_checkpoint(resume_from)
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                schedule.load_state_dict(state["schedule"])
                if scaler is not None and state.get("scaler"):
                    scaler.load_state_dict(state["scaler"])
                progress = TrainProgress(**state["progress"])
            except (RuntimeError, KeyError, TypeError, ValueError) as err:
                raise ModelFileError(
                    f"checkpoint {str(path)!r} does not fit this model or trainer ({type(err).__name__}: {str(err)[:300]}); "
                    "resume with the same recipe that wrote it"
                ) from None
            self._warn_changed_settings(state.get("config") or {}, path)
            if state.get("best_is_current"):
                best_state = to_cpu(model.state_dict())
            elif state.get("best_model") is not None:
                best_state = state["best_model"]
            saved_world = int(state.get("world_size", 1))
            tbptt = state.get("tbptt_state")
            if stateful and tbptt is not None and any(s is not None for s in tbptt):
                if saved_world != ctx.world_size:
                    raise TrainingError(
                        f"checkpoint {str(path)!r} carries truncated-BPTT state from {saved_world} process(es); "
                        f"resume it with the same number of processes, not {ctx.world_size}"
                    )
                restored_tbptt = move_tensors(tbptt[ctx.rank], device)
            elif saved_world != ctx.world_size:
                logger.warning(
                    "seqlab: checkpoint %s was written by %d process(es), resuming with %d: random draws "
                    "(dropout) will differ from an uninterrupted run", path, saved_world, ctx.world_size,
                )
            restore_rng_state(_pick(state["rng"], ctx.rank))
            epoch_rng = _pick(state["epoch_rng"], ctx.rank)
            result.resumed_from = str(path)

        wrapped = ctx.wrap(model, config.find_unused_parameters)
        manager = None
        if self.checkpoint_dir is not None and ctx.is_main:
            manager = CheckpointManager(self.checkpoint_dir, config.keep_checkpoints)
            manager.remove_partial_writes()
            old = manager.files() if resume_from is None else []
            if old:
                # A fresh run replaces the run that was there (as saving replaces its model);
                # its checkpoints would otherwise be mistaken for this run's by --resume.
                logger.warning("seqlab: starting a new run: removing %d checkpoint(s) of the previous run in %s", len(old), manager.directory)
                for path in old:
                    path.unlink(missing_ok=True)
        log = MetricsLog(
            self.log_dir if ctx.is_main else None, tensorboard=config.tensorboard,
            history=progress.history, purge_step=progress.step if resume_from is not None else None,
        )
        penalized = penalized_parameters(model) if (config.l1 or config.l2) else []
        length_key = f"{model.length_column()}_lengths"
        start = time.perf_counter() - progress.elapsed_s  # for the logs: the whole run's time
        budget_start = time.perf_counter()  # the time budget counts this invocation only
        if not progress.finished:
            progress.stopped_by = "epochs"
        mid_epoch_resume = resume_from is not None and progress.batch_index > 0

        def evaluate_now(epoch: int) -> tuple[bool, bool]:
            """Evaluate on dev, log, update best/early stopping/plateau; (improved, stop)."""
            nonlocal best_state
            carried = model.tbptt_state if stateful else None  # evaluation must not disturb it
            metrics = {}
            if evaluate is not None:
                metrics = ctx.broadcast_object(evaluate() if ctx.is_main else None)
            if stateful:
                model.tbptt_state = carried
            model.train()
            # None when every step since the epoch start was skipped (NaN/inf).
            train_loss = progress.loss_sum / progress.loss_count if progress.loss_count else None
            record: dict[str, Any] = {
                "epoch": epoch, "step": progress.step, "train_loss": train_loss,
                "lr": optimizer.param_groups[0]["lr"],
                "grad_norm": progress.grad_norm_sum / progress.loss_count if progress.loss_count else None,
                "skipped_steps": progress.epoch_skipped,
                "elapsed_s": round(time.perf_counter() - start, 2),
                "tokens_per_s": round(progress.train_tokens / max(progress.train_seconds, 1e-9), 1),
            }
            if penalized:
                record["penalty"] = progress.penalty_sum / progress.loss_count if progress.loss_count else None
            if scaler is not None:
                record["overflow_steps"] = progress.epoch_overflow
            record.update({f"dev_{k}": v for k, v in metrics.items()})
            progress.history.append(record)
            log.write(record)
            value = metrics.get(metric, train_loss if metric == "loss" else None)
            if value is None and metric == "loss" and train_loss is None:
                return False, False  # nothing was learned and there is nothing to compare
            if value is None:
                raise TrainingError(f"evaluation returned no {metric!r} (got {sorted(metrics)})")
            schedule.observe(value, mode)
            improved = value > progress.best_value if mode == "max" else value < progress.best_value
            second = metrics.get(tiebreak, math.inf) if tiebreak else math.inf
            if tiebreak and value == progress.best_value and second < progress.best_tiebreak:
                improved = True  # as good on the selection metric, better on the tie-breaker
            if improved:
                progress.best_value, progress.best_tiebreak, progress.bad_evals = value, second, 0
                best_state = to_cpu(model.state_dict())
                progress.best_metrics = dict(metrics, **({"loss": train_loss} if metric == "loss" else {}))
                progress.best_step = progress.step
            else:
                progress.bad_evals += 1
            return improved, config.patience is not None and progress.bad_evals >= config.patience

        def write_checkpoint() -> None:
            if self.checkpoint_dir is None:
                return
            # Every rank's generators (and TBPTT state) go to rank 0, the only writer.
            gathered = ctx.all_gather_object((capture_rng_state(), epoch_rng, to_cpu(model.tbptt_state) if stateful else None))
            if manager is None:
                return
            progress.elapsed_s = time.perf_counter() - start
            # The best weights are the current ones when the best evaluation was at this
            # step; this file then is "the best checkpoint", kept when pruning.
            best_is_current = best_state is not None and progress.best_step == progress.step
            if best_is_current:
                progress.best_checkpoint_step = progress.step
            state = {
                "progress": dataclasses.asdict(progress),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": [g[0] for g in gathered],
                "epoch_rng": [g[1] for g in gathered],
                "tbptt_state": [g[2] for g in gathered] if stateful else None,
                "best_is_current": best_is_current,
                "best_model": None if best_is_current else best_state,
                "world_size": ctx.world_size,
                "config": to_dict(config),
            }
            protect = [progress.best_checkpoint_step] if progress.best_checkpoint_step is not None else []
            try:
                result.checkpoint = str(manager.save(state, progress.step, protect=protect))
            except OSError as err:
                # A full disk must not end a long run: the previous checkpoint is intact
                # and the next one will be tried again.
                logger.warning("seqlab: could not write checkpoint at step %d (%s); the previous one is kept", progress.step, err)

        def skip_step(what: str, epoch: int) -> None:
            optimizer.zero_grad(set_to_none=True)
            progress.nonfinite_in_row += 1
            progress.nonfinite_total += 1
            progress.epoch_skipped += 1
            if ctx.is_main:
                logger.warning(
                    "seqlab: epoch %d, step %d: the %s is NaN/inf; step skipped (%d in a row, %d in all)",
                    epoch, progress.step, what, progress.nonfinite_in_row, progress.nonfinite_total,
                )
            if progress.nonfinite_in_row >= config.max_nonfinite_steps:
                raise TrainingError(
                    f"the {what} was NaN/inf for {progress.nonfinite_in_row} steps in a row (step {progress.step}); "
                    "lower train.lr, set train.clip_norm, or check the data"
                )

        stop = progress.finished
        epoch = progress.epoch
        while not stop and epoch <= config.epochs:
            wrapped.train()
            if mid_epoch_resume:
                now = capture_rng_state()
                restore_rng_state(epoch_rng)
                if callable(reset_state):
                    reset_state()
                batches = self.batches(model, columns, epoch)
                restore_rng_state(now)
                if stateful:
                    model.tbptt_state = restored_tbptt
                mid_epoch_resume = False
            else:
                epoch_rng = capture_rng_state()
                if callable(reset_state):
                    reset_state()
                batches = self.batches(model, columns, epoch)
                progress.start_epoch()
            bar = tqdm(
                total=len(batches), initial=progress.batch_index, desc=f"epoch {epoch}/{config.epochs}",
                disable=not (ctx.is_main and show_progress(config.progress)), leave=False,
            )
            for index in range(progress.batch_index, len(batches)):
                step_start = time.perf_counter()
                shard, weight = ctx.shard(batches[index])
                shard = to_device(shard, device)
                schedule.apply(optimizer, epoch - 1, progress.step)
                with autocast(device, amp_dtype is not None, amp_dtype):
                    loss = wrapped(shard)
                loss = loss.float()
                objective = loss * weight if weight != 1.0 else loss
                penalty = weight_penalty(penalized, config.l1, config.l2) if penalized else None
                if penalty is not None:
                    objective = objective + penalty
                optimizer.zero_grad(set_to_none=True)
                # Backward even for a NaN loss: under DDP every rank must join the gradient
                # all-reduce of every step; the step is dropped below if need be.
                (scaler.scale(objective) if scaler is not None else objective).backward()
                tokens = int(shard[length_key].sum()) if weight > 0 and length_key in shard else 0
                over_budget = float(
                    ctx.is_main and config.time_budget_s is not None and time.perf_counter() - budget_start > config.time_budget_s
                )
                if ctx.distributed:
                    stats = torch.zeros(3, dtype=torch.float64, device=device)
                    stats[0] = loss.detach().double() * (weight / ctx.world_size)
                    stats[1], stats[2] = tokens, over_budget
                    loss_value, tokens_f, over_f = ctx.all_reduce_sum(stats).tolist()
                    tokens, over_budget = int(tokens_f), over_f > 0
                else:
                    loss_value, over_budget = float(loss.detach()), over_budget > 0
                penalty_value = float(penalty.detach()) if penalty is not None else 0.0
                progress.batch_index = index + 1
                if not (math.isfinite(loss_value) and math.isfinite(penalty_value)):
                    skip_step("loss", epoch)
                    bar.update(1)
                    continue
                if scaler is not None:
                    scaler.unscale_(optimizer)
                norm = clip_gradients(trainable, config.clip_norm, config.clip_value)
                if scaler is not None:
                    scale = scaler.get_scale()
                    scaler.step(optimizer)
                    scaler.update()
                    if scaler.get_scale() < scale:  # fp16 overflow: the scaler skipped this step
                        progress.overflow_total += 1
                        progress.epoch_overflow += 1
                        bar.update(1)
                        continue
                elif not math.isfinite(norm):
                    skip_step("gradient norm", epoch)
                    bar.update(1)
                    continue
                else:
                    optimizer.step()
                progress.nonfinite_in_row = 0
                progress.step += 1
                progress.loss_sum += loss_value
                progress.loss_count += 1
                progress.grad_norm_sum += norm
                progress.penalty_sum += penalty_value
                progress.train_tokens += tokens
                progress.train_seconds += time.perf_counter() - step_start
                bar.update(1)
                bar.set_postfix(
                    loss=f"{progress.loss_sum / progress.loss_count:.4f}",
                    tok_s=f"{progress.train_tokens / max(progress.train_seconds, 1e-9):.0f}",
                )
                improved = False
                if config.eval_every_steps and progress.step % config.eval_every_steps == 0 and not over_budget:
                    improved, early = evaluate_now(epoch)
                    if early:
                        stop, progress.stopped_by = True, "early_stopping"
                if over_budget:
                    stop, progress.stopped_by = True, "time_budget"
                every = config.checkpoint_every_steps
                if not stop and (improved or (every and progress.step % every == 0)):
                    write_checkpoint()
                if stop:
                    break
            bar.close()
            # Evaluate at the epoch end unless a step evaluation just did, at this very step.
            last = progress.history[-1] if progress.history else None
            evaluated_here = last is not None and last["step"] == progress.step and last["epoch"] == epoch
            if (progress.loss_count or progress.epoch_skipped) and not evaluated_here:
                _, early = evaluate_now(epoch)
                if early and not stop:
                    stop, progress.stopped_by = True, "early_stopping"
            # The epoch-end checkpoint is the start of the next epoch; after a stop for time
            # it is the batch where the run stopped, so that --resume finishes the epoch.
            if progress.batch_index >= len(batches):
                progress.epoch = epoch + 1
                progress.start_epoch()
            progress.finished = stop and progress.stopped_by == "early_stopping"
            write_checkpoint()
            epoch += 1

        if best_state is not None:
            model.load_state_dict(best_state)
        log.close()
        result.best_metrics, result.best_step = progress.best_metrics, progress.best_step
        result.history = progress.history
        result.steps, result.train_tokens, result.train_seconds = progress.step, progress.train_tokens, progress.train_seconds
        result.stopped_by, result.skipped_steps = progress.stopped_by, progress.nonfinite_total
        return result

    def _warn_changed_settings(self, saved: dict[str, Any], path: Path) -> None:
        current = to_dict(self.config)
        changed = sorted(k for k in current if k not in _FREE_ON_RESUME and k in saved and saved[k] != current[k])
        if changed:
            logger.warning(
                "seqlab: resuming from %s with changed train settings %s; the run will not match an uninterrupted one",
                path, ", ".join(f"{k}: {saved[k]!r} → {current[k]!r}" for k in changed),
            )
