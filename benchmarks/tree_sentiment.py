"""Sentiment over parse trees (Stanford Sentiment Treebank): tree encoders vs a sequence BiLSTM.

    python benchmarks/tree_sentiment.py [--budget-min 30] [--threads 1] [--tasks sst2,sst5]
        [--encoders recursive,childsum,binary,bilstm] [--device cpu|cuda]

For each task (SST-2: binary, neutral sentences dropped; SST-5: fine-grained) and encoder it
trains on ``sentiment/sst/train.txt`` within ``--budget-min`` minutes of training, selects the
checkpoint on dev and reports dev accuracy. The tree models classify every node and train on
every labelled phrase (Tai, Socher & Manning 2015); the BiLSTM baseline is seqlab's sentiment
task on the same sentences (leaves joined by spaces, root labels only). All models start from
the same word2vec vectors, trained once on the training sentences' leaves.

Also measured: training throughput (trees/s) of the level-batched binary Tree-LSTM against a
naive node-by-node evaluation of the same weights on the same batches of training trees, and
the accuracy cost of the fallback tree for plain sentences (the binary Tree-LSTM, trained on
parses, evaluated on balanced binary trees over the same dev words, and on the dev sentences
given as plain text).

Training evaluates and keeps an exponential moving average of the weights (``train.average``,
decay 0.999; SST-2 binary Tree-LSTM dev 86.35% without it, 86.93% with it at commit 9259403).
``--model-set members=3`` trains an ensemble of 3 networks side by side (own initialisation,
probabilities averaged; ``tree_sentiment_members3.json``, commit cd734b0: SST-2 86.70, SST-5
47.87, no gain over one network); the throughput figures time one network.
``--model-set char_encoder=cnn`` adds a character-level word encoder (unseen words).
SST-2 models have a second network trained on the five fine-grained labels of every node,
neutral phrases included, and folded into negative/positive (``model.fine_members: 1`` since
commit 2ffa072; ``--model-set fine_members=0`` turns it off). Its first run
(``tree_sentiment_fine.json``, ``--tasks sst2 --model-set fine_members=1``): SST-2 dev 87.73
against 86.81 for the single network at b2d50e5.
Lample et al.'s singleton replacement (``singleton_dropout`` 0.5, their value) is on since
commit 840fc8e: it trains the ``<unk>`` row that words unseen in training look up. Its first
run (``tree_sentiment_singleton.json``) against the one without (``tree_sentiment.json`` at
c8b467e): SST-2 86.81 vs 86.93, SST-5 48.96 vs 48.14, plain-text fallback 84.75 vs 84.40 and
46.32 vs 45.87; ``--model-set singleton_dropout=0`` turns it off.

Bar (issue #20): SST-2 dev accuracy >= 87.0 with the binary Tree-LSTM within 30 minutes of
CPU per model; SST-5 beside it; batched >= 20x the naive trees/s. Writes
``benchmarks/results/tree_sentiment.json``; pipelines go to
``runs/benchmarks/tree_sentiment_<task>_<encoder>`` (evaluate on test trees with
``seqlab eval runs/benchmarks/tree_sentiment_sst2_binary test.txt``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import corpora_dir, model_overrides, parser, results_name, runs_dir, train_overrides, write_results  # noqa: E402

TREE_ENCODERS = ("recursive", "childsum", "binary")
SCHEMES = {"sst2": "sst2", "sst5": "sst5"}


def train_word2vec_file(train_texts: list[str], path: Path, settings: dict) -> int:
    """word2vec on the training trees' leaves (lower-cased), written in word2vec text format."""
    from seqlab.embeddings.word2vec import Word2VecConfig, train_word2vec
    from seqlab.text.trees import flatten, parse_ptb

    sentences = [flatten(parse_ptb(t), lowercase=True)["tokens"] for t in train_texts]
    kv = train_word2vec(sentences, Word2VecConfig(**settings))
    path.parent.mkdir(parents=True, exist_ok=True)
    kv.save_word2vec_format(str(path))
    return len(kv)


def leaves_text(texts: list[str]) -> list[str]:
    from seqlab.text.trees import parse_ptb

    return [" ".join(parse_ptb(t).leaves()) for t in texts]


def balanced_texts(texts: list[str]) -> list[str]:
    """The same words under the balanced fallback tree, as unlabelled bracketing."""
    from seqlab.text.trees import fallback_tree, parse_ptb

    return [fallback_tree(parse_ptb(t).leaves()).to_ptb() for t in texts]


def write_tsv(path: Path, texts: list[str], labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["sentence\tlabel"] + [f"{t.replace(chr(9), ' ')}\t{label}" for t, label in zip(texts, labels)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def measure_throughput(pipe, train: dict, trees: int, batch_size: int, repeats: int = 2, bf16: bool = False) -> dict:
    """Training trees/s, level-batched vs node by node, with the same weights on the same batches.

    ``step``: a whole training step (embedding, encoder, per-node loss, backward, the Trainer's
    fused Adam); ``encoder``: the tree encoder's forward and backward alone (what batching
    changes). Passes alternate between the paths and the fastest pass of each counts, which
    damps the noise of a shared machine. Also returns the largest difference of the per-batch
    losses of the two float32 paths on their first pass (they start from the same weights).

    ``bf16`` (the Trainer's ``train.cpu_amp``): the batched path runs under bf16 autocast, as
    that training runs it. The node-by-node path is then timed both ways and its faster
    precision counts (autocast's casts cost the small per-node products more than they save),
    so the ratio is each path at its best, never a baseline slowed by the other's setting.
    """
    import copy

    import torch

    from seqlab.core.device import autocast
    from seqlab.data.collate import pad_collate
    from seqlab.nn.trees import TreeBatch, naive_encode

    columns = pipe.preprocess({"text": train["text"][:trees], "label": train["label"][:trees]})
    pads = pipe.model.pad_values(training=True)
    batches = [pad_collate({c: columns[c][i:i + batch_size] for c in pads}, pads) for i in range(0, trees, batch_size)]
    count = sum(int(b["input_ids"].shape[0]) for b in batches)
    cpu = torch.device("cpu")

    def encode(model, batch, naive):
        ids = batch["input_ids"]
        tree = TreeBatch.from_padded(batch["node_parent"], batch["node_token"], batch["node_parent_lengths"], ids.shape[1])
        x = model.dropout(model.embedding(ids.reshape(-1)[tree.leaf_tokens]))
        return (naive_encode(model.encoder, x, tree) if naive else model.encoder(x, tree)), tree

    def loss_of(model, batch, naive):
        states, tree = encode(model, batch, naive)
        logits = model.head(model.dropout(states))
        flat = TreeBatch.valid_nodes(batch["node_parent_lengths"], batch["node_label_ids"].shape[1])
        return torch.nn.functional.cross_entropy(logits.float(), batch["node_label_ids"].reshape(-1)[flat], ignore_index=-1)

    # (name, node by node, bf16 autocast)
    paths = [("batched", False, bf16), ("naive", True, False)] + ([("naive_bf16", True, True)] if bf16 else [])
    models, optimizers, losses = {}, {}, {}
    for name, naive, low in paths:
        model = copy.deepcopy(pipe.model).cpu().train()
        model.extra_members = torch.nn.ModuleList()  # one network of an ensemble is timed
        model.fine_networks = torch.nn.ModuleList()
        model.dropout.p = 0.0  # the same function on every path
        models[name] = model
        optimizers[name] = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as the Trainer makes it
        with torch.no_grad(), autocast(cpu, low):
            loss_of(model, batches[0], naive)  # warm-up
    best = {(kind, name): float("inf") for kind in ("step", "encoder") for name, _, _ in paths}
    with torch.no_grad():
        inputs = []
        for batch in batches:
            ids = batch["input_ids"]
            tree = TreeBatch.from_padded(batch["node_parent"], batch["node_token"], batch["node_parent_lengths"], ids.shape[1])
            inputs.append((models["batched"].embedding(ids.reshape(-1)[tree.leaf_tokens]), tree))
    encoder = copy.deepcopy(models["batched"].encoder)
    for rep in range(repeats):
        for name, naive, low in paths:
            model, optimizer = models[name], optimizers[name]
            start, seen = time.perf_counter(), []
            for batch in batches:
                optimizer.zero_grad()
                with autocast(cpu, low):
                    loss = loss_of(model, batch, naive)
                loss.backward()
                optimizer.step()
                seen.append(loss.item())
            best["step", name] = min(best["step", name], time.perf_counter() - start)
            if rep == 0:
                losses[name] = seen
            start = time.perf_counter()
            for x, tree in inputs:
                x = x.detach().requires_grad_()
                with autocast(cpu, low):
                    states = naive_encode(encoder, x, tree) if naive else encoder(x, tree)
                states.float().sum().backward()
            best["encoder", name] = min(best["encoder", name], time.perf_counter() - start)
    rate = {key: count / seconds for key, seconds in best.items()}
    naive_name = "naive_bf16" if bf16 and rate["step", "naive_bf16"] > rate["step", "naive"] else "naive"
    out = {"batched": rate["step", "batched"], "naive": rate["step", naive_name],
           "encoder_batched": rate["encoder", "batched"],
           "encoder_naive": max(rate["encoder", name] for name, naive, _ in paths if naive),
           # against the float32 node-by-node losses: under bf16 this is bf16's rounding
           "loss_gap": max(abs(a - b) for a, b in zip(losses["batched"], losses["naive"]))}
    if bf16:
        out.update({"naive_float32": rate["step", "naive"], "naive_bf16": rate["step", "naive_bf16"],
                    "encoder_naive_float32": rate["encoder", "naive"], "encoder_naive_bf16": rate["encoder", "naive_bf16"]})
    return out


def main() -> None:
    p = parser("Tree sentiment (SST) benchmark", budget_min=30)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--tasks", default="sst2,sst5", help="comma-separated: sst2, sst5")
    p.add_argument("--encoders", default="recursive,childsum,binary,bilstm", help="comma-separated: recursive, childsum, binary, bilstm")
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training trees (smoke runs)")
    p.add_argument("--speed-trees", type=int, default=200, help="training trees timed for batched vs naive trees/s (0: skip)")
    args = p.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    encoders = [e for e in args.encoders.split(",") if e]
    for t in tasks:
        if t not in SCHEMES:
            sys.exit(f"unknown task {t!r}; use sst2 and/or sst5")
    for e in encoders:
        if e not in (*TREE_ENCODERS, "bilstm"):
            sys.exit(f"unknown encoder {e!r}; use recursive, childsum, binary, bilstm")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from seqlab.recipe import load_recipe, run_recipe
    from seqlab.train.trainer import amp_settings
    from seqlab.text.trees import read_sentiment_trees

    start = time.perf_counter()
    sst = corpora_dir() / "sentiment" / "sst"
    budget_s = args.budget_min * 60
    w2v_settings = {"algorithm": "skipgram", "dim": 300, "window": 5, "min_count": 1, "epochs": 15, "workers": 1, "seed": 1}
    runs = runs_dir(args)
    w2v_path = runs / "tree_sentiment_data" / "word2vec_sst_train_leaves.txt"
    all_train = read_sentiment_trees(sst / "train.txt", "sst5")
    t0 = time.perf_counter()
    w2v_words = train_word2vec_file(all_train["text"][: args.limit_train], w2v_path, w2v_settings)
    print(f"word2vec: {w2v_words} words, {time.perf_counter() - t0:.0f} s → {w2v_path}")
    train_cfg = {"epochs": 30, "batch_size": 25, "optimizer": "adam", "lr": 2e-3, "clip_norm": 5.0,
                 "time_budget_s": budget_s, "eval_every_steps": 100, "seed": 1, "average": "ema",
                 "average_decay": 0.999, **train_overrides(args)}
    tree_model = {"embedding_dim": 300, "hidden_size": 150, "dropout": 0.5, "node_loss": True, "singleton_dropout": 0.5}
    # SST-2: one more network, trained on the five fine-grained labels (neutral phrases too),
    # folded into negative/positive (model.fine_members). SST-5's labels are the fine ones already.
    task_model = {"sst2": {"fine_members": 1}, "sst5": {}}
    tree_model_of = {task: {**tree_model, **task_model[task], **model_overrides(args)} for task in SCHEMES}
    bilstm_model = {"embedding_dim": 300, "encoder": "bilstm", "hidden_size": 150, "pooling": "max", "dropout": 0.5}
    metrics: dict = {}
    settings: dict = {"word2vec": {**w2v_settings, "corpus": "SST train leaves (lower-cased)", "words": w2v_words},
                      "train": train_cfg, "tree_model": tree_model_of, "bilstm_model": bilstm_model, "runs": {}}
    speed_pipe = None
    for task in tasks:
        scheme = SCHEMES[task]
        data = {"train": str(sst / "train.txt"), "dev": str(sst / "dev.txt"), "limit_train": args.limit_train}
        for encoder in encoders:
            name = f"tree_sentiment_{task}_{encoder}"
            output = runs / name
            print(f"\n== {task} / {encoder} (budget {args.budget_min} min) ==", flush=True)
            if encoder == "bilstm":
                train = read_sentiment_trees(sst / "train.txt", scheme)
                dev = read_sentiment_trees(sst / "dev.txt", scheme)
                folder = runs / "tree_sentiment_data"
                train_texts = train["text"][: args.limit_train] if args.limit_train else train["text"]
                write_tsv(folder / f"{task}_train.tsv", leaves_text(train_texts), train["label"][: len(train_texts)])
                write_tsv(folder / f"{task}_dev.tsv", leaves_text(dev["text"]), dev["label"])
                recipe = load_recipe(data={
                    "task": "sentiment",
                    "data": {"train": str(folder / f"{task}_train.tsv"), "dev": str(folder / f"{task}_dev.tsv")},
                    "tokenizer": {"lowercase": True, "split": "whitespace"},
                    "word2vec": {"pretrained": str(w2v_path), "dim": 300},
                    "model": bilstm_model, "train": train_cfg, "output": str(output), "device": args.device,
                    "examples": ["a gorgeous , witty film", "a dull , lifeless mess"],
                })
            else:
                recipe = load_recipe(data={
                    "task": "tree_sentiment", "data": data,
                    "reader": {"label_scheme": scheme, "lowercase": True, "fallback": "balanced"},
                    "word2vec": {"pretrained": str(w2v_path), "dim": 300},
                    "model": {**tree_model_of[task], "encoder": encoder}, "train": train_cfg, "output": str(output),
                    "device": args.device, "examples": ["(3 (2 a) (3 (3 gorgeous) (2 film)))", "a dull , lifeless mess"],
                })
            summary = run_recipe(recipe)
            pipe = summary["pipeline"]
            accuracy = summary["dev"]["accuracy"]
            metrics[f"{task}_dev_accuracy_{encoder}"] = round(accuracy, 4)
            settings["runs"][name] = {k: summary[k] for k in ("epochs_run", "steps", "train_tokens_per_s", "stopped_by", "wall_s")}
            if encoder == "binary":
                _, dev = recipe.datasets()
                balanced = pipe.evaluate({"text": balanced_texts(dev["text"]), "label": dev["label"]})["accuracy"]
                plain = pipe.evaluate({"text": leaves_text(dev["text"]), "label": dev["label"]})["accuracy"]
                metrics[f"{task}_dev_accuracy_binary_balanced_tree"] = round(balanced, 4)
                metrics[f"{task}_dev_accuracy_binary_plain_text"] = round(plain, 4)
                print(f"{task} binary Tree-LSTM dev accuracy: parses {accuracy:.4f}, balanced trees {balanced:.4f}, "
                      f"plain text {plain:.4f}", flush=True)
                if speed_pipe is None:
                    speed_pipe = (pipe, recipe)
    if args.speed_trees and speed_pipe is not None:
        pipe, recipe = speed_pipe
        train, _ = recipe.datasets()
        bf16 = amp_settings(recipe.train.amp, torch.device("cpu"), recipe.train.cpu_amp)[0] is not None  # as the Trainer decides
        speed = measure_throughput(pipe, train.to_dict(), args.speed_trees, train_cfg["batch_size"], bf16=bf16)
        metrics["trees_per_s_batched"] = round(speed["batched"], 1)
        metrics["trees_per_s_naive"] = round(speed["naive"], 1)
        metrics["batched_speedup"] = round(speed["batched"] / speed["naive"], 1)
        metrics["encoder_trees_per_s_batched"] = round(speed["encoder_batched"], 1)
        metrics["encoder_trees_per_s_naive"] = round(speed["encoder_naive"], 1)
        metrics["encoder_batched_speedup"] = round(speed["encoder_batched"] / speed["encoder_naive"], 1)
        settings["throughput"] = {
            "trees": args.speed_trees, "batch_size": train_cfg["batch_size"], "encoder": "binary",
            "trees_per_s": "whole training step: embedding, encoder, per-node loss, backward, fused Adam; dropout off",
            "encoder_trees_per_s": "the tree encoder's forward + backward alone",
            "timing": "fastest of 2 alternating passes per path", "max_loss_difference": speed["loss_gap"],
            "precision": ("batched under bf16 autocast (train.cpu_amp); node by node at its faster precision, "
                          "both timed" if bf16 else "float32 on both paths"),
            **{k: round(v, 1) for k, v in speed.items() if k.startswith(("naive_", "encoder_naive_"))},
        }
        print(f"throughput (training step): batched {speed['batched']:.1f} trees/s, naive {speed['naive']:.1f} trees/s "
              f"({speed['batched'] / speed['naive']:.1f}x); encoder alone: {speed['encoder_batched']:.1f} vs "
              f"{speed['encoder_naive']:.1f} trees/s ({speed['encoder_batched'] / speed['encoder_naive']:.1f}x); "
              f"loss difference {speed['loss_gap']:.2e}", flush=True)
    if "sst2_dev_accuracy_binary" in metrics:
        metrics["target_sst2_dev_accuracy_binary"] = 0.87
        metrics["target_met"] = metrics["sst2_dev_accuracy_binary"] >= 0.87
    device = pipe.device if tasks and encoders else torch.device("cpu")
    settings.update({"tasks": tasks, "encoders": encoders, "limit_train": args.limit_train,
                     "torch_threads": torch.get_num_threads(), "budget_min_per_model": args.budget_min})
    write_results(results_name("tree_sentiment", args), metrics, settings, budget_s, time.perf_counter() - start, device)


if __name__ == "__main__":
    main()
