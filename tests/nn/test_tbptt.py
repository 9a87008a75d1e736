"""Truncated BPTT: stream layout, windows, state detaching/resetting, gradient cut, carried state."""
from __future__ import annotations

import collections
import math

import pytest
import torch

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.nn.clipping import clip_gradients
from seqlab.nn.recurrent import RecurrentEncoder
from seqlab.nn.tbptt import (
    TruncatedBPTT,
    bptt_windows,
    detach_state,
    reset_state,
    stream_batches,
    truncated_bptt,
)

Pair = collections.namedtuple("Pair", "h c")


# -- state helpers -----------------------------------------------------------------
def test_detach_state_nested():
    w = torch.ones(3, requires_grad=True)
    h = w * 2
    state = {"a": (h, Pair(h, h + 1)), "b": [h, None]}
    out = detach_state(state)
    assert not out["a"][0].requires_grad and torch.equal(out["a"][0], h)
    assert isinstance(out["a"][1], Pair) and torch.equal(out["a"][1].c, h + 1)
    assert out["b"][1] is None and not out["b"][0].requires_grad
    assert detach_state(None) is None
    with pytest.raises(InputError, match="cannot detach a str"):
        detach_state(("h", h))


def test_reset_state_zeros_only_masked_rows():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 3, 4, generator=g)  # (layers, B, H)
    c = torch.randn(2, 3, 4, generator=g)
    h[0, 1, 0] = float("nan")  # a reset row with a NaN must come out as zeros
    mask = torch.tensor([False, True, False])
    new_h, new_c = reset_state((h, c), mask)
    assert bool(new_h[:, 1].eq(0).all()) and bool(new_c[:, 1].eq(0).all())
    assert torch.equal(new_h[:, [0, 2]], h[:, [0, 2]]) and torch.equal(new_c[:, [0, 2]], c[:, [0, 2]])
    assert math.isnan(float(h[0, 1, 0]))  # the input is not modified
    # A cell state (B, H) resets along axis 0.
    flat = reset_state(torch.ones(3, 2), mask)
    assert flat.tolist() == [[1, 1], [0, 0], [1, 1]]
    assert reset_state(None, mask) is None
    with pytest.raises(InputError, match=r"mask must have shape \(3,\)"):
        reset_state(h, torch.tensor([True, False]))


# -- stream and windows --------------------------------------------------------------
def test_stream_batches_is_batchify():
    ids = torch.arange(11)
    stream = stream_batches(ids, 3)
    assert stream.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # 2 leftover tokens dropped
    assert torch.equal(stream_batches(list(range(11)), 3), stream)
    assert stream.dtype == torch.long
    with pytest.raises(DataError, match="2 tokens, fewer than one per row of a batch of 3"):
        stream_batches([1, 2], 3)
    with pytest.raises(ConfigError, match="batch_size"):
        stream_batches(ids, 0)
    with pytest.raises(DataError, match="1-D"):
        stream_batches(ids.view(1, -1), 1)


def test_bptt_windows_cover_the_stream_with_shifted_targets():
    stream = stream_batches(torch.arange(2 * 12), 2)  # (2, 12): 11 input positions
    windows = list(bptt_windows(stream, 4))
    assert [x.shape[1] for x, _ in windows] == [4, 4, 3]
    assert torch.equal(torch.cat([x for x, _ in windows], 1), stream[:, :-1])
    assert torch.equal(torch.cat([y for _, y in windows], 1), stream[:, 1:])
    for x, y in windows:
        assert torch.equal(y, x + 1)  # ids are consecutive, so the next token is id + 1
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        list(bptt_windows(stream, 0))
    with pytest.raises(ConfigError, match="k=12 is longer than the stream, which has 11 input step"):
        list(bptt_windows(stream, 12))
    with pytest.raises(DataError, match="at least 2"):
        list(bptt_windows(torch.zeros(2, 1, dtype=torch.long), 1))


@pytest.mark.parametrize("k1,k2,n", [(3, 3, 12), (2, 5, 12), (1, 3, 6), (4, 6, 11), (5, 5, 6)])
def test_tbptt_windows_fresh_parts_tile_the_stream(k1, k2, n):
    stream = torch.arange(n).view(1, n)
    windows = list(truncated_bptt(stream, k1, k2))
    assert len(windows) == TruncatedBPTT(k1, k2).num_windows(stream) == math.ceil((n - 1) / k1)
    fresh = torch.cat([w.new_targets for w in windows], 1)
    assert torch.equal(fresh, stream[:, 1:])  # every target is trained on exactly once
    for i, w in enumerate(windows):
        assert w.length <= k2 and w.loss_from <= k2 - k1
        assert torch.equal(w.inputs, stream[:, w.start : w.start + w.length])
        assert torch.equal(w.targets, w.inputs + 1)
        if i + 1 < len(windows):
            assert windows[i + 1].start == w.start + w.carry_at  # the carried state is where the next begins
    if k1 == k2:
        assert all(w.loss_from == 0 and w.carry_at == w.length for w in windows)


def test_tbptt_bad_settings():
    with pytest.raises(ConfigError, match="k2=2 must be at least k1=3"):
        TruncatedBPTT(3, 2)
    with pytest.raises(ConfigError, match="k1 must be a positive integer"):
        TruncatedBPTT(0)
    with pytest.raises(ConfigError, match="longer than the stream"):
        list(truncated_bptt(torch.zeros(2, 4, dtype=torch.long), 4))


# -- with a model ----------------------------------------------------------------------
class TinyLM(torch.nn.Module):
    def __init__(self, vocab, cell="lstm"):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, 3)
        self.encoder = RecurrentEncoder(3, 4, num_layers=2, cell=cell, bidirectional=False)

    def forward(self, inputs, state=None):
        outputs, _, state = self.encoder(self.embed(inputs), None, state)
        return outputs, state


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("k1,k2", [(4, 4), (3, 5), (2, 3)])
def test_carried_state_equals_one_untruncated_pass(cell, k1, k2):
    stream = stream_batches(torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(1)), 2)  # (2, 20)
    model = TinyLM(10, cell).double()
    full, full_state = model(stream[:, :-1])
    tbptt = TruncatedBPTT(k1, k2)
    state, pieces = None, []
    for window in tbptt.windows(stream):
        outputs, state = tbptt.forward(model, window, state)
        assert not any(t.requires_grad for t in (state if isinstance(state, tuple) else (state,)))
        pieces.append(outputs[:, window.loss_from :])
        # Every output of the window, context included, equals the untruncated pass there.
        assert (outputs - full[:, window.start : window.start + window.length]).abs().max() <= 1e-6
    assert (torch.cat(pieces, 1) - full).abs().max() <= 1e-6
    for a, b in zip(state if cell == "lstm" else (state,), full_state if cell == "lstm" else (full_state,)):
        assert (a - b).abs().max() <= 1e-6


@pytest.mark.parametrize("k1,k2", [(4, 4), (3, 5)])
def test_gradient_stops_at_the_window_boundary(k1, k2):
    """TruncatedBPTT.forward cuts the graph: the second window's loss reaches no step before it.

    Each stream position holds its own token id, so the embedding rows that receive a gradient
    are the positions the backward pass reached. The cut holds even when the caller hands
    ``forward`` a state that still has its graph (``forward`` detaches on the way in); the
    control, the same two windows run without the class, does reach the first window."""
    batch, steps = 2, 10
    stream = torch.arange(batch * steps).view(batch, steps)
    model = TinyLM(batch * steps).double()
    tbptt = TruncatedBPTT(k1, k2)
    w1, w2 = list(tbptt.windows(stream))[:2]
    assert w2.start > 0  # there are earlier steps the gradient could reach

    def reached_positions():
        return set((model.embed.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist())

    window2 = set(stream[:, w2.start : w2.start + w2.length].flatten().tolist())
    earlier = set(stream[:, : w2.start].flatten().tolist())

    # The class's own carried state (already detached).
    _, state = tbptt.forward(model, w1, None)
    assert not any(t.requires_grad for t in state)
    outputs, _ = tbptt.forward(model, w2, state)
    outputs[:, w2.loss_from :].pow(2).sum().backward()
    assert reached_positions() == window2

    # A state that still carries the first window's graph: forward must cut it itself.
    model.zero_grad(set_to_none=True)
    _, live_state = model(stream[:, : w1.carry_at])
    assert all(t.requires_grad for t in live_state)
    outputs, _ = tbptt.forward(model, w2, live_state)
    outputs[:, w2.loss_from :].pow(2).sum().backward()
    assert reached_positions() == window2

    # Control: without the cut the same loss does flow back into the earlier steps.
    model.zero_grad(set_to_none=True)
    _, live_state = model(stream[:, : w1.carry_at])
    outputs, _ = model(w2.inputs, live_state)
    outputs[:, w2.loss_from :].pow(2).sum().backward()
    assert reached_positions() == window2 | set(stream[:, : w1.carry_at].flatten().tolist())
    assert earlier & reached_positions()


@pytest.mark.parametrize("k1,k2", [(3, 3), (2, 4)])
def test_gradient_reaches_exactly_the_window(k1, k2):
    # Each stream position holds its own token id, so the embedding row that receives a
    # gradient tells which positions the backward pass reached.
    batch, steps = 2, 11
    stream = torch.arange(batch * steps).view(batch, steps)
    model = TinyLM(batch * steps).double()
    tbptt = TruncatedBPTT(k1, k2)
    state = None
    for window in tbptt.windows(stream):
        model.zero_grad(set_to_none=True)
        outputs, state = tbptt.forward(model, window, state)
        outputs[:, window.loss_from :].pow(2).sum().backward()
        reached = model.embed.weight.grad.abs().sum(1) > 0
        expected = torch.zeros(batch * steps, dtype=torch.bool)
        for row in range(batch):
            expected[stream[row, window.start : window.start + window.length]] = True
        assert torch.equal(reached, expected), (window.start, window.length)


# -- clipping ----------------------------------------------------------------------------
def _params_with_grads(scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(2))]
    params[0].grad = torch.randn(3, 2, generator=g) * scale
    params[1].grad = torch.randn(4, generator=g) * scale
    return params  # the last has no gradient


@pytest.mark.parametrize("scale", [0.01, 10.0])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_norm_matches_torch(scale, norm_type):
    ours, theirs = _params_with_grads(scale), _params_with_grads(scale)
    total = clip_gradients(ours, max_norm=1.0, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert total == pytest.approx(float(expected), rel=1e-6)
    for a, b in zip(ours, theirs):
        assert (a.grad is None and b.grad is None) or torch.allclose(a.grad, b.grad, atol=1e-7)
    if scale == 10.0 and norm_type == 2.0:
        assert total > 1.0 and torch.nn.utils.get_total_norm([p.grad for p in ours[:2]]) == pytest.approx(1.0, rel=1e-5)


def test_clip_value_and_both():
    ours, theirs = _params_with_grads(5.0), _params_with_grads(5.0)
    pre = float(torch.nn.utils.get_total_norm([p.grad for p in ours[:2]]))
    assert clip_gradients(ours, max_value=0.5) == pytest.approx(pre)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours[:2], theirs[:2]))
    # Both: values first, then the norm of what is left.
    ours, theirs = _params_with_grads(5.0), _params_with_grads(5.0)
    assert clip_gradients(ours, max_norm=0.3, max_value=0.5) == pytest.approx(pre)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    torch.nn.utils.clip_grad_norm_(theirs, 0.3)
    assert all(torch.allclose(a.grad, b.grad, atol=1e-7) for a, b in zip(ours[:2], theirs[:2]))


def test_clip_edge_cases():
    assert clip_gradients([torch.nn.Parameter(torch.zeros(2))], max_norm=1.0) == 0.0
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([float("inf"), 1.0])
    assert math.isinf(clip_gradients([p]))  # reported, not raised; no limit given: unchanged
    assert p.grad[1] == 1.0
    with pytest.raises(ConfigError, match="max_norm must be a positive"):
        clip_gradients([p], max_norm=0)
    with pytest.raises(ConfigError, match="max_value"):
        clip_gradients([p], max_value=-1.0)
