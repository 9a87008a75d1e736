"""Exported pipelines (``seqlab export``) against the eager model: speed and accuracy per path.

    python benchmarks/export.py --threads 1 [--budget-min 3] [--model DIR] [--sentiment-budget-min 1]
                                [--speech-budget-min 1.5] [--skip sentiment,speech]

Paths: ``eager`` (``seqlab.load`` of the saved model), ``onnx``, ``onnx-int8``, ``torchscript``,
``torchscript-int8`` (``seqlab.load`` of each exported artefact). Every path gets the same
inputs, a warm-up first, then:

- NER (CoNLL-2003 ``valid.txt``, pre-tokenized sentences): prediction sentences/s at batch 1
  (the first 1,000 sentences) and batch 32 (all), ``ner_dev_f1_<path>`` (entity F1 through
  ``pipe.evaluate``), its change against eager, how many sentences' tags differ from eager
  and the largest span-score difference. The model is trained here within ``--budget-min``
  (the a-priori settings of benchmarks/ner.py without word2vec), or read from ``--model DIR``.
- Sentiment (SST-2 dev) and speech (FSDD isolated digits, validation takes), each trained
  briefly here: sentences or clips per second at batch 1 and 32, accuracy / WER per path.

Bar (issue #19): F1 change 0 for the non-int8 paths, at most 0.3 for the int8 ones.
Writes ``benchmarks/results/export.json``; the models and artefacts go to ``runs/benchmarks/export_*``.
"""
from __future__ import annotations

import copy
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RUNS, corpora_dir, parser, write_results  # noqa: E402

PATHS = ("eager", "onnx", "onnx-int8", "torchscript", "torchscript-int8")


def export_all(model_dir: Path, prefix: str) -> dict[str, dict]:
    """Export ``model_dir`` to every path; returns path → {dir, export_s, mb}."""
    from seqlab.export import export_pipeline

    out = {"eager": {"dir": model_dir}}
    for path in PATHS[1:]:
        fmt, int8 = path.split("-")[0], path.endswith("-int8")
        target = RUNS / f"{prefix}_{path}"
        if target.exists():
            shutil.rmtree(target)  # this script's own output folder
        start = time.perf_counter()
        export_pipeline(model_dir, target, fmt, int8)
        network = target / ("network.onnx" if fmt == "onnx" else "network.torchscript")
        out[path] = {"dir": target, "export_s": time.perf_counter() - start, "mb": network.stat().st_size / 2**20}
        print(f"  exported {path}: {out[path]['export_s']:.1f} s, network {out[path]['mb']:.2f} MB", flush=True)
    return out


def rate(pipe, inputs: list, batch_size: int, **options) -> float:
    pipe.predict(inputs[: 2 * batch_size], batch_size=batch_size, **options)  # warm-up
    start = time.perf_counter()
    pipe.predict(inputs, batch_size=batch_size, **options)
    return len(inputs) / (time.perf_counter() - start)


def load(path: Path):
    import seqlab

    return seqlab.load(path, device="cpu")


# -- NER -------------------------------------------------------------------------------------------
def ner_part(args, metrics: dict, settings: dict) -> object:
    from ner import SETTINGS as NER_SETTINGS
    from seqlab.core.config import to_dict  # noqa: F401
    from seqlab.recipe import load_recipe

    conll = corpora_dir() / "ner" / "conll2003"
    ner = copy.deepcopy(NER_SETTINGS)
    ner["data"].update({"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt")})
    ner["device"] = "cpu"
    ner["model"]["document_case_dim"] = 0  # the sentence-level tagger its recorded figures measured (no documents)
    ner["model"]["lm_loss"] = 0.0  # and trained without the LM loss, as those figures were
    recipe = load_recipe(data=ner)
    train, dev = recipe.datasets()
    dev_tokens = [list(t) for t in dev["tokens"]]
    if args.model:
        model_dir = Path(args.model)
    else:
        model_dir = RUNS / "export_ner"
        ner["train"]["time_budget_s"] = args.budget_min * 60
        ner["output"] = str(model_dir)
        recipe = load_recipe(data=ner)
        pipe = recipe.build()
        start = time.perf_counter()
        result = pipe.fit(train, dev, recipe.train)
        print(f"NER: trained {result.steps} steps in {time.perf_counter() - start:.0f} s ({result.stopped_by})", flush=True)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        pipe.save(model_dir, meta={"recipe": ner})
        settings["ner_training"] = {"budget_s": args.budget_min * 60, "steps": result.steps, "stopped_by": result.stopped_by,
                                    "model": ner["model"], "train": ner["train"], "word2vec": None}
    settings["ner_model"] = str(model_dir)
    paths = export_all(model_dir, "export_ner")
    reference = None
    f1_eager = None
    for path in PATHS:
        pipe = load(paths[path]["dir"])
        f1 = pipe.evaluate(dev)["f1"]
        r32 = rate(pipe, dev_tokens, 32)
        r1 = rate(pipe, dev_tokens[:1000], 1)
        outputs = pipe.predict(dev_tokens, batch_size=32)
        if path == "eager":
            reference, f1_eager = outputs, f1
        differ = sum(a["tags"] != b["tags"] for a, b in zip(reference, outputs))
        scores = [abs(x["score"] - y["score"]) for a, b in zip(reference, outputs) if a["tags"] == b["tags"]
                  for x, y in zip(a["spans"], b["spans"])]
        key = path.replace("-", "_")
        metrics[f"ner_dev_f1_{key}"] = round(f1, 2)
        metrics[f"ner_dev_f1_change_{key}"] = round(f1 - f1_eager, 2)
        metrics[f"ner_predict_sentences_per_s_batch32_{key}"] = round(r32, 1)
        metrics[f"ner_predict_sentences_per_s_batch1_{key}"] = round(r1, 1)
        metrics[f"ner_tags_differ_sentences_{key}"] = differ
        metrics[f"ner_max_span_score_diff_{key}"] = float(f"{max(scores, default=0.0):.2e}")
        if path != "eager":
            metrics[f"ner_export_s_{key}"] = round(paths[path]["export_s"], 1)
            metrics[f"ner_network_mb_{key}"] = round(paths[path]["mb"], 2)
        print(f"  {path:<17} F1 {f1:6.2f} ({f1 - f1_eager:+.2f})  batch32 {r32:7.1f}/s  batch1 {r1:6.1f}/s  "
              f"tags differ in {differ} sentences, max score diff {max(scores, default=0.0):.1e}", flush=True)
    return pipe


# -- sentiment --------------------------------------------------------------------------------------
def sentiment_part(args, metrics: dict, settings: dict) -> None:
    from seqlab.recipe import load_recipe

    sst = corpora_dir() / "sentiment" / "sst2"
    model_dir = RUNS / "export_sentiment"
    s = {
        "task": "sentiment",
        "data": {"train": str(sst / "train.tsv"), "dev": str(sst / "dev.tsv")},
        "tokenizer": {"lowercase": True, "split": "whitespace"},
        "vocabulary": {"min_freq": 1},
        "model": {"embedding_dim": 300, "encoder": "bilstm", "hidden_size": 256, "pooling": "max", "dropout": 0.5},
        "train": {"epochs": 20, "batch_size": 64, "optimizer": "adam", "lr": 1e-3, "clip_norm": 5.0,
                  "time_budget_s": args.sentiment_budget_min * 60, "seed": 1},
        "output": str(model_dir), "device": "cpu",
    }
    recipe = load_recipe(data=s)
    train, dev = recipe.datasets()
    pipe = recipe.build()
    result = pipe.fit(train, None, recipe.train)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    pipe.save(model_dir)
    print(f"sentiment: trained {result.steps} steps", flush=True)
    settings["sentiment"] = {"model": s["model"], "budget_s": s["train"]["time_budget_s"], "steps": result.steps}
    paths = export_all(model_dir, "export_sentiment")
    texts = list(dev["text"])
    reference = None
    for path in PATHS:
        pipe = load(paths[path]["dir"])
        accuracy = pipe.evaluate(dev)["accuracy"]
        r32, r1 = rate(pipe, texts, 32), rate(pipe, texts, 1)
        outputs = pipe.predict(texts, batch_size=32)
        reference = outputs if path == "eager" else reference
        differ = sum(a["label"] != b["label"] for a, b in zip(reference, outputs))
        diff = max(abs(a["score"] - b["score"]) for a, b in zip(reference, outputs))
        key = path.replace("-", "_")
        metrics.update({
            f"sentiment_dev_accuracy_{key}": round(accuracy, 4),
            f"sentiment_predict_sentences_per_s_batch32_{key}": round(r32, 1),
            f"sentiment_predict_sentences_per_s_batch1_{key}": round(r1, 1),
            f"sentiment_labels_differ_{key}": differ,
            f"sentiment_max_score_diff_{key}": float(f"{diff:.2e}"),
        })
        print(f"  {path:<17} accuracy {accuracy:.4f}  batch32 {r32:7.1f}/s  batch1 {r1:6.1f}/s  "
              f"labels differ {differ}, max score diff {diff:.1e}", flush=True)


# -- speech ------------------------------------------------------------------------------------------
def speech_part(args, metrics: dict, settings: dict) -> None:
    import speech as speech_bench
    from seqlab.recipe import load_recipe

    rows = speech_bench.read_fsdd(corpora_dir() / "speech" / "fsdd")
    train_rows, _, val_rows = speech_bench.fsdd_parts(rows)
    train, val = speech_bench.isolated(train_rows), speech_bench.isolated(val_rows)
    model_dir = RUNS / "export_speech"
    s = speech_bench.recipe_settings("export", args.speech_budget_min * 60, "cpu", list(speech_bench.DIGITS), epochs=60,
                                     batch=16, hidden=128, patience=None)
    s.pop("edge_augment", None)
    s["output"] = str(model_dir)
    recipe = load_recipe(data=s)
    pipe = recipe.build(train["text"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = pipe.fit(train, None, recipe.train)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    pipe.save(model_dir)
    print(f"speech: trained {result.steps} steps", flush=True)
    settings["speech"] = {"model": s["model"], "budget_s": s["train"]["time_budget_s"], "steps": result.steps,
                          "data": "FSDD isolated digits: train takes 12-49, scored on validation takes 5-9"}
    paths = export_all(model_dir, "export_speech")
    clips, rates = val["audio"], val["sample_rate"]
    reference = None
    for path in PATHS:
        pipe = load(paths[path]["dir"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            wer = pipe.evaluate(val)["wer"]
            r32 = rate(pipe, clips, 32, sample_rate=rates[0])
            r1 = rate(pipe, clips[:200], 1, sample_rate=rates[0])
            outputs = pipe.predict(clips, batch_size=32, sample_rate=rates[0])
        reference = outputs if path == "eager" else reference
        differ = sum(a != b for a, b in zip(reference, outputs))
        key = path.replace("-", "_")
        metrics.update({
            f"speech_fsdd_isolated_wer_{key}": round(wer, 4),
            f"speech_predict_clips_per_s_batch32_{key}": round(r32, 1),
            f"speech_predict_clips_per_s_batch1_{key}": round(r1, 1),
            f"speech_transcripts_differ_{key}": differ,
        })
        print(f"  {path:<17} WER {wer:.4f}  batch32 {r32:7.1f}/s  batch1 {r1:6.1f}/s  transcripts differ {differ}", flush=True)


def main() -> None:
    p = parser("Exported pipelines (ONNX / TorchScript, ± int8) against the eager model", budget_min=3)
    p.add_argument("--model", help="an existing saved NER pipeline (skips training)")
    p.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime CPU threads (default 1)")
    p.add_argument("--sentiment-budget-min", type=float, default=1.0)
    p.add_argument("--speech-budget-min", type=float, default=1.5)
    p.add_argument("--skip", default="", help="comma-separated parts to skip: sentiment, speech")
    args = p.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    start = time.perf_counter()
    metrics: dict = {}
    import onnx

    settings: dict = {"threads": args.threads, "paths": list(PATHS), "onnxruntime": onnxruntime.__version__,
                      "onnx": onnx.__version__, "int8": "dynamic quantisation of LSTM/GRU/Linear (torch) or "
                      "MatMul/Gemm/LSTM/GRU (onnxruntime)", "ner_batch1_sentences": 1000}
    print("NER (CoNLL-2003 valid)", flush=True)
    ner_part(args, metrics, settings)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if "sentiment" not in skip:
        print("sentiment (SST-2 dev)", flush=True)
        sentiment_part(args, metrics, settings)
    if "speech" not in skip:
        print("speech (FSDD isolated digits)", flush=True)
        speech_part(args, metrics, settings)
    changes = [abs(metrics[f"ner_dev_f1_change_{p.replace('-', '_')}"]) for p in PATHS[1:]]
    metrics["target_met"] = changes[0] == 0 and changes[2] == 0 and changes[1] <= 0.3 and changes[3] <= 0.3
    write_results("export", metrics, settings, args.budget_min * 60, time.perf_counter() - start, torch.device("cpu"))


if __name__ == "__main__":
    main()
