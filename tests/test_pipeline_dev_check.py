"""Pipeline.fit checks the dev set before training starts (issue: a speech dev transcript with a
character unseen in training stopped training after epoch 1, called a 'training example')."""
from __future__ import annotations

import warnings

import pytest
import torch

from corpus_clips import speech_clips
from seqlab.core.errors import DataError
from seqlab.recipe import load_recipe
from seqlab.train import Trainer

SMALL_CNN = [
    {"channels": 4, "kernel": 3, "stride": [2, 2], "padding": 1, "norm": "layer", "activation": "leaky_relu"},
    {"channels": 4, "kernel": 3, "stride": [2, 1], "padding": 1, "norm": "layer", "activation": "leaky_relu"},
]


def _speech_recipe(epochs=1):
    return load_recipe(data={
        "task": "speech",
        "audio": {"sample_rate": 16000, "max_seconds": 5},
        "mfcc": {"sample_rate": 16000, "n_mfcc": 20, "cmvn": "utterance", "device": "cpu"},
        "model": {"unit": "char", "cnn": SMALL_CNN, "hidden_size": 8, "num_layers": 1, "dropout": 0.0,
                  "spec_augment": None},
        "train": {"epochs": epochs, "batch_size": 2, "lr": 0.01, "progress": "off", "seed": 1},
        "device": "cpu",
    })


@pytest.fixture
def no_training(monkeypatch):
    """Any call into the Trainer fails the test: the check must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the dev set was checked")
    monkeypatch.setattr(Trainer, "fit", refuse)


def test_a_dev_transcript_with_an_unseen_character_fails_before_training(repo, no_training):
    texts = ["two", "no", "eight", "go back"]  # labels: ' ', a, b, c, e, g, h, i, k, n, o, t, w
    paths = speech_clips(repo, texts)
    recipe = _speech_recipe()
    pipe = recipe.build(texts)
    dev = {"audio": paths[:3], "text": ["two", "eight", "zero"]}  # 'z', 'r' are not labels
    with pytest.raises(DataError) as info:
        pipe.fit({"audio": paths, "text": texts}, dev, recipe.train)
    message = str(info.value)
    assert message.startswith("dev example 2: transcript 'zero' has the char 'z'"), message
    assert "training example" not in message


def test_a_clean_dev_set_trains_one_epoch_and_is_evaluated(repo):
    texts = ["two", "no", "eight", "go back"]
    paths = speech_clips(repo, texts)
    recipe = _speech_recipe()
    pipe = recipe.build(texts)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe.fit({"audio": paths, "text": texts}, {"audio": paths[:2], "text": ["two", "no"]}, recipe.train)
    assert len(result.history) == 1 and "dev_wer" in result.history[0]


def test_evaluation_names_an_unencodable_row_as_evaluation_data(repo):
    """The dev CTC loss (the WER tiebreak) needs label ids; on evaluation data with an unknown
    character it must not call the row a training example."""
    texts = ["two", "no", "eight", "go back"]
    paths = speech_clips(repo, texts)
    recipe = _speech_recipe()
    pipe = recipe.build(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit({"audio": paths, "text": texts}, None, recipe.train)
    with pytest.raises(DataError, match=r"^evaluation example 1: transcript 'zero' has the char 'z'"):
        pipe.evaluate({"audio": paths[:2], "text": ["two", "zero"]})


def test_ner_dev_tags_outside_the_scheme_fail_before_training(repo, no_training):
    sets = ["model.hidden_size=8", "model.embedding_dim=8", "model.char_hidden_size=4", "train.epochs=1",
            "train.progress=off", "device=cpu"]
    recipe = load_recipe(repo / "pipelines" / "ner.yaml", sets)
    pipe = recipe.build()
    train = {"tokens": [["Anna", "lives", "in", "Rome"]] * 4, "tags": [["B-PER", "O", "O", "B-LOC"]] * 4}
    dev = {"tokens": [["Anna", "lives"], ["in", "Rome"]], "tags": [["B-PER", "O"], ["O", "S-LOC"]]}
    with pytest.raises(DataError, match=r"^dev example 1: .*'S-LOC'"):
        pipe.fit(train, dev, recipe.train)
