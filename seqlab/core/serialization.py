"""Safe, atomic model files: ``config.json`` + ``model.safetensors`` + stage files.

Nothing here ever unpickles: weights are read with safetensors, settings from JSON.
A directory is written under a temporary name and renamed into place, so a crash or a
full disk leaves either the old model or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import ModelFileError

FORMAT = "seqlab.pipeline"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib")


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    try:
        tmp.rename(final)
    except BaseException:
        if old is not None:
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _sniff(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[:1] == b"\x80" or path.suffix in (".pkl", ".pickle"):
        return "a Python pickle"
    if head[:2] == b"PK":
        return "a zip archive (the torch.save format, which holds a pickle)"
    return "a single file"


#: The format marker of the generative tasks' own save format, before they became pipelines.
RETIRED_GENERATIVE_FORMAT = "seqlab.generative"


def check_model_dir(path: str | Path) -> dict:
    """Validate a saved pipeline directory and return its config; refuse anything else."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{str(path)!r} does not exist; give the directory that Pipeline.save wrote")
    if path.is_file():
        kind = _sniff(path)
        raise ModelFileError(
            f"{str(path)!r} is {kind}, not a seqlab model directory. seqlab never loads pickled "
            "files (loading them can run arbitrary code); give the directory written by Pipeline.save "
            "(config.json + model.safetensors)"
        )
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        foreign = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        hint = f" It holds {', '.join(foreign)}: a checkpoint of another format, which seqlab will not unpickle." if foreign else ""
        raise ModelFileError(f"{str(path)!r} has no {CONFIG_FILE}, so it is not a seqlab model directory.{hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{str(config_path)!r} is corrupt (not valid UTF-8 JSON): {err}") from None
    if isinstance(config, dict) and config.get("format") == RETIRED_GENERATIVE_FORMAT:
        task = config.get("task") if config.get("task") in ("anomaly", "denoise", "cgan") else "anomaly|denoise|cgan"
        raise ModelFileError(
            f"{str(path)!r} was saved in the retired generative format ({RETIRED_GENERATIVE_FORMAT!r}); the {task} "
            f"task is now an ordinary pipeline: retrain it with `seqlab train pipelines/{task}.yaml`"
        )
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(
            f"{str(config_path)!r} is not a seqlab pipeline config (its 'format' is "
            f"{config.get('format') if isinstance(config, dict) else None!r}, expected {FORMAT!r}); "
            "is this a model of another library?"
        )
    version = config.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{str(config_path)!r}: 'format_version' is missing or not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} was saved in seqlab model format {version}, newer than this seqlab reads "
            f"({FORMAT_VERSION}); upgrade seqlab to load it"
        )
    if not (path / WEIGHTS_FILE).is_file():
        raise ModelFileError(f"{str(path)!r} has no {WEIGHTS_FILE}; the save was incomplete or the file was removed")
    return config


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save a module's parameters and buffers as safetensors (tied weights stored once)."""
    from safetensors.torch import save_model

    save_model(module, str(path), metadata=metadata)


def load_weights(module: torch.nn.Module, path: str | Path, device: torch.device | str = "cpu") -> None:
    """Load safetensors weights into ``module``, refusing missing, extra or misshapen tensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{str(path)!r} is truncated or corrupt and cannot be read: {err}") from None
    own = module.state_dict()
    # safetensors stores each shared (tied) tensor once; put it back under every name.
    for names in _shared_groups(module):
        stored = next((n for n in names if n in state), None)
        if stored is not None:
            for name in names:
                state.setdefault(name, state[stored])
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ModelFileError(
            f"{str(path)!r} does not fit this model: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}; it may belong to another task or config"
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ModelFileError(
                f"{str(path)!r}: tensor {name!r} has shape {tuple(state[name].shape)}, the model expects "
                f"{tuple(tensor.shape)}; it belongs to another configuration"
            )
    module.load_state_dict(state, strict=True)


def _shared_groups(module: torch.nn.Module) -> list[list[str]]:
    """Names that refer to one tensor (tied weights), grouped."""
    by_ptr: dict[int, list[str]] = {}
    for name, tensor in module.state_dict(keep_vars=False).items():
        if tensor.numel():
            by_ptr.setdefault(tensor.data_ptr(), []).append(name)
    return [names for names in by_ptr.values() if len(names) > 1]
