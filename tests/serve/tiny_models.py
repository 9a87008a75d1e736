"""Tiny trained pipelines of the five served tasks, for the tests of ``seqlab serve``.

Each is a tiny recipe on the project's own corpora (``corpora/``), trained on one thread in
a few seconds, so a test can serve real models and compare what the server (or the demo
page) shows with what ``pipe.predict`` returns. They are small, not good: the NER model may
find few entities and the translation model says little, which is enough to check that the
page renders exactly what the pipeline predicts.

    >>> pipes = train_tiny_pipelines(tmp_path, ["sentiment"])   # doctest: +SKIP
    >>> pipes["sentiment"]("a great film")["label"]             # doctest: +SKIP
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
SPEECH = REPO / "corpora" / "speech"
QUIET = {"progress": "off", "seed": 0}
SMALL_CNN = [{"channels": 4, "kernel": 3, "stride": [2, 2], "padding": 1, "norm": "layer"}]

#: The served tasks, in the order the demo page lists them.
TASKS = ("sentiment", "ner", "translation", "speech", "lm")

#: A raw input per task that the tests send (speech: a clip of corpora/speech).
INPUTS = {
    "sentiment": "a great film",
    "ner": "Angela Merkel visited Paris with Diego .",
    "translation": "A man is riding a bicycle.",
    "speech": str(SPEECH / "wavs" / "utt0004.wav"),
    "lm": "the food was",
}


def _speech_words() -> list[str]:
    # Every word of the corpus is a label: a dev clip may hold words the training clips lack.
    return sorted({w for name in ("train.tsv", "dev.tsv") for line in (SPEECH / name).read_text().splitlines()[1:]
                   for w in line.split("\t")[1].lower().split()})


def tiny_recipe(task: str, out: Path) -> dict[str, Any]:
    """The recipe data (as a YAML recipe would give it) of one tiny model saved under ``out``."""
    common = {"output": str(out), "device": "cpu", "examples": []}
    if task == "sentiment":
        return {"task": "sentiment", "data": {"limit_train": 120}, "model": {"embedding_dim": 8, "hidden_size": 8},
                "train": {"epochs": 2, "batch_size": 16, **QUIET}, **common}
    if task == "ner":
        return {"task": "ner", "data": {"limit_train": 200},
                "model": {"embedding_dim": 8, "hidden_size": 8, "char_embedding_dim": 4, "char_hidden_size": 4},
                "train": {"epochs": 4, "batch_size": 8, **QUIET}, **common}
    if task == "translation":
        return {"task": "translation", "data": {"limit_train": 200},
                "subwords": {"vocab_size": 120, "hard_vocab_limit": False},
                "model": {"embedding_dim": 8, "encoder_hidden": 8, "decoder_hidden": 8, "attention_dim": 8,
                          "beam_size": 1, "max_len_a": 0.5, "max_len_b": 4},
                "train": {"epochs": 4, "batch_size": 20, **QUIET}, **common}
    if task == "speech":
        return {"task": "speech", "data": {"limit_train": 8},
                "audio": {"sample_rate": 16000, "max_seconds": 5},
                "mfcc": {"sample_rate": 16000, "n_mfcc": 13, "device": "cpu"},
                "model": {"unit": "word", "tokens": _speech_words(), "cnn": SMALL_CNN, "hidden_size": 8,
                          "num_layers": 1, "spec_augment": None, "decoder": {"method": "greedy"}},
                "word_list_from_train": False,
                "train": {"epochs": 1, "batch_size": 4, **QUIET}, **common}
    if task == "lm":
        return {"task": "lm", "data": {"limit_train": 60},
                "model": {"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "bptt": 10,
                          "generation": {"max_tokens": 6, "seed": 0}},
                "train": {"epochs": 1, "batch_size": 4, **QUIET}, **common}
    raise ValueError(f"no tiny recipe for task {task!r}; tasks: {', '.join(TASKS)}")


def train_tiny_pipeline(task: str, out: Path) -> Any:
    """Train one tiny pipeline, save it under ``out`` and return it (on the CPU)."""
    from seqlab.recipe import load_recipe

    recipe = load_recipe(data=tiny_recipe(task, out))
    torch.manual_seed(0)
    pipe = recipe.build()
    train, dev = recipe.datasets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(train, dev, recipe.train)
    pipe.save(out)
    return pipe


def train_tiny_pipelines(root: Path, tasks: Iterable[str] = TASKS) -> dict[str, Any]:
    """Task name → a tiny trained pipeline, each saved under ``root / task``."""
    return {task: train_tiny_pipeline(task, Path(root) / task) for task in tasks}
