"""Recurrent cells written from the textbook equations, and an RNN unrolled from them.

Training uses the fused ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (see ``recurrent.py``);
these cells are the readable reference. They keep torch's parameter layout (gates stacked
row-wise in torch's order, two biases ``b_i*`` and ``b_h*`` whose sum is the textbook
``b``) so that ``UnrolledRNN.from_fused`` can load a fused module's weights, and the tests
prove both compute the same outputs and gradients.

Equations (``σ`` the logistic sigmoid, ``⊙`` the element-wise product):

Elman RNN (Elman, 1990, "Finding structure in time")::

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)

LSTM (Hochreiter & Schmidhuber, 1997; forget gate: Gers, Schmidhuber & Cummins, 2000)::

    i_t = σ(W_ii x_t + W_hi h_{t-1} + b_i)          input gate
    f_t = σ(W_if x_t + W_hf h_{t-1} + b_f)          forget gate
    ĉ_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g)       candidate cell
    o_t = σ(W_io x_t + W_ho h_{t-1} + b_o)          output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ ĉ_t
    h_t = o_t ⊙ tanh(c_t)

GRU (Cho et al., 2014, "Learning phrase representations using RNN encoder-decoder")::

    r_t = σ(W_ir x_t + W_hr h_{t-1} + b_r)           reset gate
    z_t = σ(W_iz x_t + W_hz h_{t-1} + b_z)           update gate
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}           convention="torch" (and Cho et al.)
    h_t = z_t ⊙ n_t + (1 - z_t) ⊙ h_{t-1}           convention="textbook" (Chung et al., 2014)

The two GRU conventions are the same family: the "textbook" ``z`` is ``1 - z`` of the
torch one, i.e. its update-gate pre-activation is negated, which is exactly what loading
fused weights into a textbook-convention cell does. The reset gate is applied after the
recurrent matrix product (``r ⊙ (W_hn h + b_hn)``), as cuDNN and torch do; Cho et al.
apply it before (``W_hn (r ⊙ h)``), a slightly different model.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..core.config import suggest
from ..core.errors import ConfigError, InputError

State = Any  # a Tensor h, or a pair (h, c) for the LSTM

GRU_CONVENTIONS = ("torch", "textbook")


class _Cell(nn.Module):
    """Shared parameters and initialisation: ``gates`` stacked blocks of ``hidden_size`` rows."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{type(self).__name__}: {name} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's initialisation for its recurrent modules: U(-1/√H, 1/√H) everywhere.
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def _affine(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """``W_i* x + b_i*`` and ``W_h* h + b_h*`` for all gates at once, (B, gates·H) each."""
        return (
            nn.functional.linear(x, self.weight_ih, self.bias_ih),
            nn.functional.linear(h, self.weight_hh, self.bias_hh),
        )

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        return like.new_zeros(batch_size, self.hidden_size)

    @staticmethod
    def output(state: State) -> Tensor:
        """The part of the state the next layer reads (``h``)."""
        return state

    def load_gate_weights(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor | None, bias_hh: Tensor | None) -> None:
        """Copy torch-layout weights (one fused layer/direction) into this cell."""
        with torch.no_grad():
            self.weight_ih.copy_(weight_ih)
            self.weight_hh.copy_(weight_hh)
            if self.bias_ih is not None:
                if bias_ih is None or bias_hh is None:
                    raise ConfigError(f"{type(self).__name__}: the fused module has no biases but this cell has")
                self.bias_ih.copy_(bias_ih)
                self.bias_hh.copy_(bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


class ElmanCell(_Cell):
    """Elman RNN cell: ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)`` (or ReLU).

    >>> cell = ElmanCell(3, 2)
    >>> cell(torch.zeros(4, 3), torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"ElmanCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        from_input, from_state = self._affine(x, h)
        pre = from_input + from_state
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class LSTMCell(_Cell):
    """LSTM cell; the state is ``(h, c)``. Gate rows in torch's order: input, forget, candidate, output.

    >>> cell = LSTMCell(3, 2)
    >>> h, c = cell(torch.zeros(4, 3), cell.initial_state(4, torch.zeros(1)))
    >>> h.shape, c.shape
    (torch.Size([4, 2]), torch.Size([4, 2]))
    """

    gates = 4

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        h = like.new_zeros(batch_size, self.hidden_size)
        return h, h.clone()

    @staticmethod
    def output(state: State) -> Tensor:
        return state[0]

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        h_prev, c_prev = state
        from_input, from_state = self._affine(x, h_prev)
        pre_i, pre_f, pre_g, pre_o = (from_input + from_state).chunk(4, dim=-1)
        i = torch.sigmoid(pre_i)  # how much of the candidate to write
        f = torch.sigmoid(pre_f)  # how much of the old cell to keep
        candidate = torch.tanh(pre_g)
        o = torch.sigmoid(pre_o)  # how much of the cell to expose
        c = f * c_prev + i * candidate
        h = o * torch.tanh(c)
        return h, c


class GRUCell(_Cell):
    """GRU cell. Gate rows in torch's order: reset, update, new.

    ``convention="torch"``: ``h_t = (1-z)⊙n + z⊙h_{t-1}``; ``"textbook"``:
    ``h_t = z⊙n + (1-z)⊙h_{t-1}`` (see the module docstring). Loading fused weights into
    a textbook cell negates the update gate's rows, so both compute the same function.

    >>> cell = GRUCell(3, 2, convention="textbook")
    >>> cell(torch.zeros(4, 3), torch.zeros(4, 2)).shape
    torch.Size([4, 2])
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, convention: str = "torch") -> None:
        if convention not in GRU_CONVENTIONS:
            raise ConfigError(
                f"GRUCell: unknown convention {convention!r}{suggest(str(convention), list(GRU_CONVENTIONS))}; "
                f"valid: {', '.join(GRU_CONVENTIONS)}"
            )
        self.convention = convention
        super().__init__(input_size, hidden_size, bias)

    def forward(self, x: Tensor, h_prev: Tensor) -> Tensor:
        from_input, from_state = self._affine(x, h_prev)
        in_r, in_z, in_n = from_input.chunk(3, dim=-1)
        st_r, st_z, st_n = from_state.chunk(3, dim=-1)
        r = torch.sigmoid(in_r + st_r)
        z = torch.sigmoid(in_z + st_z)
        # The reset gate scales the recurrent contribution only (after W_hn h + b_hn).
        n = torch.tanh(in_n + r * st_n)
        if self.convention == "torch":
            return (1 - z) * n + z * h_prev
        return z * n + (1 - z) * h_prev

    def load_gate_weights(self, weight_ih, weight_hh, bias_ih, bias_hh) -> None:
        super().load_gate_weights(weight_ih, weight_hh, bias_ih, bias_hh)
        if self.convention == "textbook":
            # σ(-a) = 1 - σ(a): negating the update gate's pre-activation swaps z and 1 - z.
            rows = slice(self.hidden_size, 2 * self.hidden_size)
            with torch.no_grad():
                for param in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
                    if param is not None:
                        param[rows].neg_()

    def extra_repr(self) -> str:
        return super().extra_repr() + f", convention={self.convention!r}"


def make_cell(kind: str, input_size: int, hidden_size: int, bias: bool = True, **options: Any) -> _Cell:
    """``"rnn"`` / ``"lstm"`` / ``"gru"`` → the cell; ``options`` go to its constructor."""
    table = {"rnn": ElmanCell, "lstm": LSTMCell, "gru": GRUCell}
    if kind not in table:
        raise ConfigError(f"unknown cell {kind!r}{suggest(str(kind), list(table))}; valid cells: {', '.join(table)}")
    return table[kind](input_size, hidden_size, bias, **options)


class RecurrentLayer(nn.Module):
    """Unroll one cell over time, forward or (``reverse=True``) backward, batch-first.

    ``forward(x (B,T,I), state=None, lengths=None) -> (outputs (B,T,H), final state)``.
    With ``lengths`` a sequence's steps beyond its length are skipped: the state is held,
    the output is zero, and the reverse direction starts at the last valid step — the
    same semantics as a fused module on a packed sequence.

    >>> layer = RecurrentLayer(LSTMCell(3, 2))
    >>> outputs, (h, c) = layer(torch.randn(4, 5, 3), lengths=torch.tensor([5, 3, 1, 2]))
    >>> outputs.shape, bool(outputs[2, 1:].eq(0).all())
    (torch.Size([4, 5, 2]), True)
    """

    def __init__(self, cell: _Cell, reverse: bool = False) -> None:
        super().__init__()
        self.cell = cell
        self.reverse = reverse

    def forward(self, x: Tensor, state: State = None, lengths: Tensor | None = None) -> tuple[Tensor, State]:
        batch, steps, _ = x.shape
        if state is None:
            state = self.cell.initial_state(batch, x)
        valid = None
        if lengths is not None:
            valid = torch.arange(steps, device=x.device).unsqueeze(0) < torch.as_tensor(lengths, device=x.device).unsqueeze(1)
        order = range(steps - 1, -1, -1) if self.reverse else range(steps)
        outputs: list[Tensor] = [x.new_zeros(())] * steps
        for t in order:
            new_state = self.cell(x[:, t], state)
            h = self.cell.output(new_state)
            if valid is not None:
                keep = valid[:, t].unsqueeze(1)
                # Past a sequence's end its state is frozen and its output is zero.
                if isinstance(new_state, tuple):
                    new_state = tuple(torch.where(keep, n, o) for n, o in zip(new_state, state))
                else:
                    new_state = torch.where(keep, new_state, state)
                h = torch.where(keep, h, torch.zeros_like(h))
            outputs[t] = h
            state = new_state
        return torch.stack(outputs, dim=1), state


class UnrolledRNN(nn.Module):
    """A multi-layer, optionally bidirectional RNN/LSTM/GRU built from the cells above.

    It mirrors ``torch.nn.RNN/LSTM/GRU(batch_first=True)``: ``forward(x, state=None,
    lengths=None) -> (outputs, state)`` with ``state`` ``h`` or ``(h, c)`` of shape
    ``(num_layers * directions, B, H)``, layer-major, forward direction first.
    ``from_fused`` builds one with a fused module's weights; the tests prove that both
    then compute the same outputs and gradients. It is slow (a Python loop over time):
    for reading, teaching and checking, not for training.

    >>> fused = torch.nn.GRU(3, 2, num_layers=2, bidirectional=True, batch_first=True)
    >>> cells = UnrolledRNN.from_fused(fused)
    >>> x = torch.randn(4, 5, 3)
    >>> bool(torch.allclose(cells(x)[0], fused(x)[0], atol=1e-6))
    True
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ConfigError(f"UnrolledRNN: num_layers must be a positive integer, got {num_layers!r}")
        self.cell_kind = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        layers = []
        for index in range(num_layers):
            size = input_size if index == 0 else hidden_size * self.num_directions
            for direction in range(self.num_directions):
                layers.append(
                    RecurrentLayer(make_cell(cell, size, hidden_size, bias, **cell_options), reverse=direction == 1)
                )
        # Flat, in torch's order: layer 0 forward, layer 0 reverse, layer 1 forward, …
        self.layers = nn.ModuleList(layers)

    @classmethod
    def from_fused(cls, fused: nn.RNNBase, **cell_options: Any) -> "UnrolledRNN":
        """An ``UnrolledRNN`` holding a copy of ``fused``'s weights (same device and dtype)."""
        kind = {nn.RNN: "rnn", nn.LSTM: "lstm", nn.GRU: "gru"}.get(type(fused))
        if kind is None:
            raise ConfigError(f"from_fused expects torch.nn.RNN, LSTM or GRU, got {type(fused).__name__}")
        if not fused.batch_first:
            raise ConfigError("from_fused: the fused module must be batch_first=True, as seqlab's encoders are")
        if getattr(fused, "proj_size", 0):
            raise ConfigError("from_fused: LSTMs with proj_size are not supported")
        if kind == "rnn":
            cell_options.setdefault("nonlinearity", fused.nonlinearity)
        model = cls(
            kind, fused.input_size, fused.hidden_size, fused.num_layers, fused.bidirectional,
            fused.bias, fused.dropout, **cell_options,
        )
        ref = fused.weight_ih_l0
        model.to(device=ref.device, dtype=ref.dtype)
        model.load_fused(fused)
        return model

    def load_fused(self, fused: nn.RNNBase) -> None:
        """Copy the weights of a fused module with the same shape into the cells."""
        expected = (self.num_layers, self.num_directions, self.hidden_size, self.input_size)
        got = (fused.num_layers, 2 if fused.bidirectional else 1, fused.hidden_size, fused.input_size)
        if expected != got:
            raise ConfigError(
                f"load_fused: (num_layers, directions, hidden_size, input_size) differ: cells {expected}, fused {got}"
            )
        for index, layer in enumerate(self.layers):
            suffix = f"_l{index // self.num_directions}" + ("_reverse" if index % self.num_directions else "")
            layer.cell.load_gate_weights(
                getattr(fused, "weight_ih" + suffix),
                getattr(fused, "weight_hh" + suffix),
                getattr(fused, "bias_ih" + suffix, None),
                getattr(fused, "bias_hh" + suffix, None),
            )

    def _split_state(self, state: State, batch: int) -> list[State]:
        if state is None:
            return [None] * len(self.layers)
        expected = (len(self.layers), batch, self.hidden_size)
        parts = state if isinstance(state, tuple) else (state,)
        for tensor in parts:
            if tuple(tensor.shape) != expected:
                raise InputError(f"UnrolledRNN: state must have shape {expected}, got {tuple(tensor.shape)}")
        if isinstance(state, tuple):
            return [tuple(t[i] for t in state) for i in range(len(self.layers))]
        return [state[i] for i in range(len(self.layers))]

    def forward(self, x: Tensor, state: State = None, lengths: Tensor | Sequence[int] | None = None) -> tuple[Tensor, State]:
        states = self._split_state(state, x.shape[0])
        finals: list[State] = []
        inputs = x
        for index in range(self.num_layers):
            if index > 0 and self.dropout and self.training:
                inputs = nn.functional.dropout(inputs, self.dropout, training=True)
            outputs = []
            for direction in range(self.num_directions):
                flat = index * self.num_directions + direction
                out, final = self.layers[flat](inputs, states[flat], lengths)
                outputs.append(out)
                finals.append(final)
            inputs = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
        if isinstance(finals[0], tuple):
            return inputs, tuple(torch.stack(part) for part in zip(*finals))
        return inputs, torch.stack(finals)
