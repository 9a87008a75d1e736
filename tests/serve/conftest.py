"""Tiny saved pipelines of five tasks for the ``seqlab serve`` tests (and the demo-page test), and
``served``: the real app serving them under uvicorn on a free localhost port.

``tiny_model_dirs`` trains each once per test session from a tiny recipe on the project's
corpora in ``corpora/`` (a second or two each on one thread) and saves it with the ``meta``
``seqlab train`` writes, so ``config.json`` holds the dev metrics as a real run's does.
The models are tiny and barely trained; the tests compare the server with ``pipe.predict``,
never with the truth.
"""
from __future__ import annotations

import socket
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

QUIET = {"progress": "off", "seed": 0}
SPEECH = REPO / "corpora" / "speech"
WAVS = SPEECH / "wavs"


def _speech_words() -> list[str]:
    return sorted({w for name in ("train.tsv", "dev.tsv") for line in (SPEECH / name).read_text().splitlines()[1:]
                   for w in line.split("\t")[1].lower().split()})


#: Task → a tiny recipe (the data of a YAML recipe) for ``seqlab.recipe.load_recipe``.
TINY_RECIPES = {
    "sentiment": lambda: {
        "task": "sentiment", "data": {"limit_train": 200}, "model": {"embedding_dim": 16, "hidden_size": 16},
        "train": {"epochs": 2, "batch_size": 16, **QUIET}},
    "ner": lambda: {
        # Enough to tag some entities (the demo-page test needs marks to compare), ~2 s.
        "task": "ner", "data": {"limit_train": 200},
        "model": {"embedding_dim": 8, "hidden_size": 8, "char_embedding_dim": 4, "char_hidden_size": 4},
        "train": {"epochs": 4, "batch_size": 8, **QUIET}},
    "translation": lambda: {
        "task": "translation", "data": {"limit_train": 60},
        "subwords": {"vocab_size": 120, "hard_vocab_limit": False},
        "model": {"embedding_dim": 8, "encoder_hidden": 8, "decoder_hidden": 8, "attention_dim": 8, "beam_size": 2},
        "train": {"epochs": 1, "batch_size": 20, **QUIET}},
    "speech": lambda: {
        "task": "speech", "data": {"limit_train": 8},
        "audio": {"sample_rate": 16000, "max_seconds": 30},
        "mfcc": {"sample_rate": 16000, "n_mfcc": 13, "device": "cpu"},
        "model": {"unit": "word", "tokens": _speech_words(), "hidden_size": 8, "num_layers": 1, "spec_augment": None,
                  "cnn": [{"channels": 4, "kernel": 3, "stride": [2, 2], "padding": 1, "norm": "layer"}],
                  "decoder": {"method": "greedy"}},
        "word_list_from_train": False,
        "train": {"epochs": 1, "batch_size": 4, **QUIET}},
    "lm": lambda: {
        "task": "lm", "data": {"limit_train": 60},
        "model": {"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "bptt": 10, "generation": {"max_tokens": 5, "seed": 0}},
        "train": {"epochs": 1, "batch_size": 4, **QUIET}},
}


def train_tiny(task: str, out: Path) -> Path:
    """Train the tiny ``task`` recipe and save it into ``out`` with the ``meta`` that ``seqlab train`` writes
    (the recipe, and a summary holding the dev metrics); no curves or checkpoints, to stay quick."""
    from seqlab.core.config import to_dict
    from seqlab.recipe import load_recipe

    recipe = load_recipe(data={**TINY_RECIPES[task](), "output": str(out), "device": "cpu", "examples": []})
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = recipe.build()
        train, dev = recipe.datasets()
        result = pipe.fit(train, dev, recipe.train)
        metrics = pipe.evaluate(dev) if dev is not None else {}
    pipe.save(out, meta={"recipe": to_dict(recipe), "summary": {"task": task, "dev": metrics, "steps": result.steps}})
    return out


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """Task name → the folder of a tiny trained pipeline: sentiment, ner, translation, speech, lm."""
    root = tmp_path_factory.mktemp("serve_models")
    return {task: train_tiny(task, root / task) for task in TINY_RECIPES}


@pytest.fixture(scope="session")
def speech_wavs() -> list[Path]:
    """Two short clips of the project's speech corpus."""
    return [WAVS / "utt0000.wav", WAVS / "utt0004.wav"]


@pytest.fixture(scope="module")
def served(tiny_model_dirs):
    """(base URL, task → the Pipeline): the real app, serving the saved folders as ``seqlab serve``
    does, under uvicorn in a background thread; the pipelines are the same folders loaded here."""
    import uvicorn

    import seqlab
    from seqlab.serve import create_app

    app = create_app({task: str(folder) for task, folder in tiny_model_dirs.items()}, device="cpu")
    pipes = {task: seqlab.load(folder, device="cpu") for task, folder in tiny_model_dirs.items()}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held from here on: no race with other processes
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start the seqlab serve app")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", pipes
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
