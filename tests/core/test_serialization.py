import json
import pickle

import pytest
import torch

from seqlab.core.errors import ModelFileError
from seqlab.core.serialization import (
    FORMAT, FORMAT_VERSION, atomic_directory, check_model_dir, load_weights, save_weights,
)


def _valid_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "task": "x"}))
    save_weights(torch.nn.Linear(2, 2), d / "model.safetensors")
    return d


def test_refuses_pickle_and_torch_save_files(tmp_path):
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="pickle.*never loads pickled"):
        check_model_dir(pkl)
    pt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pt)
    with pytest.raises(ModelFileError, match="torch.save format"):
        check_model_dir(pt)


def test_refuses_foreign_and_newer_directories(tmp_path):
    foreign = tmp_path / "hf"
    foreign.mkdir()
    torch.save({}, foreign / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="no config.json.*pytorch_model.bin"):
        check_model_dir(foreign)
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelFileError, match="not a seqlab pipeline config"):
        check_model_dir(foreign)
    d = _valid_dir(tmp_path)
    assert check_model_dir(d)["task"] == "x"
    (d / "config.json").write_text(json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ModelFileError, match="newer than this seqlab"):
        check_model_dir(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt"):
        check_model_dir(d)
    with pytest.raises(ModelFileError, match="does not exist"):
        check_model_dir(tmp_path / "nothing")


def test_weights_round_trip_and_truncation(tmp_path):
    torch.manual_seed(0)
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    save_weights(src, tmp_path / "w.safetensors")
    load_weights(dst, tmp_path / "w.safetensors")
    assert torch.equal(src.weight, dst.weight) and torch.equal(src.bias, dst.bias)
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_weights(dst, tmp_path / "cut.safetensors")
    with pytest.raises(ModelFileError, match="does not fit this model"):
        load_weights(torch.nn.GRU(3, 2), tmp_path / "w.safetensors")
    with pytest.raises(ModelFileError, match="has shape"):
        load_weights(torch.nn.Linear(4, 2), tmp_path / "w.safetensors")


def test_tied_weights_survive(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 3)
            self.out = torch.nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    a, b = Tied(), Tied()
    save_weights(a, tmp_path / "t.safetensors")
    load_weights(b, tmp_path / "t.safetensors")
    assert torch.equal(a.emb.weight, b.out.weight) and b.out.weight is b.emb.weight

    class ThreeWay(Tied):
        def __init__(self):
            super().__init__()
            self.src = torch.nn.Embedding(5, 3)
            self.src.weight = self.emb.weight

    c, d = ThreeWay(), ThreeWay()
    save_weights(c, tmp_path / "three.safetensors")
    load_weights(d, tmp_path / "three.safetensors")
    assert torch.equal(d.src.weight, c.emb.weight) and d.src.weight is d.out.weight


def test_atomic_directory_keeps_old_on_failure(tmp_path):
    final = tmp_path / "out"
    with atomic_directory(final) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as tmp:
            (tmp / "a.txt").write_text("two")
            raise RuntimeError("disk full")
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
