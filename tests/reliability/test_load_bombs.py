"""Memory bombs, damaged weights and absurd configs are refused cheaply and clearly (issue #15, part 3).

Reproductions: a 192 KB folder whose ``config.json`` says ``hidden_size: 12000`` reached 5 GB
of RAM before it was refused; NaN or inf weights loaded and ``predict`` printed ``0 (nan)``
with exit 0; a 100,000-deep nested ``config.json`` raised a raw RecursionError.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import seqlab
from model_folders import tiny_pipeline
from seqlab.cli import main as cli
from seqlab.core.errors import ModelFileError
from seqlab.pipeline import Pipeline

# Runs the load in a child of a small launcher, so the peak resident size measured
# (RUSAGE_CHILDREN) is the loader's own, not inherited from this (large) test process.
LAUNCHER = """
import resource, subprocess, sys
child = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], capture_output=True, text=True)
print(child.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, child.stdout.strip()[-200:])
"""
LOADER = """
import sys, seqlab
from seqlab.core.errors import ModelFileError
try:
    seqlab.load(sys.argv[1], device="cpu")
    print("loaded")
except ModelFileError as err:
    print("refused", str(err)[:120])
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("bombs")
    tiny_pipeline("a").save(root / "model")
    return root / "model"


def _copy(saved, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved, folder)
    return folder


def _edit_config(folder, change):
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _peak_mb(folder, repo) -> tuple[str, int]:
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", LAUNCHER, LOADER, str(folder)], capture_output=True, text=True,
                         env=env, timeout=300).stdout.split(maxsplit=2)
    return out[2].strip(), int(out[1])


@pytest.mark.slow
def test_a_config_that_describes_gigabytes_is_refused_before_allocating(saved, tmp_path, repo):
    bomb = _copy(saved, tmp_path)
    _edit_config(bomb, lambda c: c["model"].update(hidden_size=12000))  # a BiLSTM of ~5 GB
    assert sum(p.stat().st_size for p in bomb.rglob("*") if p.is_file()) < 200_000
    with pytest.raises(ModelFileError, match="hidden_size|has shape") as info:
        seqlab.load(bomb, device="cpu")
    assert "config.json" in str(info.value) or "model.safetensors" in str(info.value)
    outcome, bomb_peak = _peak_mb(bomb, repo)
    assert outcome.startswith("refused"), outcome
    outcome, normal_peak = _peak_mb(saved, repo)
    assert outcome == "loaded"
    # Refusing costs no more than loading the real (tiny) model: imports dominate both.
    assert bomb_peak < normal_peak + 100, (bomb_peak, normal_peak)


def test_header_shapes_are_checked_before_the_model_is_built(saved, tmp_path, monkeypatch):
    bomb = _copy(saved, tmp_path)
    _edit_config(bomb, lambda c: c["model"].update(hidden_size=12000))
    built = []
    import seqlab.tasks.sentiment as sentiment

    real_init = sentiment.SentimentModel.__init__

    def spy(self, config):
        built.append(torch.empty(1 << 20).device.type)  # where a large tensor goes while building
        real_init(self, config)

    monkeypatch.setattr(sentiment.SentimentModel, "__init__", spy)
    with pytest.raises(ModelFileError, match="has shape"):
        Pipeline.load(bomb, device="cpu")
    assert built == ["meta"]  # built once, on the meta device only: nothing was allocated


def test_missing_tensors_are_refused_before_building(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    state = load_file(folder / "model.safetensors")
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelFileError, match="missing") as info:
        seqlab.load(folder, device="cpu")
    assert dropped in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(saved, tmp_path, capsys, bad):
    folder = _copy(saved, tmp_path)
    state = load_file(folder / "model.safetensors")
    name = next(n for n in sorted(state) if "weight" in n and state[n].is_floating_point())
    state[name] = state[name].clone()
    state[name].view(-1)[0] = bad
    save_file(state, folder / "model.safetensors", metadata={"format": "seqlab.pipeline", "task": "sentiment"})
    with pytest.raises(ModelFileError) as info:
        seqlab.load(folder, device="cpu")
    assert repr(name) in str(info.value) and ("NaN" if bad != bad else "infinite") in str(info.value)
    capsys.readouterr()
    assert cli(["predict", str(folder), "good film"]) == 2  # was: "good film\t0 (nan)", exit 0
    err = capsys.readouterr().err
    assert err.startswith("seqlab predict: ") and name in err and err.count("\n") == 1


@pytest.mark.parametrize("depth", [100_000, 65])
def test_a_deeply_nested_config_is_a_model_file_error(saved, tmp_path, capsys, depth):
    folder = _copy(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    text = json.dumps(config)[:-1] + ', "meta": ' + "[" * depth + "]" * depth + "}"
    (folder / "config.json").write_text(text)
    for load in (seqlab.load, Pipeline.load):
        with pytest.raises(ModelFileError, match="nested too deeply") as info:
            load(folder, device="cpu")
        assert str(folder) in str(info.value)
    capsys.readouterr()
    assert cli(["predict", str(folder), "good film"]) == 2
    assert cli(["eval", str(folder), "data.tsv"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["seqlab predict", "seqlab eval"], lines
    assert all("nested too deeply" in line for line in lines)


def test_an_oversized_config_is_refused_before_it_is_parsed(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    with open(folder / "config.json", "ab") as handle:
        handle.truncate(17 * 2**20)  # sparse: 17 MB of zeros after the JSON
    with pytest.raises(ModelFileError, match="more than the"):
        seqlab.load(folder, device="cpu")


PIECES = ["<pad>", "<unk>", "<bos>", "<eos>"] + [f"p{i}" for i in range(26)]
TASK_CONFIGS = {
    "sentiment": ("sentiment", {"vocab_size": 20, "labels": ["0", "1"], "embedding_dim": 6, "hidden_size": 5}),
    "ner_softmax": ("ner", {"vocab_size": 20, "word_vocab_size": 20, "tags": ["O", "B-PER", "I-PER"], "chars": "abcdef",
                            "embedding_dim": 6, "hidden_size": 5}),
    "ner_crf": ("ner", {"vocab_size": 20, "word_vocab_size": 20, "tags": ["O", "B-PER", "I-PER"], "chars": "abcdef",
                        "embedding_dim": 6, "hidden_size": 5, "decoder": "crf"}),
    "translation": ("translation", {"source_vocab_size": 30, "target_vocab_size": 30, "embedding_dim": 6, "encoder_hidden": 5,
                                    "decoder_hidden": 5, "tie_embeddings": True, "share_embeddings": True,
                                    "target_pieces": PIECES, "source_pieces": PIECES}),
    "speech": ("speech", {"feature_dim": 13, "tokens": list("abc"), "hidden_size": 5}),
    "lm": ("lm", {"vocab_size": 25, "embedding_dim": 5, "hidden_size": 5, "tie_weights": True}),
}


@pytest.mark.parametrize("name", sorted(TASK_CONFIGS))
def test_every_task_model_builds_on_the_meta_device_with_its_real_shapes(name):
    """The pre-allocation check runs for every task: its skeleton has the real model's names, shapes and ties."""
    from seqlab.core import registry
    from seqlab.core.config import from_dict
    from seqlab.core.serialization import _shared_groups, _SkipInitOnMeta, _tied_groups

    task, raw = TASK_CONFIGS[name]
    cls = registry.task_class(task)
    config = from_dict(cls.Config, raw, where=name)
    with torch.device("meta"), _SkipInitOnMeta():
        skeleton = cls(config)
    real = cls(config)
    meta_state = skeleton.state_dict(keep_vars=True)
    assert {k: tuple(v.shape) for k, v in meta_state.items()} == {k: tuple(v.shape) for k, v in real.state_dict().items()}
    assert sorted(map(sorted, _tied_groups(meta_state))) == sorted(map(sorted, _shared_groups(real)))
    # ... and a huge version of it costs no memory: its parameters stay on the meta device.
    with torch.device("meta"), _SkipInitOnMeta():
        huge = cls(from_dict(cls.Config, {**raw, "hidden_size" if task != "translation" else "encoder_hidden": 50_000,
                                          **({"tie_weights": False} if task == "lm" else {})}, where=name))
    assert sum(v.numel() * v.element_size() for v in huge.state_dict().values() if not v.is_meta) < 64 << 20
