"""Batched Levenshtein distance in torch, for fast WER/CER during training (CPU or CUDA).

The Wagner–Fischer recurrence (Wagner & Fischer 1974) over reference position i and
hypothesis position j,

    D[i, j] = min(D[i-1, j] + 1, D[i, j-1] + 1, D[i-1, j-1] + [r_i != h_j]),
    D[0, j] = j,  D[i, 0] = i,

is computed one reference position (one row) at a time for the whole batch. The only
sequential dependency inside a row is the insertion term D[i, j-1] + 1; with
T[j] = min(D[i-1, j] + 1, D[i-1, j-1] + cost) (and T[0] = i) it unrolls to

    D[i, j] = min_{k <= j} (T[k] + j - k) = j + cummin_k (T[k] - k),

one ``torch.cummin`` per row. A batch therefore costs max(reference length) steps of
O(batch × hypothesis length) tensor work, on whatever device the inputs are on.

Only the distance is computed (not the S/D/I split): the error rate is summed distances over
summed reference lengths, which the tests prove equal to ``jiwer.wer``/``jiwer.cer``. For
reports with alignments use ``seqlab.metrics.error_rate`` (jiwer).
"""
from __future__ import annotations

import torch

from ..core.errors import InputError


def _lengths(lengths: torch.Tensor | None, tokens: torch.Tensor, name: str) -> torch.Tensor:
    batch, width = tokens.shape
    if lengths is None:
        return torch.full((batch,), width, dtype=torch.long, device=tokens.device)
    lengths = torch.as_tensor(lengths, device=tokens.device).long()
    if lengths.shape != (batch,):
        raise InputError(f"{name}_lengths: expected shape ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > width):
        raise InputError(f"{name}_lengths must lie in [0, {width}] (the padded width of {name})")
    return lengths


def edit_distance_batch(references: torch.Tensor, hypotheses: torch.Tensor,
                        reference_lengths: torch.Tensor | None = None,
                        hypothesis_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Levenshtein distance of each (reference, hypothesis) pair of a padded batch.

    ``references`` (B, R) and ``hypotheses`` (B, H) are integer token ids (word or character
    ids), padded on the right; the lengths (B,) default to the full widths. Returns a (B,)
    ``long`` tensor on the inputs' device. Padding values are never read.

    >>> ref = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    >>> hyp = torch.tensor([[1, 3, 0], [4, 5, 6]])
    >>> edit_distance_batch(ref, hyp, torch.tensor([3, 4]), torch.tensor([2, 3])).tolist()
    [1, 1]
    """
    if references.dim() != 2 or hypotheses.dim() != 2:
        raise InputError(f"references and hypotheses must be 2-D (batch, length); got shapes "
                         f"{tuple(references.shape)} and {tuple(hypotheses.shape)}")
    if references.shape[0] != hypotheses.shape[0]:
        raise InputError(f"batch sizes differ: {references.shape[0]} references, {hypotheses.shape[0]} hypotheses")
    if references.is_floating_point() or hypotheses.is_floating_point():
        raise InputError("references and hypotheses must hold integer token ids, not floats")
    hypotheses = hypotheses.to(references.device)
    ref_len = _lengths(reference_lengths, references, "reference")
    hyp_len = _lengths(hypothesis_lengths, hypotheses, "hypothesis")
    batch, max_ref = references.shape
    width = hypotheses.shape[1]
    device = references.device

    cols = torch.arange(width + 1, device=device)
    row = cols.expand(batch, width + 1).clone()  # D[0, j] = j
    # Distance of pairs whose reference is empty: all insertions.
    distance = row.gather(1, hyp_len[:, None]).squeeze(1)
    for i in range(1, max_ref + 1):
        cost = (references[:, i - 1 : i] != hypotheses).long()  # (B, H)
        best = torch.minimum(row[:, :-1] + cost, row[:, 1:] + 1)  # diagonal or deletion
        t = torch.cat([torch.full((batch, 1), i, dtype=row.dtype, device=device), best], dim=1)
        row = torch.cummin(t - cols, dim=1).values + cols  # insertions, in closed form
        done = ref_len == i
        distance = torch.where(done, row.gather(1, hyp_len[:, None]).squeeze(1), distance)
    return distance


def error_rate_batch(references: torch.Tensor, hypotheses: torch.Tensor,
                     reference_lengths: torch.Tensor | None = None,
                     hypothesis_lengths: torch.Tensor | None = None) -> float:
    """Corpus error rate of a padded batch: summed distances / summed reference lengths.

    With word ids this is WER, with character ids CER — equal to jiwer's value, including
    jiwer 4's rule that a batch with no reference token at all scores its insertion count.

    >>> error_rate_batch(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 9, 4]]))
    0.25
    """
    distance = edit_distance_batch(references, hypotheses, reference_lengths, hypothesis_lengths)
    total_ref = int(_lengths(reference_lengths, references, "reference").sum())
    errors = int(distance.sum())
    return float(errors) if total_ref == 0 else float(errors) / float(total_ref)
