"""Tiny task models for the Trainer tests: a linear regressor and a stateful TBPTT model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from seqlab.core.task import TaskModel


@dataclass
class ToyConfig:
    dim: int = 3
    dropout: float = 0.0


def toy_columns(n: int = 24, dim: int = 3, seed: int = 0) -> dict[str, list]:
    """``y = x · [1, -2, 0.5, …] + 0.3`` plus a little noise, as columns of lists."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w = torch.tensor([1.0, -2.0, 0.5, 1.5, -1.0][:dim])
    y = x @ w + 0.3 + 0.01 * torch.randn(n, generator=g)
    return {"x": x.tolist(), "y": y.tolist()}


class ToyRegressor(TaskModel):
    """``y ≈ Linear(dropout(x))``; MSE loss. ``nan_calls``: forward calls whose loss is NaN."""

    task = "toy"
    Config = ToyConfig
    selection_metric = "loss"
    selection_mode = "min"

    def __init__(self, config: ToyConfig | None = None, nan_calls: set[int] | None = None) -> None:
        super().__init__(config or ToyConfig())
        self.linear = nn.Linear(self.config.dim, 1)
        self.dropout = nn.Dropout(self.config.dropout)
        self.nan_calls = set(nan_calls or ())
        self.calls = 0

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"x": 0.0, "y": None} if training else {"x": 0.0}

    def length_column(self) -> str:
        return "x"

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        pred = self.linear(self.dropout(batch["x"])).squeeze(-1)
        loss = nn.functional.mse_loss(pred, batch["y"].float())
        if self.calls in self.nan_calls:
            loss = loss * float("nan")
        return loss


class StatefulToy(TaskModel):
    """A stateful model in the language model's manner, for truncated-BPTT checkpoints.

    ``train_batches`` yields windows of a stream in order (with noise drawn from the global
    torch generator, so rebuilding an epoch's batches needs the epoch-start generator
    state); the loss reads ``tbptt_state`` (a running summary), adds to it and stores it
    detached, as a recurrent LM carries its hidden state between windows.
    """

    task = "toy_stateful"
    Config = ToyConfig
    selection_metric = "loss"
    selection_mode = "min"
    stateful = True

    def __init__(self, config: ToyConfig | None = None) -> None:
        super().__init__(config or ToyConfig())
        self.mix = nn.Linear(self.config.dim, self.config.dim)
        self.out = nn.Linear(self.config.dim, 1)
        self.dropout = nn.Dropout(self.config.dropout)
        self.tbptt_state: Any = None
        self.resets = 0

    def reset_tbptt_state(self) -> None:
        self.tbptt_state = None
        self.resets += 1

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"x": 0.0, "y": None}

    def length_column(self) -> str:
        return "x"

    def train_batches(self, columns, config, epoch):
        x = torch.tensor(columns["x"])
        y = torch.tensor(columns["y"])
        noise = 0.05 * torch.randn_like(x)
        rows = 2
        usable = (x.shape[0] // rows) * rows
        xs, ys = (x + noise)[:usable].view(rows, -1, x.shape[1]), y[:usable].view(rows, -1)
        window = 3
        return [
            {"x": xs[:, s : s + window], "y": ys[:, s : s + window]}
            for s in range(0, xs.shape[1], window)
        ]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.tbptt_state[0] if self.tbptt_state is not None else torch.zeros(batch["x"].shape[0], self.config.dim)
        outputs = []
        for t in range(batch["x"].shape[1]):
            h = torch.tanh(self.mix(self.dropout(batch["x"][:, t])) + 0.5 * h)
            outputs.append(self.out(h).squeeze(-1))
        self.tbptt_state = (h.detach(), (h.detach().sum(-1),))
        return nn.functional.mse_loss(torch.stack(outputs, 1), batch["y"])


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class ToyGANConfig:
    dim: int = 2
    #: The generator's own rate (the discriminator's is the train config's ``lr``).
    lr_generator: float = 0.2


class ToyGAN(TaskModel):
    """A GAN in miniature for the per-step hook: two optimisers, alternating updates.

    Each step draws noise from the global torch generator, takes one discriminator step on
    real rows against detached fakes, then one generator step (non-saturating loss).
    """

    task = "toy_gan"
    Config = ToyGANConfig
    custom_train_step = True

    def __init__(self, config: ToyGANConfig | None = None) -> None:
        super().__init__(config or ToyGANConfig())
        self.generator = nn.Linear(self.config.dim, self.config.dim)
        self.discriminator = nn.Linear(self.config.dim, 1)

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"x": 0.0}

    def build_optimizers(self, make):
        return {
            "discriminator": make(self.discriminator.parameters()),
            "generator": torch.optim.SGD(self.generator.parameters(), lr=self.config.lr_generator),
        }

    def losses(self, real: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(discriminator loss on detached fakes, generator loss)."""
        softplus = nn.functional.softplus
        fake = self.generator(z)
        d_loss = softplus(-self.discriminator(real)).mean() + softplus(self.discriminator(fake.detach())).mean()
        return d_loss, softplus(-self.discriminator(fake)).mean()

    def train_step(self, batch, optimizers, step):
        real = batch["x"]
        z = torch.randn(real.shape, device=step.device)
        opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        d_loss, _ = self.losses(real, z)
        d_loss.backward()
        step.clip(self.discriminator.parameters())
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        _, g_loss = self.losses(real, z)
        g_loss.backward()
        step.clip(self.generator.parameters())
        opt_g.step()
        return {"loss": float((d_loss + g_loss).detach()), "discriminator": d_loss.detach(), "generator": g_loss.detach()}
