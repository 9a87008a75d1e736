"""The textbook cells equal torch's fused RNN/LSTM/GRU: outputs and gradients, in float64."""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.core.errors import ConfigError
from seqlab.nn.cells import ElmanCell, GRUCell, LSTMCell, RecurrentLayer, UnrolledRNN, make_cell

TOL = 1e-6
FUSED = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def _max_diff(a, b):
    return float((a - b).detach().abs().max())


def _fused(kind, layers=1, bidirectional=False, bias=True, seed=0, **kw):
    torch.manual_seed(seed)
    return FUSED[kind](3, 4, num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=True, **kw).double()


def _state(kind, rows, batch=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, batch, 4, generator=g, dtype=torch.float64)
    return (h, torch.randn(rows, batch, 4, generator=g, dtype=torch.float64)) if kind == "lstm" else h


def _grads(module):
    return {name: p.grad.clone() for name, p in module.named_parameters()}


def _loss(outputs, state, weights):
    # A loss that reaches every output and the final state with distinct weights.
    parts = state if isinstance(state, tuple) else (state,)
    return (outputs * weights).sum() + sum((p**2).sum() for p in parts)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_single_cell_equals_torch_cell(kind):
    torch.manual_seed(0)
    reference = TORCH_CELLS[kind](3, 4).double()
    cell = make_cell(kind, 3, 4).double()
    cell.load_gate_weights(reference.weight_ih, reference.weight_hh, reference.bias_ih, reference.bias_hh)
    x = torch.randn(5, 3, dtype=torch.float64)
    h = torch.randn(5, 4, dtype=torch.float64)
    if kind == "lstm":
        c = torch.randn(5, 4, dtype=torch.float64)
        ours, theirs = cell(x, (h, c)), reference(x, (h, c))
        assert _max_diff(ours[0], theirs[0]) <= TOL and _max_diff(ours[1], theirs[1]) <= TOL
    else:
        assert _max_diff(cell(x, h), reference(x, h)) <= TOL


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_unrolled_equals_fused_outputs_and_gradients(kind, layers, bidirectional):
    fused = _fused(kind, layers, bidirectional)
    cells = UnrolledRNN.from_fused(fused)
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(3, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    rows = layers * (2 if bidirectional else 1)
    s1 = _state(kind, rows)
    s1 = tuple(t.requires_grad_(True) for t in s1) if kind == "lstm" else s1.requires_grad_(True)
    s2 = tuple(t.detach().clone().requires_grad_(True) for t in s1) if kind == "lstm" else s1.detach().clone().requires_grad_(True)
    out1, st1 = fused(x1, s1)
    out2, st2 = cells(x2, s2)
    assert out1.shape == out2.shape == (3, 6, 4 * (2 if bidirectional else 1))
    assert _max_diff(out1, out2) <= TOL
    for a, b in zip(st1 if kind == "lstm" else (st1,), st2 if kind == "lstm" else (st2,)):
        assert _max_diff(a, b) <= TOL
    weights = torch.randn(out1.shape, generator=g, dtype=torch.float64)
    _loss(out1, st1, weights).backward()
    _loss(out2, st2, weights).backward()
    assert x1.grad.abs().sum() > 0
    assert _max_diff(x1.grad, x2.grad) <= TOL
    for a, b in zip(s1 if kind == "lstm" else (s1,), s2 if kind == "lstm" else (s2,)):
        assert _max_diff(a.grad, b.grad) <= TOL
    # Gradients w.r.t. every weight: map each fused parameter to its cell.
    fused_grads = _grads(fused)
    directions = 2 if bidirectional else 1
    for index, layer in enumerate(cells.layers):
        suffix = f"_l{index // directions}" + ("_reverse" if index % directions else "")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            theirs = fused_grads[name + suffix]
            assert theirs.abs().sum() > 0
            assert _max_diff(getattr(layer.cell, name).grad, theirs) <= TOL, (name, suffix)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_unrolled_with_lengths_equals_fused_on_packed(kind):
    fused = _fused(kind, 2, True)
    cells = UnrolledRNN.from_fused(fused)
    x = torch.randn(3, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out_packed, state_packed = fused(packed)
    out_fused, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=5)
    out_cells, state_cells = cells(x, lengths=lengths)
    assert _max_diff(out_fused, out_cells) <= TOL
    h_fused = state_packed[0] if kind == "lstm" else state_packed
    h_cells = state_cells[0] if kind == "lstm" else state_cells
    assert _max_diff(h_fused, h_cells) <= TOL
    assert bool(out_cells[1, 2:].eq(0).all())


def test_relu_rnn_and_no_bias():
    fused = _fused("rnn", nonlinearity="relu")
    cells = UnrolledRNN.from_fused(fused)
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    assert cells.layers[0].cell.nonlinearity == "relu"
    assert _max_diff(cells(x)[0], fused(x)[0]) <= TOL
    fused = _fused("lstm", bias=False)
    cells = UnrolledRNN.from_fused(fused)
    assert cells.layers[0].cell.bias_ih is None
    assert _max_diff(cells(x)[0], fused(x)[0]) <= TOL


def test_gru_textbook_convention():
    torch.manual_seed(0)
    fused = _fused("gru", 1, False)
    textbook = UnrolledRNN.from_fused(fused, convention="textbook")
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    # Loading negates the update gate, so the textbook cell computes the same function.
    assert _max_diff(textbook(x)[0], fused(x)[0]) <= TOL
    # And its equation really is h = z⊙n + (1-z)⊙h_prev with its own z.
    cell = GRUCell(3, 4, convention="textbook").double()
    xt, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    gi = xt @ cell.weight_ih.T + cell.bias_ih
    gh = h @ cell.weight_hh.T + cell.bias_hh
    r = torch.sigmoid(gi[:, :4] + gh[:, :4])
    z = torch.sigmoid(gi[:, 4:8] + gh[:, 4:8])
    n = torch.tanh(gi[:, 8:] + r * gh[:, 8:])
    assert _max_diff(cell(xt, h), z * n + (1 - z) * h) <= 1e-12
    # The same weights under the torch convention give a different result.
    twin = GRUCell(3, 4).double()
    twin.load_state_dict(cell.state_dict())
    assert _max_diff(twin(xt, h), cell(xt, h)) > 1e-3


def test_recurrent_layer_reverse_and_errors():
    cell = ElmanCell(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    forward, _ = RecurrentLayer(cell)(x)
    backward, _ = RecurrentLayer(cell, reverse=True)(x)
    flipped, _ = RecurrentLayer(cell)(x.flip(1))
    assert _max_diff(backward, flipped.flip(1)) <= 1e-12
    assert _max_diff(forward, backward) > 1e-3
    with pytest.raises(ConfigError, match="unknown cell 'lstmm'"):
        make_cell("lstmm", 3, 4)
    with pytest.raises(ConfigError, match="convention"):
        GRUCell(3, 4, convention="keras")
    with pytest.raises(ConfigError, match="hidden_size"):
        LSTMCell(3, 0)
    with pytest.raises(ConfigError, match="batch_first"):
        UnrolledRNN.from_fused(torch.nn.LSTM(3, 4))
    with pytest.raises(ConfigError, match="differ"):
        UnrolledRNN("lstm", 3, 4).load_fused(torch.nn.LSTM(3, 5, batch_first=True))
