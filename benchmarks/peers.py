"""Side by side with the peers: the same task, the same data, the same machine, in one run.

    python benchmarks/peers.py [--budget-min 20] [--only ner,features,metrics] [--peer-python PY] [--device cpu|cuda]
    python benchmarks/peers.py --only ner --smoke --limit-train 300 --limit-dev 100 --budget-min 1   # a quick check

Three rows, each a ratio measured in this one process (or its workers) on this machine:

- **NER vs Flair 0.15.1** on CoNLL-2003 (``$SEQLAB_CORPORA/ner/conll2003/{train,valid}.txt``).
  Both taggers are BiLSTM-CRFs with 256 units per direction, initialised from the *same*
  word2vec vectors (gensim skip-gram, 100-d, window 5, min_count 1, 10 epochs, on the
  training tokens with their case: ``seqlab.embeddings.word2vec.train_word2vec``, written
  as word2vec ``.txt`` for seqlab and ``.bin`` for Flair's ``WordEmbeddings(path)``), with
  character features (seqlab: the char-CNN of ``benchmarks/ner.py``; Flair: its
  ``CharacterEmbeddings`` char-BiLSTM, given a character ``Dictionary`` built here from the
  training tokens, so nothing is downloaded). Flair runs its defaults (``SequenceTagger(
  hidden_size=256, use_crf=True)``, SGD lr 0.1, batches of 32, annealing on dev F1) with
  ``embeddings_storage_mode='none'``, so dev evaluation recomputes the character features
  every epoch (PEERS.md: with ``'cpu'`` they go stale and dev F1 reads 4–6 points low).
  seqlab runs the a-priori settings of ``benchmarks/ner.py`` with ``hidden_size=256``. Each
  system trains for the same wall-clock budget (``--budget-min``; word2vec, trained once
  for both, is not counted), keeps its best dev epoch, and is scored with the *same* metric
  code (``NERModel.entity_metrics``: seqeval's default mode, 0–100). Reported: training tokens/s
  (time inside training steps only), prediction sentences/s at batch 32 and 1 (pre-tokenized
  dev sentences, spans with scores), dev F1. Goal: seqlab ≥ 3× Flair's throughput at equal
  or better F1.
- **Features vs librosa** (and SpeechBrain when installed): the MFCC ratio comes from
  ``benchmarks/features.py`` (run as a subprocess, which writes ``features.json``;
  ``--features-mode reuse`` reads the last one instead). SpeechBrain's ``lobes.features.MFCC``
  and ``Fbank`` (sizes matched: 16 kHz, n_fft 512 = 32 ms window, 10 ms hop, 40 mels, 13
  MFCCs, no deltas or context) are timed against seqlab's ``MFCC`` and ``LogMel`` stages on
  the same clips, in batches of 64 length-sorted padded clips (SpeechBrain's input form).
- **Metric wrappers vs jiwer / sacrebleu / seqeval**: ``seqlab.metrics.wer``/``cer``/``bleu``/
  ``chrf``/``entity_f1`` against calling the library directly on the same large synthetic
  corpora (100k utterances for WER, 20k sentences for the rest), interleaved repeats,
  medians; the overhead must stay under 10%. Scores are checked equal.

Flair and SpeechBrain are NOT seqlab dependencies. They run in a worker process started
with ``--peer-python`` (default: this interpreter), so they can live in a separate virtual
environment that shares this one's torch (never let them replace torch 2.11)::

    python3 -m venv /tmp/peers-venv
    echo "import site; site.addsitedir('$(python -c 'import site; print(site.getsitepackages()[0])')')" \\
        > /tmp/peers-venv/lib/python3.11/site-packages/zz_seqlab_venv.pth
    /tmp/peers-venv/bin/pip install --dry-run flair==0.15.1     # check: torch must not be in "Would install"
    /tmp/peers-venv/bin/pip install flair==0.15.1 "datasets>=4,<5"   # datasets: a version that fits flair's huggingface_hub
    /tmp/peers-venv/bin/pip install --no-deps speechbrain==1.1.2 && /tmp/peers-venv/bin/pip install hyperpyyaml
    python benchmarks/peers.py --peer-python /tmp/peers-venv/bin/python

A missing peer skips its row with this hint. Results: ``benchmarks/results/peers.json``
(sections not run this time keep their last figures, each section with its own date and
commit in ``settings.sections``); the table and the command per row are in docs/peers.md.
"""
from __future__ import annotations

import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

FLAIR_VERSION = "0.15.1"
SPEECHBRAIN_VERSION = "1.1.2"
SECTIONS = ("ner", "features", "metrics")
WORD2VEC = {"algorithm": "skipgram", "dim": 100, "window": 5, "min_count": 1, "epochs": 10, "workers": 1, "seed": 0}
HIDDEN = 256
INSTALL_HINT = (
    "install it into a separate venv that shares this one's torch (see the module docstring of benchmarks/peers.py): "
    f"`pip install --dry-run flair=={FLAIR_VERSION}` first (torch must not be replaced), then "
    f"`pip install flair=={FLAIR_VERSION}`, and pass --peer-python /path/to/that/venv/bin/python"
)


# -- plumbing ------------------------------------------------------------------------------------
def peer_version(python: str, module: str) -> str | None:
    """The version of ``module`` importable by ``python``, or None."""
    code = f"import {module}; print(getattr({module}, '__version__', 'unknown'))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, env=_offline_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def run_worker(python: str, kind: str, job: dict, log: Path, timeout_s: float) -> dict:
    """Run ``peers.py --worker KIND`` under ``python``; returns the JSON it writes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
        job_path = handle.name
    out_path = job_path + ".out"
    command = [python, str(Path(__file__).resolve()), "--worker", kind, "--job", job_path, "--out", out_path]
    try:
        with open(log, "w") as handle:
            result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s, env=_offline_env())
        if result.returncode != 0 or not Path(out_path).is_file():
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{kind} worker failed (exit {result.returncode}); log {log}:\n{tail}")
        return json.loads(Path(out_path).read_text())
    finally:
        for leftover in (job_path, out_path):
            Path(leftover).unlink(missing_ok=True)


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, called in turn ``repeats`` times (after one warm-up each),
    so that load changes on a shared machine hit all of them alike."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        # A B, B A, A B …: whoever runs second does not always inherit the warmer caches.
        for name in names if repeat % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


# -- metrics ---------------------------------------------------------------------------------------
def synthetic_corpus(n: int, seed: int, vocab_size: int = 5000, error_rate: float = 0.15) -> tuple[list[str], list[str]]:
    """``n`` random reference sentences of 5–30 words and hypotheses with ~15% substitutions,
    deletions and insertions (the shape of an ASR or MT system's output)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(vocab_size)]
    refs, hyps = [], []
    for _ in range(n):
        words = rng.choices(vocab, k=rng.randint(5, 30))
        out = []
        for w in words:
            r = rng.random()
            if r < error_rate / 3:
                out.append(rng.choice(vocab))
            elif r < 2 * error_rate / 3:
                continue
            elif r < error_rate:
                out.extend([w, rng.choice(vocab)])
            else:
                out.append(w)
        refs.append(" ".join(words))
        hyps.append(" ".join(out))
    return refs, hyps


def synthetic_tags(n: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """IOB2 tag sequences of 5–30 tokens and predictions with ~10% of the tokens changed."""
    rng = random.Random(seed)
    types = ["PER", "LOC", "ORG", "MISC"]
    gold, pred = [], []
    for _ in range(n):
        tags, i, length = [], 0, rng.randint(5, 30)
        while i < length:
            if rng.random() < 0.2:
                kind, span = rng.choice(types), rng.randint(1, 3)
                tags += ["B-" + kind] + ["I-" + kind] * (span - 1)
                i += span
            else:
                tags.append("O")
                i += 1
        tags = tags[:length]
        gold.append(tags)
        pred.append([rng.choice(["O", "B-PER", "I-LOC", "B-ORG"]) if rng.random() < 0.1 else t for t in tags])
    return gold, pred


def bench_metrics(args) -> tuple[dict, dict]:
    import jiwer
    import sacrebleu
    from seqeval.metrics import classification_report

    from seqlab.metrics import bleu, cer, chrf, entity_f1, wer

    refs, hyps = synthetic_corpus(args.metrics_utterances, seed=1)
    srefs, shyps = refs[: args.metrics_sentences], hyps[: args.metrics_sentences]
    gold, pred = synthetic_tags(args.metrics_sentences, seed=2)
    rows = {
        # name: (seqlab call, peer call, equality check of the two results, items)
        "wer": (lambda: wer(refs, hyps), lambda: jiwer.wer(refs, hyps), lambda a, b: abs(a - b) < 1e-12, len(refs)),
        "cer": (lambda: cer(srefs, shyps), lambda: jiwer.cer(srefs, shyps), lambda a, b: abs(a - b) < 1e-12, len(srefs)),
        "bleu": (lambda: bleu(srefs, shyps), lambda: sacrebleu.corpus_bleu(shyps, [srefs]),
                 lambda a, b: abs(a.score - b.score) < 1e-9, len(srefs)),
        "chrf": (lambda: chrf(srefs, shyps), lambda: sacrebleu.corpus_chrf(shyps, [srefs]),
                 lambda a, b: abs(a.score - b.score) < 1e-9, len(srefs)),
        "entity_f1": (lambda: entity_f1(gold, pred), lambda: classification_report(gold, pred, output_dict=True),
                      lambda a, b: abs(a.f1 - b["micro avg"]["f1-score"]) < 1e-9, len(gold)),
    }
    metrics: dict[str, Any] = {}
    details = {}
    for name, (ours, theirs, same, items) in rows.items():
        a, b = ours(), theirs()
        if not same(a, b):
            raise AssertionError(f"{name}: seqlab and the library disagree ({a!r} vs {b!r})")
        times = interleaved({"seqlab": ours, "peer": theirs}, args.repeats)
        ratios = [s / p for s, p in zip(times["seqlab"], times["peer"])]
        overhead = 100.0 * (statistics.median(ratios) - 1.0)
        metrics[f"{name}_overhead_pct"] = round(overhead, 2)
        metrics[f"{name}_items_per_s_seqlab"] = round(items / statistics.median(times["seqlab"]), 1)
        metrics[f"{name}_items_per_s_peer"] = round(items / statistics.median(times["peer"]), 1)
        details[name] = {"items": items, "seconds_seqlab": [round(t, 4) for t in times["seqlab"]],
                         "seconds_peer": [round(t, 4) for t in times["peer"]]}
        print(f"  {name:<10} seqlab {metrics[f'{name}_items_per_s_seqlab']:>10.0f}/s   peer "
              f"{metrics[f'{name}_items_per_s_peer']:>10.0f}/s   overhead {overhead:+.2f}%")
    metrics["metrics_max_overhead_pct"] = max(metrics[f"{n}_overhead_pct"] for n in rows)
    metrics["metrics_overhead_target_met"] = metrics["metrics_max_overhead_pct"] < 10.0
    settings = {
        "utterances_wer": len(refs), "sentences_other": len(srefs), "repeats": args.repeats,
        "corpus": "synthetic: 5,000 random words, sentences of 5-30 words, ~15% word edits (tags: ~10% changed)",
        "peers": {"jiwer": jiwer.__version__ if hasattr(jiwer, "__version__") else _dist_version("jiwer"),
                  "sacrebleu": sacrebleu.__version__, "seqeval": _dist_version("seqeval")},
        "peer_calls": {"wer": "jiwer.wer(refs, hyps)", "cer": "jiwer.cer(refs, hyps)",
                       "bleu": "sacrebleu.corpus_bleu(hyps, [refs])", "chrf": "sacrebleu.corpus_chrf(hyps, [refs])",
                       "entity_f1": "seqeval.metrics.classification_report(gold, pred, output_dict=True)"},
        "overhead": "100 * (median over repeats of seqlab_time / peer_time - 1)",
        "timings": details,
    }
    return metrics, settings


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# -- features ----------------------------------------------------------------------------------------
def bench_features(args, python: str) -> tuple[dict, dict]:
    results = _common.RESULTS / "features.json"
    if args.features_mode == "run":
        command = [sys.executable, str(Path(__file__).resolve().parent / "features.py"), "--device", args.device]
        print("  running", " ".join(command))
        subprocess.run(command, check=True, timeout=3600)
    if not results.is_file():
        raise RuntimeError(f"{results} does not exist; run benchmarks/features.py (or --features-mode run)")
    saved = json.loads(results.read_text())
    keep = ("mfcc_speed_ratio_vs_librosa", "mfcc_audio_s_per_s", "librosa_audio_s_per_s", "parity_max_abs_err",
            "torchaudio_default_batched_audio_s_per_s")
    metrics = {k: saved["metrics"][k] for k in keep if k in saved["metrics"]}
    settings: dict[str, Any] = {
        "librosa_row": {"source": "benchmarks/results/features.json", "mode": args.features_mode,
                        "commit": saved.get("commit"), "date": saved.get("date"), "device": saved.get("device")},
    }
    version = peer_version(python, "speechbrain")
    if version is None:
        print(f"  speechbrain not importable by {python}: skipping its row (install speechbrain=={SPEECHBRAIN_VERSION} "
              "with --no-deps into the peers venv, plus hyperpyyaml)")
        settings["speechbrain"] = "skipped: not installed"
        return metrics, settings
    job = {"corpora": str(_common.corpora_dir()), "repeats": args.repeats, "batch": 64, "threads": _threads()}
    out = run_worker(python, "speechbrain", job, _common.RUNS / "peers" / "speechbrain.log", timeout_s=3600)
    metrics.update(out["metrics"])
    settings["speechbrain"] = {"version": version, **out["settings"]}
    return metrics, settings


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# -- NER ----------------------------------------------------------------------------------------------
def _write_columns(path: Path, tokens: list[list[str]], tags: list[list[str]]) -> None:
    """Two-column CoNLL (token, IOB2 tag), no -DOCSTART- lines: exactly the sentences seqlab reads."""
    with open(path, "w", encoding="utf-8") as handle:
        for toks, tgs in zip(tokens, tags):
            for token, tag in zip(toks, tgs):
                handle.write(f"{token} {tag}\n")
            handle.write("\n")


def bench_ner(args, python: str) -> tuple[dict, dict]:
    import torch

    import ner as ner_benchmark  # benchmarks/ner.py: the a-priori seqlab settings and its predict_rate
    from seqlab.embeddings.word2vec import save_vectors, train_word2vec
    from seqlab.recipe import load_recipe
    from seqlab.tasks.ner import NERModel

    flair_version = peer_version(python, "flair")
    if flair_version is None:
        print(f"  flair is not importable by {python}: skipping the NER row; {INSTALL_HINT}")
        return {}, {"skipped": f"flair not importable by {python}; {INSTALL_HINT}"}
    if flair_version != FLAIR_VERSION:
        print(f"  note: flair {flair_version} found, the comparison is specified for {FLAIR_VERSION}")

    conll = _common.corpora_dir() / "ner" / "conll2003"
    settings = copy.deepcopy(ner_benchmark.SETTINGS)
    settings["data"].update({"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt"), "limit_train": args.limit_train})
    settings["model"]["hidden_size"] = HIDDEN
    settings["model"]["document_case_dim"] = 0  # the sentence-level tagger its recorded figures measured (no documents)
    settings["model"]["lm_loss"] = 0.0  # and trained without the LM loss, as those figures were
    settings["device"] = args.device
    budget_s = args.budget_min * 60
    settings["train"]["time_budget_s"] = budget_s
    recipe = load_recipe(data=settings)
    train, dev = recipe.datasets()
    if args.limit_dev is not None:
        dev = dev.select(range(min(args.limit_dev, len(dev))))
    train_tokens, train_tags = [list(t) for t in train["tokens"]], [list(t) for t in train["tags"]]
    dev_tokens, dev_tags = [list(t) for t in dev["tokens"]], [list(t) for t in dev["tags"]]
    print(f"  CoNLL-2003: {len(train_tokens)} training sentences ({sum(map(len, train_tokens))} tokens), "
          f"{len(dev_tokens)} dev sentences")

    # Shared inputs: the word2vec vectors (both formats) and the two-column files for Flair.
    work = _common.RUNS / "peers"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    vectors = train_word2vec(train_tokens, **WORD2VEC)
    w2v_s = time.perf_counter() - start
    save_vectors(vectors, work / "w2v100.txt")
    save_vectors(vectors, work / "w2v100.bin", binary=True)
    data_dir = work / "flair_data"
    data_dir.mkdir(exist_ok=True)
    _write_columns(data_dir / "train.txt", train_tokens, train_tags)
    _write_columns(data_dir / "dev.txt", dev_tokens, dev_tags)
    print(f"  word2vec: {len(vectors)} words in {w2v_s:.1f} s (shared, not counted in either budget)")

    # seqlab.
    settings["word2vec"] = {"pretrained": str(work / "w2v100.txt"), "pretrained_format": "word2vec_text"}
    recipe = load_recipe(data=settings)
    pipe = recipe.build()
    torch.manual_seed(settings["train"]["seed"])
    start = time.perf_counter()
    result = pipe.fit(train, dev, recipe.train)
    seqlab_fit_s = time.perf_counter() - start
    seqlab_f1 = pipe.evaluate(dev)["f1"]
    batch1 = dev_tokens[: args.batch1_sentences]
    print(f"  seqlab: dev F1 {seqlab_f1:.2f}, {result.tokens_per_s:.0f} train tokens/s; {result.steps} steps, "
          f"stopped by {result.stopped_by}")

    # Flair, in its worker.
    job = {"data_dir": str(data_dir), "vectors": str(work / "w2v100.bin"), "hidden_size": HIDDEN, "budget_s": budget_s,
           "threads": _threads(), "device": str(pipe.device), "base_path": str(work / "flair_run"),
           "batch1_sentences": args.batch1_sentences, "seed": settings["train"]["seed"]}
    flair = run_worker(python, "flair", job, work / "flair.log", timeout_s=budget_s * 3 + 1800)
    flair_f1 = NERModel.entity_metrics(flair["predicted_tags"], dev_tags, "IOB2")["f1"]
    print(f"  flair: dev F1 {flair_f1:.2f}, {flair['train_tokens_per_s']:.0f} train tokens/s, "
          f"{flair['predict_sentences_per_s']:.0f} sent/s (b32), {flair['predict_sentences_per_s_batch1']:.0f} sent/s (b1); "
          f"{flair['epochs_completed']} epochs")

    # seqlab's prediction speed on each path, timed right after Flair's (which ends its worker),
    # so both see the machine in the same state: eager PyTorch, and the exported artefacts of
    # seqlab export (ONNX Runtime, optionally int8). Each path's dev F1 is measured too.
    paths = _ner_paths(pipe, args.ner_paths, work)
    per_path = {}
    for name, path_pipe in paths.items():
        f1 = seqlab_f1 if name == "eager" else path_pipe.evaluate(dev)["f1"]
        rate32 = ner_benchmark.predict_rate(path_pipe, dev_tokens, 32)
        rate1 = ner_benchmark.predict_rate(path_pipe, batch1, 1)
        per_path[name] = {"f1": f1, "rate32": rate32, "rate1": rate1}
        print(f"  seqlab {name}: dev F1 {f1:.2f} ({f1 - seqlab_f1:+.2f}), {rate32:.0f} sent/s (b32), {rate1:.0f} sent/s (b1)")
    fastest = max(per_path, key=lambda n: per_path[n]["rate1"])
    seqlab_rate32, seqlab_rate1 = per_path["eager"]["rate32"], per_path["eager"]["rate1"]

    metrics = {
        "ner_train_speed_ratio_vs_flair": round(result.tokens_per_s / flair["train_tokens_per_s"], 3),
        "ner_predict_speed_ratio_vs_flair": round(seqlab_rate32 / flair["predict_sentences_per_s"], 3),
        "ner_predict_speed_ratio_vs_flair_batch1": round(seqlab_rate1 / flair["predict_sentences_per_s_batch1"], 3),
        # Issue #19's batch-1 bar: seqlab's fastest path (settings: ner_predict_batch1_path).
        "ner_predict_batch1_speed_ratio_vs_flair": round(per_path[fastest]["rate1"] / flair["predict_sentences_per_s_batch1"], 3),
        "ner_dev_f1_seqlab": round(seqlab_f1, 2),
        "ner_dev_f1_flair": round(flair_f1, 2),
        "ner_train_tokens_per_s_seqlab": round(result.tokens_per_s, 1),
        "ner_train_tokens_per_s_flair": round(flair["train_tokens_per_s"], 1),
        "ner_predict_sentences_per_s_seqlab": round(seqlab_rate32, 1),
        "ner_predict_sentences_per_s_flair": round(flair["predict_sentences_per_s"], 1),
        "ner_predict_sentences_per_s_batch1_seqlab": round(seqlab_rate1, 1),
        "ner_predict_sentences_per_s_batch1_flair": round(flair["predict_sentences_per_s_batch1"], 1),
        **{f"ner_predict_sentences_per_s_batch1_seqlab_{n.replace('-', '_')}": round(v["rate1"], 1) for n, v in per_path.items()},
        **{f"ner_predict_sentences_per_s_seqlab_{n.replace('-', '_')}": round(v["rate32"], 1) for n, v in per_path.items()},
        **{f"ner_dev_f1_seqlab_{n.replace('-', '_')}": round(v["f1"], 2) for n, v in per_path.items()},
        "ner_epochs_seqlab": result.history[-1]["epoch"] if result.history else 0,
        "ner_epochs_flair": flair["epochs_completed"],
    }
    if args.smoke:
        metrics["ner_smoke"] = True
    metrics["ner_target_met"] = (min(metrics["ner_train_speed_ratio_vs_flair"], metrics["ner_predict_speed_ratio_vs_flair"]) >= 3.0
                                 and seqlab_f1 >= flair_f1)
    recorded = {
        "data": {"train": settings["data"]["train"], "dev": settings["data"]["dev"], "train_sentences": len(train_tokens),
                 "dev_sentences": len(dev_tokens), "limit_train": args.limit_train, "limit_dev": args.limit_dev},
        "budget_s_per_system": budget_s, "word2vec": WORD2VEC, "word2vec_s": round(w2v_s, 1),
        "seqlab": {"model": settings["model"], "train": settings["train"], "fit_s": round(seqlab_fit_s, 1),
                   "steps": result.steps, "stopped_by": result.stopped_by},
        "flair": {"version": flair_version, **flair["settings"]},
        "metric": "seqlab.tasks.ner.NERModel.entity_metrics (seqeval default mode) on both systems' IOB2 output",
        "predict": {"batch32": f"{len(dev_tokens)} pre-tokenized dev sentences",
                    "batch1": f"the first {len(batch1)} dev sentences"},
        # The path of ner_predict_batch1_speed_ratio_vs_flair: seqlab's fastest at batch 1.
        "ner_predict_batch1_path": fastest,
        "ner_paths": {"eager": "pipe.predict (PyTorch)", "onnx": "seqlab export --format onnx, run by ONNX Runtime",
                      "onnx-int8": "seqlab export --format onnx --int8 (dynamic quantisation)",
                      "torchscript": "seqlab export --format torchscript",
                      "torchscript-int8": "seqlab export --format torchscript --int8",
                      "timing": "after Flair's worker returned; Viterbi and span scores in Python on every path"},
    }
    return metrics, recorded


def _ner_paths(pipe, names: str, work: Path) -> dict:
    """``{"eager": pipe, "onnx-int8": the exported artefact loaded, …}`` for the comma-separated ``names``."""
    import seqlab
    from seqlab.export import export_pipeline

    paths = {"eager": pipe}
    wanted = [n for n in names.split(",") if n and n != "eager"]
    if wanted:
        saved = pipe.save(work / "seqlab_ner")
        for name in wanted:
            fmt, _, int8 = name.partition("-")
            if fmt not in ("onnx", "torchscript") or int8 not in ("", "int8"):
                raise SystemExit(f"unknown --ner-paths entry {name!r}; use eager, onnx, onnx-int8, torchscript, torchscript-int8")
            out = export_pipeline(saved, work / f"seqlab_ner_{name}", fmt, int8=bool(int8))
            paths[name] = seqlab.load(out)
    return paths


# -- workers (run under --peer-python; they import no seqlab at module level) ---------------------------
def worker_flair(job: dict) -> dict:
    """Train and time Flair's SequenceTagger as the module docstring says; returns figures and dev tags."""
    import logging

    import flair
    import torch
    from flair.data import Dictionary, Sentence
    from flair.datasets import ColumnCorpus
    from flair.embeddings import CharacterEmbeddings, StackedEmbeddings, WordEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer
    from flair.trainers.plugins.base import TrainerPlugin, TrainingInterrupt

    logging.getLogger("flair").setLevel(logging.WARNING)
    torch.set_num_threads(job["threads"])
    flair.device = torch.device(job["device"])
    flair.set_seed(job["seed"])
    corpus = ColumnCorpus(job["data_dir"], {0: "text", 1: "ner"}, train_file="train.txt", dev_file="dev.txt",
                          test_file=None, sample_missing_splits=False, in_memory=True)
    tag_dictionary = corpus.make_label_dictionary(label_type="ner", add_unk=False)
    chars = Dictionary()  # with <unk>, for characters only seen in dev
    for sentence in corpus.train:
        for token in sentence:
            for c in token.text:
                chars.add_item(c)
    embeddings = StackedEmbeddings([WordEmbeddings(job["vectors"]), CharacterEmbeddings(chars)])
    tagger = SequenceTagger(hidden_size=job["hidden_size"], embeddings=embeddings, tag_dictionary=tag_dictionary,
                            tag_type="ner", use_crf=True)

    class Budget(TrainerPlugin):
        """Stops training after ``budget_s`` and times the training steps (as seqlab's Trainer does)."""

        def __init__(self, budget_s: float) -> None:
            super().__init__()
            self.budget_s, self.start, self.step_start = budget_s, None, 0.0
            self.train_seconds, self.train_tokens, self.epochs = 0.0, 0, 0

        @TrainerPlugin.hook
        def after_setup(self, **kw):
            self.start = time.perf_counter()

        @TrainerPlugin.hook
        def before_training_batch(self, **kw):
            self.step_start = time.perf_counter()

        @TrainerPlugin.hook
        def after_training_batch(self, batch, **kw):
            self.train_seconds += time.perf_counter() - self.step_start
            self.train_tokens += sum(len(s) for s in batch)
            if time.perf_counter() - self.start > self.budget_s:
                raise TrainingInterrupt(f"time budget of {self.budget_s:.0f} s used")

        @TrainerPlugin.hook
        def after_evaluation(self, epoch, **kw):
            self.epochs = epoch

        @TrainerPlugin.hook
        def before_training_epoch(self, **kw):
            # Checked here, not after the evaluation: Flair saves the epoch's best model after that hook.
            if time.perf_counter() - self.start > self.budget_s:
                raise TrainingInterrupt(f"time budget of {self.budget_s:.0f} s used")

    budget = Budget(job["budget_s"])
    trainer = ModelTrainer(tagger, corpus)
    start = time.perf_counter()
    trainer.train(job["base_path"], learning_rate=0.1, mini_batch_size=32, max_epochs=10_000,
                  embeddings_storage_mode="none", save_final_model=False, create_file_logs=False,
                  create_loss_file=False, plugins=[budget])
    fit_s = time.perf_counter() - start
    tagger.eval()

    def fresh(sentences):
        return [Sentence([t.text for t in s]) for s in sentences]

    dev = list(corpus.dev)
    predicted = fresh(dev)
    tagger.predict(predicted[:128], mini_batch_size=32, embedding_storage_mode="none")  # warm-up
    predicted = fresh(dev)
    start = time.perf_counter()
    tagger.predict(predicted, mini_batch_size=32, embedding_storage_mode="none")
    rate32 = len(predicted) / (time.perf_counter() - start)
    single = fresh(dev[: job["batch1_sentences"]])
    start = time.perf_counter()
    tagger.predict(single, mini_batch_size=1, embedding_storage_mode="none")
    rate1 = len(single) / (time.perf_counter() - start)
    tags = []
    for sentence in predicted:
        row = ["O"] * len(sentence)
        for span in sentence.get_spans("ner"):
            idx = [t.idx - 1 for t in span.tokens]
            kind = span.get_label("ner").value
            row[idx[0]] = "B-" + kind
            for i in idx[1:]:
                row[i] = "I-" + kind
        tags.append(row)
    return {
        "train_tokens_per_s": budget.train_tokens / max(budget.train_seconds, 1e-9),
        "predict_sentences_per_s": rate32, "predict_sentences_per_s_batch1": rate1,
        "epochs_completed": budget.epochs, "predicted_tags": tags,
        "settings": {"tagger": f"SequenceTagger(hidden_size={job['hidden_size']}, use_crf=True), Flair defaults otherwise",
                     "embeddings": "StackedEmbeddings([WordEmbeddings(w2v100.bin), CharacterEmbeddings(<char dict of train>)])",
                     "train": "ModelTrainer.train(learning_rate=0.1, mini_batch_size=32, embeddings_storage_mode='none')",
                     "fit_s": round(fit_s, 1), "train_seconds": round(budget.train_seconds, 1),
                     "train_tokens": budget.train_tokens, "tag_dictionary": len(tag_dictionary),
                     "characters": len(chars), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }


def worker_speechbrain(job: dict) -> dict:
    """seqlab's MFCC/LogMel stages against SpeechBrain's MFCC/Fbank on the features benchmark's clips."""
    import numpy as np
    import speechbrain
    import torch
    from speechbrain.lobes.features import MFCC as SBMFCC
    from speechbrain.lobes.features import Fbank as SBFbank

    import features as features_benchmark
    from seqlab.audio import MFCC, LogMel

    torch.set_num_threads(job["threads"])
    clips, info = features_benchmark.load_clips(Path(job["corpora"]))
    seconds = sum(len(c) for c in clips) / 16000
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    batches = []
    for s in range(0, len(order), job["batch"]):
        group = [clips[i] for i in order[s : s + job["batch"]]]
        padded = np.zeros((len(group), max(len(c) for c in group)), np.float32)
        for row, c in enumerate(group):
            padded[row, : len(c)] = c
        batches.append((torch.from_numpy(padded), [np.ascontiguousarray(c, dtype=np.float32) for c in group]))
    sizes = dict(sample_rate=16000, n_fft=512, win_length=32, hop_length=10, n_mels=40, deltas=False, context=False)
    sb_mfcc, sb_fbank = SBMFCC(n_mfcc=13, **sizes).eval(), SBFbank(**sizes).eval()
    ours_mfcc, ours_logmel = MFCC(device="cpu"), LogMel(device="cpu")

    def run_sb(module):
        with torch.no_grad():
            for padded, _ in batches:
                module(padded)

    def run_ours(stage):
        for _, group in batches:
            stage({"audio": group})

    times = interleaved({"seqlab_mfcc": lambda: run_ours(ours_mfcc), "speechbrain_mfcc": lambda: run_sb(sb_mfcc),
                         "seqlab_log_mel": lambda: run_ours(ours_logmel), "speechbrain_fbank": lambda: run_sb(sb_fbank)},
                        job["repeats"])
    rate = {k: seconds / statistics.median(v) for k, v in times.items()}
    return {
        "metrics": {
            "mfcc_speed_ratio_vs_speechbrain": round(rate["seqlab_mfcc"] / rate["speechbrain_mfcc"], 3),
            "log_mel_speed_ratio_vs_speechbrain_fbank": round(rate["seqlab_log_mel"] / rate["speechbrain_fbank"], 3),
            "speechbrain_mfcc_audio_s_per_s": round(rate["speechbrain_mfcc"], 1),
            "speechbrain_fbank_audio_s_per_s": round(rate["speechbrain_fbank"], 1),
            "seqlab_mfcc_batch64_audio_s_per_s": round(rate["seqlab_mfcc"], 1),
            "seqlab_log_mel_batch64_audio_s_per_s": round(rate["seqlab_log_mel"], 1),
        },
        "settings": {"speechbrain": speechbrain.__version__, "clips": len(clips), "audio_seconds": round(seconds, 1),
                     "batch": f"{job['batch']} length-sorted clips, zero-padded for SpeechBrain; the same clips as a list "
                              "for seqlab", "sizes": sizes, "repeats": job["repeats"], "corpora": info,
                     "threads": torch.get_num_threads()},
    }


# -- main --------------------------------------------------------------------------------------------
def _merge(existing: Path, sections: dict[str, tuple[dict, dict]], smoke: bool) -> tuple[dict, dict]:
    """This run's sections plus the last figures of the sections not run now."""
    metrics: dict[str, Any] = {}
    settings: dict[str, Any] = {"sections": {}}
    if existing.is_file():
        old = json.loads(existing.read_text())
        old_sections = old.get("settings", {}).get("sections", {})
        for name, info in old_sections.items():
            if name in sections:
                continue
            settings["sections"][name] = info
            metrics.update({k: v for k, v in old["metrics"].items() if k in info.get("keys", [])})
    for name, (m, s) in sections.items():
        metrics.update(m)
        settings["sections"][name] = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": _common.git_commit(),
                                      "smoke": smoke and name == "ner", "keys": sorted(m), "settings": s}
    return metrics, settings


def main() -> None:
    p = _common.parser("seqlab side by side with Flair, librosa/SpeechBrain, jiwer/sacrebleu", budget_min=20)
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    p.add_argument("--peer-python", default=sys.executable, help="interpreter that can import flair / speechbrain")
    p.add_argument("--limit-train", type=int, default=None, help="first N CoNLL training sentences (smoke runs)")
    p.add_argument("--limit-dev", type=int, default=None, help="first N CoNLL dev sentences (smoke runs)")
    p.add_argument("--batch1-sentences", type=int, default=300, help="dev sentences timed at batch size 1")
    p.add_argument("--smoke", action="store_true", help="label the NER figures a smoke test")
    p.add_argument("--ner-paths", default="eager,onnx,onnx-int8",
                   help="seqlab prediction paths timed in the NER row (eager, onnx, onnx-int8, torchscript, torchscript-int8)")
    p.add_argument("--features-mode", choices=["run", "reuse"], default="run",
                   help="run benchmarks/features.py now, or reuse its last results/features.json")
    p.add_argument("--repeats", type=int, default=7, help="interleaved timing repeats (metrics, SpeechBrain)")
    p.add_argument("--metrics-utterances", type=int, default=100_000)
    p.add_argument("--metrics-sentences", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--worker", choices=["flair", "speechbrain"], help=argparse_suppress())
    p.add_argument("--job", help=argparse_suppress())
    p.add_argument("--out", help=argparse_suppress())
    args = p.parse_args()

    if args.worker:
        job = json.loads(Path(args.job).read_text())
        result = (worker_flair if args.worker == "flair" else worker_speechbrain)(job)
        Path(args.out).write_text(json.dumps(result))
        return

    import torch

    from seqlab.core.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as benchmarks/ner.py: Adam's state of rare words decays into denormals
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        sys.exit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    device = resolve_device(args.device)
    wall = time.perf_counter()
    sections: dict[str, tuple[dict, dict]] = {}
    for name in SECTIONS:
        if name not in wanted:
            continue
        print(f"[{name}]")
        runner = {"ner": bench_ner, "features": bench_features, "metrics": lambda a, _: bench_metrics(a)}[name]
        metrics, recorded = runner(args, args.peer_python)
        if metrics or name == "ner":
            sections[name] = (metrics, recorded)
    metrics, settings = _merge(_common.RESULTS / "peers.json", sections, args.smoke)
    settings.update({"peer_python": args.peer_python, "command": " ".join([Path(sys.executable).name, *sys.argv])})
    _common.write_results("peers", metrics, settings, args.budget_min * 60, time.perf_counter() - wall, device)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
