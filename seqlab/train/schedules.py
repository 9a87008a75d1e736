"""Learning-rate schedules: exponential and step decay, reduce-on-plateau, linear warmup.

The rate is a pure function of where training is plus the plateau's small state, so a
resumed run gets exactly the rate the uninterrupted run had:

    lr(epoch, step) = warmup(step) · max(min_lr, lr0 · decay(epoch) · plateau_scale)

with ``epoch`` the number of *completed* epochs (0 during the first) and ``step`` the
number of optimizer steps already taken (0 before the first):

- constant:    ``decay = 1``
- exponential: ``decay = e^(−k·epoch)``                      (``k = decay_rate``)
- step:        ``decay = gamma^⌊epoch / step_size⌋``
- plateau:     ``plateau_scale`` is multiplied by ``plateau_factor`` whenever the
  selection metric has not improved for more than ``plateau_patience`` evaluations in a
  row (then the count restarts) — the rule of ``torch.optim.lr_scheduler.ReduceLROnPlateau``
  with no threshold or cooldown;
- warmup:      ``warmup(step) = min(1, (step + 1) / warmup_steps)`` (1 when warmup_steps is 0),
  as in Goyal et al., 2017, "Accurate, Large Minibatch SGD", §2.2 (gradual warmup);
  it multiplies whichever schedule is chosen.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .config import TrainConfig


class LRSchedule:
    """The learning rate for each optimizer step, from a ``TrainConfig``.

    >>> s = LRSchedule(TrainConfig(lr=1.0, schedule="step", step_size=2, gamma=0.5))
    >>> [s.lr(epoch=e, step=100) for e in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    >>> LRSchedule(TrainConfig(lr=1.0, warmup_steps=4)).lr(epoch=0, step=0)
    0.25
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.plateau_scale = 1.0
        self.plateau_bad = 0
        self.plateau_best: float | None = None

    def decay(self, epoch: int) -> float:
        """The epoch-wise factor for ``epoch`` completed epochs."""
        c = self.config
        if c.schedule == "exponential":
            return math.exp(-c.decay_rate * epoch)
        if c.schedule == "step":
            return c.gamma ** (epoch // c.step_size)
        return 1.0

    def warmup(self, step: int) -> float:
        w = self.config.warmup_steps
        return 1.0 if w <= 0 else min(1.0, (step + 1) / w)

    def lr(self, epoch: int, step: int) -> float:
        c = self.config
        base = max(c.min_lr, c.lr * self.decay(epoch) * self.plateau_scale)
        return self.warmup(step) * base

    def observe(self, value: float, mode: str) -> None:
        """Feed one evaluation of the selection metric (``mode``: ``"max"`` or ``"min"``)."""
        if self.config.schedule != "plateau":
            return
        best = self.plateau_best
        if best is None or (value > best if mode == "max" else value < best):
            self.plateau_best, self.plateau_bad = value, 0
            return
        self.plateau_bad += 1
        if self.plateau_bad > self.config.plateau_patience:
            self.plateau_scale *= self.config.plateau_factor
            self.plateau_bad = 0

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, step: int) -> float:
        """Set the rate of every parameter group for the coming step; returns it."""
        rate = self.lr(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    # -- checkpoints (plain numbers only) ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "plateau_bad": self.plateau_bad, "plateau_best": self.plateau_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.plateau_bad = int(state["plateau_bad"])
        best = state.get("plateau_best")
        self.plateau_best = None if best is None else float(best)
