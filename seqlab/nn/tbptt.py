"""Truncated backpropagation through time over a long token stream.

As in PyTorch's word-language-model example: lay the token stream out as ``B`` parallel
rows (``stream_batches``, its ``batchify``), walk along them in windows of ``k`` steps
(``bptt_windows``, its ``get_batch``), carry the hidden state from one window into the
next so the model sees the whole stream, and detach it between windows so the gradient
stops at the window boundary (``detach_state``, its ``repackage_hidden``).

``TruncatedBPTT(k1, k2)`` generalises this to Williams & Peng's TBPTT(k1, k2) (1990,
"An efficient gradient-based algorithm for on-line training of recurrent network
trajectories"; Sutskever, 2013, thesis §2.8.6): every ``k1`` new steps, update with the
gradient of those ``k1`` steps' loss backpropagated over the last ``k2 ≥ k1`` steps. Each
window therefore re-reads ``k2 - k1`` steps of context (from a detached state saved
``k2`` steps back) before its ``k1`` fresh steps. ``k2 == k1`` is the plain scheme.

A driver (the Trainer) does, per window::

    outputs, state = tbptt.forward(step, window, state)   # state comes back detached
    loss = criterion(outputs[:, window.loss_from:], window.new_targets)
    loss.backward(); clip_gradients(...); optimizer.step()

where ``step(inputs (B, L), state) -> (outputs (B, L, …), state)`` is the model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor

from ..core.errors import ConfigError, DataError, InputError

State = Any  # None, a Tensor, or a (nested) tuple/list/dict of Tensors


def detach_state(state: State) -> State:
    """Cut ``state`` from the graph that produced it (tensors in any nesting of tuple/list/dict).

    >>> h = torch.ones(2, requires_grad=True) * 2
    >>> detach_state((h, [h, None]))[1][0].requires_grad
    False
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple):
        parts = [detach_state(s) for s in state]
        # Keep named tuples (e.g. a decoder's state record) their own type.
        return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)
    if isinstance(state, list):
        return [detach_state(s) for s in state]
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    raise InputError(f"detach_state: cannot detach a {type(state).__name__}; expected tensors in tuples/lists/dicts")


def reset_state(state: State, mask: Tensor, batch_dim: int | None = None) -> State:
    """Zero the rows of ``state`` whose ``mask`` entry is True (e.g. a document starts there).

    ``mask`` is ``(B,)`` bool. The batch axis is ``batch_dim``, by default 1 for 3-D
    tensors (the fused ``(layers*directions, B, H)`` layout) and 0 otherwise (a cell's
    ``(B, H)``). A new state is returned; the input is not modified, so autograd is safe.

    >>> h = torch.ones(1, 3, 2)
    >>> reset_state(h, torch.tensor([False, True, False]))[0, :, 0]
    tensor([1., 0., 1.])
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        dim = batch_dim if batch_dim is not None else (1 if state.dim() == 3 else 0)
        mask = torch.as_tensor(mask, device=state.device)
        if mask.dim() != 1 or mask.shape[0] != state.shape[dim]:
            raise InputError(
                f"reset_state: mask must have shape ({state.shape[dim]},), one entry per sequence on axis {dim} "
                f"of a state of shape {tuple(state.shape)}; got {tuple(mask.shape)}"
            )
        shape = [1] * state.dim()
        shape[dim] = -1
        # where, not multiply: a NaN/inf in a row being reset must not survive as NaN.
        return torch.where(mask.to(torch.bool).view(shape), torch.zeros_like(state), state)
    if isinstance(state, tuple):
        parts = [reset_state(s, mask, batch_dim) for s in state]
        return type(state)(*parts) if hasattr(state, "_fields") else tuple(parts)
    if isinstance(state, list):
        return [reset_state(s, mask, batch_dim) for s in state]
    if isinstance(state, dict):
        return {k: reset_state(v, mask, batch_dim) for k, v in state.items()}
    raise InputError(f"reset_state: cannot reset a {type(state).__name__}; expected tensors in tuples/lists/dicts")


def stream_batches(token_ids: Tensor | Sequence[int], batch_size: int) -> Tensor:
    """Lay a 1-D token stream out as ``batch_size`` contiguous rows: ``(batch_size, n_steps)``.

    Row ``b`` holds tokens ``[b*n, (b+1)*n)``; the ``len % batch_size`` tokens at the end
    that do not fill a column are dropped (the word-language-model ``batchify``, batch-first).
    The result is on the device of ``token_ids``.

    >>> stream_batches(list(range(7)), 2)
    tensor([[0, 1, 2],
            [3, 4, 5]])
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ConfigError(f"stream_batches: batch_size must be a positive integer, got {batch_size!r}")
    ids = token_ids if isinstance(token_ids, Tensor) else torch.as_tensor(list(token_ids), dtype=torch.long)
    if ids.dim() != 1:
        raise DataError(f"stream_batches: expected a 1-D stream of token ids, got shape {tuple(ids.shape)}")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise DataError(f"stream_batches: token ids must be integers, got dtype {ids.dtype}")
    n_steps = ids.shape[0] // batch_size
    if n_steps == 0:
        raise DataError(
            f"stream_batches: the stream has {ids.shape[0]} tokens, fewer than one per row of a batch of "
            f"{batch_size}; use a smaller batch_size or more data"
        )
    return ids[: n_steps * batch_size].view(batch_size, n_steps).long()


def _check_stream(stream: Tensor, where: str) -> int:
    if not isinstance(stream, Tensor) or stream.dim() != 2:
        shape = tuple(stream.shape) if isinstance(stream, Tensor) else type(stream).__name__
        raise DataError(f"{where}: expected a (batch, steps) stream from stream_batches, got {shape}")
    if stream.shape[1] < 2:
        raise DataError(
            f"{where}: the stream has {stream.shape[1]} step(s) per row; at least 2 are needed "
            "(an input and the next token as its target)"
        )
    return stream.shape[1] - 1  # positions that have a next token


def _check_window(value: Any, name: str, usable: int | None, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a positive integer number of steps, got {value!r}")
    if usable is not None and value > usable:
        raise ConfigError(
            f"{where}: {name}={value} is longer than the stream, which has {usable} input step(s) per row "
            f"(its length minus one); use a shorter window or a smaller batch_size"
        )
    return value


def bptt_windows(stream: Tensor, k: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(inputs, targets)`` windows of ``k`` steps, ``targets`` shifted one step ahead.

    The last window may be shorter. Windows are views of ``stream`` (no copy).

    >>> stream = stream_batches(list(range(10)), 2)          # [[0..4], [5..9]]
    >>> [(x.tolist(), y.tolist()) for x, y in bptt_windows(stream, 3)]
    [([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]]), ([[3], [8]], [[4], [9]])]
    """
    usable = _check_stream(stream, "bptt_windows")
    _check_window(k, "k", usable, "bptt_windows")
    for start in range(0, usable, k):
        length = min(k, usable - start)
        yield stream[:, start : start + length], stream[:, start + 1 : start + 1 + length]


@dataclasses.dataclass
class BPTTWindow:
    """One TBPTT(k1, k2) window over stream positions ``[start, start + length)``.

    ``loss_from``: steps before it are context, re-read for the gradient only; the loss
    covers ``targets[:, loss_from:]`` (``new_targets``). ``carry_at``: after this many
    steps the state is the next window's starting state (``length`` when ``k2 == k1``).
    """

    inputs: Tensor
    targets: Tensor
    start: int
    loss_from: int
    carry_at: int
    index: int

    @property
    def length(self) -> int:
        return self.inputs.shape[1]

    @property
    def new_targets(self) -> Tensor:
        return self.targets[:, self.loss_from :]

    @property
    def new_tokens(self) -> int:
        """Targets the loss covers (for per-token averages and throughput)."""
        return self.new_targets.numel()


class TruncatedBPTT:
    """TBPTT(k1, k2) over a ``(B, N)`` stream: update every ``k1`` steps, backpropagate ``k2``.

    >>> tbptt = TruncatedBPTT(k1=2, k2=3)
    >>> stream = torch.arange(8).view(1, 8)
    >>> [(w.start, w.inputs.tolist(), w.loss_from, w.carry_at) for w in tbptt.windows(stream)]
    [(0, [[0, 1]], 0, 1), (1, [[1, 2, 3]], 1, 2), (3, [[3, 4, 5]], 1, 2), (5, [[5, 6]], 1, 2)]

    The second window starts from the state saved after step 0 (the first window's
    ``carry_at=1``), re-reads step 1 as context and trains on steps 2–3, whose gradient
    reaches back 3 steps; it saves the state after step 2 (its ``carry_at=2``) for the
    third. With ``k2 == k1`` there is no context: ``loss_from == 0`` and ``carry_at == length``.
    """

    def __init__(self, k1: int, k2: int | None = None) -> None:
        self.k1 = _check_window(k1, "k1", None, "TruncatedBPTT")
        self.k2 = self.k1 if k2 is None else _check_window(k2, "k2", None, "TruncatedBPTT")
        if self.k2 < self.k1:
            raise ConfigError(f"TruncatedBPTT: k2={self.k2} must be at least k1={self.k1} (backpropagate ≥ the update interval)")

    def num_windows(self, stream: Tensor) -> int:
        usable = _check_stream(stream, "TruncatedBPTT")
        return -(-usable // self.k1)

    def windows(self, stream: Tensor) -> Iterator[BPTTWindow]:
        """Yield the windows over ``stream`` in order; see ``BPTTWindow``."""
        usable = _check_stream(stream, "TruncatedBPTT")
        _check_window(self.k1, "k1", usable, "TruncatedBPTT")
        context = self.k2 - self.k1
        # Fresh segments [begin, end) of k1 steps (the last may be shorter); each window
        # prepends up to k2 - k1 steps of context, so it spans k2 steps (less at the edges).
        begins = list(range(0, usable, self.k1))
        for index, begin in enumerate(begins):
            end = min(begin + self.k1, usable)
            fresh = end - begin
            start = max(0, begin - context)
            if index + 1 < len(begins):
                next_start = max(0, begins[index + 1] - context)
            else:
                next_start = end  # the state at the stream's end, to continue into more data
            yield BPTTWindow(
                inputs=stream[:, start:end],
                targets=stream[:, start + 1 : end + 1],
                start=start,
                loss_from=end - fresh - start,
                carry_at=next_start - start,
                index=index,
            )

    def __call__(self, stream: Tensor) -> Iterator[BPTTWindow]:
        return self.windows(stream)

    @staticmethod
    def forward(
        step: Callable[[Tensor, State], tuple[Tensor, State]], window: BPTTWindow, state: State
    ) -> tuple[Tensor, State]:
        """Run ``step`` over ``window`` from ``state`` (detached first); return ``(outputs, next_state)``.

        ``outputs`` cover the whole window (slice ``[:, window.loss_from:]`` for the loss);
        ``next_state`` is the detached state at ``window.carry_at``, to pass to the next
        window. The window is run in two pieces when the carry point is inside it.
        """
        state = detach_state(state)
        if window.carry_at >= window.length:
            outputs, state = step(window.inputs, state)
            return outputs, detach_state(state)
        if window.carry_at == 0:
            outputs, _ = step(window.inputs, state)
            return outputs, state
        first, carried = step(window.inputs[:, : window.carry_at], state)
        second, _ = step(window.inputs[:, window.carry_at :], carried)
        return torch.cat([first, second], dim=1), detach_state(carried)

    def __repr__(self) -> str:
        return f"TruncatedBPTT(k1={self.k1}, k2={self.k2})"


def truncated_bptt(stream: Tensor, k1: int, k2: int | None = None) -> Iterator[BPTTWindow]:
    """Shorthand for ``TruncatedBPTT(k1, k2).windows(stream)``.

    >>> [w.inputs.shape[1] for w in truncated_bptt(torch.zeros(2, 8, dtype=torch.long), 3)]
    [3, 3, 1]
    """
    return TruncatedBPTT(k1, k2).windows(stream)
