"""Checkpoints: safe format, exact in-process resume (also with carried TBPTT state),
corrupt/truncated fallback, disk-full, retention."""
import errno
import logging
import os
import random

import numpy as np
import pytest
import torch

import seqlab.core.serialization as serialization
from seqlab.core.config import from_dict
from seqlab.core.errors import ModelFileError
from seqlab.train import TrainConfig, Trainer
from seqlab.train.checkpoint import (
    CheckpointManager, capture_rng_state, checkpoint_step, load_checkpoint, load_latest_checkpoint, restore_rng_state,
)
from tests.train.toys import StatefulToy, ToyConfig, ToyRegressor, toy_columns

TIMING = {"elapsed_s", "tokens_per_s"}


class Crash(Exception):
    """Stands in for the process dying in the middle of a step."""


class CrashingRegressor(ToyRegressor):
    def __init__(self, crash_at=None, **kw):
        super().__init__(ToyConfig(dropout=0.2), **kw)
        self.crash_at = crash_at

    def loss(self, batch):
        if self.calls + 1 == self.crash_at:
            raise Crash()
        return super().loss(batch)


class CrashingStateful(StatefulToy):
    def __init__(self, crash_at=None):
        super().__init__(ToyConfig(dropout=0.1))
        self.crash_at, self.calls = crash_at, 0

    def loss(self, batch):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash()
        return super().loss(batch)


def cfg(**kw):
    base = {"progress": "off", "epochs": 3, "batch_size": 5, "lr": 0.05, "optimizer": "adam", "schedule": "step",
            "gamma": 0.7, "warmup_steps": 3, "l2": 0.001, "checkpoint_every_steps": 1, "keep_checkpoints": 100}
    return from_dict(TrainConfig, {**base, **kw})


def strip_timing(history):
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def fresh(cls, seed=7, **kw):
    torch.manual_seed(seed)
    return cls(**kw)


def dev_metric(model):
    """A deterministic "dev" evaluation that depends on the weights (selects the best)."""
    def evaluate():
        with torch.no_grad():
            w = model.state_dict()
            return {"loss": float(sum(v.float().abs().sum() for v in w.values()) % 1.0)}
    return evaluate


def test_checkpoint_is_plain_data_readable_with_weights_only(tmp_path):
    model = fresh(CrashingRegressor)
    Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(model, toy_columns(12))
    path = sorted(tmp_path.glob("step-*.pt"))[-1]
    raw = torch.load(path, weights_only=True)  # would refuse any arbitrary object
    assert raw["format"] == "seqlab.checkpoint" and len(raw["sha256"]) == 64
    state = raw["state"]
    assert {"model", "optimizers", "schedule", "rng", "epoch_rng", "progress", "best_model", "config"} <= set(state)
    assert set(state["rng"][0]) == {"python", "numpy", "torch", "cuda"}
    assert state["progress"]["epoch"] == 2 and state["progress"]["batch_index"] == 0 and state["progress"]["step"] == 3
    best = state["model"] if state["best_is_current"] else state["best_model"]
    assert torch.equal(best["linear.weight"], model.linear.weight.detach())  # the model ends with the best weights


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = capture_rng_state()
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    restore_rng_state(saved)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first


def crash_and_resume(tmp_path, config, crash_at):
    """An uninterrupted run (``full/``) and one that crashes at forward call ``crash_at`` and is
    resumed (``run/``) from a model with other initial weights: (full model, its result,
    resumed model, its result)."""
    columns = toy_columns(13)  # batches of 5, 5, 3
    full = fresh(CrashingRegressor)
    reference = Trainer(config, checkpoint_dir=tmp_path / "full").fit(full, columns, dev_metric(full))
    crashed = fresh(CrashingRegressor, crash_at=crash_at)
    with pytest.raises(Crash):
        Trainer(config, checkpoint_dir=tmp_path / "run").fit(crashed, columns, dev_metric(crashed))
    resumed_model = fresh(CrashingRegressor, seed=99)  # different init: everything must come from the checkpoint
    resumed = Trainer(config, checkpoint_dir=tmp_path / "run").fit(resumed_model, columns, dev_metric(resumed_model),
                                                                    resume_from=tmp_path / "run")
    return full, reference, resumed_model, resumed


@pytest.mark.parametrize("crash_at", [2, 4, 7, 9])  # mid-epoch, at epoch starts and ends (3 batches/epoch)
def test_resume_after_a_crash_is_bit_identical(tmp_path, crash_at):
    full, reference, resumed_model, resumed = crash_and_resume(tmp_path, cfg(), crash_at)
    assert resumed.resumed_from.endswith(f"step-{crash_at - 1:09d}.pt")
    for name, tensor in full.state_dict().items():  # the best weights, restored at the end
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert strip_timing(resumed.history) == strip_timing(reference.history)
    assert (resumed.best_step, resumed.best_metrics, resumed.steps) == (reference.best_step, reference.best_metrics, reference.steps)
    last_full = load_checkpoint(tmp_path / "full" / f"step-{reference.steps:09d}.pt")
    last_run = load_checkpoint(tmp_path / "run" / f"step-{reference.steps:09d}.pt")
    for name, tensor in last_full["model"].items():  # the final (not only the best) weights
        assert torch.equal(tensor, last_run["model"][name])
    for a, b in zip(last_full["optimizers"]["model"]["state"].values(), last_run["optimizers"]["model"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("crash_at", [3, 8])
def test_resume_restores_carried_tbptt_state_exactly(tmp_path, crash_at):
    columns = toy_columns(24)  # 2 rows × 12 steps → 4 windows of 3 per epoch
    config = cfg(epochs=3, warmup_steps=0)
    full = fresh(CrashingStateful)
    reference = Trainer(config, checkpoint_dir=tmp_path / "full").fit(full, columns)
    assert full.resets == 3  # reset at every epoch start
    crashed = fresh(CrashingStateful, crash_at=crash_at)
    with pytest.raises(Crash):
        Trainer(config, checkpoint_dir=tmp_path / "run").fit(crashed, columns)
    saved = load_checkpoint(tmp_path / "run" / f"step-{crash_at - 1:09d}.pt")
    h, (summary,) = saved["tbptt_state"][0]
    assert torch.equal(h, crashed.tbptt_state[0]) and torch.equal(summary, crashed.tbptt_state[1][0])
    resumed_model = fresh(CrashingStateful, seed=5)
    resumed = Trainer(config, checkpoint_dir=tmp_path / "run").fit(resumed_model, columns, resume_from=tmp_path / "run")
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    assert strip_timing(resumed.history) == strip_timing(reference.history)


def _flip_tensor_byte(path, tensor):
    data = bytearray(path.read_bytes())
    at = bytes(data).find(tensor.numpy().tobytes())
    assert at > 0
    data[at + 1] ^= 0x40
    path.write_bytes(bytes(data))


def test_truncated_or_corrupt_checkpoints_fall_back_to_the_previous_one(tmp_path, caplog):
    model = fresh(CrashingRegressor)
    Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(model, toy_columns(13))
    files = sorted(tmp_path.glob("step-*.pt"))
    assert [checkpoint_step(p) for p in files] == [1, 2, 3, 4, 5, 6]
    files[-1].write_bytes(files[-1].read_bytes()[: files[-1].stat().st_size // 2])  # truncated
    _flip_tensor_byte(files[-2], load_checkpoint(files[-2])["model"]["linear.weight"])  # one bit inside tensor data
    files[-3].write_bytes(b"\x00" * 100)  # garbage
    with caplog.at_level(logging.WARNING, logger="seqlab.train"):
        state, path = load_latest_checkpoint(tmp_path)
    assert path == files[-4] and state["progress"]["step"] == 3
    messages = [r.message for r in caplog.records]
    assert any("step-000000006.pt" in m and "truncated or corrupt" in m for m in messages)
    assert any("step-000000005.pt" in m and "SHA-256" in m for m in messages)
    assert all("falling back" in m for m in messages) and len(messages) == 3
    # Training continues from there and reaches the end.
    resumed = Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(13), resume_from=tmp_path)
    assert resumed.resumed_from == str(files[-4]) and resumed.steps == 6


def test_no_usable_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="no checkpoints to resume from"):
        load_latest_checkpoint(tmp_path)
    (tmp_path / "step-000000001.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelFileError, match="no usable checkpoint.*truncated or corrupt"):
        Trainer(cfg()).fit(ToyRegressor(), toy_columns(8), resume_from=tmp_path)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickled_object_is_refused_not_run(tmp_path, capsys):
    Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(8))
    torch.save({"format": "seqlab.checkpoint", "version": 1, "sha256": "", "state": Evil()}, tmp_path / "step-000000099.pt")
    state, path = load_latest_checkpoint(tmp_path)
    assert checkpoint_step(path) == 2
    assert "this must never run" not in capsys.readouterr().out


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, caplog):
    real_fdopen = os.fdopen
    failing = {"on": False}

    class FullDisk:
        """A file whose write stops half-way with ENOSPC, as on a full disk."""

        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        return FullDisk(handle) if failing["on"] else handle

    monkeypatch.setattr(serialization.os, "fdopen", fdopen)

    class FillsTheDisk(CrashingRegressor):
        def loss(self, batch):
            failing["on"] = self.calls >= 2  # checkpoints after step 2 fail
            return super().loss(batch)

    with caplog.at_level(logging.WARNING, logger="seqlab.train"):
        result = Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(fresh(FillsTheDisk), toy_columns(13))
    monkeypatch.undo()
    assert result.steps == 6  # training went on
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000001.pt", "step-000000002.pt"]  # no partial files
    assert sum("No space left on device" in r.message and "previous one is kept" in r.message for r in caplog.records) == 6  # steps 3, 3 (epoch end), 4, 5, 6, 6
    state, path = load_latest_checkpoint(tmp_path)
    assert state["progress"]["step"] == 2


def test_retention_keeps_the_newest_and_the_best(tmp_path):
    scripted = iter([0.9, 0.1, 0.5, 0.6, 0.7])  # the best (lowest) is the 2nd evaluation, step 4 (2 batches/epoch)
    model = fresh(CrashingRegressor)
    Trainer(cfg(epochs=5, batch_size=4, keep_checkpoints=2), checkpoint_dir=tmp_path).fit(
        model, toy_columns(8), evaluate=lambda: {"loss": next(scripted)})
    assert [checkpoint_step(p) for p in CheckpointManager(tmp_path).files()] == [4, 9, 10]
    assert load_checkpoint(tmp_path / "step-000000004.pt")["best_is_current"]


def test_partial_writes_and_rewound_checkpoints_are_cleaned(tmp_path):
    manager = CheckpointManager(tmp_path, keep=5)
    for step in (1, 2, 3):
        manager.save({"step": step}, step)
    (tmp_path / ".step-000000004.pt.tmp-abc").write_bytes(b"half")
    manager.remove_partial_writes()
    manager.save({"step": 2}, 2)  # a run resumed from step 2 (step 3 had been refused)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["step-000000001.pt", "step-000000002.pt"]


def test_resuming_a_finished_run_returns_its_best_model(tmp_path):
    model = fresh(CrashingRegressor)
    first = Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(model, toy_columns(13), dev_metric(model))
    again_model = fresh(CrashingRegressor, seed=3)
    again = Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(again_model, toy_columns(13), resume_from=tmp_path)
    assert again.steps == first.steps and again.best_metrics == first.best_metrics
    assert all(torch.equal(v, again_model.state_dict()[k]) for k, v in model.state_dict().items())
    # …and more epochs continue it.
    longer = Trainer(cfg(epochs=3), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(13), resume_from=tmp_path)
    assert longer.steps == 9 and len(longer.history) == 3


def test_changed_settings_on_resume_are_warned_about(tmp_path, caplog):
    Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(8))
    with caplog.at_level(logging.WARNING, logger="seqlab.train"):
        Trainer(cfg(epochs=2, lr=0.5), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(8), resume_from=tmp_path)
    assert any("changed train settings lr: 0.05 → 0.5" in r.message for r in caplog.records)


def test_a_new_run_replaces_the_old_runs_checkpoints(tmp_path, caplog):
    Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(13))
    with caplog.at_level(logging.WARNING, logger="seqlab.train"):
        Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(13))
    assert [checkpoint_step(p) for p in CheckpointManager(tmp_path).files()] == [1, 2, 3]
    assert any("removing 6 checkpoint(s) of the previous run" in r.message for r in caplog.records)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(fresh(CrashingRegressor), toy_columns(8))
    with pytest.raises(ModelFileError, match="does not fit this model"):
        Trainer(cfg(epochs=2)).fit(StatefulToy(), toy_columns(8), resume_from=tmp_path)


def test_a_run_stopped_by_its_time_budget_resumes_mid_epoch(tmp_path):
    columns = toy_columns(13)
    stopped = Trainer(cfg(checkpoint_every_steps=None, time_budget_s=1e-9), checkpoint_dir=tmp_path).fit(
        fresh(CrashingRegressor), columns)
    assert stopped.stopped_by == "time_budget" and stopped.steps == 1
    assert stopped.history == []  # a partial epoch is not evaluated as if it were complete
    state, _ = load_latest_checkpoint(tmp_path)
    assert (state["progress"]["epoch"], state["progress"]["batch_index"], state["progress"]["finished"]) == (1, 1, False)
    resumed_model = fresh(CrashingRegressor, seed=4)
    resumed = Trainer(cfg(checkpoint_every_steps=None), checkpoint_dir=tmp_path).fit(resumed_model, columns, resume_from=tmp_path)
    assert resumed.stopped_by == "epochs" and resumed.steps == 9
    # The final (last-step) weights are those of a run that was not stopped (tests/train/test_time_budget.py: all of it).
    last = load_checkpoint(tmp_path / "step-000000009.pt")["model"]
    Trainer(cfg(checkpoint_every_steps=None), checkpoint_dir=tmp_path / "ref").fit(fresh(CrashingRegressor), columns)
    reference = load_checkpoint(tmp_path / "ref" / "step-000000009.pt")["model"]
    assert all(torch.equal(last[k], reference[k]) for k in reference)
