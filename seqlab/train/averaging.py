"""Weight averaging: an exponential moving average (EMA, Polyak averaging) of the weights.

After every optimizer step the average moves toward the current weights::

    d_t   = min(decay, (1 + t) / (10 + t))        # t: updates so far (a warm-up of the decay)
    avg  ← d_t · avg + (1 − d_t) · θ

(Polyak & Juditsky 1992; the warm-up of ``d_t`` is TensorFlow's ``ExponentialMovingAverage``
with ``num_updates``, so that early evaluations do not see the random initial weights.)
The Trainer evaluates, selects and saves the *averaged* weights while it goes on training
the current ones: averaging smooths the noise of the last steps, which usually generalises
better than any single step's weights (docs/training.md, "Weight averaging").

Only floating-point parameters and buffers are averaged; other buffers (counters, integer
indices) are copied from the model at each update.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """An EMA of ``model``'s state, kept beside it.

    >>> m = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = m.weight.fill_(0.0)
    >>> avg = WeightAverage(m, decay=0.5)
    >>> with torch.no_grad():
    ...     _ = m.weight.fill_(1.0)
    >>> avg.update(m)                    # d_0 = min(0.5, 1/10) = 0.1
    >>> round(float(avg.state["weight"]), 3)
    0.9
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the averaging decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.state: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        t = self.updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward ``model``'s current state (call after each optimizer step)."""
        weight = 1.0 - self.current_decay()
        averaged, current, copied = [], [], []
        for name, value in model.state_dict().items():
            mine = self.state[name]
            if value.is_floating_point():
                averaged.append(mine)
                current.append(value.detach().to(mine.dtype))
            else:
                copied.append((mine, value))
        if averaged:
            torch._foreach_lerp_(averaged, current, weight)
        for mine, value in copied:
            mine.copy_(value)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Inside the block ``model`` holds the averaged weights; its own come back after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        if set(saved["state"]) != set(self.state):
            raise KeyError(f"the saved average holds {sorted(saved['state'])[:5]}..., the model {sorted(self.state)[:5]}...")
        self.updates = int(saved["updates"])
        for name, value in saved["state"].items():
            self.state[name].copy_(value)
