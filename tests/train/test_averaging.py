"""Weight averaging (train.average: ema): the EMA's formula, evaluation and selection on the
averaged weights, the model ending with them, exact resume, and the config checks."""
import pytest
import torch
from torch import nn

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, ModelFileError
from seqlab.train import TrainConfig, Trainer
from seqlab.train.averaging import WeightAverage
from seqlab.train.checkpoint import load_checkpoint
from tests.train.test_checkpoints import CrashingRegressor, crash_and_resume, fresh, strip_timing
from tests.train.toys import ToyRegressor, toy_columns


def cfg(**kw):
    base = {"progress": "off", "epochs": 3, "batch_size": 5, "lr": 0.05, "optimizer": "adam",
            "average": "ema", "average_decay": 0.9, "checkpoint_every_steps": 1, "keep_checkpoints": 100}
    return from_dict(TrainConfig, {**base, **kw})


def test_the_average_follows_its_formula_with_the_decay_warm_up():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    expected = {k: v.detach().clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.95)
    for t in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 3))  # moves the BatchNorm running statistics and its integer counter
        d = min(0.95, (1 + t) / (10 + t))
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                expected[name] = d * expected[name] + (1 - d) * value
            else:
                expected[name] = value.clone()
        average.update(model)
    for name, value in expected.items():
        torch.testing.assert_close(average.state[name], value, rtol=1e-5, atol=1e-6)
    assert int(average.state["1.num_batches_tracked"]) == 30


def test_applied_swaps_the_average_in_and_gives_the_weights_back():
    model = nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    own = model.weight.detach().clone()
    with average.applied(model):
        assert torch.equal(model.weight, average.state["weight"]) and not torch.equal(model.weight, own)
    assert torch.equal(model.weight, own)


def test_evaluation_and_the_result_use_the_averaged_weights(tmp_path):
    columns = toy_columns(23)
    model = fresh(ToyRegressor)
    seen = []

    def evaluate():
        seen.append(model.linear.weight.detach().clone())
        return {"loss": float(-len(seen))}  # each evaluation beats the last: the final one is best

    result = Trainer(cfg(checkpoint_every_steps=None), checkpoint_dir=tmp_path).fit(model, columns, evaluate)
    last = load_checkpoint(tmp_path / f"step-{result.steps:09d}.pt")
    assert len(seen) == 3 and result.best_step == result.steps
    assert torch.equal(seen[-1], last["average"]["state"]["linear.weight"])  # evaluated: the average
    assert torch.equal(model.linear.weight, seen[-1])  # and the model ends with it
    assert not torch.allclose(last["model"]["linear.weight"], seen[-1])  # not the last step's own weights
    assert last["best_model"] is not None and torch.equal(last["best_model"]["linear.weight"], seen[-1])


@pytest.mark.parametrize("crash_at", [2, 7])
def test_resume_with_averaging_is_bit_identical(tmp_path, crash_at):
    full, reference, resumed_model, resumed = crash_and_resume(tmp_path, cfg(), crash_at)
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert strip_timing(resumed.history) == strip_timing(reference.history)
    last = f"step-{reference.steps:09d}.pt"
    a, b = load_checkpoint(tmp_path / "full" / last)["average"], load_checkpoint(tmp_path / "run" / last)["average"]
    assert a["updates"] == b["updates"] == reference.steps
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])


def test_resuming_an_unaveraged_run_with_averaging_is_a_clear_error(tmp_path):
    columns = toy_columns(13)
    model = fresh(CrashingRegressor)
    Trainer(cfg(average="off", epochs=1), checkpoint_dir=tmp_path).fit(model, columns)
    with pytest.raises(ModelFileError, match="no weight average"):
        Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), columns, resume_from=tmp_path)


@pytest.mark.parametrize("bad, message", [
    ({"average": "swa"}, "average: 'swa' is not one of 'off', 'ema'"),
    ({"average_decay": 1.0}, r"average_decay must be in \(0, 1\)"),
    ({"average_decay": 0}, r"average_decay must be in \(0, 1\)"),
])
def test_bad_averaging_settings_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainConfig, {"epochs": 1, **bad})
