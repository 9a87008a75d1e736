"""``seqlab export``: a saved pipeline's network as ONNX or TorchScript, loaded back as a Pipeline.

A task declares the tensor-in/tensor-out part of its network (``TaskModel.network_outputs``,
with example inputs and dynamic axes) and reaches it in prediction only through
``TaskModel.run_network``. Export traces that part once (``torch.onnx.export``, TorchScript
``torch.jit.trace``), optionally with int8 dynamic quantisation of the recurrent and linear
layers, and writes an artefact folder:

    config.json            the pipeline's config + ``"export": {format, int8, source, versions, inputs,
                           outputs, files: {path: sha256}}``
    network.onnx | network.torchscript
    decoder.safetensors    the weights the Python decoding reads (NER: the CRF), when there are any
    stages/…               the stages' own files, as ``Pipeline.save`` writes them

``seqlab.load(folder)`` sees the ``export`` entry, checks the SHA-256 of every file against
it (refusing a changed, missing or unlisted file), loads the stages as usual, builds the
task model from its config (its own weights are never used), puts the decoder weights in,
and makes the exported network replace ``network_outputs``: ``pipe("text")``,
``pipe.predict`` and ``pipe.evaluate`` then run the same Python decoding on its outputs.
"""
from __future__ import annotations

import copy
import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .core import registry
from .core.config import to_dict
from .core.device import set_threads
from .core.errors import ConfigError, DataError, InputError, ModelFileError, OutputDirError
from .core.files import ModelFiles, load_consistently, model_transaction, read_regular_bytes
from .core.serialization import CONFIG_FILE, FORMAT, FORMAT_VERSION, check_model_dir, read_meta, write_json

FORMATS = ("onnx", "torchscript")
NETWORK_FILES = {"onnx": "network.onnx", "torchscript": "network.torchscript"}
DECODER_FILE = "decoder.safetensors"
#: ONNX opset of the exported graphs (LSTM/GRU, dynamic shapes; well inside what onnxruntime 1.2x runs).
OPSET = 17
#: Layers that ``--int8`` quantises dynamically (int8 weights, activations quantised on the fly).
INT8_LAYERS = (nn.LSTM, nn.GRU, nn.Linear)
#: ONNX operators that ``--int8`` quantises (onnxruntime.quantization.quantize_dynamic).
INT8_ONNX_OPS = ["MatMul", "Gemm", "LSTM", "GRU"]
_SHA256 = re.compile(r"[0-9a-f]{64}")


def exportable_tasks() -> list[str]:
    """The registered tasks that ``seqlab export`` can export."""
    out = []
    for name in registry.TASKS:
        try:
            if registry.task_class(name).exportable:
                out.append(name)
        except Exception:  # noqa: BLE001 - a third-party task that cannot be imported is not exportable
            continue
    return out


class _Network(nn.Module):
    """``model.network_outputs`` as a module of positional tensors → a tuple (what tracing takes)."""

    def __init__(self, model: nn.Module, inputs: list[str], outputs: list[str]) -> None:
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.network_outputs(dict(zip(self.inputs, tensors)))
        return tuple(out[name] for name in self.outputs)


# -- the runtimes that replace network_outputs -------------------------------------------------
class OnnxNetwork:
    """An ONNX Runtime session (CPU provider) called with named torch tensors, returning named tensors."""

    def __init__(self, data: bytes, inputs: list[str], outputs: list[str], threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelFileError(f"the ONNX network cannot be loaded by onnxruntime: {str(err)[:200]}") from None
        # The exporter drops graph inputs the network does not read; feed only the ones it has.
        self.inputs = [i.name for i in self.session.get_inputs()]
        unknown = [name for name in self.inputs if name not in inputs]
        if unknown or [o.name for o in self.session.get_outputs()] != list(outputs):
            raise ModelFileError(f"the ONNX network's inputs/outputs do not match config.json (inputs {self.inputs})")
        self.outputs = list(outputs)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feeds = {name: inputs[name].detach().cpu().contiguous().numpy() for name in self.inputs}
        values = self.session.run(self.outputs, feeds)
        return {name: torch.from_numpy(value) for name, value in zip(self.outputs, values)}


class TorchScriptNetwork:
    """A TorchScript module (loaded with ``torch.jit.load`` from checked bytes) with named inputs and outputs."""

    def __init__(self, data: bytes, inputs: list[str], outputs: list[str]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance; it still loads
                self.module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        except Exception as err:  # noqa: BLE001 - torch.jit raises RuntimeError and others
            raise ModelFileError(f"the TorchScript network cannot be loaded: {str(err)[:200]}") from None
        self.inputs, self.outputs = list(inputs), list(outputs)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Without the profiling executor's re-optimisation: it specialises the graph to each new
        # input shape, and a pipeline's batches rarely repeat a shape (3-5x slower on CoNLL dev).
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            values = self.module(*[inputs[name].cpu() for name in self.inputs])
        return dict(zip(self.outputs, values))


# -- export ------------------------------------------------------------------------------------
def _first_line(err: BaseException, limit: int = 160) -> str:
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files_of(root: Path) -> list[str]:
    out = []
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            out.append(Path(os.path.relpath(os.path.join(base, name), root)).as_posix())
    return out


def _write_onnx(net: nn.Module, example: tuple, inputs: list[str], outputs: list[str], axes: dict, path: Path, int8: bool) -> None:
    import onnx

    target = path if not int8 else path.with_name(path.name + ".float")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks that tracing fixes
        # The TorchScript-based exporter: the dynamo exporter does not take these recurrent
        # encoders' data-dependent gathers as they are written.
        torch.onnx.export(net, example, str(target), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes={k: v for k, v in axes.items() if k in inputs or k in outputs}, opset_version=OPSET)
    if int8:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger, on every call
        try:
            quantize_dynamic(str(target), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=INT8_ONNX_OPS)
        finally:
            logging.disable(logging.NOTSET)
        target.unlink()
    onnx.checker.check_model(str(path))


def _write_torchscript(net: nn.Module, example: tuple, path: Path) -> None:
    with warnings.catch_warnings():
        # Tracer warnings about the shape checks that tracing fixes, and torch's notice that
        # TorchScript is in maintenance (torch.export is its successor; it cannot yet take these
        # recurrent encoders with dynamic lengths as they are written).
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _runner(fmt: str, data: bytes, inputs: list[str], outputs: list[str], threads: int) -> Any:
    if fmt == "onnx":
        return OnnxNetwork(data, inputs, outputs, threads)
    return TorchScriptNetwork(data, inputs, outputs)


def export_pipeline(source: str | Path, output: str | Path, fmt: str = "onnx", int8: bool = False) -> Path:
    """Export the saved pipeline in ``source`` into the artefact folder ``output``; returns ``output``.

    ``output`` must be new, empty, or a folder seqlab wrote (the crash-safe, ownership-respecting
    save of ``Pipeline.save``). Tasks without an exportable network are an ``InputError`` naming
    the ones that have one.
    """
    from .pipeline import Pipeline

    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise ModelFileError(f"{str(source)!r} does not exist or is not a folder; give the directory that Pipeline.save wrote")
    if output.resolve() == source.resolve():
        raise OutputDirError(f"{str(output)!r} is the model folder being exported; give another folder for the artefact")
    pipe = Pipeline.load(source, device="cpu")
    model = pipe.model
    if model.exported_network is not None:
        raise InputError(f"{str(source)!r} is already an exported artefact; export the original model folder")
    if not model.exportable:
        raise InputError(
            f"the {pipe.task} task cannot be exported (its decoding needs the network step by step); "
            f"exportable tasks: {', '.join(exportable_tasks())}"
        )
    model.eval()
    example = model.example_network_inputs()
    inputs = list(example)
    with torch.no_grad():
        reference = model.network_outputs(dict(example))
    outputs = list(reference)
    net: nn.Module = _Network(model, inputs, outputs).eval()
    if int8 and fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao's notice that torchao takes over
            net = torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), set(INT8_LAYERS), dtype=torch.qint8)
    args = tuple(example[name] for name in inputs)
    axes = model.network_axes()
    state = model.state_dict()
    decoder = {k: v.detach().cpu().contiguous() for k, v in state.items() if k.startswith(tuple(model.decoder_state))} \
        if model.decoder_state else {}
    network_file = NETWORK_FILES[fmt]
    with model_transaction(output, "exporting a model") as tmp:
        config: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "seqlab_version": __version__, "task": pipe.task,
            "model": to_dict(model.config), "stages": [], "meta": read_meta(source),  # the recipe: how `seqlab eval` reads data
        }
        for index, stage in enumerate(pipe.stages):
            sub = f"stages/{index:02d}_{stage.kind}"
            (tmp / sub).mkdir(parents=True)
            stage.save_state(tmp / sub)
            config["stages"].append({**stage.to_config(), "dir": sub})
        try:
            if fmt == "onnx":
                _write_onnx(net, args, inputs, outputs, axes, tmp / network_file, int8)
            else:
                _write_torchscript(net, args, tmp / network_file)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:  # the exporter's own failures
            other = FORMATS[1 - FORMATS.index(fmt)]
            raise InputError(
                f"the {fmt} exporter cannot export this {pipe.task} network ({_first_line(err)}); try --format {other}"
            ) from None
        if decoder:
            from safetensors.torch import save_file

            save_file(decoder, str(tmp / DECODER_FILE), metadata={"format": FORMAT, "task": pipe.task})
        # The exported network must give what the eager one gives — on the traced batch and on one
        # of another size and lengths (a trace that kept a shape fails here) — before the commit.
        runner = _runner(fmt, (tmp / network_file).read_bytes(), inputs, outputs, torch.get_num_threads())
        for variant in (0, 1):
            check = model.example_network_inputs(variant)
            with torch.no_grad():
                want = model.network_outputs(dict(check))
            _check_outputs(model, runner(dict(check)), want, check, int8)
        import onnx  # noqa: F401 - the versions below; installed with seqlab's export extra
        import onnxruntime

        versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
        config["export"] = {
            "format": fmt, "int8": bool(int8), "source": str(source.resolve()), "network": network_file,
            "decoder": DECODER_FILE if decoder else None, "inputs": inputs, "outputs": outputs,
            "opset": OPSET if fmt == "onnx" else None, **versions, "exported_by": f"seqlab {__version__}",
            "files": {rel: _sha256((tmp / rel).read_bytes()) for rel in _files_of(tmp)},
        }
        write_json(tmp / CONFIG_FILE, config)
    return output


def _check_outputs(model: Any, got: dict, want: dict, example: dict, int8: bool) -> None:
    for name in want:
        if tuple(got[name].shape) != tuple(want[name].shape):
            raise InputError(
                f"the exported network gives {name} of shape {tuple(got[name].shape)} where the model gives "
                f"{tuple(want[name].shape)}; the export kept a traced shape"
            )
        if int8:
            continue  # quantised: close, not equal (see docs/export.md)
        if want[name].is_floating_point():
            valid = _valid_part(model, name, example, want)
            error = float((got[name].float() - want[name].float())[valid].abs().max()) if valid.any() else 0.0
            if not error <= 1e-4:
                raise InputError(f"the exported network differs from the model on {name} by {error:.2e} (more than 1e-4)")
        elif not torch.equal(got[name].long(), want[name].long()):
            raise InputError(f"the exported network's {name} differs from the model's")


def _valid_part(model: Any, name: str, example: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> torch.Tensor:
    """Where an output is defined: the padded steps of a sequence output may hold anything."""
    from .nn.masking import lengths_to_mask

    value = reference[name]
    if 1 not in model.network_axes().get(name, {}) or value.dim() < 2:
        return torch.ones_like(value, dtype=torch.bool)
    candidates = [reference.get("lengths")] + [v for k, v in example.items() if k.endswith("lengths")]
    lengths = next((v for v in candidates if v is not None and v.dim() == 1 and v.shape[0] == value.shape[0]), None)
    if lengths is None:
        return torch.ones_like(value, dtype=torch.bool)
    mask = lengths_to_mask(lengths.long(), value.shape[1])
    return mask.view(*mask.shape, *([1] * (value.dim() - 2))).expand_as(value)


# -- loading -----------------------------------------------------------------------------------
def _safe_relative(rel: Any) -> bool:
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return False
    parts = rel.split("/")
    return all(p not in ("", ".", "..") for p in parts) and not parts[0].startswith(".") and rel != CONFIG_FILE


def _check_export_entry(export: Any, where: str) -> dict:
    if not isinstance(export, dict):
        raise ModelFileError(f"{where}: 'export' must be a mapping written by seqlab export")
    fmt = export.get("format")
    if fmt not in FORMATS:
        raise ModelFileError(f"{where}: unknown export format {str(fmt)[:40]!r}; this seqlab reads {', '.join(FORMATS)}")
    if export.get("network") != NETWORK_FILES[fmt] or export.get("decoder") not in (None, DECODER_FILE):
        raise ModelFileError(f"{where}: 'export' names files seqlab export does not write")
    for key in ("inputs", "outputs"):
        names = export.get(key)
        if not (isinstance(names, list) and names and all(isinstance(n, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)):
            raise ModelFileError(f"{where}: 'export.{key}' must be a list of tensor names")
    files = export.get("files")
    if not (isinstance(files, dict) and files and all(_safe_relative(k) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in files.items())):
        raise ModelFileError(f"{where}: 'export.files' must map the artefact's files (relative paths) to SHA-256 digests")
    if export["network"] not in files or (export.get("decoder") and export["decoder"] not in files):
        raise ModelFileError(f"{where}: 'export.files' does not list the network{' and decoder' if export.get('decoder') else ''} file")
    return export


def _verify_files(directory: Path, files: ModelFiles, export: dict) -> dict[str, bytes]:
    """Check every file against its SHA-256 (and that none was added); return the network's and decoder's bytes."""
    listed: dict[str, str] = export["files"]
    keep = {export["network"], export.get("decoder")}
    data: dict[str, bytes] = {}
    for rel, digest in listed.items():
        path = files.path(rel)
        if not os.path.lexists(path):
            raise ModelFileError(f"{str(directory / rel)!r} is missing; the exported artefact is incomplete (export it again)")
        content = read_regular_bytes(path, directory)
        if _sha256(content) != digest:
            raise ModelFileError(
                f"{str(directory / rel)!r} is not the file seqlab export wrote (its SHA-256 differs from config.json): "
                "the artefact was edited or damaged; export it again"
            )
        if rel in keep:
            data[rel] = content
    roots = {rel.split("/")[0] for rel in listed}
    for root in sorted(roots):
        if (directory / root).is_dir():
            for rel in _files_of(directory / root):
                full = f"{root}/{rel}"
                if full not in listed:
                    raise ModelFileError(
                        f"{str(directory / full)!r} was not written by seqlab export (config.json does not list it); "
                        "seqlab loads only the files an export wrote: remove it or export again"
                    )
    return data


def load_exported(directory: str | Path, device: str | torch.device = "auto") -> Any:
    """Load an artefact written by ``export_pipeline`` as a ``Pipeline`` (on the CPU)."""
    directory = Path(directory)
    if str(device) not in ("auto", "cpu"):
        raise InputError(
            f"an exported pipeline runs on the CPU (ONNX Runtime's CPU provider, or TorchScript on the CPU); "
            f"load it with device='cpu', not {str(device)!r}"
        )
    return load_consistently(directory, lambda: _load_once(directory))


def _load_once(directory: Path) -> Any:
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    from .pipeline import Pipeline, _short

    files = ModelFiles(directory)
    config = check_model_dir(directory, files, weights=False)
    where = f"{directory / CONFIG_FILE}"
    export = _check_export_entry(config.get("export"), where)
    data = _verify_files(directory, files, export)
    try:
        task_cls, model_config, stages = Pipeline._read_saved(directory, files, config)
        if not task_cls.exportable:
            raise ConfigError(f"the {task_cls.task} task has no exportable network")
        model = task_cls(model_config)  # its network's weights stay unused: the exported network replaces it
    except ModelFileError:
        raise
    except (ConfigError, DataError, KeyError, TypeError, AttributeError, ValueError, OSError) as err:
        raise ModelFileError(f"{where} cannot be used: {_short(str(err), 300)}") from None
    except (RuntimeError, MemoryError) as err:
        raise ModelFileError(f"{where}: the model it describes cannot be built: {str(err)[:200]}") from None
    expected = {k: v for k, v in model.state_dict().items() if model.decoder_state and k.startswith(tuple(model.decoder_state))}
    if expected:
        if not export.get("decoder"):
            raise ModelFileError(f"{where}: the {task_cls.task} task decodes with weights the artefact lacks ({DECODER_FILE})")
        try:
            state = load_safetensors(data[export["decoder"]])
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise ModelFileError(f"{str(directory / DECODER_FILE)!r} is corrupt: {str(err)[:160]}") from None
        if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()):
            raise ModelFileError(f"{str(directory / DECODER_FILE)!r} does not hold the decoder weights the model config describes")
        if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in state.values()):
            raise ModelFileError(f"{str(directory / DECODER_FILE)!r} holds NaN or infinite weights")
        model.load_state_dict(state, strict=False)
    model.eval()
    threads = set_threads()  # seqlab's CPU thread default (1 on a 2-core machine), for ONNX Runtime too
    model.exported_network = _runner(export["format"], data[export["network"]], export["inputs"], export["outputs"], threads)
    return Pipeline(stages, task_cls, model_config, device="cpu", model=model)
