"""Recurrent encoders over padded batches: (Bi)RNN / LSTM / GRU on the fused kernels.

Training uses torch's fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (cuDNN on CUDA,
oneDNN on the CPU); ``seqlab.nn.cells`` holds the same recurrences written from the
textbook equations, and its tests prove the two agree given the same weights.

Padded batches go through ``pack_padded_sequence`` so that the recurrence never reads
a pad: the forward direction stops at each sequence's last valid step, and the backward
direction starts there (Schuster & Paliwal, 1997, "Bidirectional recurrent neural
networks"). A stacked (deep) encoder feeds each layer's outputs to the next (Graves,
Mohamed & Hinton, 2013, "Speech recognition with deep recurrent neural networks");
``StackedRecurrentEncoder`` adds per-layer sizes and residual connections between
layers (Wu et al., 2016, "Google's neural machine translation system", §3.1).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..core.config import check_dropout, check_int, suggest
from ..core.errors import ConfigError, InputError
from .dropout import Dropout
from .masking import lengths_to_mask

#: The cell names an encoder accepts, mapped to the fused torch module.
CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _check_cell(cell: str, where: str) -> str:
    if not isinstance(cell, str) or cell.lower() not in CELLS:
        valid = sorted(CELLS)
        raise ConfigError(f"{where}: unknown cell {cell!r}{suggest(str(cell), valid)}; valid cells: {', '.join(valid)}")
    return cell.lower()


def check_lengths(lengths: Tensor, batch: int, steps: int, where: str = "lengths") -> Tensor:
    """Validate ``(B,)`` lengths against a ``(B, T, …)`` batch; return them as CPU int64.

    ``pack_padded_sequence`` needs the lengths on the CPU; moving them once here also
    gives one place for the error a user sees when batch and lengths disagree.
    """
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise InputError(f"{where}: expected shape ({batch},) for a batch of {batch}, got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise InputError(f"{where}: expected integer lengths, got dtype {lengths.dtype}")
    cpu = lengths.detach().to("cpu", torch.int64)
    if batch and (int(cpu.min()) < 1 or int(cpu.max()) > steps):
        raise InputError(
            f"{where}: every length must lie in [1, {steps}] (the padded length); got min {int(cpu.min())}, "
            f"max {int(cpu.max())}. Empty sequences cannot be encoded; drop them before batching"
        )
    return cpu


@dataclasses.dataclass
class RecurrentEncoderConfig:
    """Settings of a ``RecurrentEncoder`` (``input_size`` is usually filled in by the task)."""

    input_size: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    cell: str = "lstm"
    bidirectional: bool = True
    dropout: float = 0.0

    def validate(self, where: str = "encoder") -> None:
        check_int(self.input_size, "input_size", where)
        check_int(self.hidden_size, "hidden_size", where)
        check_int(self.num_layers, "num_layers", where)
        _check_cell(self.cell, where)
        check_dropout(self.dropout, where)


class RecurrentEncoder(nn.Module):
    """A (bidirectional, multi-layer) RNN/LSTM/GRU over a padded, batch-first batch.

    ``forward(x, lengths, state)`` returns ``(outputs, final, state)``:

    - ``outputs`` ``(B, T, output_size)``: the top layer at every step, zero at pads;
    - ``final`` ``(B, output_size)``: the top layer's forward state at each sequence's
      last valid step, concatenated with its backward state at step 0 — the summary of
      the whole sequence from both sides;
    - ``state``: the fused module's final state, ``h`` or ``(h, c)`` for the LSTM, each
      ``(num_layers * directions, B, hidden_size)``, to carry on (truncated BPTT) or to
      start a decoder.

    ``dropout`` applies between stacked layers only (as torch does), and only in training.

    >>> enc = RecurrentEncoder(4, hidden_size=3, cell="gru")
    >>> outputs, final, state = enc(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    >>> outputs.shape, final.shape, state.shape
    (torch.Size([2, 5, 6]), torch.Size([2, 6]), torch.Size([2, 2, 3]))
    >>> bool(outputs[1, 2:].eq(0).all())
    True
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.input_size = check_int(input_size, "input_size", where)
        self.hidden_size = check_int(hidden_size, "hidden_size", where)
        self.num_layers = check_int(num_layers, "num_layers", where)
        self.cell = _check_cell(cell, where)
        self.bidirectional = bool(bidirectional)
        self.dropout = check_dropout(dropout, where)
        self.num_directions = 2 if self.bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        kwargs: dict[str, Any] = {}
        if self.cell == "rnn":
            kwargs["nonlinearity"] = "tanh"
        # torch warns when dropout is set on a one-layer RNN (there is no "between").
        self.rnn = CELLS[self.cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
            dropout=self.dropout if num_layers > 1 else 0.0,
            **kwargs,
        )

    @classmethod
    def from_config(cls, config: RecurrentEncoderConfig) -> "RecurrentEncoder":
        return cls(**dataclasses.asdict(config))

    @property
    def is_lstm(self) -> bool:
        return self.cell == "lstm"

    def initial_state(self, batch_size: int, like: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Zero state for ``batch_size`` sequences, on the device and dtype of ``like`` (or the weights)."""
        ref = like if like is not None else self.rnn.weight_ih_l0
        h = ref.new_zeros(self.num_layers * self.num_directions, batch_size, self.hidden_size)
        return (h, h.clone()) if self.is_lstm else h

    def _check_state(self, state: Any, batch: int) -> None:
        expected = (self.num_layers * self.num_directions, batch, self.hidden_size)
        parts = state if self.is_lstm else (state,)
        if self.is_lstm and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise InputError(f"{type(self).__name__}(cell='lstm'): the initial state must be a pair (h, c)")
        for name, tensor in zip(("h", "c"), parts):
            if not isinstance(tensor, Tensor) or tuple(tensor.shape) != expected:
                got = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise InputError(
                    f"{type(self).__name__}: initial state {name} must have shape "
                    f"(num_layers * directions, B, hidden_size) = {expected}, got {got}"
                )

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: Any = None
    ) -> tuple[Tensor, Tensor, Any]:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise InputError(
                f"{type(self).__name__}: expected input of shape (B, T, {self.input_size}), got {tuple(x.shape)}"
            )
        batch, steps = x.shape[0], x.shape[1]
        if state is not None:
            self._check_state(state, batch)
            if self.is_lstm:
                state = tuple(state)
        if lengths is None:
            outputs, state = self.rnn(x, state)
        else:
            cpu_lengths = check_lengths(lengths, batch, steps)
            # enforce_sorted=False: torch sorts by length and restores the order of
            # outputs and state (and permutes the initial state in), so callers need not.
            packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed, state)
            # total_length keeps T even when the longest sequence is shorter than the pad.
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=steps)
        h = state[0] if self.is_lstm else state
        # h: (layers*dirs, B, H), layer-major; the top layer's directions are the last rows.
        # With packing, torch's forward h is at each sequence's last valid step already.
        top = h[-self.num_directions:]
        final = torch.cat(list(top), dim=-1)
        return outputs, final, state


class BiLSTMEncoder(RecurrentEncoder):
    """A bidirectional LSTM encoder: ``RecurrentEncoder(cell="lstm", bidirectional=True)``.

    >>> enc = BiLSTMEncoder(4, hidden_size=3)
    >>> enc.output_size
    6
    """

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers, cell="lstm", bidirectional=True, dropout=dropout)


@dataclasses.dataclass
class StackedRecurrentEncoderConfig:
    """Settings of a ``StackedRecurrentEncoder``: one hidden size per layer."""

    input_size: int = 128
    hidden_sizes: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    cell: str = "lstm"
    bidirectional: bool = True
    dropout: float = 0.0
    residual: bool = False

    def validate(self, where: str = "encoder") -> None:
        check_int(self.input_size, "input_size", where)
        if not self.hidden_sizes:
            raise ConfigError(f"{where}: hidden_sizes must list at least one layer size")
        for size in self.hidden_sizes:
            check_int(size, "each of hidden_sizes", where)
        _check_cell(self.cell, where)
        check_dropout(self.dropout, where)


class StackedRecurrentEncoder(nn.Module):
    """A deep RNN whose layers may differ in size, with optional residual connections.

    Each layer is a one-layer ``RecurrentEncoder``; layer ``l`` reads layer ``l-1``'s
    outputs (after dropout, in training only). With ``residual=True`` a layer whose
    input and output sizes agree adds its input to its output (GNMT §3.1), which keeps
    deep stacks trainable; layers where the sizes differ (typically the first) have no
    residual — ``residual_layers`` lists the ones that do. For equal sizes and no
    residual, ``RecurrentEncoder(num_layers=L)`` is the same network on one fused kernel
    and is faster; use this class when the sizes differ or residuals are wanted.

    ``forward`` returns ``(outputs, final, states)`` like ``RecurrentEncoder``, with
    ``final`` from the top layer and ``states`` a list of each layer's state.

    >>> enc = StackedRecurrentEncoder(4, hidden_sizes=[6, 3, 3], cell="gru", residual=True)
    >>> enc.output_size, enc.residual_layers
    (6, [2])
    >>> outputs, final, states = enc(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    >>> outputs.shape, final.shape, len(states)
    (torch.Size([2, 5, 6]), torch.Size([2, 6]), 3)
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int] = (128, 128),
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        config = StackedRecurrentEncoderConfig(
            input_size, list(hidden_sizes), cell, bidirectional, dropout, residual
        )
        config.validate(type(self).__name__)
        self.input_size = input_size
        self.hidden_sizes = list(hidden_sizes)
        self.cell = _check_cell(cell, type(self).__name__)
        self.bidirectional = bool(bidirectional)
        self.residual = bool(residual)
        directions = 2 if bidirectional else 1
        layers = []
        self.residual_layers: list[int] = []
        size = input_size
        for index, hidden in enumerate(self.hidden_sizes):
            layers.append(RecurrentEncoder(size, hidden, 1, cell=cell, bidirectional=bidirectional))
            if self.residual and size == hidden * directions:
                self.residual_layers.append(index)
            size = hidden * directions
        self.layers = nn.ModuleList(layers)
        self.drop = nn.Dropout(dropout)
        self.output_size = size

    @classmethod
    def from_config(cls, config: StackedRecurrentEncoderConfig) -> "StackedRecurrentEncoder":
        return cls(**dataclasses.asdict(config))

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, states: Sequence[Any] | None = None
    ) -> tuple[Tensor, Tensor, list[Any]]:
        if states is not None and len(states) != len(self.layers):
            raise InputError(
                f"{type(self).__name__}: expected one initial state per layer ({len(self.layers)}), got {len(states)}"
            )
        if lengths is not None:
            # Validate and move once, not once per layer.
            lengths = check_lengths(lengths, x.shape[0], x.shape[1])
        new_states: list[Any] = []
        outputs, final = x, None
        for index, layer in enumerate(self.layers):
            inputs = outputs if index == 0 else self.drop(outputs)
            outputs, final, state = layer(inputs, lengths, None if states is None else states[index])
            if index in self.residual_layers:
                # Above the first layer both terms are zero at the pads; a residual on the
                # first layer adds the raw input's pads, which are masked out below.
                outputs = outputs + inputs
            new_states.append(state)
        if lengths is not None and self.residual_layers and self.residual_layers[0] == 0:
            mask = lengths_to_mask(lengths.to(outputs.device), outputs.shape[1])
            outputs = outputs * mask.unsqueeze(-1).to(outputs.dtype)
        return outputs, final, new_states


class PaddedBiRecurrentEncoder(nn.Module):
    """A bidirectional RNN/LSTM/GRU over a right-padded batch, without packing.

    The same function as ``RecurrentEncoder(bidirectional=True)`` with lengths, built from
    two one-directional fused modules per layer run on the plain padded tensor, which lets
    torch use its fused (oneDNN / cuDNN) kernel — on a CPU about 2.5× faster to train than
    packed sequences. Padding at the end of a sequence cannot reach its earlier steps, so
    the forward direction runs as is; the backward direction reads each sequence reversed
    *within its length* (the padding stays at the end) and its outputs are put back in
    order. Layers are stacked one by one, each reading both directions of the one below,
    with dropout in between. Outputs at padded steps are zero.

    ``forward(x, lengths)`` returns ``(outputs, final, None)`` like ``RecurrentEncoder``:
    ``final`` is the forward direction at the last valid step joined with the backward
    direction at step 0.

    >>> enc = PaddedBiRecurrentEncoder(4, hidden_size=3)
    >>> out, final, _ = enc(torch.randn(2, 5, 4), torch.tensor([5, 2]))
    >>> out.shape, final.shape, bool(out[1, 2:].eq(0).all())
    (torch.Size([2, 5, 6]), torch.Size([2, 6]), True)
    """

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm", dropout: float = 0.0) -> None:
        super().__init__()
        where = type(self).__name__
        check_int(num_layers, "num_layers", where)
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        size = input_size
        for _ in range(num_layers):
            self.forward_layers.append(RecurrentEncoder(size, hidden_size, 1, cell=cell, bidirectional=False))
            self.backward_layers.append(RecurrentEncoder(size, hidden_size, 1, cell=cell, bidirectional=False))
            size = 2 * hidden_size
        self.drop = Dropout(check_dropout(dropout, where))
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = 2 * hidden_size

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Any = None) -> tuple[Tensor, Tensor, None]:
        if state is not None:
            raise InputError(f"{type(self).__name__} takes no initial state; use RecurrentEncoder for that")
        batch, steps = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long, device=x.device)
        check_lengths(lengths, batch, steps)
        lengths = lengths.to(x.device)
        if x.device.type == "cpu" and not (self.training and self.drop.p > 0 and len(self.forward_layers) > 1) \
                and bool((lengths == steps).all()):
            return self._unpadded(x)
        t = torch.arange(steps, device=x.device).unsqueeze(0)
        valid = t < lengths.unsqueeze(1)
        # Position of step t in the sequence read backwards; padding maps to itself (an involution).
        flip = torch.where(valid, lengths.unsqueeze(1) - 1 - t, t).unsqueeze(-1)
        for index, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if index:
                x = self.drop(x)
            ahead, _, _ = fwd(x)
            back, _, _ = bwd(x.gather(1, flip.expand(batch, steps, x.shape[-1])))
            back = back.gather(1, flip.expand(batch, steps, self.hidden_size))
            x = torch.cat([ahead, back], dim=-1) * valid.unsqueeze(-1).to(ahead.dtype)
        last = (lengths - 1).view(batch, 1, 1).expand(batch, 1, self.hidden_size)
        final = torch.cat([x[..., : self.hidden_size].gather(1, last).squeeze(1), x[:, 0, self.hidden_size :]], dim=-1)
        return x, final, None

    def _unpadded(self, x: Tensor) -> tuple[Tensor, Tensor, None]:
        """No padding (one sentence, or equal lengths), no dropout between layers: one fused
        bidirectional call over all layers with the same weights — on a CPU, a third of the
        time of the per-direction path for a single short sentence."""
        params: list[Tensor] = []
        for fwd, bwd in zip(self.forward_layers, self.backward_layers):
            params += list(fwd.rnn._flat_weights) + list(bwd.rnn._flat_weights)
        layers, cell = len(self.forward_layers), self.forward_layers[0].cell
        h0 = x.new_zeros(2 * layers, x.shape[0], self.hidden_size)
        args = (params, True, layers, 0.0, self.training, True, True)  # biases, layers, dropout, train, bidir, batch_first
        if cell == "lstm":
            out = torch.lstm(x, (h0, h0), *args)[0]
        elif cell == "gru":
            out = torch.gru(x, h0, *args)[0]
        else:
            out = torch.rnn_tanh(x, h0, *args)[0]
        final = torch.cat([out[:, -1, : self.hidden_size], out[:, 0, self.hidden_size :]], dim=-1)
        return out, final, None
