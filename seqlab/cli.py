"""The command line: ``seqlab train | eval | predict | serve | export``.

::

    seqlab train pipelines/sentiment.yaml --set train.epochs=3
    seqlab eval runs/sentiment corpora/sentiment/dev.tsv
    seqlab eval wer REF.txt HYP.txt            # metric scripts: wer cer bleu chrf ner
    seqlab predict runs/sentiment "a great film" "a dull mess"
    echo "a great film" | seqlab predict runs/sentiment
    seqlab serve runs/sentiment ner=runs/ner --port 8000   # HTTP JSON API (docs/serve.md)
    seqlab export runs/sentiment --format onnx --int8 --output runs/sentiment-onnx

Errors a user can cause print one line starting with ``seqlab <command>:`` and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .core.errors import InputError, SeqlabError
from .metrics.cli import METRIC_COMMANDS


def _fail(command: str, error: BaseException) -> int:
    print(f"seqlab {command}: {error}", file=sys.stderr)
    return 2


def cmd_train(args: argparse.Namespace) -> int:
    from .recipe import load_recipe, run_recipe

    recipe = load_recipe(args.recipe, args.set)
    if args.output:
        recipe.output = args.output
    summary = run_recipe(recipe, resume_from=getattr(args, "resume", None) or None)
    summary.pop("pipeline", None)
    if args.json and summary.get("rank", 0) == 0:  # under torchrun, rank 0 speaks for all
        print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_eval(args: argparse.Namespace, rest: list[str]) -> int:
    from . import load
    from .core import registry
    from .core.config import from_dict

    data_args = list(args.data) + list(rest)
    if not data_args:
        raise InputError("give the DATA to evaluate on: seqlab eval MODEL_DIR DATA [--json]  (or seqlab eval {wer,cer,bleu,chrf,ner} ...)")
    as_json = args.json
    pipe = load(args.target, device=args.device)
    recipe_cls = registry.recipe_class(pipe.task)
    from .core.serialization import read_meta

    saved = read_meta(args.target).get("recipe") or {}
    recipe = from_dict(recipe_cls, saved) if saved else recipe_cls()
    data = recipe.read_eval(*data_args)
    metrics = pipe.evaluate(data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        width = max(len(k) for k in metrics) if metrics else 6
        for key, value in metrics.items():
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from . import load
    from .recipe import format_prediction

    inputs = list(args.inputs)
    if not inputs:
        if sys.stdin.isatty():
            raise InputError("give inputs as arguments or on standard input, one per line")
        inputs = [line.rstrip("\n") for line in sys.stdin if line.strip()]
        if not inputs:
            raise InputError("standard input held no inputs (no non-blank line); give inputs as arguments or one per line")
    pipe = load(args.model, device=args.device)
    kwargs = {}
    if args.attention_png:
        kwargs["return_attention"] = True
    if getattr(pipe, "task", None) == "speech":
        from .tasks.speech_inference import transcribe_audio

        # Clips of any length: long ones are transcribed in chunks, with timestamps.
        predictions = transcribe_audio(pipe, inputs, **kwargs)
    else:
        predictions = pipe.predict(inputs, **kwargs)
    if args.attention_png:
        from .tasks.translation import save_attention_png

        save_attention_png(predictions[0], args.attention_png)
    for text, prediction in zip(inputs, predictions):
        if args.json and pipe.model.writes_files:  # arrays go to files; JSON names them
            files = format_prediction(prediction, pipe, args.out_dir).split(", ")
            print(json.dumps({"input": text, "files": files}, ensure_ascii=False))
        elif args.json:
            print(json.dumps({"input": text, "prediction": prediction}, ensure_ascii=False, default=str))
        else:
            print(f"{text}\t{format_prediction(prediction, pipe, args.out_dir)}")
    return 0


def _served_models(specs: list[str]) -> dict[str, Path]:
    """``DIR`` or ``NAME=DIR`` → name → folder; the name is the folder's basename by default."""
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or "/" in name or "\\" in name:
            name, folder = Path(spec).resolve().name, spec
        if not name or not folder:
            raise InputError(f"{spec!r}: give a model folder, or NAME=FOLDER")
        if name in models:
            raise InputError(f"two models are named {name!r} ({models[name]} and {folder}); name one with NAME=FOLDER")
        if not Path(folder).is_dir():
            raise InputError(f"model folder {folder!r} does not exist" if not Path(folder).exists() else f"{folder!r} is not a folder")
        models[name] = Path(folder)
    return models


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve.app import ServeSettings, create_app

    if not 0 < args.max_body_mb < 2**20:  # NaN too
        raise InputError(f"--max-body-mb {args.max_body_mb} must be a positive number of MiB")
    settings = ServeSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, batching=not args.no_batching,
                             timeout_s=args.timeout, max_body_bytes=int(args.max_body_mb * 2**20))
    settings.validate()
    if args.port < 0 or args.port > 65535:
        raise InputError(f"--port {args.port} is not a port number (0-65535)")
    models = _served_models(args.models)
    app = create_app(models, settings, device=args.device)  # a folder that fails to load: one line, no server
    import uvicorn

    host = f"[{args.host}]" if ":" in args.host else args.host
    batching = f"batching up to {settings.max_batch} inputs / {settings.max_wait_ms:g} ms" if settings.batching else "no batching"
    print(f"seqlab serve: {', '.join(f'{n} ({m.pipe.task})' for n, m in app.state.models.items())} on http://{host}:{args.port}/ "
          f"({batching}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``seqlab export MODEL_DIR --format onnx|torchscript [--int8] [--output OUT_DIR]`` (docs/export.md)."""
    from .export import export_pipeline

    source = Path(args.model)
    if not args.output and not source.resolve().name:
        raise InputError("give the artefact folder with --output OUT_DIR")
    output = Path(args.output) if args.output else source.with_name(f"{source.name}-{args.format}{'-int8' if args.int8 else ''}")
    export_pipeline(source, output, args.format, args.int8)
    print(f"exported {str(source)!r} as {args.format}{' (int8)' if args.int8 else ''} to {str(output)!r}; "
          f"load it with seqlab.load({str(output)!r}) or `seqlab predict {output} ...`")
    return 0


def add_export_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="export a saved pipeline's network to ONNX or TorchScript (docs/export.md)")
    export.add_argument("model", metavar="MODEL_DIR", help="directory written by training (Pipeline.save)")
    export.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="the exported network's format")
    export.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the LSTM/GRU and linear layers")
    export.add_argument("--output", metavar="OUT_DIR", help="artefact folder (default: MODEL_DIR-FORMAT[-int8] beside MODEL_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqlab", description="Sequence modeling on text and speech.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a pipeline from a recipe (pipelines/*.yaml)")
    train.add_argument("recipe", help="recipe YAML file")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value, e.g. train.epochs=3")
    train.add_argument("--output", help="directory to save the trained pipeline (default: the recipe's output)")
    train.add_argument("--resume", metavar="DIR", help="continue a run from its checkpoints")
    train.add_argument("--json", action="store_true", help="print the run summary as JSON")

    evaluate = sub.add_parser(
        "eval", help="evaluate a saved pipeline on data, or score files: wer cer bleu chrf ner",
        usage="seqlab eval MODEL_DIR DATA [DATA ...] [--json] [--device DEVICE]\n"
              "       seqlab eval {" + ",".join(METRIC_COMMANDS) + "} ...   (seqlab eval wer --help)",
        description="Evaluate a saved pipeline on labelled DATA and print the task's metrics, "
                    "or score hypothesis files against references with a metric command.",
    )
    evaluate.add_argument("target", metavar="MODEL_DIR", help="directory written by training, or a metric: " + ", ".join(METRIC_COMMANDS))
    evaluate.add_argument("data", nargs="*", metavar="DATA",
                          help="labelled data in the recipe's format (e.g. corpora/sentiment/dev.tsv; translation: "
                               "source and target files)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--device", default="auto")

    predict = sub.add_parser("predict", help="run a saved pipeline on inputs (arguments or stdin lines)")
    predict.add_argument("model", help="directory written by training")
    predict.add_argument("inputs", nargs="*", help="texts or audio files; read from stdin when none")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--out-dir", default="seqlab-predictions",
                         help="denoise, cgan: folder for the output files (default ./seqlab-predictions)")
    predict.add_argument("--attention-png", metavar="PNG", help="translation: save the attention matrix of the first input")

    serve = sub.add_parser("serve", help="serve saved pipelines over HTTP (JSON API + demo page; docs/serve.md)")
    serve.add_argument("models", nargs="+", metavar="MODEL_DIR", help="folders written by training; NAME=DIR names one")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=32, help="most inputs one model call takes (default 32)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests (default 5)")
    serve.add_argument("--no-batching", action="store_true", help="run every request alone")
    serve.add_argument("--timeout", type=float, default=30.0, help="seconds before a prediction answers 504 (default 30)")
    serve.add_argument("--max-body-mb", type=float, default=20.0, help="largest request body in MiB (default 20)")
    serve.add_argument("--device", default="auto")
    add_export_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader of our output went away (`seqlab eval ... | head -1`): stop quietly, as
        # other command-line tools do, instead of a traceback; Python would also complain
        # when it flushes stdout at exit, so stdout is pointed at /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "eval" and argv[1] in METRIC_COMMANDS:
        # Metric scripts parse their own options (and --help).
        from .metrics.cli import run_metric_command

        return run_metric_command(argv[1:])
    parser = build_parser()
    if argv and argv[0] == "eval":
        args, rest = parser.parse_known_args(argv)
    else:
        args, rest = parser.parse_args(argv), []
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "eval":
            return cmd_eval(args, rest)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "export":
            return cmd_export(args)
        return cmd_predict(args)
    except SeqlabError as err:
        return _fail(args.command, err)
    except KeyboardInterrupt:
        print(f"seqlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
