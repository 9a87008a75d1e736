"""NER prediction speed, batch 1 and batch 32, on the CoNLL-2003 dev sentences (issue #19's speed bar).

    python benchmarks/ner_predict.py [--train-min 1] [--threads 1] [--reuse]
    python benchmarks/ner_predict.py --reuse --profile runs/benchmarks/ner_predict/profile.txt

The model is the one of the peers comparison (``benchmarks/peers.py``, section ner): the
a-priori settings of ``benchmarks/ner.py`` with ``hidden_size=256`` (BiLSTM-CRF, word2vec
100-d initialisation trained on the training tokens, char-CNN), trained for ``--train-min``
minutes on CoNLL ``train.txt`` (0: random initialisation; the speed does not depend on the
weights, the tags do). It is saved to ``runs/benchmarks/ner_predict/`` and ``--reuse`` loads
it again, so runs before and after a code change time the same weights.

Timed: ``pipe.predict([sentence], batch_size=1)`` one pre-tokenized dev sentence at a time
(the serving case: a call per sentence, spans with scores), and ``pipe.predict(dev,
batch_size=32)``, each after a warm-up, with ``--threads`` torch threads. The best of
``--repeats`` passes is reported (a shared machine only ever makes a pass slower).

Correctness: the batch-1 outputs must equal the batch-32 ones (tags and spans; scores to
1e-5), and, with ``--reuse``, the outputs the first run of this model wrote
(``reference_outputs.json`` beside the model): tags identical, largest score difference
reported. ``dev_f1`` is computed from the batch-1 outputs. Writes
``benchmarks/results/ner_predict.json``.
"""
from __future__ import annotations

import copy
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import ner as ner_benchmark  # noqa: E402

HIDDEN = 256  # as benchmarks/peers.py
MODEL_DIR = _common.RUNS / "ner_predict"


def build_and_train(train_min: float, device: str):
    """The peers.py NER pipeline, trained for ``train_min`` minutes (0: random init); returns (pipe, info)."""
    import torch

    from seqlab.recipe import load_recipe

    conll = _common.corpora_dir() / "ner" / "conll2003"
    settings = copy.deepcopy(ner_benchmark.SETTINGS)
    settings["data"].update({"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt")})
    settings["model"]["hidden_size"] = HIDDEN
    settings["device"] = device
    settings["model"]["document_case_dim"] = 0  # the sentence-level tagger its recorded figures measured (no documents)
    settings["model"]["lm_loss"] = 0.0  # and trained without the LM loss, as those figures were
    train, _ = load_recipe(data=settings).datasets()
    vectors = MODEL_DIR.parent / "ner_predict_w2v100.txt"
    w2v_s = ner_benchmark.train_vectors([list(t) for t in train["tokens"]], vectors)
    settings["word2vec"] = {"pretrained": str(vectors), "pretrained_format": "word2vec_text"}
    settings["train"]["time_budget_s"] = max(train_min * 60, 1.0)
    settings["train"]["progress"] = "off"
    recipe = load_recipe(data=settings)
    pipe = recipe.build()
    torch.manual_seed(settings["train"]["seed"])
    start = time.perf_counter()
    if train_min > 0:
        result = pipe.fit(train, None, recipe.train)
        steps = result.steps
    else:  # fit the stages and build the model, no training step
        steps = _fit_without_training(pipe, train, recipe)
    info = {"train_min": train_min, "steps": steps, "fit_s": round(time.perf_counter() - start, 1),
            "word2vec_s": round(w2v_s, 1), "model": settings["model"], "train": settings["train"]}
    pipe.save(MODEL_DIR, meta={"recipe": settings, "ner_predict": info})
    return pipe, info


def _fit_without_training(pipe, train, recipe) -> int:
    """Random initialisation: fit the stages, build the model from them, no step."""
    from seqlab.train.checkpoint import seed_everything

    columns = pipe._fit_stages(train.to_dict())
    seed_everything(recipe.train.seed)
    pipe.model = pipe.task_cls.from_stages(pipe.model_config, pipe.stages).to(pipe.device).eval()
    del columns
    return 0


def outputs_equal(a: list[dict], b: list[dict], tol: float) -> tuple[bool, float]:
    """(tags, spans and texts equal, largest span score difference); scores compared to ``tol``."""
    worst, same = 0.0, len(a) == len(b)
    for x, y in zip(a, b):
        if x["tags"] != y["tags"] or x["tokens"] != y["tokens"] or len(x["spans"]) != len(y["spans"]):
            same = False
            continue
        for s, t in zip(x["spans"], y["spans"]):
            if {k: v for k, v in s.items() if k != "score"} != {k: v for k, v in t.items() if k != "score"}:
                same = False
            worst = max(worst, abs(s["score"] - t["score"]))
    return same and worst <= tol, worst


def time_batch1(pipe, sentences: list[list[str]], repeats: int) -> tuple[float, float, list[dict]]:
    """Best sentences/s over ``repeats`` passes of one ``predict([s], batch_size=1)`` call per
    sentence, by the wall clock and by this process's CPU time (less disturbed by neighbours)."""
    for s in sentences[:50]:  # warm-up
        pipe.predict([s], batch_size=1)
    best, best_cpu, outputs = 0.0, 0.0, []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        outputs = [pipe.predict([s], batch_size=1)[0] for s in sentences]
        best = max(best, len(sentences) / (time.perf_counter() - start))
        best_cpu = max(best_cpu, len(sentences) / max(time.process_time() - cpu, 1e-9))
    return best, best_cpu, outputs


def time_batched(pipe, sentences: list[list[str]], batch_size: int, repeats: int) -> tuple[float, float, list[dict]]:
    pipe.predict(sentences[: 4 * batch_size], batch_size=batch_size)  # warm-up
    best, best_cpu, outputs = 0.0, 0.0, []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        outputs = pipe.predict(sentences, batch_size=batch_size)
        best = max(best, len(sentences) / (time.perf_counter() - start))
        best_cpu = max(best_cpu, len(sentences) / max(time.process_time() - cpu, 1e-9))
    return best, best_cpu, outputs


def main() -> None:
    p = _common.parser("NER prediction speed at batch 1 and 32 (peers.py's CoNLL BiLSTM-CRF)", budget_min=1)
    p.add_argument("--train-min", type=float, default=None, help="training minutes (default: --budget-min; 0: random init)")
    p.add_argument("--reuse", action="store_true", help=f"load the model saved by an earlier run ({MODEL_DIR})")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    p.add_argument("--limit-dev", type=int, default=None, help="first N dev sentences only")
    p.add_argument("--profile", default=None, help="write a cProfile of one batch-1 pass to this file (text)")
    args = p.parse_args()

    import torch

    import seqlab
    from seqlab.recipe import load_recipe
    from seqlab.tasks.ner import NERModel

    torch.set_num_threads(args.threads)
    wall = time.perf_counter()
    conll = _common.corpora_dir() / "ner" / "conll2003"
    settings = copy.deepcopy(ner_benchmark.SETTINGS)
    settings["data"].update({"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt")})
    _, dev = load_recipe(data=settings).datasets()
    dev_tokens, dev_tags = [list(t) for t in dev["tokens"]], [list(t) for t in dev["tags"]]
    if args.limit_dev:
        dev_tokens, dev_tags = dev_tokens[: args.limit_dev], dev_tags[: args.limit_dev]
    train_min = args.budget_min if args.train_min is None else args.train_min
    reference_file = MODEL_DIR / "reference_outputs.json"
    if args.reuse:
        if not (MODEL_DIR / "config.json").is_file():
            sys.exit(f"no saved model at {MODEL_DIR}: run once without --reuse first")
        pipe = seqlab.load(MODEL_DIR, device=args.device)
        info = json.loads((MODEL_DIR / "config.json").read_text())["meta"]["ner_predict"]
    else:
        pipe, info = build_and_train(train_min, args.device)
        reference_file.unlink(missing_ok=True)  # a new model: its first outputs become the reference
    torch.set_num_threads(args.threads)  # seqlab.load applies seqlab's thread default; the benchmark's wins
    print(f"model: {info['steps']} training steps ({info['train_min']} min); {len(dev_tokens)} dev sentences; "
          f"{torch.get_num_threads()} thread(s)")

    rate1, cpu1, out1 = time_batch1(pipe, dev_tokens, args.repeats)
    print(f"batch 1:  {rate1:.1f} sentences/s ({cpu1:.1f} per CPU second)")
    rate32, cpu32, out32 = time_batched(pipe, dev_tokens, 32, args.repeats)
    print(f"batch 32: {rate32:.1f} sentences/s ({cpu32:.1f} per CPU second)")
    same_32, diff_32 = outputs_equal(out1, out32, 1e-5)
    f1 = NERModel.entity_metrics([o["tags"] for o in out1], dev_tags, "IOB2")["f1"]
    reference = None
    if reference_file.is_file() and not args.limit_dev:
        reference = json.loads(reference_file.read_text())
    elif not args.limit_dev:
        reference_file.write_text(json.dumps(out1))
    same_ref, diff_ref = outputs_equal(out1, reference, 1e-5) if reference is not None else (None, None)
    print(f"batch 1 == batch 32: {same_32} (largest score difference {diff_32:.2e}); "
          f"== reference outputs: {same_ref}" + (f" (largest score difference {diff_ref:.2e})" if reference else
                                                  " (this run wrote the reference)"))
    print(f"dev F1 (batch-1 outputs): {f1:.2f}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for s in dev_tokens[:1000]:
            pipe.predict([s], batch_size=1)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(40)
        Path(args.profile).parent.mkdir(parents=True, exist_ok=True)
        Path(args.profile).write_text(text.getvalue())
        print(f"profile of 1000 batch-1 calls: {args.profile}")

    metrics = {
        "predict_sentences_per_s_batch1": round(rate1, 1),
        "predict_sentences_per_s_batch32": round(rate32, 1),
        "predict_sentences_per_cpu_s_batch1": round(cpu1, 1),
        "predict_sentences_per_cpu_s_batch32": round(cpu32, 1),
        "batch1_equals_batch32": same_32,
        "outputs_equal_reference": same_ref,
        "max_score_diff_vs_reference": diff_ref,
        "dev_f1": round(f1, 2),
    }
    recorded = {"model": info, "hidden_size": HIDDEN, "dev_sentences": len(dev_tokens), "threads": torch.get_num_threads(),
                "repeats": args.repeats, "timing": "best of the passes; batch 1: one pipe.predict([s], batch_size=1) per sentence",
                "model_dir": str(MODEL_DIR.relative_to(_common.REPO)), "reused": args.reuse}
    name = "ner_predict" if not args.limit_dev else "ner_predict_smoke"
    _common.write_results(name, metrics, recorded, train_min * 60, time.perf_counter() - wall, pipe.device)


if __name__ == "__main__":
    main()
