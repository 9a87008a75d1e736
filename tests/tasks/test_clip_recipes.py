"""What the clip tasks share: recipes (parse, refuse typos), the retired generative format, docs and docstrings."""
from __future__ import annotations

import json

import pytest

from seqlab.core.errors import ConfigError, ModelFileError
from seqlab.recipe import load_recipe


def test_recipes_parse_and_refuse_typos(repo):
    from seqlab.core import registry

    for task in ("anomaly", "denoise", "cgan"):
        recipe = load_recipe(repo / "pipelines" / f"{task}.yaml")
        assert recipe.task == task and type(recipe) is registry.recipe_class(task)
        assert type(recipe.train).__name__ == "TrainConfig"   # the shared Trainer's settings, threads included
    recipe = load_recipe(repo / "pipelines" / "denoise.yaml", ["noise.eval_snr_db=5", "train.epochs=2", "train.threads=1"])
    assert recipe.noise.eval_snr_db == 5.0 and recipe.train.epochs == 2 and recipe.features.cmvn == "global"
    with pytest.raises(ConfigError, match=r"unknown key 'code_sise' \(did you mean 'code_size'\?\)"):
        load_recipe(repo / "pipelines" / "anomaly.yaml", ["model.code_sise=3"])
    with pytest.raises(ConfigError, match="noise.kinds: unknown noise 'brown'"):
        load_recipe(repo / "pipelines" / "denoise.yaml", ["noise.kinds=[brown]"])


def test_recipe_datasets_split_digits_from_other_clips(repo, monkeypatch):
    monkeypatch.chdir(repo)
    anomaly = load_recipe(repo / "pipelines" / "anomaly.yaml")
    train, dev = anomaly.datasets()
    assert not any(train.anomalous) and any(dev.anomalous) and not all(dev.anomalous)
    cgan = load_recipe(repo / "pipelines" / "cgan.yaml")
    train, _ = cgan.datasets()
    assert len(train) > 0 and all(d is not None for d in train.digits)
    split = load_recipe(repo / "pipelines" / "denoise.yaml", ["data.dev=null", "data.dev_fraction=0.25"])
    train, dev = split.datasets()
    assert len(dev) == round(0.25 * (len(train) + len(dev))) and not set(train.names) & set(dev.names)


@pytest.mark.parametrize("task", ["anomaly", "denoise", "cgan"])
def test_a_model_in_the_retired_generative_format_says_to_retrain(tmp_path, task):
    import seqlab

    (tmp_path / "config.json").write_text(json.dumps({"format": "seqlab.generative", "format_version": 1, "task": task}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match=rf"retired generative format .*retrain it with `seqlab train pipelines/{task}.yaml`"):
        seqlab.load(tmp_path)


def test_the_python_examples_in_the_docs_run(repo, tmp_path, monkeypatch):
    monkeypatch.chdir(repo)
    text = (repo / "docs" / "generative.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        exec(compile(block.replace("runs/", f"{tmp_path}/"), "docs/generative.md", "exec"), {})


def test_docstring_examples_run():
    import doctest
    import importlib

    attempted = 0
    for name in ("seqlab.tasks.anomaly", "seqlab.tasks.cgan", "seqlab.tasks.audio_clips", "seqlab.metrics.detection",
                 "seqlab.metrics.snr", "seqlab.audio.noise", "seqlab.audio.patches", "seqlab.data.clips", "seqlab.train.plots"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
        attempted += result.attempted
    assert attempted >= 20
