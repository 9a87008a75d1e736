"""Attention: the three scores against their formulas, masking of pads, one step vs many."""
from __future__ import annotations

import pytest
import torch

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.attention import (
    AdditiveAttention, DotAttention, GeneralAttention, build_attention, masked_softmax,
)

KINDS = ["bahdanau", "dot", "general"]


def _attention(kind, size=6, seed=0):
    torch.manual_seed(seed)
    return build_attention(kind, query_size=size, memory_size=size, attention_size=5).double()


def _inputs(lengths=(3, 5), size=6, queries=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    steps = max(lengths) + 2
    memory = torch.randn(len(lengths), steps, size, generator=g, dtype=torch.float64)
    mask = torch.arange(steps).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    memory[~mask] = 1e3  # garbage at the pads: it must not leak anywhere
    query = torch.randn(len(lengths), queries, size, generator=g, dtype=torch.float64)
    return query, memory, mask


@pytest.mark.parametrize("kind", KINDS)
def test_pads_get_exactly_zero_weight_and_rows_sum_to_one(kind):
    att = _attention(kind)
    query, memory, mask = _inputs()
    context, weights = att(query, att.keys(memory), memory, mask)
    assert weights.shape == (2, 4, 7) and context.shape == (2, 4, 6)
    assert bool(weights[~mask.unsqueeze(1).expand_as(weights)].eq(0).all())
    assert torch.allclose(weights.sum(-1), torch.ones(2, 4, dtype=torch.float64), atol=1e-12)
    assert bool(weights[mask.unsqueeze(1).expand_as(weights)].gt(0).all())


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_the_context(kind):
    att = _attention(kind)
    query, memory, mask = _inputs(lengths=(3, 5))
    context, weights = att(query, att.keys(memory), memory, mask)
    for b, n in enumerate((3, 5)):
        alone_memory = memory[b : b + 1, :n]
        alone_context, alone_weights = att(query[b : b + 1], att.keys(alone_memory), alone_memory)
        assert torch.allclose(context[b], alone_context[0], atol=1e-12, rtol=0)
        assert torch.allclose(weights[b, :, :n], alone_weights[0], atol=1e-12, rtol=0)


def test_scores_follow_the_papers_formulas():
    query, memory, mask = _inputs(lengths=(4, 4), queries=2)
    q, h = query[0, 1], memory[0, :4]
    # Bahdanau: v^T tanh(W_q q + b + W_k h)
    add = _attention("bahdanau")
    expected = torch.stack([
        add.v.weight[0] @ torch.tanh(add.query_proj.weight @ q + add.query_proj.bias + add.key_proj.weight @ h_s)
        for h_s in h
    ])
    _, weights = add(query, add.keys(memory), memory, mask)
    assert torch.allclose(weights[0, 1, :4], torch.softmax(expected, 0), atol=1e-12)
    # Luong general: q^T W_a h
    gen = _attention("general")
    _, weights = gen(query, gen.keys(memory), memory, mask)
    assert torch.allclose(weights[0, 1, :4], torch.softmax(h @ gen.key_proj.weight.T @ q, 0), atol=1e-12)
    # Luong dot: q^T h, and the context is the weighted sum of the memory
    dot = _attention("dot")
    context, weights = dot(query, dot.keys(memory), memory, mask)
    expected_weights = torch.softmax(h @ q, 0)
    assert torch.allclose(weights[0, 1, :4], expected_weights, atol=1e-12)
    assert torch.allclose(context[0, 1], expected_weights @ h, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_one_step_query_equals_the_same_row_of_many(kind):
    att = _attention(kind)
    query, memory, mask = _inputs()
    keys = att.keys(memory)
    context, weights = att(query, keys, memory, mask)
    step_context, step_weights = att(query[:, 2], keys, memory, mask)
    assert torch.allclose(step_context, context[:, 2], atol=1e-12)
    assert torch.allclose(step_weights, weights[:, 2], atol=1e-12)


def test_sizes_and_bad_inputs():
    assert isinstance(build_attention("bahdanau", 4, 6), AdditiveAttention)
    assert isinstance(build_attention("general", 4, 6), GeneralAttention)
    assert isinstance(build_attention("dot", 6, 6), DotAttention)
    with pytest.raises(ConfigError, match="dot attention needs"):
        build_attention("dot", 4, 6)
    with pytest.raises(ConfigError, match="did you mean 'general'"):
        build_attention("genral", 4, 6)
    with pytest.raises(InputError, match="no valid"):
        masked_softmax(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))
    att = build_attention("general", 4, 6)
    with pytest.raises(InputError, match="query must be"):
        att(torch.zeros(1, 2, 5), att.keys(torch.zeros(1, 3, 6)), torch.zeros(1, 3, 6))
