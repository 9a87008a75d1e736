"""Batching: length bucketing, padding collate, and the default training batches.

Sentences of similar length are put in the same mini-batch (sorted within buckets of
``bucket_factor × batch_size`` examples, then the batches shuffled), so padding — wasted
work for an RNN — stays small, while the order still changes every epoch.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def bucket_batches(
    lengths: Sequence[int],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    bucket_factor: int = 50,
    max_tokens: int | None = None,
) -> list[list[int]]:
    """Index lists, one per batch, grouping examples of similar length.

    ``max_tokens`` caps ``batch_len × longest`` (padded tokens) in addition to ``batch_size``.

    >>> bucket_batches([5, 1, 4, 2], batch_size=2, shuffle=False)
    [[1, 3], [2, 0]]
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = list(range(len(lengths)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    bucket = max(batch_size * bucket_factor, batch_size)
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda i: lengths[i])
        current: list[int] = []
        longest = 0
        for i in chunk:
            new_longest = max(longest, lengths[i])
            too_many = len(current) >= batch_size
            too_big = max_tokens is not None and current and new_longest * (len(current) + 1) > max_tokens
            if current and (too_many or too_big):
                batches.append(current)
                current, new_longest = [], lengths[i]
            current.append(i)
            longest = new_longest
        if current:
            batches.append(current)
    if shuffle:
        rng.shuffle(batches)
    return batches


def split_padded(indices: Sequence[int], lengths: Sequence[int], call_cost: float, step_cost: float = 0.0) -> list[list[int]]:
    """Cut one batch, sorted by length, into the padded sub-batches of least total cost.

    A padded batch of ``r`` rows costs about ``longest × (r + step_cost) + call_cost`` (in
    units of one padded token): the work grows with the padding, and each extra call adds a
    fixed overhead. When a short and a long sentence share a batch, the short one pays for
    the long one's length; splitting pays ``call_cost`` instead. The best contiguous cut of
    the length-sorted rows is found exactly by dynamic programming over the cut points that
    can matter, the ends of runs of equal length (moving rows of one length into the earlier
    group never costs more), so O(d²) for d distinct lengths, whatever the batch size.

    >>> split_padded([0, 1, 2, 3], [2, 2, 40, 40], call_cost=10)
    [[0, 1], [2, 3]]
    >>> split_padded([0, 1, 2, 3], [2, 2, 40, 40], call_cost=1000)
    [[0, 1, 2, 3]]
    """
    order = sorted(indices, key=lambda i: lengths[i])
    n = len(order)
    if n < 2:
        return [order] if order else []
    size = [lengths[i] for i in order]
    cuts = [0] + [k for k in range(1, n) if size[k] != size[k - 1]] + [n]  # run boundaries
    best = [0.0] + [float("inf")] * (len(cuts) - 1)
    back = [0] * len(cuts)
    for j in range(1, len(cuts)):
        end = cuts[j]
        longest = size[end - 1]  # sorted: a group's last row is its longest
        for i in range(j):
            cost = best[i] + longest * (end - cuts[i] + step_cost) + call_cost
            if cost < best[j]:
                best[j], back[j] = cost, i
    groups = []
    j = len(cuts) - 1
    while j:
        groups.append(order[cuts[back[j]] : cuts[j]])
        j = back[j]
    return groups[::-1]


def _as_tensor(values: list, pad: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    first = values[0]
    if isinstance(first, (int, float, bool, np.integer, np.floating)):
        return torch.as_tensor(values), None
    arrays = [v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in values]
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    longest = int(lengths.max()) if len(arrays) else 0
    dtype = arrays[0].dtype
    if dtype == torch.float64:
        dtype = torch.float32
    out = torch.full((len(arrays), longest, *arrays[0].shape[1:]), pad if pad is not None else 0, dtype=dtype)
    for row, array in enumerate(arrays):
        if array.shape[0]:
            out[row, : array.shape[0]] = array
    return out, lengths


def pad_collate(rows: Mapping[str, list], pad_values: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Turn the columns named in ``pad_values`` into tensors.

    Sequence columns (lists or arrays, first axis = time) are padded with their pad value
    and get a ``{column}_lengths`` tensor; scalar columns are stacked.

    >>> b = pad_collate({"ids": [[4, 5, 6], [7]], "y": [1, 0]}, {"ids": 0, "y": None})
    >>> b["ids"].tolist(), b["ids_lengths"].tolist(), b["y"].tolist()
    ([[4, 5, 6], [7, 0, 0]], [3, 1], [1, 0])
    """
    batch: dict[str, torch.Tensor] = {}
    for column, pad in pad_values.items():
        if column not in rows:
            continue
        tensor, lengths = _as_tensor(list(rows[column]), pad)
        batch[column] = tensor
        if lengths is not None:
            batch[f"{column}_lengths"] = lengths
    return batch


def select_rows(columns: Mapping[str, list], indices: Sequence[int]) -> dict[str, list]:
    """The rows ``indices`` of a dict of equally long lists."""
    return {name: [values[i] for i in indices] for name, values in columns.items()}


def default_train_batches(
    columns: Mapping[str, list],
    pad_values: Mapping[str, Any],
    length_column: str,
    batch_size: int,
    seed: int,
    bucket_factor: int = 50,
    max_tokens: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """The shared default training batches (``TaskModel.train_batches`` returning None).

    Rows grouped by the length of ``length_column`` (``bucket_batches``, shuffled with
    ``seed``), each batch the columns of ``pad_values`` padded by ``pad_collate``.

    >>> batches = default_train_batches({"ids": [[4, 5, 6], [7], [8, 9]], "y": [1, 0, 1]},
    ...                                 {"ids": 0, "y": None}, "ids", batch_size=2, seed=0)
    >>> [b["ids_lengths"].tolist() for b in batches]
    [[3], [1, 2]]
    """
    lengths = [len(v) for v in columns[length_column]]
    order = bucket_batches(lengths, batch_size, shuffle=True, seed=seed, bucket_factor=bucket_factor, max_tokens=max_tokens)
    needed = {c: columns[c] for c in pad_values if c in columns}
    return [pad_collate(select_rows(needed, indices), pad_values) for indices in order]
