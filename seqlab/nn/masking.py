"""Padding masks from sequence lengths.

A padded batch ``(B, T, ...)`` carries its true lengths ``(B,)``; most modules need
to know which of the ``T`` steps are real. One helper builds that mask, on the
device of the lengths, so no module re-derives it differently.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.errors import InputError


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``(B,)`` lengths → ``(B, max_len)`` bool mask, True at valid (non-padded) steps.

    ``max_len`` defaults to the longest length. Lengths longer than ``max_len`` or
    negative are an ``InputError`` (they mean the batch and its lengths disagree).

    >>> lengths_to_mask(torch.tensor([3, 1]), 4)
    tensor([[ True,  True,  True, False],
            [ True, False, False, False]])
    """
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise InputError(f"lengths must be a 1-D tensor (B,), got shape {tuple(lengths.shape)}")
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    if lengths.numel():
        low, high = int(lengths.min()), int(lengths.max())
        if low < 0 or high > max_len:
            raise InputError(
                f"lengths must lie in [0, {max_len}] (the padded length), got min {low} and max {high}"
            )
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)
