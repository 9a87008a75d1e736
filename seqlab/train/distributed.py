"""Data-parallel training under ``torchrun``: process group, global-batch shards, collectives.

``torchrun --nproc_per_node=N -m seqlab train RECIPE`` starts N copies of the program with
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR`` set. Each copy builds the *same*
list of global batches (same data, same seed); for every global batch, rank ``r`` takes
the ``r``-th of N contiguous row slices (``shard_rows``). Its loss is weighted by
``N · n_r / B`` (``n_r`` its rows, ``B`` the batch's), so that DDP's gradient *average*
(Li et al., 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training") equals the gradient of the global batch's mean loss: the trained weights do
not depend on the number of processes (up to float rounding; exactly so for losses that
are means over examples, and without dropout, whose masks differ per process).

Every rank steps through the same number of global batches, so none runs out of data
early and blocks the others in an all-reduce; a rank whose slice is empty (a batch with
fewer rows than processes) computes on one row with weight 0. Decisions that end a loop
(time budget, a NaN loss, early stopping) are taken from all-reduced or broadcast values,
so all ranks take them together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import DeviceError, TrainingError


def env_rank() -> int:
    """This process's rank from torchrun's environment (0 outside torchrun)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_main_process() -> bool:
    """True on rank 0 (and outside torchrun): the process that writes files and prints."""
    return env_rank() == 0


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def process_device(device: torch.device | str) -> torch.device:
    """Under torchrun on CUDA, this process's own GPU (``cuda:LOCAL_RANK``), made current."""
    device = torch.device(device)
    if device.type != "cuda" or env_world_size() <= 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise DeviceError(
            f"torchrun process with LOCAL_RANK={local} needs GPU {local}, but this machine has "
            f"{torch.cuda.device_count()}; use --nproc_per_node <= {torch.cuda.device_count()}"
        )
    device = torch.device("cuda", local)
    torch.cuda.set_device(device)
    return device


def shard_rows(rows: int, rank: int, world: int) -> tuple[int, int]:
    """``(start, count)`` of rank ``rank``'s contiguous slice of ``rows`` rows.

    >>> [shard_rows(5, r, 2) for r in range(2)]
    [(0, 3), (3, 2)]
    >>> shard_rows(1, 1, 2)
    (1, 0)
    """
    base, extra = divmod(rows, world)
    count = base + (1 if rank < extra else 0)
    start = rank * base + min(rank, extra)
    return start, count


def batch_rows(batch: dict[str, Any]) -> int:
    """The number of examples in a batch: the first axis of its first tensor with one."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() >= 1:
            return int(value.shape[0])
    raise TrainingError(f"cannot split a batch without tensors (columns {sorted(batch)}) across processes")


@dataclass
class DistributedContext:
    """Rank, world size and device of this process, and the few collectives training needs.

    >>> ctx = DistributedContext()            # a single process
    >>> ctx.world_size, ctx.is_main
    (1, True)
    >>> shard, weight = ctx.shard({"x": torch.arange(4)})
    >>> shard["x"].tolist(), weight
    ([0, 1, 2, 3], 1.0)
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @classmethod
    def from_environment(cls, device: torch.device | str) -> "DistributedContext":
        """Join the process group torchrun describes (NCCL on GPUs, gloo on CPU), if any."""
        device = torch.device(device)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), process_device(device), owns_group=False)
        if env_world_size() <= 1:
            return cls(0, 1, device)
        if not dist.is_available():
            raise TrainingError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        device = process_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            if device.type == "cuda":
                dist.init_process_group(backend, device_id=device)
            else:
                dist.init_process_group(backend)
        except (ValueError, RuntimeError) as err:
            raise TrainingError(
                f"cannot join the torch.distributed process group ({backend}): {err}; "
                "start distributed training with torchrun --nproc_per_node=N -m seqlab train RECIPE"
            ) from None
        return cls(dist.get_rank(), dist.get_world_size(), device, owns_group=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """This rank's rows of a global batch, and the weight of its mean loss."""
        if not self.distributed:
            return batch, 1.0
        rows = batch_rows(batch)
        start, count = shard_rows(rows, self.rank, self.world_size)
        weight = self.world_size * count / rows
        if count == 0:  # fewer rows than ranks: compute on one row, contribute nothing
            start, count = 0, 1
        shard = {
            k: v[start : start + count] if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == rows else v
            for k, v in batch.items()
        }
        return shard, weight

    def wrap(self, model: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
        """``model`` in DDP when there are several processes, else ``model`` itself."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
        return values

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (others pass anything; they wait for rank 0)."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order (a list of one outside torchrun)."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self, wait: bool = True) -> None:
        """Leave the process group if this context joined it (after the others, if ``wait``)."""
        if self.owns_group and torch.distributed.is_initialized():
            if wait:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
            self.owns_group = False
