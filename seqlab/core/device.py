"""The one device policy: CUDA when there is a GPU, else the CPU, overridable; and CPU threads.

No other module calls ``.cuda()``: everything asks ``resolve_device`` and moves
tensors with ``to_device``. ``set_threads`` is the one place that decides how many CPU
threads torch uses (training, ``seqlab predict``/``eval``, ``Pipeline.load``).
"""
from __future__ import annotations

import contextlib
import os
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
    """``torch.autocast`` on CUDA or the CPU (``dtype``, bf16 by default); a no-op context when
    disabled or on another device. Whether to enable it is ``train.amp``'s decision
    (``seqlab.train.trainer.amp_settings``)."""
    if device.type not in ("cuda", "cpu") or not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16)


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX512-BF16 or AMX, as oneDNN sees it)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: ``auto_threads`` never gives more than this: seqlab's models are small (hidden sizes of
#: 64–512), so on a many-core machine more threads mostly add barrier waits; a config that
#: wants more says so (``train.threads``).
MAX_AUTO_THREADS = 4


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count`` where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_threads(cores: int | None = None) -> int:
    """The thread count for ``threads: null`` (auto): half the usable cores, at least 1, at most 4.

    Why half: torch's default (one thread per core) makes every intra-op kernel wait at a
    barrier for its slowest thread, so when anything else runs on the machine the threads
    stall each other. On a 2-core machine with other jobs busy, the shipped recipes trained
    3–23× slower with 2 threads than with 1 (docs/training.md has the figures). Half the
    cores leaves room for the data pipeline, the OS and a neighbour, and is 1 on 2 cores.

    >>> auto_threads(2), auto_threads(1), auto_threads(8), auto_threads(64)
    (1, 1, 4, 4)
    """
    cores = usable_cores() if cores is None else cores
    return max(1, min(MAX_AUTO_THREADS, cores // 2))


def set_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads (process-global) and return the number now in use.

    ``threads`` is used as given; ``None`` means auto: ``auto_threads()``, but never more than
    torch uses already, so ``OMP_NUM_THREADS=1`` or an earlier ``torch.set_num_threads(1)``
    stays in force.
    """
    if threads is None:
        threads = min(auto_threads(), torch.get_num_threads())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
