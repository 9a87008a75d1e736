"""Pool a padded sequence of vectors ``(B, T, F)`` into one vector per sequence ``(B, F)``.

Modes:

- ``"last"``: the encoder's ``final`` (forward state at the last valid step, backward
  state at step 0 for a bidirectional encoder) — the classic RNN sentence summary;
- ``"mean"`` / ``"max"``: over the valid steps only, so padding never changes the result;
- ``"attention"``: a learned additive (Bahdanau-style) attention over the steps,
  ``e_t = vᵀ tanh(W h_t + b)``, ``α = softmax(e)`` over the valid steps, ``Σ α_t h_t``
  (Bahdanau, Cho & Bengio, 2015; as self-attentive pooling in Yang et al., 2016,
  "Hierarchical attention networks for document classification").
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.config import suggest
from ..core.errors import ConfigError, InputError
from .masking import lengths_to_mask

__all__ = ["POOLING_MODES", "SequencePooling", "lengths_to_mask"]

POOLING_MODES = ("last", "mean", "max", "attention")


class SequencePooling(nn.Module):
    """``forward(outputs (B,T,F), lengths (B,), final (B,F)) -> (B,F)``; padding is ignored.

    ``lengths=None`` means every sequence has all ``T`` steps. ``final`` is needed only by
    ``mode="last"``. With ``return_weights=True`` the call returns ``(pooled, weights)``,
    ``weights`` ``(B, T)`` being the attention (``"attention"``), the uniform weights over
    the valid steps (``"mean"``), or ``None`` (``"last"``, ``"max"``).

    >>> pool = SequencePooling("max", 2)
    >>> out = torch.tensor([[[1., 5.], [3., 2.], [9., 9.]]])   # the last step is padding
    >>> pool(out, torch.tensor([2]))
    tensor([[3., 5.]])
    >>> SequencePooling("mean", 2)(out, torch.tensor([2]))
    tensor([[2.0000, 3.5000]])
    """

    def __init__(self, mode: str = "last", input_size: int | None = None, attention_size: int | None = None) -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ConfigError(
                f"SequencePooling: unknown mode {mode!r}{suggest(str(mode), list(POOLING_MODES))}; "
                f"valid modes: {', '.join(POOLING_MODES)}"
            )
        self.mode = mode
        self.input_size = input_size
        self.output_size = input_size
        if mode == "attention":
            if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
                raise ConfigError(f"SequencePooling('attention') needs input_size, a positive integer; got {input_size!r}")
            hidden = attention_size or input_size
            self.project = nn.Linear(input_size, hidden)
            self.score = nn.Linear(hidden, 1, bias=False)

    def forward(
        self,
        outputs: Tensor,
        lengths: Tensor | None = None,
        final: Tensor | None = None,
        return_weights: bool = False,
    ):
        if outputs.dim() != 3:
            raise InputError(f"SequencePooling: expected outputs of shape (B, T, F), got {tuple(outputs.shape)}")
        if self.input_size is not None and outputs.shape[-1] != self.input_size:
            raise InputError(
                f"SequencePooling: built for {self.input_size} features, got outputs of shape {tuple(outputs.shape)}"
            )
        batch, steps = outputs.shape[0], outputs.shape[1]
        weights = None
        if self.mode == "last":
            if final is None:
                raise InputError("SequencePooling('last') needs the encoder's final state: pool(outputs, lengths, final)")
            pooled = final
        else:
            if lengths is None:
                mask = torch.ones(batch, steps, dtype=torch.bool, device=outputs.device)
            else:
                mask = lengths_to_mask(lengths.to(outputs.device), steps)
                if batch and not bool(mask.any(dim=1).all()):
                    raise InputError("SequencePooling: a sequence of length 0 has nothing to pool")
            if self.mode == "mean":
                weights = mask.to(outputs.dtype)
                weights = weights / weights.sum(dim=1, keepdim=True)
                pooled = torch.einsum("bt,btf->bf", weights, outputs)
            elif self.mode == "max":
                # The dtype's lowest value rather than -inf: a pad can never win, and
                # nothing turns into NaN under half precision.
                low = torch.finfo(outputs.dtype).min
                pooled = outputs.masked_fill(~mask.unsqueeze(-1), low).max(dim=1).values
            else:
                energy = self.score(torch.tanh(self.project(outputs))).squeeze(-1)  # (B, T)
                energy = energy.masked_fill(~mask, float("-inf"))
                weights = torch.softmax(energy, dim=1)
                pooled = torch.einsum("bt,btf->bf", weights, outputs)
        return (pooled, weights) if return_weights else pooled

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, input_size={self.input_size}"
