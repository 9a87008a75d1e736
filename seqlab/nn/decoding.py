"""Search for the output sequence of an autoregressive decoder: greedy and beam search.

Both work on any decoder written as one step function

    ``step(tokens (N,), state, memory) -> (log_probs (N, V), state, attention (N, S))``

where ``state`` and ``memory`` are tuples of tensors whose first axis is the hypothesis
(so this module can select, repeat and reorder them without knowing what they hold).
Both are batched over sentences: a sentence that is done is dropped from the batch, so
the remaining ones do not pay for it.

- **Greedy**: the most probable token at each step.
- **Beam search** (as in Sutskever, Vinyals & Le 2014 and Koehn's "Pharaoh" lineage; the
  bookkeeping follows fairseq's ``SequenceGenerator``): keep the ``K`` best prefixes by
  summed log-probability; of the ``2K`` best expansions, those among the first ``K`` that
  end with ``<eos>`` are finished hypotheses, the best ``K`` others go on. A sentence is
  done when it has ``K`` finished hypotheses (all of its beams have ended) or reaches its
  maximum length; the search stops when every sentence is done.
- **Length normalisation** of finished hypotheses (the search itself ranks prefixes by raw
  sums, which favour short outputs): ``gnmt`` divides by ``((5 + |y|) / 6) ** alpha`` (Wu
  et al. 2016, "Google's Neural Machine Translation System", eq. 14), ``mean`` by ``|y|``
  (mean log-probability per token), ``none`` keeps the sum. ``|y|`` counts ``<eos>``.
- **Maximum length** relative to the source: ``floor(max_len_a * src_len + max_len_b)``
  output tokens, after which ``<eos>`` is forced.

Every hypothesis carries the attention weights of its own steps (``(len(tokens), S)``,
without the ``<eos>`` step and cut to its source length), for alignment plots.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..core.errors import ConfigError

StepFn = Callable[[Tensor, tuple, tuple], tuple[Tensor, tuple, Tensor]]
LENGTH_PENALTIES = ("gnmt", "mean", "none")


@dataclass
class Hypothesis:
    """One output sequence: tokens (no ``<bos>``/``<eos>``), scores and its attention."""

    tokens: list[int]
    #: Sum of the log-probabilities of the tokens and the final ``<eos>``.
    score: float
    #: ``score`` after length normalisation (what beam search ranks finished outputs by).
    normalized_score: float
    #: ``(len(tokens), src_len)`` attention weights, one row per output token.
    attention: Tensor


def check_beam_size(beam_size: int, where: str = "beam_size") -> int:
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"{where} must be an integer >= 1 (1 is greedy search), got {beam_size!r}")
    return beam_size


def check_length_penalty(kind: str, alpha: float) -> None:
    if kind not in LENGTH_PENALTIES:
        raise ConfigError(f"length_penalty must be one of {', '.join(LENGTH_PENALTIES)}, got {kind!r}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ConfigError(f"length_alpha must be a finite number >= 0, got {alpha!r}")


def normalize_score(score: float, length: int, kind: str = "gnmt", alpha: float = 0.6) -> float:
    """Length-normalised log-probability of a hypothesis of ``length`` tokens (``<eos>`` included).

    >>> normalize_score(-6.0, 3, "mean"), normalize_score(-6.0, 1, "gnmt", 1.0), normalize_score(-6.0, 3, "none")
    (-2.0, -6.0, -6.0)
    """
    if kind == "none":
        return score
    if kind == "mean":
        return score / max(length, 1)
    return score / (((5.0 + length) / 6.0) ** alpha)


def max_target_lengths(src_lengths: Tensor, max_len_a: float, max_len_b: int) -> Tensor:
    """``floor(a * src_len + b)`` output tokens per sentence, at least 0.

    >>> max_target_lengths(torch.tensor([4, 10]), 1.5, 5).tolist()
    [11, 20]
    """
    if max_len_a < 0:
        raise ConfigError(f"max_len_a must be >= 0, got {max_len_a}")
    return (src_lengths.double() * max_len_a + max_len_b).floor().clamp(min=0).long()


def _select(tensors: tuple, index: Tensor) -> tuple:
    return tuple(t.index_select(0, index) for t in tensors)


def _full_precision(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _prepare(log_probs: Tensor, forced_eos: Tensor, banned: Sequence[int], eos_id: int) -> Tensor:
    """Log-probs (at least float32) with banned ids at -inf, and only ``<eos>`` left where ``forced_eos``."""
    log_probs = _full_precision(log_probs).clone()
    for index in banned:
        log_probs[:, index] = float("-inf")
    if bool(forced_eos.any()):
        eos = log_probs[forced_eos, eos_id].clone()
        log_probs[forced_eos] = float("-inf")
        log_probs[forced_eos, eos_id] = eos
    return log_probs


@torch.no_grad()
def greedy_search(
    step: StepFn,
    state: tuple,
    memory: tuple,
    src_lengths: Tensor,
    bos_id: int,
    eos_id: int,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    banned: Sequence[int] = (),
    length_penalty: Literal["gnmt", "mean", "none"] = "none",
    length_alpha: float = 0.6,
) -> list[Hypothesis]:
    """The most probable token at every step, for each sentence of the batch.

    ``banned`` ids (e.g. ``<pad>``, ``<bos>``) are never produced. Returns one
    ``Hypothesis`` per sentence, in order.

    >>> V = 5
    >>> def step(tokens, state, memory):  # always prefers token 4, then <eos>=3 after two
    ...     logits = torch.zeros(len(tokens), V); logits[:, 4] = 2.0
    ...     logits[state[0] >= 2, 3] = 5.0
    ...     return logits.log_softmax(-1), (state[0] + 1,), torch.ones(len(tokens), 1)
    >>> hyp = greedy_search(step, (torch.zeros(1),), (torch.zeros(1, 1),), torch.tensor([1]), 2, 3)[0]
    >>> hyp.tokens, hyp.attention.shape
    ([4, 4], torch.Size([2, 1]))
    """
    check_length_penalty(length_penalty, length_alpha)
    batch = src_lengths.shape[0]
    device = src_lengths.device
    src_lengths_cpu = src_lengths.to("cpu").tolist()
    max_lens = max_target_lengths(src_lengths, max_len_a, max_len_b).to(device)
    alive = torch.arange(batch, device=device)
    tokens = torch.full((batch,), bos_id, dtype=torch.long, device=device)
    history = torch.empty(batch, 0, dtype=torch.long, device=device)
    attention: Tensor | None = None
    scores = torch.zeros(batch, dtype=torch.float64, device=device)  # sums kept in double precision
    results: list[Hypothesis | None] = [None] * batch
    t = 0
    while alive.numel():
        log_probs, state, weights = step(tokens, state, memory)
        log_probs = _prepare(log_probs, max_lens <= t, banned, eos_id)
        best, tokens = log_probs.max(dim=-1)
        scores = scores + best
        weights = _full_precision(weights).unsqueeze(1)
        ended = tokens.eq(eos_id)
        if bool(ended.any()):
            for row in ended.nonzero().flatten().tolist():
                b = int(alive[row])
                toks = history[row].tolist()
                att = attention[row] if attention is not None else weights[row, :0]
                score = float(scores[row])
                results[b] = Hypothesis(
                    toks, score, normalize_score(score, len(toks) + 1, length_penalty, length_alpha),
                    att[:, : src_lengths_cpu[b]].cpu(),
                )
        history = torch.cat([history, tokens.unsqueeze(1)], dim=1)
        attention = weights if attention is None else torch.cat([attention, weights], dim=1)
        if bool(ended.any()):
            keep = (~ended).nonzero().flatten()
            alive, tokens, history, attention, scores, max_lens = (
                x.index_select(0, keep) for x in (alive, tokens, history, attention, scores, max_lens)
            )
            state, memory = _select(state, keep), _select(memory, keep)
        t += 1
    return results  # type: ignore[return-value]


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: tuple,
    memory: tuple,
    src_lengths: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 5,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    banned: Sequence[int] = (),
    length_penalty: Literal["gnmt", "mean", "none"] = "gnmt",
    length_alpha: float = 0.6,
) -> list[Hypothesis]:
    """Beam search over a batch of sentences; the best finished hypothesis of each.

    "Best" is by ``normalized_score``. With ``beam_size=1`` the result is the greedy one.

    >>> V = 6
    >>> def step(tokens, state, memory):  # a fixed first step; <eos>=3 is likely after it
    ...     logits = torch.tensor([[0.0, 0, 0, -9, 1.0, 0.9]]).expand(len(tokens), V).clone()
    ...     logits[state[0] >= 1, 3] = 9.0
    ...     return logits.log_softmax(-1), (state[0] + 1,), torch.ones(len(tokens), 1)
    >>> hyp = beam_search(step, (torch.zeros(1),), (torch.zeros(1, 1),), torch.tensor([1]), 2, 3, beam_size=2)[0]
    >>> hyp.tokens
    [4]
    """
    check_beam_size(beam_size)
    check_length_penalty(length_penalty, length_alpha)
    K = beam_size
    batch = src_lengths.shape[0]
    device = src_lengths.device
    src_lengths_cpu = src_lengths.to("cpu").tolist()
    max_lens = max_target_lengths(src_lengths, max_len_a, max_len_b).to(device)
    # Each sentence's K beams are consecutive rows of the state and memory.
    expand = torch.arange(batch, device=device).repeat_interleave(K)
    state, memory = _select(state, expand), _select(memory, expand)
    alive = torch.arange(batch, device=device)
    tokens = torch.full((batch * K,), bos_id, dtype=torch.long, device=device)
    history = torch.empty(batch * K, 0, dtype=torch.long, device=device)
    attention: Tensor | None = None
    # At the start the K beams are copies of one: only the first may be expanded.
    scores = torch.full((batch, K), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    t = 0
    while alive.numel():
        n = alive.numel()
        log_probs, state, weights = step(tokens, state, memory)
        vocab = log_probs.shape[-1]
        forced = (max_lens <= t).repeat_interleave(K)
        log_probs = _prepare(log_probs, forced, banned, eos_id)
        weights = _full_precision(weights).unsqueeze(1)
        candidates = (scores.unsqueeze(-1) + log_probs.view(n, K, vocab)).view(n, K * vocab)
        n_cand = min(2 * K, K * vocab)
        top_scores, top_index = candidates.topk(n_cand, dim=1)  # sorted, best first
        origin = torch.div(top_index, vocab, rounding_mode="floor")
        token = top_index % vocab
        is_eos = token.eq(eos_id) & torch.isfinite(top_scores)
        # Hypotheses ending in <eos> among the K best are finished.
        ends = is_eos[:, :K]
        if bool(ends.any()):
            rows, cols = ends.nonzero(as_tuple=True)
            for r, c in zip(rows.tolist(), cols.tolist()):
                b = int(alive[r])
                flat = r * K + int(origin[r, c])
                toks = history[flat].tolist()
                att = attention[flat] if attention is not None else weights[flat, :0]
                score = float(top_scores[r, c])
                finished[b].append(Hypothesis(
                    toks, score, normalize_score(score, len(toks) + 1, length_penalty, length_alpha),
                    att[:, : src_lengths_cpu[b]].cpu(),
                ))
        # The K best expansions that do not end go on (stable: best first).
        position = torch.arange(n_cand, device=device).expand(n, n_cand)
        rank = torch.where(is_eos | token.eq(eos_id), position + n_cand, position)
        chosen = rank.argsort(dim=1, stable=True)[:, :K]
        scores = top_scores.gather(1, chosen)
        parent = (torch.arange(n, device=device).unsqueeze(1) * K + origin.gather(1, chosen)).view(-1)
        tokens = token.gather(1, chosen).view(-1)
        history = torch.cat([history.index_select(0, parent), tokens.unsqueeze(1)], dim=1)
        step_weights = weights.index_select(0, parent)
        attention = (step_weights if attention is None
                     else torch.cat([attention.index_select(0, parent), step_weights], dim=1))
        state = _select(state, parent)
        counts = torch.tensor([len(finished[int(b)]) for b in alive.tolist()], device=device)
        done = counts.ge(K) | max_lens.le(t) | ~torch.isfinite(scores).any(dim=1)
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            keep_rows = (keep.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)
            alive, scores, max_lens = (x.index_select(0, keep) for x in (alive, scores, max_lens))
            tokens, history, attention = (x.index_select(0, keep_rows) for x in (tokens, history, attention))
            state, memory = _select(state, keep_rows), _select(memory, keep_rows)
        t += 1
    results = []
    for b, hyps in enumerate(finished):
        if not hyps:  # only if every expansion was impossible (-inf): nothing to say
            hyps = [Hypothesis([], float("-inf"), float("-inf"), torch.zeros(0, src_lengths_cpu[b]))]
        # Python's max keeps the first of equals: the earlier (higher raw score) one.
        results.append(max(hyps, key=lambda h: h.normalized_score))
    return results
