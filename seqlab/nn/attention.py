"""Encoder–decoder attention: additive (Bahdanau) and multiplicative (Luong dot / general).

Each decoder state ``q`` (the *query*) scores every encoder output ``h_s`` (the *memory*),
the scores are turned into weights by a softmax over the source positions, and the
*context* is the weighted sum of the memory:

- additive, Bahdanau, Cho & Bengio (2015), "Neural Machine Translation by Jointly Learning
  to Align and Translate", eq. (6) and appendix A.1.2:
  ``score(q, h_s) = vᵀ tanh(W_q q + W_k h_s)``;
- multiplicative, Luong, Pham & Manning (2015), "Effective Approaches to Attention-based
  Neural Machine Translation", eq. (8): ``dot`` ``score = qᵀ h_s`` and ``general``
  ``score = qᵀ W_a h_s``;
- weights ``a = softmax_s(score)`` (Luong eq. 7), context ``c = Σ_s a_s h_s``.

Pads are masked with ``-inf`` before the softmax, so their weights are exactly 0 and a
pad never changes the context, whatever the memory holds there.

The part of the score that depends only on the memory (``W_k h_s``, ``W_a h_s``) is the
same for every decoder step, so ``keys(memory)`` computes it once per sentence and every
step (or, in training, all the steps at once) reuses it. Scores for ``T`` queries are one
batched matrix product ``(B, T, D) @ (B, D, S)``.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from ..core.config import suggest
from ..core.errors import ConfigError, InputError

#: Attention scoring functions by name.
ATTENTION_KINDS = ("bahdanau", "dot", "general")


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last axis with ``mask`` (True = keep) broadcast over the rest.

    Masked entries get exactly 0. A row with no valid entry is an ``InputError`` (it would
    be NaN: there is nothing to attend to).

    >>> masked_softmax(torch.tensor([[1.0, 1.0, 5.0]]), torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if not bool(mask.any(dim=-1).all()):
        raise InputError("attention: a sequence has no valid (unmasked) position; every source needs length >= 1")
    while mask.dim() < scores.dim():
        mask = mask.unsqueeze(-2)
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class Attention(nn.Module):
    """Base class: ``keys(memory)`` once per sentence, then ``forward(query, keys, memory, mask)``.

    ``query`` is ``(B, T, query_size)`` (or ``(B, query_size)`` for one step), ``memory``
    ``(B, S, memory_size)``, ``mask`` ``(B, S)`` bool (True at real tokens). Returns
    ``(context, weights)``: ``(B, T, memory_size)`` and ``(B, T, S)`` (without the ``T``
    axis when the query had none).
    """

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__()
        self.query_size = query_size
        self.memory_size = memory_size

    def keys(self, memory: Tensor) -> Tensor:
        """The query-independent part of the score; reused by every decoder step."""
        raise NotImplementedError

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """``(B, T, query_size)`` × keys → ``(B, T, S)`` unnormalised scores."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        one_step = query.dim() == 2
        if one_step:
            query = query.unsqueeze(1)
        if query.dim() != 3 or query.shape[-1] != self.query_size:
            raise InputError(f"{type(self).__name__}: query must be (B, T, {self.query_size}), got {tuple(query.shape)}")
        if memory.dim() != 3 or memory.shape[-1] != self.memory_size:
            raise InputError(f"{type(self).__name__}: memory must be (B, S, {self.memory_size}), got {tuple(memory.shape)}")
        weights = masked_softmax(self.scores(query, keys), mask)
        context = torch.bmm(weights, memory)
        if one_step:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights


class AdditiveAttention(Attention):
    """Bahdanau attention, ``vᵀ tanh(W_q q + W_k h_s)``.

    >>> att = AdditiveAttention(query_size=4, memory_size=6, attention_size=5)
    >>> memory = torch.randn(2, 3, 6); mask = torch.tensor([[True, True, False], [True, True, True]])
    >>> with torch.no_grad():
    ...     context, weights = att(torch.randn(2, 4), att.keys(memory), memory, mask)
    >>> context.shape, weights.shape, float(weights[0, 2])
    (torch.Size([2, 6]), torch.Size([2, 3]), 0.0)
    """

    def __init__(self, query_size: int, memory_size: int, attention_size: int = 128) -> None:
        super().__init__(query_size, memory_size)
        self.key_proj = nn.Linear(memory_size, attention_size, bias=False)
        self.query_proj = nn.Linear(query_size, attention_size, bias=True)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, A)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        # (B, T, 1, A) + (B, 1, S, A) → tanh → (B, T, S): the T·S·A tanh is the price of
        # the additive form; the projections themselves are computed once.
        q = self.query_proj(query).unsqueeze(2)
        return self.v(torch.tanh(q + keys.unsqueeze(1))).squeeze(-1)


class DotAttention(Attention):
    """Luong dot attention, ``qᵀ h_s``; the query and memory sizes must be equal.

    >>> att = DotAttention(4, 4)
    >>> memory = torch.eye(4).unsqueeze(0)
    >>> context, weights = att(100 * torch.eye(4)[None, :1], att.keys(memory), memory)
    >>> weights.argmax(-1).tolist()
    [[0]]
    """

    def __init__(self, query_size: int, memory_size: int) -> None:
        if query_size != memory_size:
            raise ConfigError(
                f"dot attention needs the decoder state size ({query_size}) to equal the encoder output size "
                f"({memory_size}); use 'general' or 'bahdanau', or make the sizes equal"
            )
        super().__init__(query_size, memory_size)

    def keys(self, memory: Tensor) -> Tensor:
        return memory

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(Attention):
    """Luong general attention, ``qᵀ W_a h_s``; ``W_a h_s`` is the precomputed key.

    >>> att = GeneralAttention(4, 6)
    >>> memory = torch.randn(1, 3, 6)
    >>> weights = att(torch.randn(1, 2, 4), att.keys(memory), memory)[1]
    >>> torch.allclose(weights.sum(-1), torch.ones(1, 2))
    True
    """

    def __init__(self, query_size: int, memory_size: int) -> None:
        super().__init__(query_size, memory_size)
        self.key_proj = nn.Linear(memory_size, query_size, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, query_size)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


def build_attention(
    kind: Literal["bahdanau", "dot", "general"], query_size: int, memory_size: int, attention_size: int = 128
) -> Attention:
    """The attention module named ``kind`` (one of ``ATTENTION_KINDS``).

    >>> type(build_attention("general", 4, 6)).__name__
    'GeneralAttention'
    """
    if kind == "bahdanau":
        return AdditiveAttention(query_size, memory_size, attention_size)
    if kind == "dot":
        return DotAttention(query_size, memory_size)
    if kind == "general":
        return GeneralAttention(query_size, memory_size)
    raise ConfigError(f"unknown attention {kind!r}{suggest(str(kind), list(ATTENTION_KINDS))}; valid: {', '.join(ATTENTION_KINDS)}")
