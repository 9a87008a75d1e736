"""Training checkpoints: safe to read, atomic to write, checked when read back.

A checkpoint holds everything needed to continue a run *exactly*: model, optimizer,
schedule and GradScaler states, the random generators (Python, NumPy, torch, CUDA), the
data position (epoch + batches consumed), any carried truncated-BPTT state, the best
metric and weights so far and the early-stopping counters.

Safety. ``torch.save`` writes a zip holding a pickle; ``torch.load(weights_only=True)``
rebuilds only tensors and plain containers/numbers/strings/bytes from it, never arbitrary
objects, so everything stored here is one of those (RNG states as tensors and tuples).

Atomicity. The bytes go to a temporary file that ``os.replace`` renames into place
(``seqlab.core.serialization.atomic_write_bytes``); a crash or a full disk leaves the
previous checkpoint untouched, and old checkpoints are pruned only after the new one is
in place.

Integrity. A flipped byte inside tensor data still loads (the zip reader does not check
CRCs), so each checkpoint carries a SHA-256 of its contents, recomputed on reading. A
truncated or corrupt file is refused with a message, and the one before it is used.

Files are ``<dir>/step-000000123.pt``; ``keep`` newest are kept plus the one holding the
best evaluation (``protect``).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import ModelFileError
from ..core.files import read_regular_bytes
from ..core.serialization import atomic_write_bytes

CHECKPOINT_FORMAT = "seqlab.checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d+)\.pt$")

logger = logging.getLogger("seqlab.train")


# -- random generators ------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """The state of every random generator, as tensors/tuples ``weights_only`` can read."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    # Only when CUDA is already in use: asking would otherwise start a CUDA context.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def _rng_problem(state: Any) -> str | None:
    """What is wrong with an RNG state (``capture_rng_state``'s shape), or None.

    Each part is tried on a *fresh* generator of its kind (``random.Random``,
    ``np.random.RandomState``, ``torch.Generator``), which runs the libraries' own checks
    (sizes, dtypes, an all-zero Mersenne Twister) without touching the global generators.
    """
    if not isinstance(state, dict):
        return f"expected a dict of generator states, got {type(state).__name__}"
    missing = [k for k in ("python", "numpy", "torch") if k not in state]
    if missing:
        return f"missing {', '.join(missing)}"
    python = state["python"]
    if not (isinstance(python, (tuple, list)) and len(python) == 3 and isinstance(python[1], (tuple, list))):
        return "'python' is not a (version, internal state, gauss) triple"
    try:
        random.Random().setstate((python[0], tuple(python[1]), python[2]))
    except (TypeError, ValueError, OverflowError) as err:
        return f"'python' is not a valid random state ({err})"
    numpy_state = state["numpy"]
    if not (isinstance(numpy_state, (tuple, list)) and len(numpy_state) == 4):
        return "'numpy' is not a (keys, pos, has_gauss, gauss) tuple"
    keys, pos, has_gauss, cached = numpy_state
    if not (isinstance(keys, torch.Tensor) and keys.dtype == torch.int64 and tuple(keys.shape) == (624,)):
        got = f"{keys.dtype} {tuple(keys.shape)}" if isinstance(keys, torch.Tensor) else type(keys).__name__
        return f"'numpy' keys must be 624 int64 values, got {got}"
    if bool(((keys < 0) | (keys >= 2**32)).any()):
        return "'numpy' keys must lie in [0, 2**32)"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (pos, has_gauss, cached)):
        return "'numpy' pos, has_gauss and gauss must be numbers"
    try:
        np.random.RandomState().set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    except (TypeError, ValueError, OverflowError) as err:
        return f"'numpy' is not a valid MT19937 state ({err})"
    torch_state = state["torch"]
    if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8 and torch_state.dim() == 1):
        got = f"{torch_state.dtype} {tuple(torch_state.shape)}" if isinstance(torch_state, torch.Tensor) else type(torch_state).__name__
        return f"'torch' must be a 1-D uint8 tensor, got {got}"
    try:
        torch.Generator().set_state(torch_state.cpu())
    except (RuntimeError, TypeError, ValueError) as err:
        return f"'torch' is not a valid generator state ({str(err).splitlines()[0]})"
    cuda = state.get("cuda") or []
    if not isinstance(cuda, (list, tuple)) or not all(
        isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 for t in cuda
    ):
        return "'cuda' must be a list of 1-D uint8 tensors"
    return None


def check_rng_state(state: Any, where: str) -> None:
    """``ModelFileError`` naming ``where`` unless ``state`` is a usable ``capture_rng_state`` result."""
    problem = _rng_problem(state)
    if problem is not None:
        raise ModelFileError(f"{where}: the saved random-generator state is malformed: {problem}")


def restore_rng_state(state: dict[str, Any], where: str = "random-generator state") -> None:
    """Put back what ``capture_rng_state`` returned.

    The whole state is checked first (``check_rng_state``), so a malformed one is a
    ``ModelFileError`` naming ``where`` and no generator is left half restored.
    """
    check_rng_state(state, where)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# -- contents ---------------------------------------------------------------------------
def to_cpu(value: Any) -> Any:
    """Tensors (in any nesting of dict/list/tuple) detached and copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, tuple):  # a named tuple becomes a plain one: weights_only reads no classes
        return tuple(to_cpu(v) for v in value)
    if isinstance(value, list):
        return [to_cpu(v) for v in value]
    return value


def move_tensors(value: Any, device: torch.device | str) -> Any:
    """Tensors (in any nesting of dict/list/tuple) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: move_tensors(v, device) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(move_tensors(v, device) for v in value)
    if isinstance(value, list):
        return [move_tensors(v, device) for v in value]
    return value


def _update_digest(digest: "hashlib._Hash", value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            digest.update(repr(key).encode())
            _update_digest(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}".encode())
        for item in value:
            _update_digest(digest, item)
    else:
        digest.update(f"V{type(value).__name__}:{value!r}".encode())


def content_digest(state: Any) -> str:
    """SHA-256 over every tensor's bytes, dtype and shape and every other value's repr."""
    digest = hashlib.sha256()
    _update_digest(digest, state)
    return digest.hexdigest()


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """The file contents for ``state`` (tensors moved to the CPU, digest attached)."""
    state = to_cpu(state)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "sha256": content_digest(state), "state": state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write one checkpoint atomically; an OSError (disk full…) leaves any old file intact."""
    path = Path(path)
    atomic_write_bytes(path, checkpoint_bytes(state))
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify one checkpoint; ``ModelFileError`` says why a file is unusable."""
    path = Path(path)
    # Only a regular file in its folder, not a link to one elsewhere (as for model folders).
    data = read_regular_bytes(path, root=path.parent)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle opcodes, refused globals…
        raise ModelFileError(f"checkpoint {str(path)!r} is truncated or corrupt ({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a seqlab training checkpoint (format {payload.get('format') if isinstance(payload, dict) else None!r})")
    version = payload.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise ModelFileError(f"checkpoint {str(path)!r} has format version {version!r}; this seqlab reads up to {CHECKPOINT_VERSION}")
    state = payload.get("state")
    if not isinstance(state, dict) or payload.get("sha256") != content_digest(state):
        raise ModelFileError(f"checkpoint {str(path)!r} is corrupt: its contents do not match their SHA-256")
    _check_rng_states(state, f"checkpoint {str(path)!r}")
    return state


def _check_rng_states(state: dict[str, Any], where: str) -> None:
    """The per-process RNG states a resume restores (``rng``; ``epoch_rng`` may hold None).

    A checksum only proves the file is what was written; a file written by other code (or
    edited and re-hashed) can still carry a state ``torch.set_rng_state`` would reject with a
    bare traceback, halfway through restoring. Checked here, it is refused like a corrupt file.
    """
    per_rank = state.get("rng")
    if not isinstance(per_rank, (list, tuple)) or not per_rank:
        raise ModelFileError(f"{where}: the saved random-generator state is malformed: 'rng' must be a non-empty list (one per process)")
    for rank, rng in enumerate(per_rank):
        check_rng_state(rng, f"{where}, process {rank}")
    epoch = state.get("epoch_rng", [])
    if not isinstance(epoch, (list, tuple)):
        raise ModelFileError(f"{where}: the saved random-generator state is malformed: 'epoch_rng' must be a list")
    for rank, rng in enumerate(epoch):
        if rng is not None:
            check_rng_state(rng, f"{where}, process {rank} (epoch start)")


# -- a directory of them ----------------------------------------------------------------
def checkpoint_step(path: Path) -> int | None:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Checkpoint files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p))


def find_checkpoint_dir(path: str | Path) -> Path:
    """``path`` itself, or ``path/checkpoints`` when given a run directory."""
    path = Path(path)
    if (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    return path


def load_latest_checkpoint(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint under ``path``; corrupt ones are refused, with a warning.

    ``path`` is a run directory (``<output>``), its ``checkpoints/`` folder, or one file.
    """
    path = Path(path)
    if path.is_file():
        return load_checkpoint(path), path
    directory = find_checkpoint_dir(path)
    candidates = list_checkpoints(directory)
    if not candidates:
        raise ModelFileError(
            f"no checkpoints to resume from in {str(directory)!r} (expected files step-NNNNNNNNN.pt, "
            "written when training runs with a checkpoint directory, e.g. by `seqlab train`)"
        )
    refused = []
    for candidate in reversed(candidates):
        try:
            state = load_checkpoint(candidate)
        except ModelFileError as err:
            refused.append(str(err))
            logger.warning("seqlab: %s; falling back to the previous checkpoint", err)
            continue
        return state, candidate
    raise ModelFileError(f"no usable checkpoint in {str(directory)!r}: " + "; ".join(refused))


class CheckpointManager:
    """Writes ``step-N.pt`` files into one directory and keeps the newest ``keep`` (+ protected).

    >>> import tempfile
    >>> manager = CheckpointManager(tempfile.mkdtemp(), keep=2)
    >>> for step in (1, 2, 3):
    ...     _ = manager.save({"step": step}, step, protect=[1])
    >>> [checkpoint_step(p) for p in manager.files()]
    [1, 2, 3]
    >>> _ = manager.save({"step": 4}, 4)
    >>> [checkpoint_step(p) for p in manager.files()]
    [3, 4]
    """

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = max(1, int(keep))

    def path(self, step: int) -> Path:
        return self.directory / f"step-{step:09d}.pt"

    def files(self) -> list[Path]:
        return list_checkpoints(self.directory)

    def remove_partial_writes(self) -> None:
        """Delete temporary files a killed writer left behind (``.step-….pt.tmp-…``)."""
        if not self.directory.is_dir():
            return
        for leftover in self.directory.glob(".step-*.pt.tmp-*"):
            try:
                leftover.unlink()
            except OSError:
                pass

    def save(self, state: dict[str, Any], step: int, protect: list[int] | tuple[int, ...] = ()) -> Path:
        """Write the checkpoint for ``step``, then prune. Raises OSError if the write fails."""
        path = save_checkpoint(self.path(step), state)
        self.prune(step, protect)
        return path

    def prune(self, current: int, protect: list[int] | tuple[int, ...] = ()) -> None:
        """Keep the ``keep`` newest up to ``current`` and the protected steps.

        Files *after* ``current`` are from a run that was rewound to an older checkpoint
        (the newer ones were refused as corrupt), so they are removed too.
        """
        files = self.files()
        kept_recent = {checkpoint_step(p) for p in files if checkpoint_step(p) <= current}
        kept_recent = set(sorted(kept_recent)[-self.keep :])
        for path in files:
            step = checkpoint_step(path)
            if step in kept_recent or step in protect:
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
