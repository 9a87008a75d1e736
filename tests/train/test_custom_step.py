"""The per-step hook: a model with two optimisers (a GAN) trains on the Trainer — its own step,
the schedule on both optimisers, clipping, logs, checkpoints of both, exact resume."""
import math

import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.core.errors import TrainingError
from seqlab.data.collate import default_train_batches
from seqlab.nn.clipping import clip_gradients
from seqlab.train import TrainConfig, Trainer
from seqlab.train.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from tests.train.toys import ToyGAN, ToyRegressor, toy_columns

TIMING = {"elapsed_s", "tokens_per_s"}


class Crash(Exception):
    pass


class CrashingGAN(ToyGAN):
    def __init__(self, crash_at=None):
        super().__init__()
        self.crash_at, self.calls = crash_at, 0

    def train_step(self, batch, optimizers, step):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash()
        return super().train_step(batch, optimizers, step)


def cfg(**kw):
    base = {"progress": "off", "epochs": 3, "batch_size": 4, "optimizer": "sgd", "lr": 0.1, "schedule": "step",
            "step_size": 1, "gamma": 0.5, "clip_norm": 0.3, "seed": 11}
    return from_dict(TrainConfig, {**base, **kw})


def fresh(cls=ToyGAN, seed=5, **kw):
    torch.manual_seed(seed)
    return cls(**kw)


def by_hand(model, columns, config):
    """The same training written out: both SGD optimisers, the step schedule relative to each
    one's own rate, clipping per optimiser, noise from the torch generator seeded by the run."""
    opt_d = torch.optim.SGD(model.discriminator.parameters(), lr=config.lr)
    opt_g = torch.optim.SGD(model.generator.parameters(), lr=model.config.lr_generator)
    torch.manual_seed(config.seed)
    for epoch in range(1, config.epochs + 1):
        rate = config.lr * config.gamma ** (epoch - 1)
        opt_d.param_groups[0]["lr"] = rate
        opt_g.param_groups[0]["lr"] = rate * (model.config.lr_generator / config.lr)
        for batch in default_train_batches(columns, {"x": 0.0}, "x", config.batch_size, seed=config.seed + epoch,
                                           bucket_factor=config.bucket_factor):
            real = batch["x"]
            z = torch.randn(real.shape)
            opt_d.zero_grad(set_to_none=True)
            model.losses(real, z)[0].backward()
            clip_gradients(list(model.discriminator.parameters()), config.clip_norm)
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            model.losses(real, z)[1].backward()
            clip_gradients(list(model.generator.parameters()), config.clip_norm)
            opt_g.step()


def test_a_gan_with_two_optimisers_trains_with_its_own_step_exactly_as_written_by_hand():
    columns = toy_columns(12, dim=2)  # 3 batches of 4 per epoch
    config = cfg()
    model, reference = fresh(), fresh()
    result = Trainer(config).fit(model, columns)
    by_hand(reference, columns, config)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert result.steps == 9 and result.stopped_by == "epochs"
    history = result.history
    assert [h["lr"] for h in history] == [0.1, 0.05, 0.025]  # the first optimiser's rate, scheduled
    for h in history:  # the other losses logged by name; "loss" is their sum, step by step
        assert h["train_loss"] == pytest.approx(h["train_discriminator"] + h["train_generator"], rel=1e-6)
        assert 0 < h["grad_norm"] and math.isfinite(h["grad_norm"])


def test_the_schedule_scales_each_optimiser_relative_to_its_own_rate(tmp_path):
    model = fresh()
    Trainer(cfg(epochs=2), checkpoint_dir=tmp_path).fit(model, toy_columns(12, dim=2))
    state, _ = load_latest_checkpoint(tmp_path)
    assert set(state["optimizers"]) == {"discriminator", "generator"} and "optimizer" not in state
    rates = {name: s["param_groups"][0]["lr"] for name, s in state["optimizers"].items()}
    assert rates == {"discriminator": pytest.approx(0.05), "generator": pytest.approx(0.1)}  # 0.2 · 0.5


@pytest.mark.parametrize("crash_at", [2, 4, 8])  # mid-epoch, first of an epoch, mid-epoch later
def test_a_custom_step_run_resumes_bit_identically(tmp_path, crash_at):
    columns = toy_columns(12, dim=2)
    config = cfg(optimizer="adam", lr=0.01, checkpoint_every_steps=1)
    full = fresh(CrashingGAN)
    reference = Trainer(config, checkpoint_dir=tmp_path / "full").fit(full, columns)
    crashed = fresh(CrashingGAN, crash_at=crash_at)
    with pytest.raises(Crash):
        Trainer(config, checkpoint_dir=tmp_path / "run").fit(crashed, columns)
    resumed_model = fresh(CrashingGAN, seed=99)
    resumed = Trainer(config, checkpoint_dir=tmp_path / "run").fit(resumed_model, columns, resume_from=tmp_path / "run")
    assert resumed.resumed_from.endswith(f"step-{crash_at - 1:09d}.pt")
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    strip = [{k: v for k, v in h.items() if k not in TIMING} for h in resumed.history]
    assert strip == [{k: v for k, v in h.items() if k not in TIMING} for h in reference.history]
    last_full = load_checkpoint(tmp_path / "full" / "step-000000009.pt")["optimizers"]
    last_run = load_checkpoint(tmp_path / "run" / "step-000000009.pt")["optimizers"]
    for name in ("discriminator", "generator"):
        for a, b in zip(last_full[name]["state"].values(), last_run[name]["state"].values()):
            assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_checkpoint_with_the_older_single_optimizer_key_still_resumes(tmp_path):
    columns = toy_columns(13)
    config = cfg(epochs=2, optimizer="adam", lr=0.05, checkpoint_every_steps=1, keep_checkpoints=100)
    reference = fresh(ToyRegressor)
    Trainer(config).fit(reference, columns)
    Trainer(config, checkpoint_dir=tmp_path).fit(fresh(ToyRegressor), columns)
    state = load_checkpoint(tmp_path / "step-000000002.pt")
    state["optimizer"] = state.pop("optimizers")["model"]  # as seqlab wrote them before named optimisers
    old = tmp_path / "old"
    old.mkdir()
    save_checkpoint(old / "step-000000002.pt", state)
    model = fresh(ToyRegressor, seed=3)
    result = Trainer(config, checkpoint_dir=old).fit(model, columns, resume_from=old)
    assert result.steps == 8
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in reference.state_dict().items())


def test_a_checkpoint_with_other_optimisers_is_refused(tmp_path):
    from seqlab.core.errors import ModelFileError

    class OneOptimiser(ToyGAN):
        def build_optimizers(self, make):
            return {"model": make(self.parameters())}

        def train_step(self, batch, optimizers, step):
            return super().train_step(batch, {"discriminator": optimizers["model"], "generator": optimizers["model"]}, step)

    Trainer(cfg(epochs=1), checkpoint_dir=tmp_path).fit(fresh(OneOptimiser), toy_columns(8, dim=2))
    with pytest.raises(ModelFileError, match=r"optimizer\(s\) \['model'\].*\['discriminator', 'generator'\]"):
        Trainer(cfg(epochs=2)).fit(fresh(), toy_columns(8, dim=2), resume_from=tmp_path)


def test_a_train_step_must_return_the_loss():
    class NoLoss(ToyGAN):
        def train_step(self, batch, optimizers, step):
            return {"generator": 1.0}

    with pytest.raises(TrainingError, match="train_step must return a dict with a 'loss'"):
        Trainer(cfg()).fit(NoLoss(), toy_columns(8, dim=2))


def test_a_custom_step_without_train_step_says_so():
    class Forgot(ToyRegressor):
        custom_train_step = True

    with pytest.raises(NotImplementedError, match="Forgot sets custom_train_step = True but defines no train_step"):
        Trainer(cfg()).fit(Forgot(), toy_columns(8))
