"""Gradient clipping: rescale by the global norm, and/or clamp each value.

Clipping the global gradient norm keeps one exploding step of a recurrent network from
wrecking its weights (Pascanu, Mikolov & Bengio, 2013, "On the difficulty of training
recurrent neural networks", §3.2); PyTorch's word-language-model example clips every
step. ``clip_gradients`` wraps torch's own routines and returns the norm *before*
clipping, which is the figure worth logging (and a NaN/inf there means a bad step).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from ..core.errors import ConfigError


def _check_limit(value: float | None, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ConfigError(f"clip_gradients: {name} must be a positive finite number or None, got {value!r}")


def clip_gradients(
    parameters: Iterable[Tensor] | Tensor,
    max_norm: float | None = None,
    max_value: float | None = None,
    norm_type: float = 2.0,
) -> float:
    """Clip gradients in place; return their total ``norm_type``-norm before any clipping.

    ``max_value`` clamps every element to ``[-max_value, max_value]`` (first); ``max_norm``
    then rescales all gradients together so that their total norm is at most ``max_norm``.
    Parameters without a gradient are skipped; with none at all the norm is 0.0. A
    non-finite norm is returned as is (the caller decides whether to skip the step).

    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> w.grad = torch.tensor([3.0, 4.0])
    >>> clip_gradients([w], max_norm=1.0)
    5.0
    >>> w.grad
    tensor([0.6000, 0.8000])
    """
    _check_limit(max_norm, "max_norm")
    _check_limit(max_value, "max_value")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    grads = [p.grad for p in params]
    total = torch.nn.utils.get_total_norm(grads, norm_type, error_if_nonfinite=False)
    if max_value is not None:
        torch.nn.utils.clip_grad_value_(params, max_value)
    if max_norm is not None:
        # After value clipping the norm has changed; rescale by the current one.
        norm = total if max_value is None else torch.nn.utils.get_total_norm(grads, norm_type)
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(total)
