"""Word-level language model on the English side of Multi30k: validation perplexity within a CPU time budget.

Trains ``seqlab.tasks.lm.LanguageModel`` (2-layer LSTM, tied embeddings, dropout) with the
windowed truncated-BPTT trainer on ``translation/multi30k/train.en`` (29,000 image captions,
~406k tokens with one ``<eos>`` per line) and measures perplexity on ``val.en`` (1,014
lines, 14,304 tokens), the best checkpoint by validation perplexity within the budget
(``TrainConfig.time_budget_s``). Settings are fixed a priori (the PyTorch word-language-model
example's recipe with Adam): lower-cased word tokens with punctuation split off, words seen
at least twice (the rest ``<unk>``), bptt 35, 32 parallel streams. For scale it also reports
the add-one-smoothed unigram model's perplexity on the same tokens, and writes three sampled
continuations into the results.

    python benchmarks/lm.py [--budget-min 20] [--device auto|cpu|cuda] [--threads N]

Writes ``benchmarks/results/lm.json`` and saves the trained pipeline to
``runs/benchmarks/lm/`` (``seqlab eval runs/benchmarks/lm FILE.en`` evaluates it on other text).
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RUNS, corpora_dir, parser, write_results  # noqa: E402

PROMPTS = ["a man is", "two dogs", "a woman in a red"]


def unigram_perplexity(train_rows: list[list[int]], eval_rows: list[list[int]], vocab_size: int, eos_id: int) -> float:
    """Add-one (Laplace) smoothed unigram model, counted on the training stream's targets.

    Both streams count every token of every line plus one ``<eos>`` per line (the tokens
    the LM predicts); ``p(w) = (c(w) + 1) / (N + V)`` over the LM's whole vocabulary.
    """
    counts: Counter[int] = Counter()
    for row in train_rows:
        counts.update(row)
    counts[eos_id] += len(train_rows)
    total = sum(counts.values())
    nll, n = 0.0, 0
    for row in eval_rows:
        for token in [*row, eos_id]:
            nll -= math.log((counts[token] + 1) / (total + vocab_size))
            n += 1
    return math.exp(nll / n)


def main() -> None:
    p = parser("word-level LSTM language model on Multi30k English: validation perplexity", budget_min=20)
    p.add_argument("--embedding-dim", type=int, default=256, help="= hidden size (tied weights)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--batch-size", type=int, default=32, help="parallel streams")
    p.add_argument("--bptt", type=int, default=35)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=100, help="evaluate on val every N steps (and each epoch end)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from seqlab.core.config import from_dict, to_dict
    from seqlab.core.device import resolve_device
    from seqlab.tasks.lm import LMRecipe, generate_text

    start = time.perf_counter()
    root = corpora_dir()
    device = resolve_device(args.device)
    budget_s = args.budget_min * 60
    dim = args.embedding_dim
    recipe = from_dict(LMRecipe, {
        "data": {"train": str(root / "translation" / "multi30k" / "train.en"),
                 "dev": str(root / "translation" / "multi30k" / "val.en"), "format": "text"},
        "level": "word",
        "tokenizer": {"lowercase": True, "split": "punct"},
        "vocabulary": {"min_freq": 2},
        "model": {"cell": "lstm", "embedding_dim": dim, "hidden_size": dim, "num_layers": args.layers,
                  "dropout": args.dropout, "tie_weights": True, "bptt": args.bptt, "eval_batch_size": 10,
                  "shuffle_rows": True,
                  "generation": {"max_tokens": 25, "temperature": 0.8, "top_k": 40, "seed": 0}},
        "train": {"epochs": 1000, "batch_size": args.batch_size, "optimizer": "adam", "lr": args.lr,
                  "clip_norm": 0.25, "time_budget_s": budget_s, "eval_every_steps": args.eval_every,
                  "seed": 0, "progress": "auto"},
        "output": str(RUNS / "lm"),
        "device": str(device),
    }, where="benchmark recipe")
    import dataclasses

    from seqlab.train import TrainConfig

    if "schedule" in {f.name for f in dataclasses.fields(TrainConfig)}:
        # Halve the learning rate when val perplexity stalls for 2 evaluations (the
        # word-language-model example anneals SGD's the same way, by 4); only with a
        # Trainer that has schedules.
        recipe.train = from_dict(TrainConfig, {**to_dict(recipe.train), "schedule": "plateau",
                                               "plateau_factor": 0.5, "plateau_patience": 2, "min_lr": 1e-4}, where="train")
    torch.manual_seed(0)
    pipe = recipe.build()
    train, val = recipe.datasets()
    print(f"lm benchmark: {len(train)} training lines, {len(val)} validation lines, budget {budget_s:.0f} s on {device}")
    result = pipe.fit(train, val, recipe.train, log_dir=RUNS / "lm" / "logs")
    metrics_val = pipe.evaluate(val)

    vocab_stage = pipe.stages[1]
    train_ids = pipe.preprocess(train, with_targets=False)["input_ids"]
    val_ids = pipe.preprocess(val, with_targets=False)["input_ids"]
    config = pipe.model.config
    unigram = unigram_perplexity(train_ids, val_ids, config.vocab_size, config.eos_id)
    unk = config.unk_id
    val_oov = sum(t == unk for row in val_ids for t in row) / metrics_val["tokens"]
    samples = [generate_text(pipe, prompt, seed=i)["text"] for i, prompt in enumerate(PROMPTS)]
    pipe.save(RUNS / "lm", meta={"recipe": to_dict(recipe), "benchmark": "lm"})

    wall = time.perf_counter() - start
    metrics = {
        "val_perplexity": round(metrics_val["perplexity"], 3),
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "unigram_val_perplexity": round(unigram, 2),
        "val_tokens": metrics_val["tokens"],
        "val_oov_rate": round(val_oov, 4),
        "vocab_size": config.vocab_size,
        "train_tokens_seen": result.train_tokens,
        "epochs_run": round(result.train_tokens / max(1, sum(len(r) + 1 for r in train_ids)), 2),
        "steps": result.steps,
        "best_step": result.best_step,
        "stopped_by": result.stopped_by,
        "target_met": metrics_val["perplexity"] <= 40.0,
    }
    settings = {
        "run": "full" if args.budget_min >= 20 else f"SHORT SMOKE RUN (--budget-min {args.budget_min}), not the benchmark figure",
        "corpus": "translation/multi30k train.en / val.en",
        "tokens": "lower-cased words, punctuation split (WordTokenizer split=punct), min_freq 2, one <eos> per line",
        "model": f"{args.layers}-layer LSTM {dim}, embedding {dim}, tied weights, dropout {args.dropout}",
        "tbptt": f"bptt {args.bptt}, {args.batch_size} parallel streams, rows shuffled each epoch",
        "optimizer": f"adam lr {args.lr}, clip_norm 0.25, schedule {getattr(recipe.train, 'schedule', 'constant')}, "
                     f"best checkpoint by val perplexity every {args.eval_every} steps",
        "generation": "temperature 0.8, top_k 40, seeds 0, 1, 2",
        "torch_threads": torch.get_num_threads(),
        "recipe": to_dict(recipe),
        "samples": samples,
        "vocab_tokens": len(vocab_stage.vocab),
    }
    write_results("lm", metrics, settings, budget_s, wall, device)
    for prompt, text in zip(PROMPTS, samples):
        print(f"sample {prompt!r} → {text!r}")
    print(f"saved the pipeline to {RUNS / 'lm'}")


if __name__ == "__main__":
    main()
