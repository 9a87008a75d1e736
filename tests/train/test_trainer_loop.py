"""The training loop: early stopping, NaN/inf skipping, gradient-norm logging, clipping, logs."""
import json
import logging
import sys
import types

import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, DataError, TrainingError
from seqlab.train import TrainConfig, Trainer
from seqlab.train.plots import plot_history
from tests.train.toys import ToyRegressor, toy_columns, weights


def cfg(**kw):
    return from_dict(TrainConfig, {"progress": "off", **kw})


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    scripted = iter([0.5, 0.7, 0.6, 0.65, 0.7, 0.9, 0.95])
    snapshots = []
    model = ToyRegressor()
    model.selection_metric, model.selection_mode = "accuracy", "max"

    def evaluate():
        snapshots.append(weights(model))
        return {"accuracy": next(scripted)}

    result = Trainer(cfg(epochs=7, batch_size=8, lr=0.01, patience=3)).fit(model, toy_columns(16), evaluate)
    assert result.stopped_by == "early_stopping"
    assert [h["dev_accuracy"] for h in result.history] == [0.5, 0.7, 0.6, 0.65, 0.7]  # 3 without improvement
    assert result.best_metrics == {"accuracy": 0.7} and result.best_step == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, snapshots[1][name])
    assert not torch.equal(snapshots[1]["linear.weight"], snapshots[-1]["linear.weight"])


def test_a_tie_on_the_selection_metric_is_broken_by_the_tiebreak_metric():
    """WER 0 reached at epoch 2 and held: the epoch with the lowest dev loss among them is kept."""
    scripted = iter([(0.2, 3.0), (0.0, 2.0), (0.0, 1.5), (0.0, 1.8), (0.0, 1.9), (0.1, 0.5)])
    snapshots = []
    model = ToyRegressor()
    model.selection_metric, model.selection_mode, model.selection_tiebreak = "wer", "min", "loss"

    def evaluate():
        snapshots.append(weights(model))
        wer, loss = next(scripted)
        return {"wer": wer, "loss": loss}

    result = Trainer(cfg(epochs=6, batch_size=8, lr=0.01, patience=3)).fit(model, toy_columns(16), evaluate)
    assert result.best_metrics == {"wer": 0.0, "loss": 1.5} and result.stopped_by == "early_stopping"
    assert len(result.history) == 6  # epochs 4-6 did not improve: stopped after the sixth
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, snapshots[2][name])
    # without a tie-breaker the first epoch reaching 0 is kept
    scripted = iter([(0.2, 3.0), (0.0, 2.0), (0.0, 1.5), (0.0, 1.8)])
    model = ToyRegressor()
    model.selection_metric, model.selection_mode = "wer", "min"
    result = Trainer(cfg(epochs=4, batch_size=8, lr=0.01)).fit(model, toy_columns(16), evaluate)
    assert result.best_metrics == {"wer": 0.0, "loss": 2.0}


def test_without_dev_the_lowest_training_loss_is_kept():
    result = Trainer(cfg(epochs=4, batch_size=8, lr=0.05)).fit(ToyRegressor(), toy_columns(16))
    losses = [h["train_loss"] for h in result.history]
    assert result.best_metrics["loss"] == min(losses) and result.stopped_by == "epochs"


def test_nan_loss_steps_are_skipped_counted_and_logged(tmp_path, caplog):
    faulty = ToyRegressor(nan_calls={2, 5, 6})
    with caplog.at_level(logging.WARNING, logger="seqlab.train"):
        result = Trainer(cfg(epochs=4, batch_size=8, lr=0.05, optimizer="sgd"), log_dir=tmp_path).fit(faulty, toy_columns(16))
    assert result.skipped_steps == 3 and result.steps == 8 - 3
    assert [h["skipped_steps"] for h in result.history] == [1, 0, 2, 0]
    assert sum("NaN/inf" in r.message and "skipped" in r.message for r in caplog.records) == 3
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in log] == [1, 0, 2, 0]
    assert torch.isfinite(faulty.linear.weight).all()


def test_a_skipped_step_changes_no_weight():
    model = ToyRegressor(nan_calls={1, 2})
    before = weights(model)
    result = Trainer(cfg(epochs=1, batch_size=8, lr=0.05)).fit(model, toy_columns(16))
    assert result.steps == 0 and result.skipped_steps == 2
    assert [(h["train_loss"], h["skipped_steps"]) for h in result.history] == [(None, 2)]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_stops_with_a_clear_error_after_n_nonfinite_steps_in_a_row():
    model = ToyRegressor(nan_calls=set(range(3, 100)))
    with pytest.raises(TrainingError, match=r"NaN/inf for 4 steps in a row \(step 2\).*lower train.lr"):
        Trainer(cfg(epochs=5, batch_size=4, lr=0.01, max_nonfinite_steps=4)).fit(model, toy_columns(16))


def test_nonfinite_gradient_is_skipped_like_a_nonfinite_loss():
    model = ToyRegressor()
    model.linear.weight.register_hook(lambda g: g * float("inf") if model.calls == 2 else g)
    result = Trainer(cfg(epochs=1, batch_size=4, lr=0.01)).fit(model, toy_columns(16))
    assert result.skipped_steps == 1 and result.steps == 3 and torch.isfinite(model.linear.weight).all()


def test_pre_clip_gradient_norm_is_logged_as_the_epoch_mean_and_clipping_applies():
    columns = toy_columns(8)
    torch.manual_seed(0)
    model = ToyRegressor()
    w0, b0 = model.linear.weight.detach().clone(), model.linear.bias.detach().clone()
    x, y = torch.tensor(columns["x"]), torch.tensor(columns["y"])
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    torch.nn.functional.mse_loss((x @ w.T + b).squeeze(-1), y).backward()
    norm = torch.cat([w.grad.flatten(), b.grad]).norm()
    result = Trainer(cfg(epochs=1, batch_size=8, lr=1.0, optimizer="sgd", clip_norm=0.01)).fit(model, columns)
    assert result.history[0]["grad_norm"] == pytest.approx(float(norm), rel=1e-5)
    assert float(norm) > 0.01
    step = torch.cat([(w0 - model.linear.weight.detach()).flatten(), b0 - model.linear.bias.detach()])
    assert float(step.norm()) == pytest.approx(0.01, rel=1e-4)  # lr 1 × gradient clipped to norm 0.01


def test_clip_by_value():
    columns = toy_columns(8)
    torch.manual_seed(0)
    model = ToyRegressor()
    w0 = model.linear.weight.detach().clone()
    Trainer(cfg(epochs=1, batch_size=8, lr=1.0, optimizer="sgd", clip_norm=None, clip_value=1e-3)).fit(model, columns)
    assert torch.allclose((w0 - model.linear.weight).abs(), torch.full_like(w0, 1e-3))


def test_amp_setting_is_ignored_on_cpu():
    torch.manual_seed(0)
    a = ToyRegressor()
    b = ToyRegressor()
    b.load_state_dict(a.state_dict())
    Trainer(cfg(epochs=2, batch_size=8, amp="fp16")).fit(a, toy_columns(16))
    Trainer(cfg(epochs=2, batch_size=8, amp="off")).fit(b, toy_columns(16))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_cpu_amp_runs_the_forward_in_bf16_and_keeps_float32_weights(monkeypatch):
    """``cpu_amp``: the linear layer's output is bfloat16 inside the step; weights, gradients
    and the loss stay float32; evaluation runs outside autocast; the run still learns."""
    seen, evaluated = [], []
    model = ToyRegressor()
    model.linear.register_forward_hook(lambda module, args, out: seen.append(out.dtype))

    def evaluate():
        evaluated.append(model.linear(torch.ones(1, 3)).dtype)
        seen.pop()  # the hook saw this call too
        return {"loss": 1.0}

    columns = toy_columns(32)
    result = Trainer(cfg(epochs=30, batch_size=8, lr=0.05, amp="bf16", cpu_amp=True)).fit(model, columns, evaluate)
    assert set(seen) == {torch.bfloat16}
    assert set(evaluated) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.history[-1]["train_loss"] < 0.05  # it learnt y = x·w + b through bf16 products
    # amp: off keeps float32 even with cpu_amp; cpu_amp: false keeps float32 under amp: bf16
    for settings in ({"amp": "off", "cpu_amp": True}, {"amp": "bf16", "cpu_amp": False}):
        seen.clear()
        Trainer(cfg(epochs=1, batch_size=8, **settings)).fit(model, columns)
        assert set(seen) == {torch.float32}, settings


def test_cpu_amp_warns_where_the_cpu_has_no_bf16(monkeypatch, caplog):
    from seqlab.train import trainer

    monkeypatch.setattr(trainer, "cpu_has_bf16", lambda: False)
    assert trainer.amp_settings("bf16", torch.device("cpu"), cpu=True) == (torch.bfloat16, False)
    with caplog.at_level(logging.WARNING, logger="seqlab"):
        Trainer(cfg(epochs=1, batch_size=8, cpu_amp=True)).fit(ToyRegressor(), toy_columns(16))
    assert "no native bf16" in caplog.text
    assert trainer.amp_settings("off", torch.device("cpu"), cpu=True) == (None, False)
    with pytest.raises(ConfigError, match="cpu_amp: expected true/false"):
        cfg(cpu_amp="yes")


def test_empty_data_is_refused():
    with pytest.raises(DataError, match="empty"):
        Trainer(cfg()).fit(ToyRegressor(), {"x": [], "y": []})


def test_metrics_log_and_plot(tmp_path):
    result = Trainer(cfg(epochs=3, batch_size=8), log_dir=tmp_path).fit(
        ToyRegressor(), toy_columns(16), evaluate=lambda: {"loss": 1.0, "accuracy": 0.5})
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records == result.history and len(records) == 3
    assert {"epoch", "step", "train_loss", "lr", "grad_norm", "skipped_steps", "tokens_per_s", "dev_accuracy"} <= set(records[0])
    png = plot_history(result.history, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    skipped_epoch = {**result.history[0], "train_loss": None, "grad_norm": None}  # every step was NaN
    assert plot_history([skipped_epoch, *result.history], tmp_path / "with_gap.png").is_file()


def test_tensorboard_is_used_when_it_imports(tmp_path, monkeypatch):
    calls = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    Trainer(cfg(epochs=2, batch_size=8, tensorboard=True), log_dir=tmp_path).fit(
        ToyRegressor(), toy_columns(16), evaluate=lambda: {"loss": 0.25})
    assert calls[0] == ("init", str(tmp_path / "tensorboard")) and calls[-1] == ("close",)
    assert ("dev/loss", 0.25, 2) in calls and ("dev/loss", 0.25, 4) in calls
    assert any(c[0] == "train/train_loss" for c in calls)


def test_tensorboard_missing_is_skipped_silently(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    result = Trainer(cfg(epochs=1, batch_size=8, tensorboard=True), log_dir=tmp_path).fit(ToyRegressor(), toy_columns(16))
    assert result.steps == 2 and (tmp_path / "metrics.jsonl").is_file() and not (tmp_path / "tensorboard").exists()


def test_threads_setting_is_applied_and_checked():
    import torch

    from seqlab.core.config import from_dict
    from seqlab.core.errors import ConfigError
    from seqlab.pipeline import Pipeline
    from seqlab.text.labels import LabelEncoder
    from seqlab.text.tokenizers import WordTokenizer
    from seqlab.text.vocab import VocabularyStage
    from seqlab.train import TrainConfig
    from tests.conftest import toy_sentiment

    with pytest.raises(ConfigError, match="threads must be >= 1"):
        from_dict(TrainConfig, {"threads": 0})
    before = torch.get_num_threads()
    try:
        pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment",
                        model_config={"embedding_dim": 4, "hidden_size": 4}, device="cpu")
        pipe.fit(toy_sentiment(8), None, {"epochs": 1, "progress": "off", "threads": 2})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
