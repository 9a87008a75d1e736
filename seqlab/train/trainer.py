"""The Trainer: mini-batches, optimizer, clipping, dev evaluation, best-model keeping, logs.

It knows a task only through the task-model interface (``seqlab.core.task.TaskModel``):
``pad_values``/``length_column`` to batch, ``loss(batch)`` to learn, and an ``evaluate``
callback (given by the pipeline) that returns dev metrics including the model's
``selection_metric``. A model may override ``train_batches`` to stream its own batches
(the language model does this for truncated BPTT).
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.device import autocast, to_device
from ..core.errors import DataError, TrainingError
from ..data.collate import bucket_batches, pad_collate, select_rows
from .config import TrainConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named in the config."""
    params = [p for p in parameters if p.requires_grad]
    name = config.optimizer
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def show_progress(setting: str) -> bool:
    """Bars on a terminal (or when forced on); quiet in logs and CI."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    return sys.stderr.isatty()


@dataclass
class TrainResult:
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    stopped_by: str = "epochs"

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds else 0.0


class Trainer:
    """Train a task model on processed columns.

    >>> from seqlab.train import TrainConfig
    >>> Trainer(TrainConfig(epochs=1)).config.epochs
    1
    """

    def __init__(self, config: TrainConfig | None = None, device: torch.device | str = "cpu", log_dir: str | Path | None = None) -> None:
        self.config = config or TrainConfig()
        self.device = torch.device(device)
        self.log_dir = Path(log_dir) if log_dir is not None else None

    # -- batching -------------------------------------------------------------------
    def batches(self, model: Any, columns: Mapping[str, list], epoch: int) -> list[dict[str, torch.Tensor]]:
        custom = getattr(model, "train_batches", None)
        if callable(custom):
            return custom(columns, self.config, epoch)
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
    ) -> TrainResult:
        config = self.config
        size = len(next(iter(columns.values()))) if columns else 0
        if size == 0:
            raise DataError("the training data is empty: nothing to train on")
        torch.manual_seed(config.seed)
        model.to(self.device)
        optimizer = build_optimizer(model.parameters(), config)
        # Without dev data the best model is the one with the lowest training loss.
        metric, mode = (model.selection_metric, model.selection_mode) if evaluate is not None else ("loss", "min")
        result = TrainResult()
        best_value = -math.inf if mode == "max" else math.inf
        best_state: dict[str, torch.Tensor] | None = None
        bad_evals = 0
        nonfinite = 0
        start = time.perf_counter()
        log = self._open_log()
        length_key = f"{model.length_column()}_lengths"

        def run_evaluation(epoch: int, train_loss: float) -> bool:
            """Evaluate, keep the best weights; True when early stopping says stop."""
            nonlocal best_value, best_state, bad_evals
            metrics = evaluate() if evaluate is not None else {}
            model.train()
            record = {"epoch": epoch, "step": result.steps, "train_loss": train_loss,
                      "elapsed_s": round(time.perf_counter() - start, 2),
                      "tokens_per_s": round(result.train_tokens / max(result.train_seconds, 1e-9), 1),
                      **{f"dev_{k}": v for k, v in metrics.items()}}
            result.history.append(record)
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            value = metrics.get(metric, train_loss if metric == "loss" else None)
            if value is None:
                raise TrainingError(f"evaluation returned no {metric!r} (got {sorted(metrics)})")
            improved = value > best_value if mode == "max" else value < best_value
            if improved:
                best_value, bad_evals = value, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                result.best_metrics, result.best_step = dict(metrics, **({"loss": train_loss} if metric == "loss" else {})), result.steps
            else:
                bad_evals += 1
            return config.patience is not None and bad_evals >= config.patience

        stop = False
        for epoch in range(1, config.epochs + 1):
            model.train()
            batches = self.batches(model, columns, epoch)
            bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", disable=not show_progress(config.progress), leave=False)
            loss_sum, loss_count = 0.0, 0
            for batch in bar:
                step_start = time.perf_counter()
                batch = to_device(batch, self.device)
                with autocast(self.device, config.amp):
                    loss = model(batch)
                if not torch.isfinite(loss):
                    nonfinite += 1
                    optimizer.zero_grad(set_to_none=True)
                    if nonfinite >= config.max_nonfinite_steps:
                        raise TrainingError(
                            f"the loss was NaN/inf for {nonfinite} steps in a row (step {result.steps}); "
                            "lower train.lr or check the data"
                        )
                    continue
                nonfinite = 0
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_value is not None:
                    torch.nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
                if config.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                optimizer.step()
                result.steps += 1
                loss_value = float(loss.detach())
                loss_sum += loss_value
                loss_count += 1
                if length_key in batch:
                    result.train_tokens += int(batch[length_key].sum())
                result.train_seconds += time.perf_counter() - step_start
                bar.set_postfix(loss=f"{loss_sum / loss_count:.4f}", tok_s=f"{result.tokens_per_s:.0f}")
                over_budget = config.time_budget_s is not None and time.perf_counter() - start > config.time_budget_s
                if config.eval_every_steps and result.steps % config.eval_every_steps == 0 and not over_budget:
                    if run_evaluation(epoch, loss_sum / loss_count):
                        stop, result.stopped_by = True, "early_stopping"
                        break
                if over_budget:
                    stop, result.stopped_by = True, "time_budget"
                    break
            bar.close()
            if loss_count and run_evaluation(epoch, loss_sum / loss_count) and not stop:
                stop, result.stopped_by = True, "early_stopping"
            if stop:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        if log is not None:
            log.close()
        return result

    def _open_log(self):
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.log_dir / "metrics.jsonl", "w", encoding="utf-8")
