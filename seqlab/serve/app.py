"""The HTTP JSON API of ``seqlab serve``: saved pipelines behind Starlette, one code path for every task.

The server sees a task only through the task interface (``seqlab.core.task``): its
``input_column`` says whether requests carry text or audio, ``options`` are the per-call
options it accepts (validated by ``parse_options``, listed by ``/api/models``), and
``check_input`` validates each input before it is queued. A prediction is what
``Pipeline.predict`` returns for the same input — speech goes through ``transcribe_audio``
as in ``seqlab predict``, so long clips are cut at pauses — serialised to JSON, so Python,
``seqlab predict --json`` and HTTP agree.

Endpoints (docs/serve.md)::

    GET  /health                         {"status": "ok", "models": [...], "seqlab_version": ...}
    GET  /api/models                     {"models": [INFO, ...]}
    GET  /api/models/{name}              INFO: name, task, input, labels, metrics, options
    POST /api/models/{name}/predict      {"input": X} or {"inputs": [X, ...]}, + "options"
                                         (audio: also multipart/form-data with "file" fields)
    GET  /                               the demo page; /static/... its files

Bad requests get a 4xx with ``{"error": one line, "type": ...}``: 400 for bad input (the
message of the Python API's ``InputError``/``DataError``), 404 for an unknown model, 413 for
a body over ``max_body_bytes`` or more than ``max_inputs`` inputs, 415 for another content
type, 504 when a prediction outlasts ``timeout_s``. Anything else is a logged 500.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..core.device import set_threads
from ..core.config import suggest
from ..core.errors import InputError, NotFittedError, SeqlabError
from ..core.serialization import read_meta
from ..pipeline import Pipeline
from .batching import DynamicBatcher

log = logging.getLogger("seqlab.serve")

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class ServeSettings:
    """Limits and batching of ``create_app`` (``seqlab serve`` flags of the same names)."""

    #: The most inputs one model call takes (requests are grouped up to this many).
    max_batch: int = 32
    #: How long the first request of a batch waits for others, in milliseconds.
    max_wait_ms: float = 5.0
    #: Group concurrent requests (False: every request runs alone).
    batching: bool = True
    #: A prediction that takes longer (queue wait included) answers 504.
    timeout_s: float = 30.0
    #: Larger request bodies answer 413.
    max_body_bytes: int = 20 * 2**20
    #: More inputs in one request answer 413.
    max_inputs: int = 256

    def validate(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_inputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"serve setting {name} must be a positive integer, got {value!r}")
        for name in ("max_wait_ms", "timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InputError(f"serve setting {name} must be a number >= 0, got {value!r}")
        if self.timeout_s == 0:
            raise InputError("serve setting timeout_s must be above 0")


class HTTPError(Exception):
    """A request refused with ``status`` and one line (``kind``: the ``type`` field of the answer)."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


# -- what differs between tasks: the kind of input, and how speech runs ------------------------
#: The raw input column of a task model → what a request carries.
INPUT_KINDS = {"audio": "audio"}  # anything else: "text" (strings, token lists, class names)


def _predict(pipe: Pipeline, max_batch: int) -> Callable[[list, dict], list]:
    def run(inputs: list, options: dict) -> list:
        return pipe.predict(inputs, batch_size=max_batch, **options)
    return run


def _transcribe(pipe: Pipeline, max_batch: int) -> Callable[[list, dict], list]:
    from ..tasks.speech_inference import transcribe_audio

    def run(inputs: list, options: dict) -> list:
        # Long clips are cut at pauses and their chunks transcribed in one predict call, as in
        # ``seqlab predict``; a short clip's output is what ``pipe.predict`` gives.
        return transcribe_audio(pipe, inputs, **options)
    return run


#: Task → how a batch runs, where it is not ``Pipeline.predict``.
RUNNERS: dict[str, Callable[[Pipeline, int], Callable[[list, dict], list]]] = {"speech": _transcribe}


# -- one served model -------------------------------------------------------------------------
class ServedModel:
    """A loaded pipeline with its name, its description (``/api/models``) and its batcher."""

    def __init__(self, name: str, pipe: Pipeline, settings: ServeSettings, meta: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.pipe = pipe
        if pipe.model is None:
            raise NotFittedError(f"model {name!r}: the pipeline has no model yet (fit it, or serve a saved folder)")
        self.model = pipe.model
        self.input = INPUT_KINDS.get(self.model.input_column, "text")
        #: Options given with the input rather than as options (a clip's sample_rate).
        self.data_options = {n for n, o in self.model.options.items() if o.column} if self.input == "audio" else set()
        #: The options a request may set: the task's, less the data options.
        self.options = {n: o for n, o in self.model.options.items() if n not in self.data_options}
        self.info = self._describe(meta or {})
        run = RUNNERS.get(pipe.task, _predict)(pipe, settings.max_batch)
        self.batcher = DynamicBatcher(run, settings.max_batch, settings.max_wait_ms, settings.batching, name=name)

    def _describe(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        defaults = self.model.parse_options({})
        options = {}
        for name, option in self.options.items():
            options[name] = {
                "type": getattr(option.type, "__name__", str(option.type)) if option.type is not object else "str",
                "default": to_jsonable(defaults[name]),
                "doc": option.doc,
                "choices": list(option.choices) if option.choices is not None else None,
                "low": option.low,
                "high": option.high,
            }
        return {
            "name": self.name,
            "task": self.pipe.task,
            "input": self.input,
            "labels": model_labels(self.model.config),
            "metrics": training_metrics(meta),
            "options": options,
            "seqlab_version": __version__,
        }

    def prepare(self, inputs: list, options: Any) -> tuple[list, dict, str]:
        """Validate a request before it is queued: inputs as ``pipe.predict`` takes them, options, group key."""
        if not isinstance(options, dict):
            raise InputError(f"\"options\" must be a JSON object of option names and values, got {_json_type(options)}")
        for name in options:
            if name in self.data_options:
                raise InputError(f"option {name!r} is part of each input here: give {{\"samples\": [...], \"{name}\": N}}")
            if name not in self.options:  # the server sets batch_size itself: not an option here
                if not self.options:
                    raise InputError(f"unknown option {name!r}; model {self.name!r} ({self.pipe.task}) takes no options")
                raise InputError(f"unknown option {name!r}{suggest(str(name), list(self.options))}; "
                                 f"valid options: {', '.join(self.options)}")
        if self.input == "audio":
            inputs = [audio_input(x, i) for i, x in enumerate(inputs)]
        checked = [self.model.check_input(x, i) for i, x in enumerate(inputs)]
        self.model.parse_options(options, rows=len(checked))  # unknown names, types, ranges: before queueing
        if any(self.options[name].column for name in options):
            key = f"alone:{id(checked)}"  # per-input data (a list of one value per input) cannot be concatenated
        else:
            key = json.dumps(options, sort_keys=True, default=repr)
        return checked, options, key


@dataclass(frozen=True)
class Upload:
    """An uploaded file's bytes. Only the multipart reader makes these: a JSON dict never reaches
    the audio loader as ``{"bytes"|"path": ...}``, which would let a client name a file on the server."""

    data: bytes
    filename: str


def audio_input(value: Any, index: int) -> Any:
    """A JSON audio input ``{"samples": [...], "sample_rate": N}`` or an upload → what the audio loader reads."""
    if isinstance(value, Upload):  # decoded by the loader from memory (seqlab.audio.io.read_audio takes bytes)
        return {"bytes": value.data, "path": value.filename}
    if not isinstance(value, dict) or "samples" not in value:
        raise InputError(f"input {index}: an audio input is {{\"samples\": [numbers], \"sample_rate\": Hz}} "
                         f"(or upload files as multipart/form-data), got {_json_type(value)}")
    extra = sorted(set(value) - {"samples", "sample_rate"})
    if extra:
        raise InputError(f"input {index}: unknown key(s) {extra} in an audio input; it has \"samples\" and \"sample_rate\"")
    samples = value["samples"]
    # numpy, not a Python loop: a long clip is millions of numbers, checked on the event loop.
    array = np.asarray(samples) if isinstance(samples, list) else None
    if array is None or array.ndim != 1 or (array.size and array.dtype.kind not in "iuf"):
        raise InputError(f"input {index}: \"samples\" must be a list of numbers")
    rate = value.get("sample_rate")
    if rate is None:
        raise InputError(f"input {index}: give the clip's \"sample_rate\" (Hz) beside its samples")
    # The loader checks the rest (NaN, empty, the rate) with the Python API's messages.
    return {"array": array.astype(np.float32), "sampling_rate": rate}


def model_labels(config: Any) -> list[str] | None:
    """The classes a model predicts: sentiment labels, NER entity types; None where there are none."""
    labels = getattr(config, "labels", None)
    if isinstance(labels, (list, tuple)) and labels:
        return [str(x) for x in labels]
    tags = getattr(config, "tags", None)  # tagging: the entity types of its B-/I-/E-/S- tags
    if isinstance(tags, (list, tuple)) and tags:
        types = {str(t).split("-", 1)[1] for t in tags if "-" in str(t)}
        return sorted(types) or None
    return None


def training_metrics(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The dev metrics training saved in ``config.json``'s ``meta`` (``seqlab train``, the benchmarks); {} if none."""
    summary = meta.get("summary") if isinstance(meta, Mapping) else None
    if not isinstance(summary, Mapping):
        return {}
    dev = summary.get("dev")
    source = dev if isinstance(dev, Mapping) else {k: v for k, v in summary.items() if k.startswith(("val_", "dev_"))}
    return {str(k): to_jsonable(v) for k, v in source.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def to_jsonable(value: Any) -> Any:
    """A prediction as JSON: numpy and torch values as lists and numbers, tuples as lists, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    plain = _plain(value)  # numpy and torch values as Python ones; anything else (a Path) as its text
    return plain if isinstance(plain, str) else to_jsonable(plain)


def _plain(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy and torch values as Python ones, anything else as its text
    (the fast path of :func:`json_response`; :func:`to_jsonable` uses it for the leaves)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "detach") and hasattr(value, "tolist"):
        return value.detach().cpu().tolist()
    return str(value)


def json_response(content: Any, status: int = 200) -> Response:
    """``content`` as JSON, as :func:`to_jsonable` writes it; by the C encoder unless it holds NaN/inf or odd keys."""
    try:
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain)
    except (ValueError, TypeError):  # NaN/inf (→ null), keys json cannot write: the slow, thorough path
        body = json.dumps(to_jsonable(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, media_type="application/json")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# -- request bodies ----------------------------------------------------------------------------
async def _limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body, refused with 413 once more than ``limit`` bytes have come (whatever Content-Length said)."""
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HTTPError(413, f"the request body is over the limit of {limit:,} bytes", "PayloadTooLarge")
        yield chunk


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPError(400, f"Content-Length {declared[:40]!r} is not a number", "InputError") from None
        if size > limit:
            raise HTTPError(413, f"the request body ({size:,} bytes) is over the limit of {limit:,} bytes", "PayloadTooLarge")


async def _json_request(request: Request, limit: int) -> tuple[list, bool, Any]:
    body = b"".join([chunk async for chunk in _limited_stream(request, limit)])
    try:
        # A large body (a long clip's samples) is parsed in a thread: the event loop keeps serving.
        data = json.loads(body) if len(body) < 2**20 else await asyncio.to_thread(json.loads, body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise InputError("the request body is JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise InputError(f"the request body must be a JSON object with \"input\" or \"inputs\", got {_json_type(data)}")
    unknown = sorted(set(data) - {"input", "inputs", "options"})
    if unknown:
        raise InputError(f"unknown field(s) {unknown} in the request; it has \"input\" or \"inputs\", and \"options\"")
    if ("input" in data) == ("inputs" in data):
        raise InputError("give \"input\" (one input) or \"inputs\" (a list of inputs), not " +
                         ("both" if "input" in data else "neither"))
    if "inputs" in data:
        if not isinstance(data["inputs"], list):
            raise InputError(f"\"inputs\" must be a list, got {_json_type(data['inputs'])}")
        return data["inputs"], True, data.get("options", {})
    return [data["input"]], False, data.get("options", {})


async def _multipart_request(request: Request, limit: int, max_inputs: int) -> tuple[list, bool, Any]:
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(request.headers, _limited_stream(request, limit), max_files=max_inputs, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        if err.message.startswith("Too many files"):
            raise HTTPError(413, f"more than {max_inputs} files in one request; the limit is {max_inputs}",
                            "PayloadTooLarge") from None
        raise InputError(f"the multipart form cannot be read: {err.message}") from None
    try:
        unknown = sorted({k for k in form.keys() if k not in ("file", "options")})
        if unknown:
            raise InputError(f"unknown form field(s) {unknown}; send audio in \"file\" fields and options as JSON in \"options\"")
        files = form.getlist("file")
        if not files:
            raise InputError("the form has no \"file\" field; upload one or more audio files (wav, flac, ogg) as \"file\"")
        if len(files) > max_inputs:
            raise HTTPError(413, f"{len(files)} files in one request; the limit is {max_inputs}", "PayloadTooLarge")
        inputs = []
        for i, upload in enumerate(files):
            if isinstance(upload, str):
                raise InputError(f"form field \"file\" {i} is text, not an uploaded file")
            # Decoded by the pipeline's audio loader (seqlab.audio.io.read_audio reads bytes).
            inputs.append(Upload(await upload.read(), upload.filename or f"file {i}"))
        raw = form.get("options")
        options: Any = {}
        if raw is not None:
            if not isinstance(raw, str):
                raise InputError("the \"options\" form field must be text holding a JSON object")
            try:
                options = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as err:
                raise InputError(f"the \"options\" form field is not valid JSON: {err}") from None
        return inputs, len(inputs) > 1, options
    finally:
        await form.close()


# -- the application ---------------------------------------------------------------------------
def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": message, "type": kind}, status_code=status)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:2000] or type(error).__name__


def answers_errors(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``endpoint`` with every failure answered as JSON: 4xx for the request's faults, a logged 500 for ours.

    Caught here rather than by Starlette's exception handlers, whose server-error middleware
    would re-raise a 500 to uvicorn (a second traceback in the log).
    """
    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except HTTPError as exc:
            return _error(exc.status, _one_line(exc), exc.kind)
        except SeqlabError as exc:  # bad input: the Python API's message
            return _error(400, _one_line(exc), type(exc).__name__)
        except ClientDisconnect:
            return _error(400, "the client disconnected before the request was read", "ClientDisconnect")
        except Exception as exc:  # noqa: BLE001 - a bug or a failing model: logged, answered briefly
            log.exception("seqlab serve: %s %s failed", request.method, request.url.path)
            return _error(500, f"internal error ({type(exc).__name__}); see the server log", "InternalError")
    return guarded


def load_models(models: Mapping[str, Pipeline | str | Path], device: str = "auto") -> dict[str, tuple[Pipeline, dict]]:
    """Name → (pipeline, saved ``meta``); folders are loaded with ``seqlab.load``."""
    loaded = {}
    for name, source in models.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise InputError(f"model name {name!r} must be a non-empty string without '/'")
        if isinstance(source, Pipeline):
            loaded[name] = (source, {})
            continue
        try:
            pipe = Pipeline.load(source, device=device)
        except SeqlabError as err:
            raise type(err)(f"model {name!r} ({source}): {err}") from None
        loaded[name] = (pipe, read_meta(source))
    return loaded


def create_app(models: Mapping[str, Pipeline | str | Path], settings: ServeSettings | None = None,
               device: str = "auto") -> Starlette:
    """The Starlette app serving ``models`` (name → a Pipeline or a saved pipeline's folder).

    >>> from starlette.testclient import TestClient
    >>> TestClient(create_app({})).get("/health").json()["status"]
    'ok'
    """
    settings = settings or ServeSettings()
    settings.validate()
    served = {name: ServedModel(name, pipe, settings, meta) for name, (pipe, meta) in load_models(models, device).items()}
    set_threads()  # seqlab's CPU thread default, as Pipeline.load sets it

    def lookup(name: str) -> ServedModel:
        if name not in served:
            raise HTTPError(404, f"no model named {name!r}; loaded: {', '.join(served) or '(none)'}", "NotFound")
        return served[name]

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": list(served), "seqlab_version": __version__})

    async def list_models(request: Request) -> Response:
        return JSONResponse({"models": [m.info for m in served.values()]})

    async def model_info(request: Request) -> Response:
        return JSONResponse(lookup(request.path_params["name"]).info)

    async def predict(request: Request) -> Response:
        model = lookup(request.path_params["name"])
        _check_length(request, settings.max_body_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            inputs, many, options = await _json_request(request, settings.max_body_bytes)
        elif content_type == "multipart/form-data" and model.input == "audio":
            inputs, many, options = await _multipart_request(request, settings.max_body_bytes, settings.max_inputs)
        else:
            accepted = "application/json" + (" or multipart/form-data (audio files)" if model.input == "audio" else "")
            raise HTTPError(415, f"content type {content_type or '(none)'!r} is not accepted; send {accepted}",
                            "UnsupportedMediaType")
        if len(inputs) > settings.max_inputs:
            raise HTTPError(413, f"{len(inputs)} inputs in one request; the limit is {settings.max_inputs}", "PayloadTooLarge")
        inputs, options, key = model.prepare(inputs, options)
        if not inputs:
            return JSONResponse({"predictions": []})
        try:
            outputs = await asyncio.wait_for(model.batcher.submit(inputs, options, key), settings.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPError(504, f"the prediction took longer than {settings.timeout_s:g} s", "Timeout") from None
        return json_response({"predictions": outputs} if many else {"prediction": outputs[0]})

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def on_starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)  # no such route (404), another method (405)
        return _error(exc.status_code, str(exc.detail), "HTTPError")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for model in served.values():
            model.batcher.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/health", answers_errors(health), methods=["GET"]),
        Route("/api/models", answers_errors(list_models), methods=["GET"]),
        Route("/api/models/{name}", answers_errors(model_info), methods=["GET"]),
        Route("/api/models/{name}/predict", answers_errors(predict), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: on_starlette_error},
        lifespan=lifespan,
    )
    app.state.models = served
    app.state.settings = settings
    return app
