"""SequencePooling and lengths_to_mask: every mode ignores padding."""
from __future__ import annotations

import pytest
import torch

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.masking import lengths_to_mask
from seqlab.nn.pooling import SequencePooling
from seqlab.nn.recurrent import RecurrentEncoder

LENGTHS = [3, 1, 4]


def _outputs(features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(3, 5, features, generator=g, dtype=torch.float64)
    return out, torch.tensor(LENGTHS)


def _with_garbage_pads(out, value):
    out = out.clone()
    for b, n in enumerate(LENGTHS):
        out[b, n:] = value
    return out


def test_lengths_to_mask():
    mask = lengths_to_mask(torch.tensor([2, 0, 3]), 4)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, False, False], [False] * 4, [True, True, True, False]]
    assert lengths_to_mask(torch.tensor([1, 2])).shape == (2, 2)
    with pytest.raises(InputError, match=r"\[0, 2\]"):
        lengths_to_mask(torch.tensor([3]), 2)


def test_mean_and_max_over_valid_steps_only():
    out, lengths = _outputs()
    for value in (1e6, -1e6):
        padded = _with_garbage_pads(out, value)
        mean = SequencePooling("mean", 3)(padded, lengths)
        top = SequencePooling("max", 3)(padded, lengths)
        for b, n in enumerate(LENGTHS):
            assert torch.allclose(mean[b], out[b, :n].mean(0), atol=1e-12, rtol=0)
            assert torch.equal(top[b], out[b, :n].max(0).values)
    # No lengths: the whole T steps.
    assert torch.allclose(SequencePooling("mean")(out), out.mean(1), atol=1e-12)
    assert torch.equal(SequencePooling("max")(out), out.max(1).values)


def test_max_pools_negative_values_correctly():
    # All-negative valid steps with zero pads (what an encoder emits): the zeros must not win.
    out = -torch.arange(1, 7, dtype=torch.float64).reshape(1, 3, 2) - 1
    out[0, 2] = 0.0
    top = SequencePooling("max")(out, torch.tensor([2]))
    assert top.tolist() == [[-2.0, -3.0]]


def test_last_returns_the_encoder_final():
    torch.manual_seed(0)
    enc = RecurrentEncoder(2, 3, cell="lstm", bidirectional=True).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    outputs, final, _ = enc(x, torch.tensor(LENGTHS))
    pool = SequencePooling("last", enc.output_size)
    assert torch.equal(pool(outputs, torch.tensor(LENGTHS), final), final)
    with pytest.raises(InputError, match="final"):
        pool(outputs, torch.tensor(LENGTHS))


def test_attention_is_masked_and_matches_the_formula():
    torch.manual_seed(0)
    pool = SequencePooling("attention", 3, attention_size=4).double()
    out, lengths = _outputs()
    pooled, weights = pool(_with_garbage_pads(out, 1e3), lengths, return_weights=True)
    assert weights.shape == (3, 5)
    for b, n in enumerate(LENGTHS):
        valid = out[b, :n]
        energy = torch.tanh(valid @ pool.project.weight.T + pool.project.bias) @ pool.score.weight.T
        alpha = torch.softmax(energy.squeeze(-1), 0)
        assert torch.allclose(weights[b, :n], alpha, atol=1e-12, rtol=0)
        assert bool(weights[b, n:].eq(0).all())
        assert torch.allclose(pooled[b], alpha @ valid, atol=1e-10, rtol=0)
    # It is learnable: the loss reaches the attention parameters.
    pooled.sum().backward()
    assert pool.project.weight.grad is not None and pool.project.weight.grad.abs().sum() > 0


def test_return_weights_for_mean():
    out, lengths = _outputs()
    pooled, weights = SequencePooling("mean")(out, lengths, return_weights=True)
    assert torch.allclose(weights.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(weights[1], torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64))
    assert SequencePooling("max")(out, lengths, return_weights=True)[1] is None


def test_errors():
    with pytest.raises(ConfigError, match="unknown mode 'maxx'.*valid modes: last, mean, max, attention"):
        SequencePooling("maxx", 3)
    with pytest.raises(ConfigError, match="input_size"):
        SequencePooling("attention")
    with pytest.raises(InputError, match="built for 3 features"):
        SequencePooling("mean", 3)(torch.zeros(1, 2, 4))
    with pytest.raises(InputError, match="length 0"):
        SequencePooling("mean")(torch.zeros(2, 2, 4), torch.tensor([2, 0]))
