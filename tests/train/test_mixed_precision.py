"""Every recipe in ``pipelines/`` trains under bf16 autocast.

CUDA trains with ``amp: bf16`` by default, and no GPU has run this project yet. ``cpu_amp``
runs the same autocast on the CPU, so these runs are the CUDA mixed-precision path's proxy:
the products come back in bf16 while buffers, losses and gradients are float32 (the tree
encoders failed on that mix until they handled it). Each recipe trains one tiny epoch.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from seqlab.recipe import load_recipe

COMMON = ["train.epochs=1", "train.progress=off", "train.seed=0", "device=cpu", "train.cpu_amp=true", "train.amp=bf16"]
TINY = {
    "sentiment": ["model.embedding_dim=8", "model.hidden_size=8", "data.limit_train=40"],
    "ner": ["model.embedding_dim=8", "model.hidden_size=8", "model.char_hidden_size=4", "model.char_embedding_dim=4",
            "data.limit_train=40"],
    "lm": ["model.embedding_dim=8", "model.hidden_size=8", "data.limit_train=40"],
    "translation": ["model.embedding_dim=8", "model.encoder_hidden=8", "model.decoder_hidden=8", "model.attention_dim=8",
                    "subwords.vocab_size=120", "data.limit_train=40"],
    "speech": ["model.hidden_size=8", "model.num_layers=1", "data.limit_train=6", "mfcc.device=cpu",
               "train.time_budget_s=null"],
    "tree_sentiment": ["data.limit_train=20"],
    "anomaly": ["data.limit_train=30"],
    "denoise": ["data.limit_train=6", "train.time_budget_s=null"],
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_recipe_trains_under_bf16_autocast(repo, name):
    recipe = load_recipe(repo / "pipelines" / f"{name}.yaml", TINY[name] + COMMON)
    train, _ = recipe.datasets()
    pipe = recipe.build(list(train["text"])) if name == "speech" else recipe.build()
    products = []

    def record(module, args, out):
        if isinstance(module, torch.nn.Linear) and module.training:
            products.append(out.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)  # the model is built inside fit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pipe.fit(train, None, recipe.train)
    finally:
        hook.remove()
    assert torch.bfloat16 in products, "no linear layer ran in bf16: autocast was not on"
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert all(p.dtype == torch.float32 for p in pipe.model.parameters())


def test_the_list_covers_every_recipe_that_uses_the_trainers_step(repo):
    """cgan runs its own step (full precision, docs/training.md); every other recipe is above."""
    recipes = {p.stem for p in (repo / "pipelines").glob("*.yaml")}
    assert recipes - set(TINY) == {"cgan"}


def test_seqlab_train_says_when_it_trains_under_cpu_amp(repo, tmp_path, capsys, monkeypatch):
    from seqlab.cli import main

    monkeypatch.chdir(repo)
    tiny = ["--set", "train.epochs=1", "--set", "train.progress=off", "--set", "data.limit_train=20",
            "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8"]
    assert main(["train", "pipelines/sentiment.yaml", "--output", str(tmp_path / "a"), *tiny, "--set", "train.cpu_amp=true"]) == 0
    assert "bf16 autocast (train.cpu_amp)" in capsys.readouterr().out
    assert main(["train", "pipelines/sentiment.yaml", "--output", str(tmp_path / "b"), *tiny]) == 0
    assert "autocast" not in capsys.readouterr().out
