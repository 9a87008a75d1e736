"""L1, L2 and elastic-net penalties added to the training loss.

    penalty(θ) = l1 · Σ_w |w| + l2 · Σ_w w²

summed over the *weights*: every trainable parameter with two or more dimensions
(weight matrices, embedding tables, convolution kernels). Biases and normalisation
gains (one-dimensional) are left alone, as is usual — penalising a bias only shifts the
decision threshold (Goodfellow, Bengio & Courville, 2016, *Deep Learning*, §7.1). With
both coefficients > 0 this is the elastic net (Zou & Hastie, 2005). The gradient of the
L2 term is ``2·l2·w``, so ``l2 = λ/2`` matches an SGD ``weight_decay`` of ``λ`` on the
same parameters.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def penalized_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the penalties apply to: trainable, at least two-dimensional.

    >>> [tuple(p.shape) for p in penalized_parameters(nn.Linear(3, 2))]
    [(2, 3)]
    """
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]


def weight_penalty(parameters: Iterable[torch.Tensor], l1: float = 0.0, l2: float = 0.0) -> torch.Tensor | None:
    """``l1·Σ|w| + l2·Σw²`` over ``parameters`` (float32); None when both are 0.

    >>> w = torch.tensor([[1.0, -2.0]])
    >>> float(weight_penalty([w], l1=0.5, l2=0.25))
    2.75
    """
    if not l1 and not l2:
        return None
    total = None
    for p in parameters:
        p32 = p.float()
        term = 0.0
        if l1:
            term = term + l1 * p32.abs().sum()
        if l2:
            term = term + l2 * p32.pow(2).sum()
        total = term if total is None else total + term
    return total
