"""Every registered task holds to the one task interface (``seqlab.core.task``, docs/architecture.md).

Parametrised over ``registry.TASKS``, so a task joins by being registered; it then needs an
entry in ``TINY`` below: a tiny recipe on the project's corpora (fitted in seconds) and a
few raw inputs. For each task: fit, save, load, predict (identical after reloading),
evaluate (the task's selection metric among the keys, identical after reloading), resume
from a checkpoint, and per-call options — an unknown one refused with an ``InputError``
naming the valid ones, a bad ``batch_size`` refused.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import seqlab
from seqlab.core import registry
from seqlab.core.errors import InputError
from seqlab.core.options import Option
from seqlab.core.task import TaskModel
from seqlab.recipe import load_recipe
from tests.conftest import REPO

QUIET = {"progress": "off", "seed": 0}
SMALL_CNN = [{"channels": 4, "kernel": 3, "stride": [2, 2], "padding": 1, "norm": "layer"}]


def _sentiment(out: Path) -> tuple[dict, list]:
    return {
        "task": "sentiment", "data": {"limit_train": 60}, "model": {"embedding_dim": 8, "hidden_size": 8},
        "train": {"epochs": 1, "batch_size": 16, **QUIET}, "output": str(out), "device": "cpu",
    }, ["a great film", "a dull mess"]


def _ner(out: Path) -> tuple[dict, list]:
    return {
        "task": "ner", "data": {"limit_train": 40},
        "model": {"embedding_dim": 8, "hidden_size": 8, "char_embedding_dim": 4, "char_hidden_size": 4},
        "train": {"epochs": 1, "batch_size": 8, **QUIET}, "output": str(out), "device": "cpu",
    }, ["Angela Merkel visited Paris.", ["The", "United", "Nations", "met", "."]]


def _translation(out: Path) -> tuple[dict, list]:
    return {
        "task": "translation", "data": {"limit_train": 60}, "subwords": {"vocab_size": 120, "hard_vocab_limit": False},
        "model": {"embedding_dim": 8, "encoder_hidden": 8, "decoder_hidden": 8, "attention_dim": 8, "beam_size": 2},
        "train": {"epochs": 1, "batch_size": 20, **QUIET}, "output": str(out), "device": "cpu",
    }, ["A man is riding a bicycle.", "Two dogs."]


def _speech(out: Path) -> tuple[dict, list]:
    root = REPO / "corpora" / "speech"
    wavs = root / "wavs"
    # Every word of the corpus is a label: a dev clip may hold words the 8 training clips lack.
    words = sorted({w for name in ("train.tsv", "dev.tsv") for line in (root / name).read_text().splitlines()[1:]
                    for w in line.split("\t")[1].lower().split()})
    return {
        "task": "speech", "data": {"limit_train": 8},
        "audio": {"sample_rate": 16000, "max_seconds": 5},
        "mfcc": {"sample_rate": 16000, "n_mfcc": 13, "device": "cpu"},
        "model": {"unit": "word", "tokens": words, "cnn": SMALL_CNN, "hidden_size": 8, "num_layers": 1, "spec_augment": None,
                  "decoder": {"method": "greedy"}},
        "word_list_from_train": False,
        "train": {"epochs": 1, "batch_size": 4, **QUIET}, "output": str(out), "device": "cpu",
    }, [str(wavs / "utt0000.wav"), str(wavs / "utt0004.wav")]


def _lm(out: Path) -> tuple[dict, list]:
    return {
        "task": "lm", "data": {"limit_train": 60},
        "model": {"embedding_dim": 8, "hidden_size": 8, "num_layers": 1, "bptt": 10,
                  "generation": {"max_tokens": 5, "seed": 0}},
        "train": {"epochs": 1, "batch_size": 4, **QUIET}, "output": str(out), "device": "cpu",
    }, ["the film", "a"]


def _from_yaml(task: str, out: Path, sets: list[str]) -> dict:
    """The task's ready recipe (pipelines/TASK.yaml) with ``--set``-style overrides."""
    from seqlab.core.config import apply_overrides, read_yaml

    data = apply_overrides(read_yaml(REPO / "pipelines" / f"{task}.yaml"), [*sets, "train.progress=off", "device=cpu"])
    data.update(output=str(out), examples=[])
    return data


WAVS = [str(REPO / "corpora" / "speech" / "wavs" / f"utt000{i}.wav") for i in (1, 4)]
# The generative tasks' entries follow their own tests' tiny settings (branch "generative").
TINY_GENERATIVE: dict[str, Callable[[Path], tuple[dict, list]]] = {
    "anomaly": lambda out: (_from_yaml("anomaly", out, ["data.limit_train=30", "data.limit_dev=12", "train.epochs=2"]), WAVS),
    "denoise": lambda out: (_from_yaml("denoise", out, [
        "data.limit_train=8", "data.limit_dev=4", "train.epochs=1", "noise.copies=1", "model.hidden_sizes=[32]",
        "model.code_size=16"]), WAVS),
    "cgan": lambda out: (_from_yaml("cgan", out, [
        "data.limit_train=20", "train.epochs=2", "train.batch_size=8", "classifier.eval_samples_per_class=4",
        "model.channels=[8, 16]", "classifier.channels=[8]"]), ["3", "seven"]),
}

#: Task → (output folder → (tiny recipe data, raw inputs)). A registered task needs an entry.
TINY: dict[str, Callable[[Path], tuple[dict, list]]] = {
    "sentiment": _sentiment, "ner": _ner, "translation": _translation, "speech": _speech, "lm": _lm,
    **TINY_GENERATIVE,
    "tree_sentiment": lambda out: (_from_yaml("tree_sentiment", out, [
        "data.limit_train=30", "train.epochs=1", "model.embedding_dim=8", "model.hidden_size=8"]),
        ["(3 (2 the) (3 (3 charming) (2 film)))", "the ending is not very funny ."]),
}
#: Tasks another branch adds; until they are registered here, their entries are skipped.
PENDING = ("anomaly", "denoise", "cgan")


def _tiny(task: str, out: Path) -> tuple[Any, list]:
    if task not in TINY:
        pytest.fail(f"task {task!r} is registered but has no tiny recipe: add an entry for it to TINY in {__file__}")
    data, inputs = TINY[task](out)
    return load_recipe(data=data), inputs


def _prepare(task: str) -> None:
    if task in PENDING and task not in registry.TASKS:
        pytest.skip(f"task {task!r} is not registered on this branch")


def _equal(a: Any, b: Any) -> bool:
    """Equal outputs, floats to 1e-6 (a reloaded model's arithmetic is the same, its rounding may not be)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-6, atol=1e-6, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module", params=sorted({*registry.TASKS, *PENDING}))
def fitted(request, tmp_path_factory):
    """(task, recipe, inputs, pipeline, dev, fit result, run folder) of one tiny fit."""
    task = request.param
    _prepare(task)
    out = tmp_path_factory.mktemp(f"contract_{task}") / "run"
    recipe, inputs = _tiny(task, out)
    torch.manual_seed(0)
    pipe = recipe.build()
    train, dev = recipe.datasets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe.fit(train, dev, recipe.train, checkpoint_dir=out / "checkpoints")
    pipe.save(out)
    return task, recipe, inputs, pipe, dev, result, out


def test_task_declares_the_interface(fitted):
    task, _, _, pipe, _, _, _ = fitted
    cls = registry.task_class(task)
    assert issubclass(cls, TaskModel) and cls.task == task and dataclasses.is_dataclass(cls.Config)
    assert cls.selection_mode in ("min", "max")
    for name, option in cls.options.items():
        assert isinstance(option, Option) and option.doc, f"{task}: option {name!r} needs an Option with a doc"
    # The model's config is complete: a model built from it alone has the trained model's shapes.
    rebuilt = cls(pipe.model.config)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in pipe.model.state_dict().items()}


def test_save_load_predict_evaluate(fitted):
    task, _, inputs, pipe, dev, result, out = fitted
    assert result.steps > 0
    loaded = seqlab.load(out, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Seeded alike, so that a model that samples (a GAN) is compared on the same draws.
        torch.manual_seed(0)
        before = pipe.predict(inputs)
        torch.manual_seed(0)
        after = loaded.predict(inputs)
        assert len(after) == len(inputs) and _equal(before, after), f"{task}: predictions changed on reloading"
        torch.manual_seed(0)
        assert _equal(loaded(inputs[0]), after[0])
        metrics = loaded.evaluate(dev)
        assert _equal(metrics, pipe.evaluate(dev))
    wanted = loaded.model.selection_metric
    assert wanted == "loss" or wanted in metrics, f"{task}: evaluate() lacks the selection metric {wanted!r}: {sorted(metrics)}"
    assert all(isinstance(v, (int, float)) for v in metrics.values())


def test_unknown_option_and_bad_batch_size_are_refused(fitted):
    task, _, inputs, pipe, _, _, _ = fitted
    valid = [*pipe.model.options, "batch_size"]
    with pytest.raises(InputError, match=r"unknown option 'no_such_option'; valid options: (.*)") as err:
        pipe.predict(inputs, no_such_option=1)
    assert str(err.value).endswith(", ".join(valid))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="batch_size must be a positive integer"):
            pipe.predict(inputs, batch_size=bad)
    for name, option in pipe.model.options.items():
        if option.type in (bool, int, float) and not option.column:
            with pytest.raises(InputError, match=f"option {name}="):
                pipe.predict(inputs[:1], **{name: "not a number"})


def test_resume_from_a_checkpoint(fitted):
    task, recipe, _, pipe, dev, first, out = fitted
    train, _ = recipe.datasets()
    more = dataclasses.replace(recipe.train, epochs=recipe.train.epochs + 1)
    torch.manual_seed(1)
    again = recipe.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = again.fit(train, dev, more, checkpoint_dir=out / "checkpoints", resume_from=out / "checkpoints")
    assert result.resumed_from, f"{task}: the run did not resume"
    assert result.steps > first.steps and result.history[-1]["epoch"] == more.epochs
    # A loaded pipeline trains further, too (fine-tuning on the same data: no refitting of stages).
    loaded = seqlab.load(out, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tuned = loaded.fit(train, None, dataclasses.replace(recipe.train, epochs=1))
    assert tuned.steps > 0
