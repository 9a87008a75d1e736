"""A language-modelling auxiliary objective for a bidirectional tagger (Rei 2017).

Rei, "Semi-supervised Multitask Learning for Sequence Labeling" (ACL 2017): beside its
tagging loss, a BiLSTM tagger learns to predict the next word from its *forward* states and
the previous word from its *backward* states. The forward state at step ``t`` has read words
``0..t`` only, so word ``t+1`` is new to it (and the backward state at ``t`` has read
``t..n-1``, so word ``t-1`` is new to it): the objective needs no labels and pushes the
encoder to model its language, which helps on words and names the tags alone teach little
about. Each direction goes through its own small tanh layer and a softmax over the ``top``
most frequent training words; rarer words share one *other* class, and the step past a
sentence end (and before its start) is a *boundary* class. The objective is only a training
loss: prediction never reads it.

Only a one-layer encoder qualifies. In a stacked BiLSTM the upper forward layer reads the
lower backward one, which has already seen the word to predict.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def frequent_rows(rows: Tensor, num_rows: int, top: int, never: tuple[int, ...] = ()) -> Tensor:
    """The class of each embedding row for the objective: the ``top`` rows that ``rows`` (every
    training token's row) looks up most get classes ``0..top-1``, most frequent first (ties by
    row); every other row, and the ``never`` rows (``<pad>``, ``<unk>``), gets ``top`` (*other*).

    >>> frequent_rows(torch.tensor([4, 2, 4, 3, 2, 4, 1]), 6, top=2, never=(0, 1)).tolist()
    [2, 2, 1, 2, 0, 2]
    """
    counts = torch.bincount(rows.reshape(-1).long().cpu(), minlength=num_rows)[:num_rows]
    if never:
        counts[list(never)] = 0
    # Stable sort on the negated counts: equal counts keep row order.
    order = torch.sort(-counts, stable=True).indices
    kept = order[: min(top, num_rows)]
    kept = kept[counts[kept] > 0]
    classes = torch.full((num_rows,), top, dtype=torch.long)
    classes[kept] = torch.arange(len(kept))
    return classes


def neighbour_targets(classes: Tensor, mask: Tensor, boundary: int) -> tuple[Tensor, Tensor]:
    """The next and the previous word's class at every step of a right-padded batch.

    ``classes`` (B, T) is each token's class, ``mask`` (B, T) marks the real tokens. Past a
    sentence's last word the next word is ``boundary``, and so is the word before its first.
    Padded steps get ``boundary`` too (the loss skips them).

    >>> nxt, prev = neighbour_targets(torch.tensor([[5, 6, 7], [8, 9, 0]]),
    ...                               torch.tensor([[True, True, True], [True, True, False]]), boundary=-1)
    >>> nxt.tolist(), prev.tolist()
    ([[6, 7, -1], [9, -1, -1]], [[-1, 5, 6], [-1, 8, -1]])
    """
    nxt = torch.full_like(classes, boundary)
    prev = torch.full_like(classes, boundary)
    if classes.shape[1] > 1:
        nxt[:, :-1] = torch.where(mask[:, 1:], classes[:, 1:], boundary)
        prev[:, 1:] = torch.where(mask[:, 1:], classes[:, :-1], boundary)
    return nxt, prev


class BidirectionalLMObjective(nn.Module):
    """Rei's objective over a one-layer BiLSTM's outputs ``[forward; backward]``.

    ``forward(outputs, classes, mask)`` returns the cross-entropy of both directions' word
    predictions, summed over the real tokens and divided by the batch size (the scale of a
    CRF's per-sentence loss), for ``classes`` from ``frequent_rows``.

    >>> objective = BidirectionalLMObjective(direction_size=3, top=4, hidden=2)
    >>> loss = objective(torch.randn(2, 5, 6), torch.randint(0, 5, (2, 5)), torch.ones(2, 5, dtype=torch.bool))
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """

    def __init__(self, direction_size: int, top: int, hidden: int = 50) -> None:
        super().__init__()
        self.direction_size = direction_size
        self.top = top
        classes = top + 2  # the words, other, boundary
        self.ahead = nn.Sequential(nn.Linear(direction_size, hidden), nn.Tanh(), nn.Linear(hidden, classes))
        self.behind = nn.Sequential(nn.Linear(direction_size, hidden), nn.Tanh(), nn.Linear(hidden, classes))

    @property
    def boundary(self) -> int:
        return self.top + 1

    def forward(self, outputs: Tensor, classes: Tensor, mask: Tensor) -> Tensor:
        size = self.direction_size
        if outputs.shape[-1] != 2 * size:
            raise ValueError(f"expected [forward; backward] outputs of 2 x {size} features, got {outputs.shape[-1]}")
        nxt, prev = neighbour_targets(classes, mask, self.boundary)
        ahead = self.ahead(outputs[..., :size][mask]).float()
        behind = self.behind(outputs[..., size:][mask]).float()
        total = nn.functional.cross_entropy(ahead, nxt[mask], reduction="sum") \
            + nn.functional.cross_entropy(behind, prev[mask], reduction="sum")
        return total / max(outputs.shape[0], 1)
