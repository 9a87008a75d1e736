"""The convolutional sentence encoder of Kim (2014), "Convolutional neural networks for
sentence classification" (EMNLP), §2.

For each window size h a filter bank computes c_i = f(w · x_{i:i+h−1} + b) over the
word vectors, max-over-time pooling keeps ĉ = max_i c_i per filter, and the pooled
features of all window sizes are concatenated and passed through dropout. Every branch is
a one-layer ``ConvStack`` (1-D, "valid" convolution, global max pooling) fed the lengths,
so padded steps never win the max; a sentence shorter than a window is padded with zeros
to the window (as Kim pads short sentences), so it still yields a feature.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.config import from_dict
from ..core.errors import ConfigError, InputError
from .blocks import ConvLayerSpec, ConvStack

__all__ = ["TextCNNConfig", "TextCNNEncoder"]


@dataclasses.dataclass
class TextCNNConfig:
    """Settings of a ``TextCNNEncoder`` (Kim's defaults; ``input_size`` is the embedding size)."""

    input_size: int = 300
    num_filters: int = 100
    kernel_sizes: list[int] = dataclasses.field(default_factory=lambda: [3, 4, 5])
    dropout: float = 0.5
    activation: str = "relu"

    def validate(self, where: str = "TextCNNEncoder") -> None:
        for name in ("input_size", "num_filters"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
        if not self.kernel_sizes:
            raise ConfigError(f"{where}: kernel_sizes is empty; give at least one window size, e.g. [3, 4, 5]")
        for k in self.kernel_sizes:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"{where}: kernel_sizes must be positive integers, got {list(self.kernel_sizes)!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ConfigError(f"{where}: dropout must be a number in [0, 1), got {self.dropout!r}")


class TextCNNEncoder(nn.Module):
    """``forward(x (B, T, E), lengths (B,)) -> (B, output_size)``; padding never changes the result.

    ``output_size = num_filters × len(kernel_sizes)``.

    >>> enc = TextCNNEncoder(8, num_filters=4, kernel_sizes=(2, 3), dropout=0.0)
    >>> enc.output_size
    8
    >>> x = torch.randn(2, 6, 8)
    >>> enc(x, torch.tensor([6, 2])).shape
    torch.Size([2, 8])
    >>> torch.allclose(enc(x, torch.tensor([6, 2]))[1], enc(x[1:, :2], torch.tensor([2]))[0])
    True
    """

    def __init__(
        self,
        input_size: int,
        num_filters: int = 100,
        kernel_sizes: Sequence[int] = (3, 4, 5),
        dropout: float = 0.5,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        config = TextCNNConfig(input_size, num_filters, list(kernel_sizes), dropout, activation)
        config.validate()
        self.config = config
        self.branches = nn.ModuleList(
            ConvStack(input_size, [ConvLayerSpec(channels=num_filters, kernel=k, activation=activation, pool="global_max")])
            for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)

    @classmethod
    def from_config(cls, config: TextCNNConfig | dict) -> "TextCNNEncoder":
        if isinstance(config, dict):
            config = from_dict(TextCNNConfig, config, where="TextCNNEncoder")
        return cls(config.input_size, config.num_filters, config.kernel_sizes, config.dropout, config.activation)

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def output_size(self) -> int:
        return self.config.num_filters * len(self.config.kernel_sizes)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise InputError(f"TextCNNEncoder expects x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long, device=x.device)
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != batch or lengths.dtype.is_floating_point:
            raise InputError(f"TextCNNEncoder: lengths must be integers of shape ({batch},), got {tuple(lengths.shape)} {lengths.dtype}")
        if batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps):
            raise InputError(
                f"TextCNNEncoder: lengths must lie in [1, {steps}] (the padded length), got min "
                f"{int(lengths.min())}, max {int(lengths.max())}"
            )
        lengths = lengths.to(x.device)
        # Zero the pads first: a short sentence's window reaches past its end (see above),
        # and must see zeros there whatever the batch's padding holds.
        valid = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        features = x.masked_fill(~valid.unsqueeze(-1), 0.0).transpose(1, 2)  # (B, E, T): channels are the embedding dimensions
        widest = max(self.config.kernel_sizes)
        if steps < widest:
            features = F.pad(features, (0, widest - steps))
        pooled = []
        for k, branch in zip(self.config.kernel_sizes, self.branches):
            # A sentence shorter than the window counts as its zero-padded window.
            out, _ = branch(features, lengths.clamp(min=k))
            pooled.append(out.squeeze(-1))
        return self.dropout(torch.cat(pooled, dim=-1))
