"""Learning-rate schedules and loss penalties against their formulas; optimizers by name; config checks."""
import math
import random

import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError
from seqlab.train import LRSchedule, TrainConfig, Trainer, build_optimizer, penalized_parameters, weight_penalty
from tests.train.toys import ToyRegressor, toy_columns


def cfg(**kw):
    return from_dict(TrainConfig, {"progress": "off", "clip_norm": None, **kw})


# -- schedules ---------------------------------------------------------------------------------
def test_exponential_decay_follows_lr0_exp_minus_k_epoch():
    s = LRSchedule(cfg(lr=0.2, schedule="exponential", decay_rate=0.3))
    for epoch in range(6):
        assert s.lr(epoch, step=1000) == pytest.approx(0.2 * math.exp(-0.3 * epoch), rel=1e-12)


def test_step_decay_follows_gamma_to_the_floor_of_epoch_over_step_size():
    s = LRSchedule(cfg(lr=0.1, schedule="step", step_size=3, gamma=0.1))
    assert [s.lr(e, 0) for e in range(8)] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001])


def test_min_lr_floors_the_decay():
    s = LRSchedule(cfg(lr=1.0, schedule="exponential", decay_rate=1.0, min_lr=0.05))
    assert s.lr(0, 0) == 1.0 and s.lr(10, 0) == 0.05


def test_linear_warmup_multiplies_any_schedule():
    s = LRSchedule(cfg(lr=0.4, schedule="step", step_size=1, gamma=0.5, warmup_steps=4))
    assert [s.lr(0, k) for k in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    assert s.lr(2, 1) == pytest.approx(0.4 * 0.25 * 2 / 4)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_plateau_matches_torch_reduce_lr_on_plateau(mode):
    rng = random.Random(5)
    values = [round(rng.uniform(0, 1), 1) for _ in range(40)]  # coarse: many ties (no improvement)
    ours = LRSchedule(cfg(lr=1.0, schedule="plateau", plateau_factor=0.5, plateau_patience=2))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2, threshold=0.0, cooldown=0)
    for v in values:
        ours.observe(v, mode)
        theirs.step(v)
        assert ours.lr(0, 100) == pytest.approx(opt.param_groups[0]["lr"])
    assert ours.plateau_scale < 1.0  # the sequence did trigger reductions


def test_plateau_by_hand():
    s = LRSchedule(cfg(lr=1.0, schedule="plateau", plateau_factor=0.5, plateau_patience=1))
    seen = []
    for v in [1.0, 0.9, 0.9, 0.9, 0.9, 1.1, 1.0, 1.0]:  # accuracy-like: larger is better
        s.observe(v, "max")
        seen.append(s.lr(0, 10))
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


def test_schedule_state_round_trip():
    a = LRSchedule(cfg(lr=1.0, schedule="plateau", plateau_patience=0))
    for v in [3.0, 4.0, 5.0]:
        a.observe(v, "min")
    b = LRSchedule(cfg(lr=1.0, schedule="plateau", plateau_patience=0))
    b.load_state_dict(a.state_dict())
    assert b.lr(0, 5) == a.lr(0, 5) == 0.25 and b.plateau_best == 3.0


def test_trainer_applies_the_schedule_at_every_step():
    """Evaluating after every step logs the rate each step used: warmup × exponential decay."""
    config = cfg(epochs=3, batch_size=8, lr=0.05, optimizer="sgd", schedule="exponential", decay_rate=0.5,
                 warmup_steps=5, eval_every_steps=1)
    result = Trainer(config).fit(ToyRegressor(), toy_columns(24))
    steps = [h for h in result.history]
    assert len(steps) == 9  # 3 batches × 3 epochs, no separate epoch-end evaluation
    for h in steps:
        k, epoch = h["step"] - 1, h["epoch"] - 1
        assert h["lr"] == pytest.approx(0.05 * math.exp(-0.5 * epoch) * min(1.0, (k + 1) / 5), rel=1e-12)


def test_trainer_reduces_on_plateau_of_the_selection_metric():
    scripted = iter([0.5, 0.6, 0.6, 0.6, 0.6, 0.6])
    config = cfg(epochs=6, batch_size=24, lr=0.1, optimizer="sgd", schedule="plateau", plateau_patience=1, plateau_factor=0.1)
    model = ToyRegressor()
    model.selection_metric, model.selection_mode = "accuracy", "max"
    result = Trainer(config).fit(model, toy_columns(24), evaluate=lambda: {"accuracy": next(scripted)})
    lrs = [h["lr"] for h in result.history]  # the rate used *before* each evaluation
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01])


# -- penalties ---------------------------------------------------------------------------------
def test_penalty_formula_on_weights_not_biases():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    emb = torch.nn.Embedding(5, 2)
    model = torch.nn.ModuleDict({"layer": layer, "emb": emb, "norm": torch.nn.LayerNorm(3)})
    params = penalized_parameters(model)
    assert {id(p) for p in params} == {id(layer.weight), id(emb.weight)}
    with torch.no_grad():
        abs_sum = float(layer.weight.abs().sum() + emb.weight.abs().sum())
        sq_sum = float(layer.weight.pow(2).sum() + emb.weight.pow(2).sum())
        assert float(weight_penalty(params, l1=0.01, l2=0.02)) == pytest.approx(0.01 * abs_sum + 0.02 * sq_sum, rel=1e-6)
        assert float(weight_penalty(params, l1=0.0, l2=0.02)) == pytest.approx(0.02 * sq_sum, rel=1e-6)
    assert weight_penalty(params) is None


@pytest.mark.parametrize("l1,l2", [(0.1, 0.0), (0.0, 0.3), (0.1, 0.3)])
def test_one_sgd_step_follows_the_penalised_gradient(l1, l2):
    """w₁ = w₀ − η(∇mse + l1·sign(w₀) + 2·l2·w₀); the bias gets no penalty term."""
    columns = toy_columns(8)
    torch.manual_seed(1)
    model = ToyRegressor()
    w0, b0 = model.linear.weight.detach().clone(), model.linear.bias.detach().clone()
    x, y = torch.tensor(columns["x"]), torch.tensor(columns["y"])
    w = w0.clone().requires_grad_()
    b = b0.clone().requires_grad_()
    torch.nn.functional.mse_loss((x @ w.T + b).squeeze(-1), y).backward()
    lr = 0.1
    Trainer(cfg(epochs=1, batch_size=8, lr=lr, optimizer="sgd", l1=l1, l2=l2)).fit(model, columns)
    expected_w = w0 - lr * (w.grad + l1 * torch.sign(w0) + 2 * l2 * w0)
    assert torch.allclose(model.linear.weight, expected_w, atol=1e-6)
    assert torch.allclose(model.linear.bias, b0 - lr * b.grad, atol=1e-6)


def test_penalty_is_logged_per_epoch():
    result = Trainer(cfg(epochs=2, batch_size=8, lr=0.01, l1=0.01)).fit(ToyRegressor(), toy_columns(16))
    assert all(h["penalty"] > 0 for h in result.history)
    assert "penalty" not in Trainer(cfg(epochs=1, batch_size=8)).fit(ToyRegressor(), toy_columns(16)).history[0]


# -- optimizers and config ----------------------------------------------------------------------
@pytest.mark.parametrize("name,cls", [("sgd", "SGD"), ("momentum", "SGD"), ("adagrad", "Adagrad"),
                                      ("rmsprop", "RMSprop"), ("adam", "Adam"), ("adamw", "AdamW")])
def test_optimizers_by_name_train(name, cls):
    opt = build_optimizer(ToyRegressor().parameters(), cfg(optimizer=name, weight_decay=0.01))
    assert type(opt).__name__ == cls and opt.param_groups[0]["weight_decay"] == 0.01
    if name in ("sgd", "momentum"):
        assert opt.param_groups[0]["momentum"] == (0.9 if name == "momentum" else 0)
    torch.manual_seed(0)
    model = ToyRegressor()
    result = Trainer(cfg(epochs=15, batch_size=8, lr=0.05, optimizer=name)).fit(model, toy_columns(32))
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"], (name, result.history)


def test_config_keys_are_checked():
    assert cfg(amp=False).amp == "off" and cfg(amp=True).amp == "bf16" and cfg(amp="fp16").amp == "fp16"
    with pytest.raises(ConfigError, match="amp"):
        cfg(amp="fp8")
    with pytest.raises(ConfigError, match="gamma"):
        cfg(gamma=1.5)
    with pytest.raises(ConfigError, match="plateau_factor"):
        cfg(plateau_factor=1.0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        cfg(warmup_steps=-1)
    with pytest.raises(ConfigError, match="l1"):
        cfg(l1=-0.1)
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        cfg(keep_checkpoints=0)
    with pytest.raises(ConfigError, match=r"unknown key 'schedul'.*did you mean 'schedule'"):
        cfg(schedul="step")
    with pytest.raises(ConfigError, match="schedule"):
        cfg(schedule="cosine")
