"""A stop for the time budget, then `--resume`, gives the run that was never stopped, bit for bit:
the stop runs no epoch-end evaluation in mid-epoch and feeds nothing partial to the plateau
schedule, early stopping or model selection (issue #15 §4). The budget runs out on a scripted
clock, after a chosen train step."""
import json

import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.train import TrainConfig, Trainer
from seqlab.train.checkpoint import load_checkpoint, load_latest_checkpoint
from tests.train.toys import ToyConfig, ToyRegressor, toy_columns

TIMING = {"elapsed_s", "tokens_per_s"}


class Regressor(ToyRegressor):
    def __init__(self):
        super().__init__(ToyConfig(dropout=0.2))  # dropout: the random generators matter


def cfg(**kw):
    # Plateau with patience 0: one evaluation without improvement halves the rate, so any
    # extra (partial-epoch) evaluation would show in the rates and the weights.
    base = {"progress": "off", "epochs": 4, "batch_size": 5, "lr": 0.05, "optimizer": "adam", "schedule": "plateau",
            "plateau_patience": 0, "plateau_factor": 0.5, "keep_checkpoints": 100}
    return from_dict(TrainConfig, {**base, **kw})


def fresh(seed=7):
    torch.manual_seed(seed)
    return Regressor()


def dev_metric(model):
    """A "dev" evaluation that depends on the weights and goes up and down (it selects and halves)."""
    def evaluate():
        with torch.no_grad():
            return {"loss": float(sum(v.float().abs().sum() for v in model.state_dict().values()) * 7.0 % 1.0)}
    return evaluate


def out_of_time_after(model, calls):
    """A clock at 0 s until the model's ``calls``-th train step, then at 100 s (budget: 1 s)."""
    return lambda: 100.0 if model.calls >= calls else 0.0


def strip(history):
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


@pytest.mark.parametrize("stop_after,eval_every", [
    (4, None),   # epoch 2, its first batch of 3: in mid-epoch
    (5, None),   # epoch 2, second batch
    (6, None),   # epoch 2, its last batch: the epoch-end evaluation is the uninterrupted run's
    (4, 2),      # a step evaluation is due at the stop: it runs, as in the uninterrupted run
    (5, 2),
])
def test_time_budget_stop_then_resume_equals_the_uninterrupted_run(tmp_path, stop_after, eval_every):
    columns = toy_columns(13)  # batches of 5, 5, 3
    config = cfg(eval_every_steps=eval_every)
    full = fresh()
    reference = Trainer(config, checkpoint_dir=tmp_path / "full").fit(full, columns, dev_metric(full))

    stopped_model = fresh()
    stopped = Trainer(cfg(eval_every_steps=eval_every, time_budget_s=1.0), checkpoint_dir=tmp_path / "run",
                      log_dir=tmp_path / "logs", clock=out_of_time_after(stopped_model, stop_after)).fit(
        stopped_model, columns, dev_metric(stopped_model))
    assert stopped.stopped_by == "time_budget" and stopped.steps == stop_after
    # What the stopped run checkpointed is a state the uninterrupted run passed through.
    state, _ = load_latest_checkpoint(tmp_path / "run")
    complete = [h for h in reference.history if h["step"] <= stop_after]
    assert strip(state["progress"]["history"]) == strip(complete)
    logged = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    partial = [r for r in logged if r.get("partial_epoch")]
    assert strip([r for r in logged if not r.get("partial_epoch")]) == strip(complete)
    assert len(partial) == (0 if stop_after == 6 or (eval_every and stop_after % eval_every == 0) else 1)

    resumed_model = fresh(seed=99)  # everything must come from the checkpoint
    resumed = Trainer(config, checkpoint_dir=tmp_path / "run", log_dir=tmp_path / "logs").fit(
        resumed_model, columns, dev_metric(resumed_model), resume_from=tmp_path / "run")
    assert strip(resumed.history) == strip(reference.history)  # dev metrics and learning rates
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in reference.history]
    assert (resumed.best_step, resumed.best_metrics, resumed.steps) == (reference.best_step, reference.best_metrics, reference.steps)
    for name, tensor in full.state_dict().items():  # the best weights
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    last_full = load_checkpoint(tmp_path / "full" / "step-000000012.pt")
    last_run = load_checkpoint(tmp_path / "run" / "step-000000012.pt")
    for name, tensor in last_full["model"].items():  # the final weights
        assert torch.equal(tensor, last_run["model"][name]), name
    assert last_full["schedule"] == last_run["schedule"]
    for a, b in zip(last_full["optimizers"]["model"]["state"].values(), last_run["optimizers"]["model"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # The file log ends as the uninterrupted run's: the partial record is gone.
    relogged = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert strip(relogged) == strip(reference.history)
    assert reference.history[0]["lr"] != reference.history[-1]["lr"]  # the plateau schedule did act


def scripted(values, model, seen):
    def evaluate():
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"loss": values[len(seen) - 1]}
    return evaluate


@pytest.mark.parametrize("average", ["off", "ema"])  # with an average, "the weights" are the averaged ones
@pytest.mark.parametrize("at_stop,kept", [(0.1, "current"), (0.9, "epoch 1")])
def test_a_mid_epoch_stop_keeps_the_better_of_the_best_evaluation_and_the_current_weights(at_stop, kept, average):
    model, seen = fresh(), []
    result = Trainer(cfg(time_budget_s=1.0, average=average, average_decay=0.5), clock=out_of_time_after(model, 4)).fit(
        model, toy_columns(13), scripted([0.5, at_stop], model, seen))
    assert [h.get("partial_epoch", False) for h in result.history] == [False, True]
    assert result.history[1]["dev_loss"] == at_stop and result.history[1]["step"] == 4
    expected = seen[1] if kept == "current" else seen[0]
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    assert (result.best_metrics, result.best_step) == (({"loss": 0.1}, 4) if kept == "current" else ({"loss": 0.5}, 3))


def test_a_stop_before_any_evaluation_keeps_the_current_weights():
    model = fresh()
    result = Trainer(cfg(time_budget_s=1.0), clock=out_of_time_after(model, 2)).fit(model, toy_columns(13))
    assert result.stopped_by == "time_budget" and result.steps == 2 and result.history == []  # no dev data: no evaluation
    assert result.best_metrics == {}
