"""The one device policy: CUDA when there is a GPU, else the CPU, overridable.

No other module calls ``.cuda()``: everything asks ``resolve_device`` and moves
tensors with ``to_device``.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from .errors import DeviceError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` → cuda if available else cpu; ``"cuda"`` without a GPU is an error.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {spec!r} is not a device name (use auto, cpu, cuda or cuda:N): {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} was asked for, but this machine has no usable CUDA GPU "
                "(torch.cuda.is_available() is False); use device: auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type not in ("cpu", "mps"):
        raise DeviceError(f"device {spec!r} is not supported (use auto, cpu or cuda)")
    return device


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch to ``device``; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def autocast(device: torch.device, enabled: bool = True, dtype: torch.dtype | None = None):
    """Mixed precision on CUDA only; a no-op context on the CPU."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype or torch.bfloat16)
