"""A linear-chain conditional random field over per-token tag scores.

The model of Lafferty, McCallum & Pereira (2001), as used on top of a BiLSTM for NER
by Lample et al. (2016, "Neural architectures for named entity recognition", eq. 1-2)
and Huang, Xu & Yu (2015). For emissions ``P`` (B, T, K) from an encoder and a tag
sequence ``y`` of length ``n`` the score is

    s(y) = start[y_1] + sum_t P[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_n]

and ``p(y | x) = exp(s(y)) / Z`` with ``log Z = logsumexp over all K^n sequences``,
which the forward algorithm computes in O(n K^2) (Rabiner 1989, eq. 19-20, in log
space). Training minimises ``-log p(gold)``; ``decode`` is Viterbi (max instead of
logsumexp, then follow the back-pointers); ``marginals`` is forward-backward,
``p(y_t = k | x) = exp(alpha_t[k] + beta_t[k] - log Z)``, a per-token confidence.

Everything is batched and masked: ``mask`` (B, T) marks the real tokens of each
sequence, which must be a prefix (padding only at the end) and at least one token
long. Work is vectorised over the batch and the tags; only time is a Python loop.

On a CPU, inference (``decode``, ``viterbi``, ``marginals``) runs its per-step loops in
numpy: the same operations in the same order on the same dtypes, so the paths are
identical, but each step on a (B, K) array costs about a microsecond instead of torch's
few microseconds of dispatch per operation, which dominates for one short sentence.

Hard constraints (for example "I-PER cannot follow O" in IOB2, from
``seqlab.text.tagging.allowed_transitions``) replace the forbidden scores by a large
negative constant, so no decoded path contains them. A finite constant rather than
``-inf`` keeps every gradient finite: ``logsumexp`` over all ``-inf`` gives NaN
gradients, which would happen for tags no path can reach.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from ..core.errors import InputError

__all__ = ["CRF", "IMPOSSIBLE"]

#: The score given to a forbidden transition. exp(-1e4) is 0 in float32 and float64,
#: so forbidden paths carry no probability mass, yet sums stay finite.
IMPOSSIBLE = -1.0e4

#: Below this a scaled probability-space product in ``CRF.marginals`` is recomputed in log
#: space: the terms float64 drops are under ~1e-308 each, so above 1e-280 the relative error
#: is at most K·1e-43, while below it the sum may have lost all its terms (log 0 = -inf).
_PRODUCT_FLOOR = 1e-280


def _as_bool(value, shape: tuple[int, ...], what: str) -> torch.Tensor:
    mask = torch.as_tensor(value)
    if mask.dtype != torch.bool:
        mask = mask != 0
    if tuple(mask.shape) != shape:
        raise InputError(f"CRF constraints: {what} must have shape {shape}, got {tuple(mask.shape)}")
    return mask.detach().to("cpu").clone()


class CRF(nn.Module):
    """Linear-chain CRF with learned start/end/transition scores and optional hard constraints.

    Args:
        num_tags: K, the number of tags.
        constraints: ``None`` (every transition allowed), a (K, K) bool mask of allowed
            ``from → to`` transitions, or a triple ``(transitions (K, K), start (K,),
            end (K,))`` such as ``seqlab.text.tagging.allowed_transitions(...)``.

    Emissions are (B, T, K) scores, batch first; ``mask`` is (B, T) bool with
    ``mask[:, 0]`` all true. Half-precision emissions are computed in float32; float64
    stays float64. Tags at padded positions are ignored (any value, e.g. -100).

    >>> _ = torch.manual_seed(0)
    >>> crf = CRF(3)
    >>> emissions = torch.randn(2, 4, 3)
    >>> mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    >>> tags = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]])
    >>> crf.nll(emissions, tags, mask).shape
    torch.Size([])
    >>> [len(p) for p in crf.decode(emissions, mask)]
    [4, 2]
    >>> probs = crf.marginals(emissions, mask)  # p(tag | sentence) per token, 0 at padding
    >>> torch.allclose(probs[1].sum(-1), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    True
    """

    def __init__(self, num_tags: int, constraints=None):
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise InputError(f"CRF num_tags must be a positive integer, got {num_tags!r}")
        self.num_tags = num_tags
        k = num_tags
        # Small uniform init as in pytorch-crf: the emissions dominate early training.
        self.transitions = nn.Parameter(torch.empty(k, k).uniform_(-0.1, 0.1))
        self.start_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(k).uniform_(-0.1, 0.1))
        allowed, allowed_start, allowed_end = self._read_constraints(constraints, k)
        if not allowed_start.any() or not allowed_end.any():
            raise InputError("CRF constraints forbid every start tag or every end tag: no sequence is possible")
        # Buffers (saved with the weights) so a loaded model keeps its constraints.
        self.register_buffer("allowed", allowed)
        self.register_buffer("allowed_start", allowed_start)
        self.register_buffer("allowed_end", allowed_end)

    @staticmethod
    def _read_constraints(constraints, k: int):
        if constraints is None:
            ones = torch.ones(k, dtype=torch.bool)
            return torch.ones(k, k, dtype=torch.bool), ones, ones.clone()
        if isinstance(constraints, (tuple, list)) and len(constraints) == 3:
            trans, start, end = constraints
            return (
                _as_bool(trans, (k, k), "transitions"),
                _as_bool(start, (k,), "start"),
                _as_bool(end, (k,), "end"),
            )
        ones = torch.ones(k, dtype=torch.bool)
        return _as_bool(constraints, (k, k), "the transition mask"), ones, ones.clone()

    @property
    def constrained(self) -> bool:
        """Whether any transition, start or end is forbidden."""
        return not (bool(self.allowed.all()) and bool(self.allowed_start.all()) and bool(self.allowed_end.all()))

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, constrained={self.constrained}"

    # ------------------------------------------------------------------ helpers
    def _scores(self, dtype: torch.dtype):
        """(transitions, start, end) in ``dtype`` with forbidden entries set to IMPOSSIBLE."""
        trans = self.transitions.to(dtype).masked_fill(~self.allowed, IMPOSSIBLE)
        start = self.start_transitions.to(dtype).masked_fill(~self.allowed_start, IMPOSSIBLE)
        end = self.end_transitions.to(dtype).masked_fill(~self.allowed_end, IMPOSSIBLE)
        return trans, start, end

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Check the shapes of emissions (and mask); return the emissions in float32/64."""
        if not isinstance(emissions, torch.Tensor) or emissions.dim() != 3:
            got = tuple(emissions.shape) if isinstance(emissions, torch.Tensor) else type(emissions).__name__
            raise InputError(f"CRF emissions must be a (batch, time, num_tags) tensor, got {got}")
        b, t, k = emissions.shape
        if k != self.num_tags:
            raise InputError(f"CRF emissions have {k} tag scores per token, but the CRF has {self.num_tags} tags")
        if t == 0:
            raise InputError("CRF emissions have no time steps; every sequence needs at least one token")
        if mask is not None and tuple(mask.shape) != (b, t):
            raise InputError(f"CRF mask must have shape {(b, t)} like the emissions, got {tuple(mask.shape)}")
        if emissions.dtype not in (torch.float32, torch.float64):
            emissions = emissions.float()  # fp16/bf16 logsumexp over long sequences loses too much
        return emissions

    def _prepare(self, emissions: torch.Tensor, mask: torch.Tensor | None, tags: torch.Tensor | None = None):
        """Check shapes and the mask; return (emissions in float32/64, bool mask, lengths, tags)."""
        emissions = self._check(emissions, mask)
        b, t, k = emissions.shape
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=emissions.device)
        else:
            mask = mask.to(device=emissions.device, dtype=torch.bool)
        lengths = mask.sum(1)
        prefix = torch.arange(t, device=mask.device)[None, :] < lengths[:, None]
        bad_mask = (mask != prefix).any() | ~mask[:, 0].all() if b else torch.zeros((), dtype=torch.bool)
        if tags is not None:
            if tuple(tags.shape) != (b, t):
                raise InputError(f"CRF tags must have shape {(b, t)} like the emissions, got {tuple(tags.shape)}")
            tags = tags.to(device=emissions.device, dtype=torch.long)
            bad_tags = ((tags < 0) | (tags >= k)) & mask
            # One host sync for both checks.
            flags = torch.stack([bad_mask.to(mask.device), bad_tags.any()]).tolist() if b else [False, False]
            if flags[1]:
                pos = bad_tags.nonzero()[0].tolist()
                raise InputError(
                    f"CRF tags must be in [0, {k}) at unmasked positions; got {int(tags[pos[0], pos[1]])} "
                    f"at batch {pos[0]}, time {pos[1]}"
                )
            tags = tags.masked_fill(~mask, 0)  # padding may hold -100 etc.; make it indexable
        else:
            flags = [bool(bad_mask)]
        if flags[0]:
            raise InputError(_MASK_ERROR)
        return emissions, mask, lengths, tags

    def _prepare_host(self, emissions: torch.Tensor, mask: torch.Tensor | None) -> _HostInputs:
        """``_prepare`` for CPU inference: the emissions, mask and lengths as numpy arrays (no copies)."""
        emissions = self._check(emissions, mask)
        em = emissions.detach().numpy()
        b, t, _ = em.shape
        if mask is None:
            return _HostInputs(em, np.ones((b, t), dtype=bool), np.full(b, t, dtype=np.int64), True)
        mask_np = mask.detach().cpu().numpy()
        if mask_np.dtype != np.bool_:
            mask_np = mask_np != 0
        lengths = mask_np.sum(1)
        full = bool((lengths == t).all())
        if not full and b and (not mask_np[:, 0].all() or (mask_np != (np.arange(t) < lengths[:, None])).any()):
            raise InputError(_MASK_ERROR)
        return _HostInputs(em, mask_np, lengths, full)

    def _host_scores(self, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``_scores`` as numpy arrays, reused until a parameter or constraint changes.

        A change is an in-place write (its version counter moves: optimiser steps,
        ``load_state_dict``) or new storage (``.to()``, ``.double()``); the cache holds the
        tensors it was computed from, so their storage cannot be reused at the same address.
        """
        tensors = [self.transitions, self.start_transitions, self.end_transitions, self.allowed, self.allowed_start, self.allowed_end]
        try:
            key = tuple((p.data_ptr(), p._version) for p in tensors)
        except RuntimeError:  # tensors made under torch.inference_mode keep no version: no caching
            key = None
        cache = self.__dict__.setdefault("_host_cache", {})  # dtype → (key, scores, the tensors)
        cached = cache.get(dtype)
        if key is None or cached is None or cached[0] != key:
            with torch.no_grad():
                scores = tuple(x.detach().cpu().numpy() for x in self._scores(dtype))
            cached = (key, scores, [p.detach() for p in tensors])
            if key is not None:
                cache[dtype] = cached
        return cached[1]

    def _forward_alpha(self, emissions, mask, trans, start):
        """Forward algorithm (differentiable); returns the final alpha (B, K)."""
        alpha = start + emissions[:, 0]
        full = _all_real(mask)
        for t in range(1, emissions.shape[1]):
            # alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + P[t, j]
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = nxt if full else torch.where(mask[:, t, None], nxt, alpha)  # finished sequences keep their alpha
        return alpha

    # ------------------------------------------------------------------ scores
    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The unnormalised score s(y) of each tag sequence: (B,)."""
        emissions, mask, lengths, tags = self._prepare(emissions, mask, tags)
        trans, start, end = self._scores(emissions.dtype)
        return self._score(emissions, tags, mask, lengths, trans, start, end)

    @staticmethod
    def _score(emissions, tags, mask, lengths, trans, start, end):
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        total = start[tags[:, 0]] + (emit * maskf).sum(1)
        if tags.shape[1] > 1:
            total = total + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(1)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return total + end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """log Z for each sequence, by the forward algorithm: (B,)."""
        emissions, mask, _, _ = self._prepare(emissions, mask)
        trans, start, end = self._scores(emissions.dtype)
        alpha = self._forward_alpha(emissions, mask, trans, start)
        return torch.logsumexp(alpha + end, dim=1)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """log p(tags | emissions) of each sequence: (B,), always <= 0."""
        emissions, mask, lengths, tags = self._prepare(emissions, mask, tags)
        trans, start, end = self._scores(emissions.dtype)
        gold = self._score(emissions, tags, mask, lengths, trans, start, end)
        alpha = self._forward_alpha(emissions, mask, trans, start)
        return gold - torch.logsumexp(alpha + end, dim=1)

    def nll(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor | None = None,
        reduction: Literal["mean", "sum", "token_mean", "none"] = "mean",
    ) -> torch.Tensor:
        """The training loss ``-log p(tags | emissions)``.

        ``reduction``: ``"mean"`` over sequences, ``"sum"``, ``"token_mean"`` (sum divided
        by the number of real tokens, so the scale does not depend on sentence length),
        or ``"none"`` for the (B,) values.
        """
        ll = self.log_likelihood(emissions, tags, mask)
        if reduction == "mean":
            return -ll.mean()
        if reduction == "sum":
            return -ll.sum()
        if reduction == "none":
            return -ll
        if reduction == "token_mean":
            tokens = mask.sum() if mask is not None else torch.tensor(tags.numel(), device=ll.device)
            return -ll.sum() / tokens.clamp(min=1).to(ll.dtype)
        raise InputError(f"CRF nll reduction must be 'mean', 'sum', 'token_mean' or 'none', got {reduction!r}")

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The best tag sequence of each item and its score s(y).

        Returns ``paths`` (B, T) long, filled with 0 past each sequence's length, and
        ``scores`` (B,); ``scores - log_partition(...)`` is the path's log-probability.
        """
        if emissions.device.type == "cpu":
            host = self._prepare_host(emissions, mask)
            rows, best = _viterbi_host(host, *self._host_scores(_torch_dtype(host.emissions)))
            paths = torch.zeros(host.mask.shape, dtype=torch.long)
            for i, row in enumerate(rows):
                paths[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            return paths, torch.from_numpy(best)
        paths, best_score, _ = self._viterbi(emissions, mask)
        return paths, best_score

    def _viterbi(self, emissions, mask):
        """Viterbi with torch operations (any device): (paths (B, T), best scores (B,), lengths (B,))."""
        emissions, mask, lengths, _ = self._prepare(emissions, mask)
        trans, start, end = self._scores(emissions.dtype)
        b, t, _ = emissions.shape
        score = start + emissions[:, 0]
        history = []
        full = _all_real(mask)
        for step in range(1, t):
            best, back = (score.unsqueeze(2) + trans).max(dim=1)  # over the previous tag
            history.append(back)
            score = best + emissions[:, step] if full else torch.where(mask[:, step, None], best + emissions[:, step], score)
        best_score, cur = (score + end).max(dim=1)
        paths = torch.zeros(b, t, dtype=torch.long, device=emissions.device)
        # Walk back from the end; past a sequence's length ``cur`` stays its last tag,
        # and the back-pointers are only followed where the step was real.
        for step in range(t - 1, -1, -1):
            paths[:, step] = cur
            if step:
                prev = history[step - 1].gather(1, cur.unsqueeze(1)).squeeze(1)
                cur = prev if full else torch.where(mask[:, step], prev, cur)
        return (paths if full else paths.masked_fill(~mask, 0)), best_score, lengths

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> list[list[int]]:
        """The Viterbi tag sequence of each item, as lists of tag indices of each sequence's length."""
        if emissions.device.type == "cpu":
            host = self._prepare_host(emissions, mask)
            return _viterbi_host(host, *self._host_scores(_torch_dtype(host.emissions)))[0]
        with torch.no_grad():
            paths, _, lengths = self._viterbi(emissions, mask)
        rows = paths.tolist()  # one device→host copy for the whole batch
        return [row[:n] for row, n in zip(rows, lengths.tolist())]

    @torch.no_grad()
    def decode_with_confidence(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[list[list[int]], list[list[float]]]:
        """``decode`` and, for each token of each path, its marginal ``p(y_t = path_t | x)``.

        The same values as ``decode`` and ``marginals(...)`` read at the path, from one check
        of the inputs; on a CPU without any tensor operation per step.
        """
        if emissions.device.type != "cpu":
            paths = self.decode(emissions, mask)
            probs = self.marginals(emissions, mask)
            best = torch.tensor([p + [0] * (probs.shape[1] - len(p)) for p in paths], device=probs.device)
            confidences = probs.gather(2, best.unsqueeze(2)).squeeze(2).tolist()
            return paths, [c[: len(p)] for c, p in zip(confidences, paths)]
        host = self._prepare_host(emissions, mask)
        dtype = _torch_dtype(host.emissions)
        paths, _ = _viterbi_host(host, *self._host_scores(dtype))
        probs = _marginals_host(host, *self._host_scores(torch.float64)).astype(host.emissions.dtype, copy=False)
        return paths, [probs[i, np.arange(len(p)), p].tolist() for i, p in enumerate(paths)]

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """p(y_t = k | x) for every token by forward-backward: (B, T, K), zero at padding.

        Without gradients, so on a CPU each step can be a scaled product in probability
        space, ``log(exp(a − max a) @ exp(A − colmax A)) + max a + colmax A`` — a (B, K) ×
        (K, K) matrix product instead of a logsumexp over (B, K, K), about 4× faster. The
        scaling is by the largest alpha and the largest transition *separately*, so when the
        largest alpha can only move on by a forbidden (or very unlikely) transition and the
        allowed predecessors lie more than ~700 nats below it, every term of that sum
        underflows and the product would say ``log 0``. Such an entry is detected (a product
        below ``_PRODUCT_FLOOR``, far above where float64 loses terms) and its row is
        recomputed by the exact logsumexp, so the result is exact at any emission scale. On
        an accelerator that check would wait for the device every step, so there the
        logsumexp form runs throughout (it is parallel there anyway).
        """
        if emissions.device.type == "cpu":
            host = self._prepare_host(emissions, mask)
            probs = _marginals_host(host, *self._host_scores(torch.float64))
            return torch.from_numpy(probs).to(_torch_dtype(host.emissions))
        return self._marginals(emissions, mask)

    def _marginals(self, emissions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Forward-backward with torch operations, in log space throughout (any device)."""
        emissions, mask, _, _ = self._prepare(emissions, mask)
        dtype, emissions = emissions.dtype, emissions.double()
        trans, start, end = self._scores(torch.float64)
        b, t, k = emissions.shape
        alpha = start + emissions[:, 0]
        alphas = [alpha]
        for step in range(1, t):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, step]
            alpha = torch.where(mask[:, step, None], nxt, alpha)
            alphas.append(alpha)
        alphas = torch.stack(alphas, 1)
        log_z = torch.logsumexp(alpha + end, dim=1)
        end_b = end.expand(b, k)
        beta = end_b
        betas = [beta]
        for step in range(t - 2, -1, -1):
            # beta_t[i] = logsumexp_j(A[i, j] + P[t+1, j] + beta_{t+1}[j]); at a sequence's
            # last real token (the next one is padding) beta is the end score.
            nxt = torch.logsumexp((emissions[:, step + 1] + beta).unsqueeze(2) + trans.t(), dim=1)
            beta = torch.where(mask[:, step + 1, None], nxt, end_b)
            betas.append(beta)
        betas = torch.stack(betas[::-1], 1)
        probs = torch.exp(alphas + betas - log_z[:, None, None])
        return (probs * mask.unsqueeze(2).to(probs.dtype)).to(dtype)


_MASK_ERROR = ("CRF mask must mark a non-empty prefix of each sequence: mask[:, 0] all true and "
               "padding only at the end (left-aligned sequences)")


class _HostInputs(NamedTuple):
    """Checked inputs of CPU inference, as numpy arrays."""

    emissions: np.ndarray  # (B, T, K) float32 or float64
    mask: np.ndarray  # (B, T) bool, a prefix of each row
    lengths: np.ndarray  # (B,)
    full: bool  # no padding anywhere: the per-step masking can be skipped


def _torch_dtype(array: np.ndarray) -> torch.dtype:
    return torch.float64 if array.dtype == np.float64 else torch.float32


def _viterbi_host(x: _HostInputs, trans: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Viterbi in numpy: each item's best path (a list of its length) and score (B,).

    The operations of ``CRF._viterbi`` in the same order and dtype (additions and maxima
    only), so the scores are bit-identical; ties go to the lowest tag in both (numpy's
    ``argmax`` and torch's ``max`` return the first maximum). The back-pointers are
    followed in Python lists, after one conversion.
    """
    em, mask, full = x.emissions, x.mask, x.full
    b, t, k = em.shape
    score = start + em[:, 0]
    history = np.empty((t - 1, b, k), dtype=np.int64)
    for step in range(1, t):
        candidates = score[:, :, None] + trans  # (B, previous tag, tag)
        history[step - 1] = candidates.argmax(axis=1)
        nxt = candidates.max(axis=1) + em[:, step]
        score = nxt if full else np.where(mask[:, step, None], nxt, score)
    final = score + end
    last = final.argmax(axis=1)
    best = final[np.arange(b), last]
    back = history.transpose(1, 0, 2).tolist()  # [item][step - 1][tag]
    paths = []
    for i, (cur, n) in enumerate(zip(last.tolist(), x.lengths.tolist())):
        pointers = back[i]
        path = [0] * n
        for step in range(n - 1, 0, -1):
            path[step] = cur
            cur = pointers[step - 1][cur]
        path[0] = cur
        paths.append(path)
    return paths, best


def _logsumexp_host(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return (np.log(np.exp(values - top).sum(axis=axis, keepdims=True)) + top).squeeze(axis)


def _scaled(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``exp(matrix − colmax)`` and the column maxima (1, K): each column holds a 1."""
    top = matrix.max(axis=0, keepdims=True)
    return np.exp(matrix - top), top


def _marginals_host(x: _HostInputs, trans: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Forward-backward in numpy, float64: (B, T, K), zero at padding.

    First in probability space throughout (``_rescaled_marginals``); where that cannot
    vouch for its result (a product below ``_PRODUCT_FLOOR``), with the per-step log-space
    products of ``CRF.marginals`` and their exact fallback.
    """
    em = x.emissions.astype(np.float64, copy=False)
    if em.shape[0] == 0:
        return np.zeros(em.shape)
    probs = _rescaled_marginals(em, x.mask, x.full, trans, start, end)
    return probs if probs is not None else _log_space_marginals(em, x.mask, x.full, trans, start, end)


def _rescaled_marginals(em: np.ndarray, mask: np.ndarray, full: bool, trans: np.ndarray, start: np.ndarray,
                        end: np.ndarray) -> np.ndarray | None:
    """Forward-backward with the vectors kept in probability space, each step rescaled to a maximum of 1
    (Rabiner 1989, §V.A), so a step is a matrix product and two elementwise operations, no log or exp.

    ``a_t ∝ exp(alpha_t)`` and ``b_t ∝ exp(beta_t)``, so ``p(y_t = k | x) = a_t[k] b_t[k] / Σ_j a_t[j] b_t[j]``.
    Entries that underflow are below ~1e-307 of their vector's maximum, so while every
    product ``a_{t-1} @ exp(A − colmax A)`` (and its backward twin) and every final sum stays
    above ``_PRODUCT_FLOOR`` (1e-280), what they lose is below 1e-27 relative: the same test
    the log-space form applies per step. Returns None when any falls below it (an allowed
    path ~650 nats below a forbidden one, as only extreme scores give).
    """
    with np.errstate(all="ignore"):  # an underflow shows as a small product or a NaN: declined below
        return _rescaled_marginals_unchecked(em, mask, full, trans, start, end)


def _rescaled_marginals_unchecked(em, mask, full, trans, start, end) -> np.ndarray | None:
    b, t, k = em.shape
    forward, forward_top = _scaled(trans)  # F[i, j] = exp(A[i, j] − max_i A[i, j])
    backward, backward_top = _scaled(trans.T)  # Bm[j, i] = exp(A[i, j] − max_j A[i, j])
    # alpha_t[j] = log Σ_i exp(alpha_{t−1}[i]) F[i, j] + top[j] + P_t[j]: the last two terms as one
    # factor per step, scaled to a maximum of 1 (their maximum only shifts log Z, which cancels).
    gain = em + forward_top
    gain[:, 0] = start + em[:, 0]
    gain = np.exp(gain - gain.max(axis=2, keepdims=True))
    emit = np.exp(em - em.max(axis=2, keepdims=True))  # backward: P_{t+1}[j]
    back_gain = np.exp(backward_top - backward_top.max())  # backward: top[i]
    alphas = np.empty((b, t, k))
    products = np.empty((2, b, max(t - 1, 1), k))
    products[:, :, 0] = 1.0  # t == 1: no product
    a = alphas[:, 0] = gain[:, 0] / gain[:, 0].max(axis=1, keepdims=True)
    for step in range(1, t):
        product = np.matmul(a, forward, out=products[0, :, step - 1])
        nxt = product * gain[:, step]
        nxt /= nxt.max(axis=1, keepdims=True)
        a = alphas[:, step] = nxt if full else np.where(mask[:, step, None], nxt, a)
    last = np.exp(end - end.max())
    betas = np.empty((b, t, k))
    beta = betas[:, t - 1] = last
    for step in range(t - 2, -1, -1):
        product = np.matmul(beta * emit[:, step + 1], backward, out=products[1, :, step])
        nxt = product * back_gain
        nxt /= nxt.max(axis=1, keepdims=True)
        beta = betas[:, step] = nxt if full else np.where(mask[:, step + 1, None], nxt, last)
    joint = alphas * betas
    total = joint.sum(axis=2, keepdims=True)
    if full:
        floor_ok = products.min() >= _PRODUCT_FLOOR and total.min() >= _PRODUCT_FLOOR
    else:  # steps past a sequence's end hold carried values: only real steps count
        real = mask[:, :, None]
        floor_ok = (np.where(real[:, 1:], products[0, :, : t - 1], 1.0).min() >= _PRODUCT_FLOOR
                    and np.where(real[:, 1:], products[1, :, : t - 1], 1.0).min() >= _PRODUCT_FLOOR
                    and np.where(real, total, 1.0).min() >= _PRODUCT_FLOOR) if t > 1 else total.min() >= _PRODUCT_FLOOR
    if not floor_ok:  # NaN (0 / 0 after an underflow) compares false as well
        return None
    probs = joint / total
    if not full:
        probs *= mask[:, :, None]
    return probs


def _log_space_marginals(em: np.ndarray, mask: np.ndarray, full: bool, trans: np.ndarray, start: np.ndarray,
                         end: np.ndarray) -> np.ndarray:
    """Forward-backward with log-space vectors, each step a scaled product with its exact fallback
    (see ``CRF.marginals``): exact at any emission scale."""
    b, t, k = em.shape
    forward, forward_top = _scaled(trans)
    backward, backward_top = _scaled(trans.T)

    def log_product(v: np.ndarray, matrix: np.ndarray, top: np.ndarray, log_matrix: np.ndarray) -> np.ndarray:
        shift = v.max(axis=1, keepdims=True)
        product = np.exp(v - shift) @ matrix
        if product.min() >= _PRODUCT_FLOOR:  # the common case: exact to float64 rounding
            return np.log(product) + shift + top
        with np.errstate(divide="ignore"):
            out = np.log(product) + shift + top
        rows = (product < _PRODUCT_FLOOR).any(axis=1)
        out[rows] = _logsumexp_host(v[rows][:, :, None] + log_matrix, axis=1)
        return out

    alphas = np.empty((b, t, k))
    alpha = alphas[:, 0] = start + em[:, 0]
    for step in range(1, t):
        nxt = log_product(alpha, forward, forward_top, trans) + em[:, step]
        alpha = alphas[:, step] = nxt if full else np.where(mask[:, step, None], nxt, alpha)
    log_z = _logsumexp_host(alpha + end, axis=1)
    end_b = np.broadcast_to(end, (b, k))
    betas = np.empty((b, t, k))
    beta = betas[:, t - 1] = end_b
    transposed = trans.T
    for step in range(t - 2, -1, -1):
        # beta_t[i] = logsumexp_j(A[i, j] + P[t+1, j] + beta_{t+1}[j]); at a sequence's
        # last real token (the next one is padding) beta is the end score.
        nxt = log_product(em[:, step + 1] + beta, backward, backward_top, transposed)
        beta = betas[:, step] = nxt if full else np.where(mask[:, step + 1, None], nxt, end_b)
    probs = np.exp(alphas + betas - log_z[:, None, None])
    if not full:
        probs *= mask[:, :, None]
    return probs


def _all_real(mask: torch.Tensor) -> bool:
    """No padding anywhere (one sentence, or equal lengths): the per-step masking can be skipped.

    Only asked on the CPU, where the check is free; on an accelerator it would wait for the
    device, so there the masked path runs."""
    return mask.device.type == "cpu" and bool(mask.all())

