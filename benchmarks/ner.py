"""CoNLL-2003 NER: train on ``train.txt``, select and report on ``valid.txt`` (entity F1, seqeval default mode).

    python benchmarks/ner.py [--budget-min 60] [--ablation-budget-min 60] [--device cpu|cuda]
    python benchmarks/ner.py --budget-min 1 --ablation-budget-min 1 --smoke   # end-to-end check

Bar (issue "NER: BiLSTM-CRF tagger with character features"): dev entity F1 >= 90.0 within
60 minutes of CPU training; training tokens/s (later compared with Flair's) and prediction
sentences/s at batch 32 (batch 1 as an extra). Ablation: the same model without the
word2vec initialisation, with its own budget.

Settings are fixed a priori from Lample et al. (2016) and Ma & Hovy (2016), not tuned on
valid: IOBES tags, CRF, char-CNN (embedding 30, 30 filters of width 3, max pooling; the
characters keep their case), word embeddings of 100 dimensions initialised from word2vec
trained on the *training text* (gensim skip-gram, window 5, min_count 1, 10 epochs — the
vectors the peers comparison uses), looked up lower-cased (as with Ma & Hovy's best, GloVe)
with digits mapped to 0 (Lample et al.), BiLSTM 200 per direction, dropout 0.5, word
dropout 0.05, Adam 1e-3 with batches of 32 sentences (Reimers & Gurevych 2017 found Adam
with batches of 8–64 as good as SGD and less sensitive), gradient norm clipped at 5, early
stopping after 10 epochs without a better dev F1. Issue #18 ("Accuracy that holds off the
dev set") added weight averaging, fixed a priori: evaluation, selection and the saved model
use an exponential moving average of the weights (decay 0.999, about 1,000 steps or two
epochs; ``train.average``), and Lample et al.'s singleton replacement (``singleton_dropout``
0.5: a token whose word occurs once in train.txt becomes ``<unk>`` half the time, on top of
the word dropout), which aims at the names a test set brings that training never showed.
valid.txt is used only to pick the best epoch and to report.

Beside the F1 of all entities it reports ``dev_unseen_f1`` (precision, recall and count too):
the entities whose words never form an entity in train.txt, a third of valid.txt's (1,900 of
5,942) and more of a test set's; the gap between the two F1s is most of the dev → test gap.

Ablations (``--ablations``, each with its own budget, ``--ablation-budget-min``): the same
model with one option taken away, reported as ``dev_f1_<row>`` (and ``dev_unseen_f1_<row>``):
``no_word2vec`` (random word embeddings), ``no_average`` (no EMA: the best evaluation's own
weights), ``no_singleton_dropout``, ``no_document_case`` and ``no_lm_loss``.

Document context (issue #18's first candidate, ``model.document_case_dim`` 8, an a-priori
size): each token's case elsewhere in its CoNLL document (``seqlab.text.documents``) joins the
BiLSTM's input; valid.txt is read with its ``-DOCSTART-`` documents, as ``seqlab eval`` reads a
test file. ``dev_f1_sentences_alone`` (and ``dev_unseen_f1_sentences_alone``) is the same model
on valid.txt without its documents, each sentence tagged alone, as ``pipe(text)`` tags.

Language-modelling loss (issue #18's "LM auxiliary loss (Rei 2017)", ``model.lm_loss`` 0.1,
Rei's weight, with his 7,500-word vocabulary; ``seqlab.nn.lm_objective``): in training the
forward LSTM also predicts each next word and the backward LSTM each previous word. Adopted
after two seeds, each against the same settings without it (commit fa3de83; the seed-1 control
at b2d50e5, the same code path): seed 1 91.86 against 91.34 (unseen 79.00 against 77.23),
seed 2 91.82 against 91.41 (unseen 78.77 against 77.82; the control in
``ner_control_seed2_fa3de83.json``). Training is 2.2x slower
(about 4,450 tokens/s against 9,900: the two 7,502-way softmaxes) and peaks later (best epoch
27-28 against 14), well within the 60-minute budget; prediction does not run it.

``--final-fit EPOCHS`` (issue #18's "a final fit on train+dev, reported as such") replaces the
main run and the ablations: word2vec and the tagger are trained on train.txt *and* valid.txt
for a fixed number of epochs (no dev to select with: the weights of the epoch with the lowest
training loss, the EMA under ``train.average``), within the same budget. The number of epochs is
the best epoch of a recorded dev-selected run with the same settings (28 for commit fa3de83's with the LM loss; 17 for
cd6175b's, before it), given on the command
line. Its dev F1 is printed and written as ``dev_f1_seen_in_training`` only: valid.txt was
training data, so it says nothing of held-out accuracy. Writes ``ner_final_fit.json`` and
saves the pipeline to ``runs/benchmarks/ner_final_fit``, for a held-out (test) evaluation.

The word2vec training time counts against the main run's budget. Writes
``benchmarks/results/ner.json`` (``ner_smoke.json`` with ``--smoke``), saves the pipelines to
``runs/benchmarks/ner`` and ``runs/benchmarks/ner_no_word2vec``, and the vectors (word2vec
text format, reusable by the peers comparison) to
``runs/benchmarks/ner_vectors/conll2003_train_w2v100.txt``. ``--threads 1`` is faster than
torch's default when other jobs share the CPU cores.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import corpora_dir, model_overrides, parser, results_name, runs_dir, train_overrides, write_results  # noqa: E402

#: The a-priori settings (see the module docstring); the data paths are filled in by ``main``.
SETTINGS = {
    "task": "ner",
    "data": {"scheme": "IOB2", "token_column": 0, "tag_column": -1},
    "scheme": "IOBES",
    "vocabulary": {"min_freq": 1},
    "model": {
        "embedding_dim": 100, "lowercase": True, "normalize_numbers": True,
        "char_encoder": "cnn", "char_embedding_dim": 30, "char_hidden_size": 30, "char_kernel": 3,
        "hidden_size": 200, "num_layers": 1, "dropout": 0.5, "word_dropout": 0.05, "singleton_dropout": 0.5,
        "document_case_dim": 8, "lm_loss": 0.1, "decoder": "crf",
    },
    "train": {"epochs": 200, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "clip_norm": 5.0,
              "patience": 10, "seed": 1, "average": "ema", "average_decay": 0.999},
    "examples": ["Angela Merkel visited Paris.", "The Norvik council met in Lyon on Tuesday ."],
}
#: word2vec on the training text: what the peers comparison also uses.
WORD2VEC = {"algorithm": "skipgram", "dim": 100, "window": 5, "min_count": 1, "epochs": 10, "workers": 1, "seed": 0}


#: Ablation rows: what each takes away from the main run's settings.
ABLATIONS = {
    "no_word2vec": lambda s: s.pop("word2vec", None),
    "no_average": lambda s: s["train"].update(average="off"),
    "no_singleton_dropout": lambda s: s["model"].update(singleton_dropout=0.0),
    "no_document_case": lambda s: s["model"].update(document_case_dim=0),
    "no_lm_loss": lambda s: s["model"].update(lm_loss=0.0),
}


def train_vectors(sentences: list[list[str]], path: Path) -> float:
    """Train the word2vec vectors and write them (word2vec text format); returns the seconds taken."""
    from seqlab.embeddings.word2vec import save_vectors, train_word2vec

    start = time.perf_counter()
    vectors = train_word2vec(sentences, **WORD2VEC)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_vectors(vectors, path)
    return time.perf_counter() - start


def train_one(settings: dict, train, dev, output: Path, budget_s: float, report=None, report_key: str = "dev") -> dict:
    """Build, train within ``budget_s`` (selecting on ``dev``), evaluate on ``report`` (default
    ``dev``; its metrics saved under ``report_key``), save; returns figures and the pipeline."""
    from seqlab.recipe import load_recipe

    settings = copy.deepcopy(settings)
    settings["train"]["time_budget_s"] = max(budget_s, 1.0)
    settings["output"] = str(output)
    recipe = load_recipe(data=settings)
    pipe = recipe.build()
    start = time.perf_counter()
    result = pipe.fit(train, dev, recipe.train, log_dir=output / "logs")
    fit_s = time.perf_counter() - start
    metrics = pipe.evaluate(dev if report is None else report)
    pipe.save(output, meta={"recipe": settings, "summary": {report_key: metrics, "steps": result.steps}})
    return {"pipe": pipe, "metrics": metrics, "result": result, "fit_s": fit_s}


def unseen_entity_scores(pipe, train, dev) -> dict[str, float]:
    """Entity P/R/F1 on dev restricted to entities whose words never form an entity in train
    (gold and predicted spans alike): the names a model must find from characters and context,
    which make up more of a test set than of dev. Exact span and type match, as seqeval's."""
    from seqlab.text.tagging import convert_tags, spans

    seen = {tuple(t[s:e]) for t, tags in zip(train["tokens"], train["tags"]) for _, s, e in spans(tags, "IOB2")}
    # With its documents, as evaluate() (and seqlab eval) reads valid.txt.
    documents = {"document": list(dev["document"])} if "document" in dev.column_names else {}
    outputs = pipe.predict([list(t) for t in dev["tokens"]], batch_size=128, **documents)
    scheme = pipe.model.config.output_scheme
    hit = predicted = gold = 0
    for tokens, tags, out in zip(dev["tokens"], dev["tags"], outputs):
        g = {(k, s, e) for k, s, e in spans(tags, "IOB2") if tuple(tokens[s:e]) not in seen}
        p = {(k, s, e) for k, s, e in spans(convert_tags(out["tags"], scheme, "IOB2"), "IOB2") if tuple(tokens[s:e]) not in seen}
        hit, predicted, gold = hit + len(g & p), predicted + len(p), gold + len(g)
    precision, recall = hit / max(predicted, 1), hit / max(gold, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"dev_unseen_entities": gold, "dev_unseen_precision": round(100 * precision, 2),
            "dev_unseen_recall": round(100 * recall, 2), "dev_unseen_f1": round(100 * f1, 2)}


def predict_rate(pipe, sentences: list[list[str]], batch_size: int) -> float:
    """Sentences per second of ``pipe.predict`` on pre-tokenized sentences (spans with scores)."""
    pipe.predict(sentences[: 4 * batch_size], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    pipe.predict(sentences, batch_size=batch_size)
    return len(sentences) / (time.perf_counter() - start)


def main() -> None:
    p = parser("CoNLL-2003 NER benchmark (BiLSTM-CNN-CRF)", budget_min=60)
    p.add_argument("--ablation-budget-min", type=float, default=None,
                   help="budget of the run without word2vec (default: same as --budget-min; 0 skips it)")
    p.add_argument("--ablations", default="no_word2vec,no_average,no_singleton_dropout,no_document_case,no_lm_loss",
                   help=f"comma-separated ablation rows ({', '.join(ABLATIONS)}; empty: none)")
    p.add_argument("--char-encoder", default="cnn", choices=["cnn", "lstm", "none"])
    p.add_argument("--limit-train", type=int, default=None, help="use the first N training sentences")
    p.add_argument("--final-fit", type=int, default=None, metavar="EPOCHS",
                   help="train on train+dev for EPOCHS epochs instead (the best epoch of a dev-selected run); "
                        "writes ner_final_fit.json, saves runs/benchmarks/ner_final_fit")
    p.add_argument("--final-fit-data", default="train+dev", choices=["train+dev", "train"],
                   help="train: the control of the final fit, train.txt alone for the same fixed epochs, so its "
                        "dev F1 is held out (ner_final_fit_control.json)")
    p.add_argument("--smoke", action="store_true", help="label the run a smoke test (writes ner_smoke.json)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a machine shared with other jobs)")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    # Adam's second-moment estimates of rare words decay towards denormal floats over a long
    # run, which x86 CPUs process very slowly; flushing them to zero does not matter for the results.
    torch.set_flush_denormal(True)

    from seqlab.recipe import load_recipe

    conll = corpora_dir() / "ner" / "conll2003"
    budget_s = args.budget_min * 60
    ablation_s = budget_s if args.ablation_budget_min is None else args.ablation_budget_min * 60
    settings = copy.deepcopy(SETTINGS)
    settings["data"].update({"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt"),
                             "limit_train": args.limit_train})
    settings["model"]["char_encoder"] = args.char_encoder
    settings["device"] = args.device
    settings["train"].update(train_overrides(args))
    settings["model"].update(model_overrides(args))
    ablations = [a for a in args.ablations.split(",") if a]
    for a in ablations:
        if a not in ABLATIONS:
            sys.exit(f"unknown ablation {a!r}; use {', '.join(ABLATIONS)}")
    runs = runs_dir(args)
    base = "ner_smoke" if args.smoke else "ner"
    name = results_name(base, args)
    wall_start = time.perf_counter()

    train, dev = load_recipe(data=settings).datasets()
    dev_tokens = [list(t) for t in dev["tokens"]]
    print(f"CoNLL-2003: {len(train)} training sentences, {len(dev)} valid sentences")
    if args.final_fit is not None:
        final_fit(args, settings, train, dev, runs, budget_s, wall_start)
        return

    # 1. word2vec on the training text (its time counts against the budget).
    vectors = runs / "ner_vectors" / "conll2003_train_w2v100.txt"
    w2v_s = train_vectors([list(t) for t in train["tokens"]], vectors)
    print(f"word2vec: {w2v_s:.1f} s → {vectors}")
    main_settings = copy.deepcopy(settings)
    main_settings["word2vec"] = {"pretrained": str(vectors), "pretrained_format": "word2vec_text"}
    run = train_one(main_settings, train, dev, runs / base, budget_s - w2v_s)
    pipe, result = run["pipe"], run["result"]
    print(f"with word2vec: dev F1 {run['metrics']['f1']:.2f} after {result.steps} steps ({result.stopped_by})")

    rate32 = predict_rate(pipe, dev_tokens, 32)
    rate1 = predict_rate(pipe, dev_tokens[:300], 1)
    coverage = next((s.coverage for s in pipe.stages if hasattr(s, "coverage")), None)
    metrics = {
        "dev_f1": round(run["metrics"]["f1"], 2),
        "dev_precision": round(run["metrics"]["precision"], 2),
        "dev_recall": round(run["metrics"]["recall"], 2),
        **{f"dev_f1_{k[3:]}": round(v, 2) for k, v in run["metrics"].items() if k.startswith("f1_")},
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "predict_sentences_per_s": round(rate32, 1),
        "predict_sentences_per_s_batch1": round(rate1, 1),
        "epochs_run": result.history[-1]["epoch"] if result.history else 0,
        "best_epoch": next((h["epoch"] for h in result.history if h["step"] == result.best_step), None),
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "word2vec_s": round(w2v_s, 1),
        "word2vec_coverage": round(coverage["coverage"], 4) if coverage else None,
        **unseen_entity_scores(pipe, train, dev),
        "target_dev_f1": 90.0,
        "target_met": run["metrics"]["f1"] >= 90.0,
    }
    if pipe.model.config.document_case_dim > 0 and "document" in dev.column_names:
        # What a user who tags sentence by sentence gets: the model without its documents.
        alone = dev.remove_columns("document")
        metrics["dev_f1_sentences_alone"] = round(pipe.evaluate(alone)["f1"], 2)
        metrics["dev_unseen_f1_sentences_alone"] = unseen_entity_scores(pipe, train, alone)["dev_unseen_f1"]
    # 2. ablations: one option taken away each, with its own budget.
    for row in ablations if ablation_s > 0 else []:
        ablated = copy.deepcopy(main_settings)
        ABLATIONS[row](ablated)
        ablation = train_one(ablated, train, dev, runs / f"ner_{row}", ablation_s)
        metrics.update({
            f"dev_f1_{row}": round(ablation["metrics"]["f1"], 2),
            f"dev_unseen_f1_{row}": unseen_entity_scores(ablation["pipe"], train, dev)["dev_unseen_f1"],
            f"train_tokens_per_s_{row}": round(ablation["result"].tokens_per_s, 1),
            f"steps_{row}": ablation["result"].steps,
            f"stopped_by_{row}": ablation["result"].stopped_by,
        })
        print(f"ablation {row}: dev F1 {ablation['metrics']['f1']:.2f}", flush=True)
    if args.smoke:
        metrics["smoke"] = True
    wall = time.perf_counter() - wall_start
    recorded = {**main_settings, "word2vec_training": WORD2VEC, "ablation_budget_s": ablation_s, "ablations": ablations,
                "smoke": args.smoke, "threads": torch.get_num_threads()}
    write_results(name, metrics, recorded, budget_s, wall, pipe.device)


def final_fit(args, settings: dict, train, dev, runs: Path, budget_s: float, wall_start: float) -> None:
    """word2vec and the tagger on train + dev for ``args.final_fit`` epochs (see the module docstring)."""
    import datasets
    import torch

    if args.final_fit < 1:
        sys.exit(f"--final-fit takes a number of epochs >= 1, got {args.final_fit}")
    control = args.final_fit_data == "train"
    if not control and "document" in dev.column_names:  # valid.txt's documents numbered after train.txt's
        offset = max(train["document"]) + 1
        dev = dev.map(lambda row: {"document": row["document"] + offset})
    both = train if control else datasets.concatenate_datasets([train, dev])
    print(f"final fit: {len(both)} sentences ({args.final_fit_data}), {args.final_fit} epochs")
    vectors = runs / "ner_vectors" / ("conll2003_train_w2v100.txt" if control else "conll2003_train_valid_w2v100.txt")
    w2v_s = train_vectors([list(t) for t in both["tokens"]], vectors)
    print(f"word2vec ({args.final_fit_data} text): {w2v_s:.1f} s → {vectors}")
    fit_settings = copy.deepcopy(settings)
    fit_settings["word2vec"] = {"pretrained": str(vectors), "pretrained_format": "word2vec_text"}
    fit_settings["train"].update(epochs=args.final_fit, patience=None)
    fit_settings["data"]["dev"] = None
    base = ("ner_smoke_final_fit" if args.smoke else "ner_final_fit") + ("_control" if control else "")
    # Without control, valid.txt was training data: its figures are saved as "dev_seen_in_training".
    run = train_one(fit_settings, both, None, runs / base, budget_s - w2v_s, report=dev,
                    report_key="dev" if control else "dev_seen_in_training")
    result = run["result"]
    f1 = run["metrics"]["f1"]
    print(f"final fit: {result.steps} steps ({result.stopped_by}); dev F1 {f1:.2f} "
          + ("(held out: train.txt alone)" if control else "(valid.txt was training data)"))
    metrics = {
        ("dev_f1" if control else "dev_f1_seen_in_training"): round(f1, 2),
        "final_fit_epochs": args.final_fit,
        "epochs_run": result.history[-1]["epoch"] if result.history else 0,
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "train_sentences": len(both),
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "word2vec_s": round(w2v_s, 1),
        **(unseen_entity_scores(run["pipe"], train, dev) if control else {}),
    }
    if args.smoke:
        metrics["smoke"] = True
    recorded = {**fit_settings, "word2vec_training": {**WORD2VEC, "corpus": f"{args.final_fit_data} tokens"},
                "final_fit": ("control: train alone, the same fixed epochs, dev held out" if control else
                              "train + valid, fixed epochs; the held-out figure needs the test split"),
                "smoke": args.smoke, "threads": torch.get_num_threads()}
    write_results(results_name(base, args), metrics, recorded, budget_s, time.perf_counter() - wall_start, run["pipe"].device)


if __name__ == "__main__":
    main()
