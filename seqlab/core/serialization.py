"""Safe, atomic model files: ``config.json`` + ``model.safetensors`` + stage files.

Nothing here ever unpickles: weights are read with safetensors, settings from JSON.
A save is a transaction (``seqlab.core.files.model_transaction``): the new files are written
into a hidden staging folder, committed by one atomic journal write and moved into place, so a
crash at any instruction leaves either the old model or the new one, never half of one, and a
save replaces only the files the previous save wrote.

Loading reads only regular files inside the model folder (no symbolic links), compares the
tensor shapes in the safetensors header with the model the config describes *before* that
model is allocated (a 200 KB folder cannot make seqlab allocate gigabytes), and refuses NaN or
infinite weights, naming the tensor.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .errors import ConfigError, ModelFileError
from .files import ModelFiles, default_mode, excerpt, model_transaction, open_regular, parse_json_bytes, read_json_file, read_regular_bytes

FORMAT = "seqlab.pipeline"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib")


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a staging folder whose entries replace the model in ``final`` only on success.

    ``final`` must be new, empty or seqlab's own; see ``seqlab.core.files.model_transaction``.
    """
    with model_transaction(final) as staging:
        yield staging


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.fchmod(fd, default_mode())  # mkstemp makes 0600; a saved file gets the umask's mode
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


def read_config(path: str | Path, files: ModelFiles | None = None) -> dict | None:
    """The ``config.json`` of a model folder as a dict; None when the folder has none.

    Read as a regular file inside the folder (never through a link), at most 16 MB, nested at
    most 64 levels (a 100,000-deep file is refused, not a RecursionError).
    """
    path = Path(path)
    files = files or ModelFiles(path)
    config_path = files.path(CONFIG_FILE)
    if not os.path.lexists(config_path):
        return None
    config = read_json_file(config_path, path)
    if not isinstance(config, dict):
        raise ModelFileError(f"{str(config_path)!r} is not a seqlab pipeline config (it holds a JSON {type(config).__name__}, not an object)")
    return config


def read_meta(path: str | Path) -> dict:
    """The ``meta`` a save recorded in ``config.json`` (the recipe, the training summary); {} when
    there is none or the config cannot be read (read as safely as ``read_config``)."""
    from .errors import SeqlabError

    try:
        meta = (read_config(path) or {}).get("meta")
    except SeqlabError:
        return {}
    return meta if isinstance(meta, dict) else {}


def is_exported_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an artefact written by ``seqlab export`` (its config.json has an ``export`` entry).

    Any doubt (no folder, no or a bad config.json) is False: the ordinary load then says what is wrong.
    """
    path = Path(path)
    try:
        if not path.is_dir():
            return False
        config = read_config(path)
    except (ModelFileError, OSError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT and "export" in config


def check_model_dir(path: str | Path, files: ModelFiles | None = None, weights: bool = True) -> dict:
    """Validate a saved pipeline directory and return its config; refuse anything else.

    ``weights=False``: an exported artefact, which has no ``model.safetensors``.
    """
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
    if not path.is_dir():
        raise ModelFileError(f"{str(path)!r} is not a folder; give the directory that Pipeline.save wrote")
    files = files or ModelFiles(path)
    config_path = files.path(CONFIG_FILE)
    config = read_config(path, files)
    if config is None:
        foreign = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        hint = f" It holds {', '.join(foreign)}: a checkpoint of another format, which seqlab will not unpickle." if foreign else ""
        raise ModelFileError(f"{str(path)!r} has no {CONFIG_FILE}, so it is not a seqlab model directory.{hint}")
    if config.get("format") == RETIRED_GENERATIVE_FORMAT:
        task = config.get("task") if config.get("task") in ("anomaly", "denoise", "cgan") else "anomaly|denoise|cgan"
        raise ModelFileError(
            f"{str(path)!r} was saved in the retired generative format ({RETIRED_GENERATIVE_FORMAT!r}); the {task} "
            f"task is now an ordinary pipeline: retrain it with `seqlab train pipelines/{task}.yaml`"
        )
    if config.get("format") != FORMAT:
        raise ModelFileError(
            f"{str(config_path)!r} is not a seqlab pipeline config (its 'format' is "
            f"{excerpt(config.get('format'))}, expected {FORMAT!r}); is this a model of another library?"
        )
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{str(config_path)!r}: 'format_version' is missing or not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} was saved in seqlab model format {version}, newer than this seqlab reads "
            f"({FORMAT_VERSION}); upgrade seqlab to load it"
        )
    if weights and not os.path.lexists(files.path(WEIGHTS_FILE)):
        raise ModelFileError(f"{str(path)!r} has no {WEIGHTS_FILE}; the save was incomplete or the file was removed")
    return config


def save_weights(module: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save a module's parameters and buffers as safetensors (tied weights stored once)."""
    from safetensors.torch import save_model

    save_model(module, str(path), metadata=metadata)
    os.chmod(path, default_mode())  # safetensors creates its file 0600 whatever the umask


# -- the safetensors header, read before anything is allocated -----------------------------------
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
                "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8}
#: safetensors' own limit on the JSON header.
MAX_HEADER_BYTES = 100 * 2**20


def _corrupt(path: Path, why: str) -> ModelFileError:
    return ModelFileError(f"{str(path)!r} is truncated or corrupt and cannot be read: {why}")


def parse_safetensors_header(head: bytes, file_size: int, path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` from a safetensors file's first bytes, checked against its size.

    ``head`` holds at least the 8-byte length and the JSON header. Every tensor's byte range
    must lie inside the file and match its shape and dtype, so the shapes cannot promise more
    memory than the file holds.
    """
    path = Path(path)
    if len(head) < 8 or file_size < 8:
        raise _corrupt(path, f"{file_size} bytes, shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", head[:8])
    if length > MAX_HEADER_BYTES or 8 + length > file_size or len(head) < 8 + length:
        raise _corrupt(path, f"its header claims {length} bytes, the file has {file_size}")
    header = parse_json_bytes(head[8 : 8 + length], f"the header of {str(path)!r}", max_depth=4)
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    body = file_size - 8 - length
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _corrupt(path, f"the header entry {excerpt(name)} is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _DTYPE_BYTES:
            raise _corrupt(path, f"tensor {excerpt(name)} has an unknown dtype {excerpt(dtype)}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise _corrupt(path, f"tensor {excerpt(name)} has an invalid shape {excerpt(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= body):
            raise _corrupt(path, f"tensor {excerpt(name)} has data offsets {excerpt(offsets)} outside the file")
        if math.prod(shape) * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise _corrupt(path, f"tensor {excerpt(name)} of shape {tuple(shape)} does not match its {offsets[1] - offsets[0]} bytes")
        out[name] = (dtype, tuple(shape))
    return out


def read_safetensors_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Read only the header of a safetensors file (a regular file; see ``parse_safetensors_header``)."""
    path = Path(path)
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        first = handle.read(8)
        if len(first) == 8:
            (length,) = struct.unpack("<Q", first)
            if length <= MAX_HEADER_BYTES and 8 + length <= size:
                first += handle.read(length)
    return parse_safetensors_header(first, size, path)


def _tied_groups(state: dict[str, Any]) -> list[list[str]]:
    """Names bound to one tensor object (tied weights); works on the meta device too."""
    by_id: dict[int, list[str]] = {}
    for name, tensor in state.items():
        by_id.setdefault(id(tensor), []).append(name)
    return [names for names in by_id.values() if len(names) > 1]


def check_header_fits(expected: dict[str, tuple[int, ...]], groups: list[list[str]], header: dict, path: str | Path,
                      what: str = "this model") -> None:
    """Refuse weights whose names or shapes differ from ``expected`` (tied names count once)."""
    tied = {name: group for group in groups for name in group}
    missing = sorted(n for n in expected if n not in header and not any(t in header for t in tied.get(n, ())))
    unexpected = sorted(n for n in header if n not in expected)
    if missing or unexpected:
        raise ModelFileError(
            f"{str(path)!r} does not fit {what}: missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
            f"unexpected [{', '.join(excerpt(n, 60) for n in unexpected[:5])}]{'…' if len(unexpected) > 5 else ''}; "
            "it may belong to another task or config"
        )
    for name, (_, shape) in header.items():
        if shape != tuple(expected[name]):
            raise ModelFileError(
                f"{str(path)!r}: tensor {name!r} has shape {shape}, {what} expects {tuple(expected[name])}; "
                "it belongs to another configuration (config.json and the weights disagree)"
            )


class _SkipInitOnMeta(torch.overrides.TorchFunctionMode):
    """While a model is built on the meta device: no weight initialisation, small tensors real.

    A meta tensor has no values to initialise, and torch runs meta ``normal_``/``uniform_``
    through its Python reference kernels, whose first use imports torch._dynamo and sympy
    (~900 modules, >100 MB); so value-filling in-place ops on meta tensors are skipped (shapes
    are untouched). Tensors made from given values, and small ones (up to ``SMALL`` elements,
    ``BUDGET`` bytes in all), are made on the CPU for real: a model may compute with them while
    it is built (the CRF's transition constraints) and they cost nothing.
    """

    SMALL = 1 << 16
    BUDGET = 64 << 20
    _SKIPPED = frozenset({"normal_", "uniform_", "fill_", "zero_", "copy_", "bernoulli_", "exponential_", "random_",
                          "log_normal_", "cauchy_", "geometric_", "clamp_", "mul_", "div_", "add_", "sub_", "fmod_"})
    _FROM_VALUES = (torch.tensor, torch.as_tensor, torch.asarray)
    _BY_SIZE = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.eye, torch.arange)

    def __init__(self) -> None:
        super().__init__()
        self.real_bytes = 0

    @staticmethod
    def _numel(func, args, kwargs) -> int | None:
        try:
            if func is torch.arange:
                ends = [float(a) for a in args[:3]]
                start, end, step = (0.0, ends[0], 1.0) if len(ends) == 1 else (ends[0], ends[1], ends[2] if len(ends) > 2 else 1.0)
                return max(0, math.ceil((end - start) / step))
            if func is torch.eye:
                return int(args[0]) * int(args[1] if len(args) > 1 else args[0])
            size = kwargs.get("size", args[0] if args and not isinstance(args[0], int) else args[: 1 if func is torch.full else None])
            if func is torch.full and args and isinstance(args[0], int):
                size = (args[0],)
            return math.prod(int(d) for d in size)
        except (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError):
            return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("device") is None and (func in self._FROM_VALUES or func in self._BY_SIZE):
            numel = None if func in self._FROM_VALUES else self._numel(func, args, kwargs)
            if func in self._FROM_VALUES or (numel is not None and numel <= self.SMALL and self.real_bytes + 8 * numel <= self.BUDGET):
                out = func(*args, **{**kwargs, "device": "cpu"})
                self.real_bytes += out.numel() * out.element_size()
                return out
        first = args[0] if args else kwargs.get("tensor", kwargs.get("input"))  # nn.init passes tensor=…
        if isinstance(first, torch.Tensor) and first.is_meta and (
            getattr(func, "__module__", None) == "torch.nn.init" or getattr(func, "__name__", "") in self._SKIPPED
        ):
            return first
        return func(*args, **kwargs)


def check_weights_before_building(build: Callable[[], torch.nn.Module], path: str | Path) -> None:
    """Compare the weights' header with the model ``build`` makes, building it on the meta device.

    A meta model has shapes but no storage, so a config.json that describes a model of
    gigabytes is refused before any of it is allocated. A model that cannot be built on the meta
    device is checked by ``load_weights`` after it is built instead.
    """
    header = read_safetensors_header(path)
    try:
        with torch.device("meta"), _SkipInitOnMeta():
            skeleton = build()
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - some module cannot be made on meta; load_weights still checks
        return
    state = skeleton.state_dict(keep_vars=True)
    check_header_fits({k: tuple(v.shape) for k, v in state.items()}, _tied_groups(state), header, path,
                      what="this model (the one its config.json describes)")


def load_weights(module: torch.nn.Module, path: str | Path, device: torch.device | str = "cpu") -> None:
    """Load safetensors weights into ``module``, refusing missing, extra, misshapen or non-finite tensors.

    The file must be a regular file (not a link); inside ``reading_model`` it must lie in the model folder.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    path = Path(path)
    data = read_regular_bytes(path)
    header = parse_safetensors_header(data, len(data), path)
    own = module.state_dict()
    check_header_fits({k: tuple(v.shape) for k, v in own.items()}, _shared_groups(module), header, path)
    try:
        state = load_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _corrupt(path, excerpt(str(err), 160)) from None
    del data
    for name, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
            raise ModelFileError(
                f"{str(path)!r}: tensor {name!r} holds {bad} {kind} value(s); the weights are damaged "
                "(or were saved from a diverged run) and would make every prediction meaningless"
            )
    # safetensors stores each shared (tied) tensor once; put it back under every name.
    for names in _shared_groups(module):
        stored = next((n for n in names if n in state), None)
        if stored is not None:
            for name in names:
                state.setdefault(name, state[stored])
    if str(device) != "cpu":
        state = {k: v.to(device) for k, v in state.items()}
    module.load_state_dict(state, strict=True)


def _shared_groups(module: torch.nn.Module) -> list[list[str]]:
    """Names that refer to one tensor (tied weights), grouped."""
    by_ptr: dict[int, list[str]] = {}
    for name, tensor in module.state_dict(keep_vars=False).items():
        if tensor.numel():
            by_ptr.setdefault(tensor.data_ptr(), []).append(name)
    return [names for names in by_ptr.values() if len(names) > 1]
