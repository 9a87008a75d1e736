"""Connectionist temporal classification: the loss with its length rules, and decoding.

CTC (Graves, Fernández, Gomez & Schmidhuber 2006, "Connectionist Temporal Classification:
Labelling Unsegmented Sequence Data with Recurrent Neural Networks") gives an encoder's
per-frame distributions ``y_t`` over the labels plus a *blank* (id 0 here) and scores a
label sequence ``l`` by summing over every frame-level path ``π`` that collapses to it
(``B``: merge repeated labels, then drop blanks)::

    p(l | x) = Σ_{π ∈ B⁻¹(l)} Π_t y_t(π_t)                                    (eq. 3)

computed by the forward–backward recursion of their §3.1; ``torch.nn.CTCLoss`` implements
it (``−log p(l | x)``). What this module adds around it:

- **Lengths.** A path needs at least ``|l| + r`` frames, ``r`` the number of adjacent
  repeated labels (a blank must separate "l l"). After a strided front end the encoder
  has fewer frames than the features (``ConvStack.output_lengths`` counts them exactly).
  ``ctc_loss`` finds the examples whose target cannot fit their output frames and leaves
  them out of the loss, returning how many it skipped — ``zero_infinity`` alone would hide
  them silently (their loss is +inf, set to 0). The loss is computed on float32
  log-probabilities with autocast off, so AMP never runs the recursion in half precision.
- **Greedy decoding**: the most probable label per frame, then ``B`` (repeats merged,
  blanks removed) — the best *path*, not necessarily the best label sequence.
- **Prefix beam search** (Hannun, Maas, Jurafsky & Ng 2014, "First-Pass Large Vocabulary
  Continuous Speech Recognition using Bi-Directional Recurrent DNNs", Algorithm 1): keeps
  the ``beam_size`` best label *prefixes*, each with the probability of its paths ending in
  blank (``p_b``) and in a label (``p_nb``), so the probability of a prefix sums over its
  alignments. Optionally constrained by a word list (a prefix whose partial word starts no
  listed word is dropped) and rescored by a word n-gram LM at each word end::

      score(W) = log p_ctc(W | x) + α · log p_lm(W) + β · |W|             (their eq. 1)

- **Forced alignment** (``ctc_align``): the best path for a *given* label sequence
  (Viterbi over the 2|l|+1 CTC states), for per-token / per-word timings and scores.
- ``NGramLM``: a word n-gram model with interpolated absolute discounting (Ney, Essen &
  Kneser 1994), read from / written to the ARPA format, so a KenLM/SRILM model also works.

torchaudio's ``ctc_decoder`` (flashlight) would be the obvious choice for beam search, but
it needs the ``flashlight-text`` package, which is not installed here; this module has no
dependency beyond torch.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError, DataError, InputError

__all__ = [
    "BLANK",
    "CTCHead",
    "CTCLossResult",
    "BeamHypothesis",
    "NGramLM",
    "TokenSpan",
    "WordList",
    "beam_search_batch",
    "collapse",
    "ctc_align",
    "ctc_loss",
    "ctc_min_frames",
    "greedy_decode",
    "prefix_beam_search",
    "sequence_log_prob",
]

#: The blank label's id: CTC heads here put it first, labels are 1 … V−1.
BLANK = 0

_NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


# -- the head ----------------------------------------------------------------------------------
class CTCHead(nn.Module):
    """Linear read-out to ``num_labels + 1`` classes, the blank first; float32 log-probabilities.

    >>> head = CTCHead(6, num_labels=4)
    >>> lp = head(torch.randn(2, 5, 6))
    >>> lp.shape, lp.dtype, bool(torch.allclose(lp.exp().sum(-1), torch.ones(2, 5)))
    (torch.Size([2, 5, 5]), torch.float32, True)
    """

    def __init__(self, input_size: int, num_labels: int) -> None:
        super().__init__()
        if num_labels < 1:
            raise ConfigError(f"CTCHead: num_labels must be >= 1 (the blank comes on top), got {num_labels}")
        self.num_classes = num_labels + 1
        self.linear = nn.Linear(input_size, self.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # log_softmax in float32 even under autocast: the CTC recursion sums many small
        # probabilities and bf16/fp16 log-probabilities lose them.
        return self.linear(x).float().log_softmax(dim=-1)


# -- the loss ----------------------------------------------------------------------------------
def ctc_min_frames(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """Frames a CTC path for each target needs: its length plus its adjacent repeats.

    ``targets`` is ``(B, L)`` padded (any pad value) with ``target_lengths`` ``(B,)``.

    >>> ctc_min_frames(torch.tensor([[1, 1, 2, 0], [3, 4, 4, 4]]), torch.tensor([3, 4]))
    tensor([4, 6])
    """
    if targets.dim() != 2:
        raise InputError(f"ctc_min_frames: targets must be (batch, length), got shape {tuple(targets.shape)}")
    lengths = target_lengths.to(targets.device).long()
    if targets.shape[1] < 2:
        return lengths.clone()
    pos = torch.arange(1, targets.shape[1], device=targets.device)
    inside = pos.unsqueeze(0) < lengths.unsqueeze(1)
    repeats = ((targets[:, 1:] == targets[:, :-1]) & inside).sum(1)
    return lengths + repeats


@dataclass
class CTCLossResult:
    """The mean loss over the kept examples, and which examples were left out."""

    loss: Tensor
    #: Examples left out because their target needs more frames than they have.
    skipped: int = 0
    #: ``(B,)`` bool: the examples the loss covers.
    kept: Tensor | None = None


def ctc_loss(
    log_probs: Tensor,
    output_lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    reduction: str = "mean",
    blank: int = BLANK,
) -> CTCLossResult:
    """CTC loss of a batch, leaving out the examples whose target cannot fit.

    ``log_probs`` ``(B, T, C)`` (batch first, log-softmax over C classes, blank = 0),
    ``output_lengths`` ``(B,)`` valid frames per example (after any striding), ``targets``
    ``(B, L)`` padded label ids in ``1 … C−1``, ``target_lengths`` ``(B,)``.

    An example whose target needs more frames than ``output_lengths`` gives it (see
    ``ctc_min_frames``) is infeasible: its loss would be +inf. It is left out and counted in
    ``skipped``; when every example is infeasible the loss is a zero that still has a
    gradient path, so a training step does nothing instead of failing. ``reduction``:
    ``"mean"`` is torch's (each loss divided by its target length, then the batch mean),
    ``"sum"`` the sum over examples divided by their number (per-utterance mean).

    >>> lp = torch.randn(2, 4, 3).log_softmax(-1)
    >>> out = ctc_loss(lp, torch.tensor([4, 2]), torch.tensor([[1, 2, 1], [1, 1, 0]]), torch.tensor([3, 2]))
    >>> out.skipped, out.kept.tolist()        # "1 1" needs 3 frames, the second example has 2
    (1, [True, False])
    """
    if log_probs.dim() != 3:
        raise InputError(f"ctc_loss: log_probs must be (batch, frames, classes), got shape {tuple(log_probs.shape)}")
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"ctc_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
    batch, frames, classes = log_probs.shape
    device = log_probs.device
    output_lengths = output_lengths.to(device).long()
    target_lengths = target_lengths.to(device).long()
    if output_lengths.shape != (batch,) or target_lengths.shape != (batch,):
        raise InputError(
            f"ctc_loss: output_lengths and target_lengths must both be ({batch},), got "
            f"{tuple(output_lengths.shape)} and {tuple(target_lengths.shape)}"
        )
    if batch and int(output_lengths.max()) > frames:
        raise InputError(f"ctc_loss: an output length ({int(output_lengths.max())}) exceeds the {frames} frames of log_probs")
    targets = targets.to(device).long()
    if targets.numel():
        valid = torch.arange(targets.shape[1], device=device).unsqueeze(0) < target_lengths.unsqueeze(1)
        labels = targets[valid]
        if labels.numel() and (int(labels.min()) < 1 or int(labels.max()) >= classes):
            raise InputError(
                f"ctc_loss: target labels must lie in 1 … {classes - 1} (0 is the blank), got "
                f"{int(labels.min())} … {int(labels.max())}"
            )
    kept = ctc_min_frames(targets, target_lengths) <= output_lengths
    skipped = int(batch - int(kept.sum()))
    if skipped == batch:
        return CTCLossResult(log_probs.sum() * 0.0, skipped, kept)
    if skipped:
        index = kept.nonzero().flatten()
        log_probs, output_lengths = log_probs.index_select(0, index), output_lengths.index_select(0, index)
        targets, target_lengths = targets.index_select(0, index), target_lengths.index_select(0, index)
    with torch.autocast(device_type=device.type, enabled=False):
        per_example = F.ctc_loss(
            log_probs.float().transpose(0, 1), targets, output_lengths, target_lengths,
            blank=blank, reduction="none", zero_infinity=True,
        )
    if reduction == "mean":
        per_example = per_example / target_lengths.clamp_min(1).to(per_example.dtype)
    return CTCLossResult(per_example.mean(), skipped, kept)


def sequence_log_prob(log_probs: Tensor, output_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """``log p(l | x)`` per example (eq. 3), ``-inf`` where the target cannot fit.

    >>> lp = torch.tensor([[[0.6, 0.4], [0.6, 0.4]]]).log()
    >>> round(float(sequence_log_prob(lp, torch.tensor([2]), torch.tensor([[1]]), torch.tensor([1])).exp()), 4)
    0.64
    """
    device = log_probs.device
    with torch.autocast(device_type=device.type, enabled=False):
        nll = F.ctc_loss(
            log_probs.float().transpose(0, 1), targets.to(device).long(), output_lengths.to(device).long(),
            target_lengths.to(device).long(), blank=BLANK, reduction="none", zero_infinity=False,
        )
    return -nll


# -- greedy ------------------------------------------------------------------------------------
def collapse(ids: Sequence[int], blank: int = BLANK) -> list[int]:
    """CTC's many-to-one map B: merge runs of the same id, then drop blanks.

    >>> collapse([0, 1, 1, 0, 1, 2, 2, 0])
    [1, 1, 2]
    """
    out: list[int] = []
    previous = None
    for i in ids:
        i = int(i)
        if i != previous and i != blank:
            out.append(i)
        previous = i
    return out


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, blank: int = BLANK) -> list[list[int]]:
    """Best path per example: argmax per frame, then ``collapse``. ``log_probs`` ``(B, T, C)``.

    >>> lp = torch.eye(3)[[1, 1, 0, 1, 2, 0]].unsqueeze(0).log()
    >>> greedy_decode(lp)
    [[1, 1, 2]]
    """
    if log_probs.dim() != 3:
        raise InputError(f"greedy_decode: log_probs must be (batch, frames, classes), got shape {tuple(log_probs.shape)}")
    best = log_probs.argmax(-1)  # on the device; only the ids travel
    batch, frames = best.shape
    if lengths is None:
        lengths = torch.full((batch,), frames, dtype=torch.long)
    previous = F.pad(best, (1, 0), value=-1)[:, :-1]
    keep = (best != blank) & (best != previous)
    keep &= torch.arange(frames, device=best.device).unsqueeze(0) < lengths.to(best.device).unsqueeze(1)
    best, keep = best.cpu(), keep.cpu()
    return [best[b][keep[b]].tolist() for b in range(batch)]


# -- word list and language model -------------------------------------------------------------
class WordList:
    """A set of allowed words with all their prefixes, for constrained beam search.

    >>> words = WordList(["cat", "car"])
    >>> words.is_prefix("ca"), words.is_prefix("co"), "cat" in words, "ca" in words
    (True, False, True, False)
    """

    def __init__(self, words: Iterable[str]) -> None:
        self.words = frozenset(w for w in words if w)
        if not self.words:
            raise ConfigError("word list: it is empty; give at least one word (or none for no constraint)")
        self._prefixes = frozenset(w[:i] for w in self.words for i in range(len(w) + 1))

    def __contains__(self, word: object) -> bool:
        return word in self.words

    def __len__(self) -> int:
        return len(self.words)

    def is_prefix(self, partial: str) -> bool:
        return partial in self._prefixes


_ARPA_SECTION = re.compile(r"^\\(\d+)-grams:\s*$")


class NGramLM:
    """A word n-gram language model in backoff (ARPA) form; natural-log probabilities.

    ``fit`` estimates interpolated absolute discounting: for a history ``h`` seen
    ``c(h)`` times, followed by ``N₁₊(h•)`` distinct words,

        p(w | h) = max(c(h w) − D, 0) / c(h) + (D · N₁₊(h•) / c(h)) · p(w | h′)

    with ``h′`` the history without its oldest word, down to a unigram interpolated with the
    uniform distribution over the vocabulary (``<unk>`` included). The interpolation weight is
    exactly an ARPA backoff weight, so the model is stored (``to_arpa``) and read
    (``from_arpa``) in that format, as KenLM/SRILM models are.

    >>> lm = NGramLM.fit(["one two", "one three"], order=2)
    >>> lm.log_prob(("<s>",), "one") > lm.log_prob(("<s>",), "two")
    True
    >>> round(sum(math.exp(lm.log_prob(("one",), w)) for w in lm.vocabulary if w != "<s>"), 6)
    1.0
    """

    def __init__(self, order: int, probs: dict[tuple[str, ...], float], backoffs: dict[tuple[str, ...], float]) -> None:
        if order < 1:
            raise ConfigError(f"NGramLM: order must be >= 1, got {order}")
        self.order = order
        self.probs = probs
        self.backoffs = backoffs
        self.vocabulary = sorted({ngram[0] for ngram in probs if len(ngram) == 1})
        self._unk = probs.get(("<unk>",), math.log(1e-7))

    # -- estimation --------------------------------------------------------------------------
    @classmethod
    def fit(cls, sentences: Iterable[str | Sequence[str]], order: int = 3, discount: float = 0.7) -> "NGramLM":
        """Estimate from sentences (strings are split on white space)."""
        if order < 1:
            raise ConfigError(f"NGramLM.fit: order must be >= 1, got {order}")
        if not 0.0 < discount < 1.0:
            raise ConfigError(f"NGramLM.fit: discount must be in (0, 1), got {discount}")
        counts: list[Counter] = [Counter() for _ in range(order + 1)]
        for sentence in sentences:
            words = sentence.split() if isinstance(sentence, str) else list(sentence)
            padded = ["<s>"] + words + ["</s>"]
            for i in range(1, len(padded)):
                for n in range(1, order + 1):
                    if i - n + 1 < 0:
                        break
                    counts[n][tuple(padded[i - n + 1 : i + 1])] += 1
        total = sum(counts[1].values())
        if total == 0:
            raise DataError("NGramLM.fit: no sentences to estimate from")
        vocab = set(w for (w,) in counts[1]) | {"</s>", "<unk>"}
        probs: dict[tuple[str, ...], float] = {}
        backoffs: dict[tuple[str, ...], float] = {}
        uniform = 1.0 / len(vocab)
        left = discount * len(counts[1]) / total
        for w in vocab:
            probs[(w,)] = math.log(max(counts[1].get((w,), 0) - discount, 0.0) / total + left * uniform)
        probs[("<s>",)] = -99.0 * math.log(10.0)  # never predicted; ARPA's convention
        for n in range(2, order + 1):
            history_total: Counter = Counter()
            history_types: Counter = Counter()
            for ngram, c in counts[n].items():
                history_total[ngram[:-1]] += c
                history_types[ngram[:-1]] += 1
            for history, c_h in history_total.items():
                backoffs[history] = math.log(discount * history_types[history] / c_h)
            lower = cls(n - 1, dict(probs), dict(backoffs))
            for ngram, c in counts[n].items():
                history = ngram[:-1]
                c_h = history_total[history]
                p = max(c - discount, 0.0) / c_h + math.exp(backoffs[history]) * math.exp(lower.log_prob(history[1:], ngram[-1]))
                probs[ngram] = math.log(p)
        return cls(order, probs, backoffs)

    # -- scoring -----------------------------------------------------------------------------
    def log_prob(self, context: Sequence[str], word: str) -> float:
        """``ln p(word | context)`` by ARPA backoff; the context's last ``order − 1`` words count."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        for start in range(len(context) + 1):
            history = context[start:]
            value = self.probs.get(history + (word,))
            if value is not None:
                return penalty + value
            penalty += self.backoffs.get(history, 0.0) if history else 0.0
        return penalty + self._unk

    def sentence_log_prob(self, words: Sequence[str]) -> float:
        context: tuple[str, ...] = ("<s>",)
        total = 0.0
        for w in list(words) + ["</s>"]:
            total += self.log_prob(context, w)
            context = (context + (w,))[-max(self.order - 1, 1):]
        return total

    # -- ARPA --------------------------------------------------------------------------------
    def to_arpa(self) -> str:
        """The model as ARPA text (log10 values)."""
        ln10 = math.log(10.0)
        by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
        for ngram in self.probs:
            by_order[len(ngram)].append(ngram)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in range(1, self.order + 1)]
        for n in range(1, self.order + 1):
            lines += ["", f"\\{n}-grams:"]
            for ngram in sorted(by_order[n]):
                row = f"{self.probs[ngram] / ln10:.6f}\t{' '.join(ngram)}"
                if n < self.order and ngram in self.backoffs:
                    row += f"\t{self.backoffs[ngram] / ln10:.6f}"
                lines.append(row)
        lines += ["", "\\end\\", ""]
        return "\n".join(lines)

    @classmethod
    def from_arpa(cls, source: str | Path) -> "NGramLM":
        """Read ARPA text, or the file at ``source`` (a path that exists, or ends in .arpa)."""
        text = source
        where = "ARPA text"
        if isinstance(source, Path) or (isinstance(source, str) and "\\data\\" not in source):
            path = Path(source)
            where = f"ARPA file {str(path)!r}"
            if not path.is_file():
                raise DataError(f"{where} does not exist")
            text = path.read_text(encoding="utf-8", errors="replace")
        probs: dict[tuple[str, ...], float] = {}
        backoffs: dict[tuple[str, ...], float] = {}
        ln10 = math.log(10.0)
        order = 0
        section = 0
        for number, line in enumerate(str(text).splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line == "\\data\\":
                continue
            if line == "\\end\\":
                break
            match = _ARPA_SECTION.match(line)
            if match:
                section = int(match.group(1))
                order = max(order, section)
                continue
            if section == 0:
                continue
            fields = line.split()
            if len(fields) not in (section + 1, section + 2):
                raise DataError(f"{where} line {number}: expected log-prob, {section} word(s) and maybe a backoff, got {line!r:.80}")
            try:
                ngram = tuple(fields[1 : section + 1])
                probs[ngram] = float(fields[0]) * ln10
                if len(fields) == section + 2:
                    backoffs[ngram] = float(fields[-1]) * ln10
            except ValueError:
                raise DataError(f"{where} line {number}: a log-probability is not a number: {line!r:.80}") from None
        if not probs:
            raise DataError(f"{where} holds no n-grams (is it an ARPA file?)")
        return cls(order, probs, backoffs)


# -- prefix beam search ------------------------------------------------------------------------
@dataclass
class BeamHypothesis:
    """One result of ``prefix_beam_search``."""

    ids: list[int]
    #: ``log p_ctc(ids | x)`` summed over the alignments the beam kept.
    ctc_score: float
    #: ``α · log p_lm + β · words`` (0 without an LM and word bonus).
    lm_score: float = 0.0
    words: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.ctc_score + self.lm_score


@dataclass
class _Prefix:
    ids: tuple[int, ...]
    p_b: float = _NEG_INF
    p_nb: float = _NEG_INF
    lm: float = 0.0
    words: tuple[str, ...] = ()
    partial: str = ""

    @property
    def total(self) -> float:
        return _logaddexp(self.p_b, self.p_nb)


def prefix_beam_search(
    log_probs: Tensor | Sequence[Sequence[float]],
    beam_size: int = 8,
    labels: Sequence[str] | None = None,
    word_separator: str | None = " ",
    word_list: WordList | Iterable[str] | None = None,
    lm: NGramLM | None = None,
    lm_weight: float = 0.5,
    word_bonus: float = 0.0,
    token_min_prob: float = 0.0,
    blank: int = BLANK,
    length: int | None = None,
) -> list[BeamHypothesis]:
    """CTC prefix beam search over one utterance's ``(T, C)`` log-probabilities, best first.

    ``labels[i]`` is the text of class ``i`` (``labels[blank]`` is ignored); it is needed
    only for a word list or an LM. ``word_separator``: the label that ends a word in a
    character model (``" "``), or ``None`` when every label is a word (a word-level model).
    ``token_min_prob`` skips labels below that probability at a frame (0: try all; the
    ``beam_size`` most probable are always tried). Returns up to ``beam_size`` hypotheses.

    With ``beam_size=1`` this is greedy decoding whenever one class dominates each frame
    (probability ≥ 0.75: then the best prefix always holds the best path); on flat frames it
    may differ, since it ranks prefixes by the sum over their alignments, not one path.

    >>> lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()    # greedy says "" (p = 0.36)
    >>> best = prefix_beam_search(lp, beam_size=4)[0]
    >>> best.ids, round(math.exp(best.ctc_score), 2)        # but p("a") = 0.64
    ([1], 0.64)
    """
    if isinstance(log_probs, Tensor):
        if log_probs.dim() != 2:
            raise InputError(f"prefix_beam_search: log_probs must be (frames, classes), got shape {tuple(log_probs.shape)}")
        frames_lp = log_probs.detach().float().cpu().tolist()
    else:
        frames_lp = [list(map(float, row)) for row in log_probs]
    if length is not None:
        frames_lp = frames_lp[: int(length)]
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"prefix_beam_search: beam_size must be an integer >= 1, got {beam_size!r}")
    if word_list is not None and not isinstance(word_list, WordList):
        word_list = WordList(word_list)
    if (word_list is not None or lm is not None) and labels is None:
        raise ConfigError("prefix_beam_search: a word list or an LM needs the labels (the text of each class)")
    num_classes = len(frames_lp[0]) if frames_lp else (len(labels) if labels is not None else 0)
    if labels is not None and len(labels) != num_classes and frames_lp:
        raise InputError(f"prefix_beam_search: {len(labels)} labels for {num_classes} classes")
    separator_id = None
    if labels is not None and word_separator is not None:
        separator_id = next((i for i, t in enumerate(labels) if t == word_separator and i != blank), None)
    word_level = labels is not None and word_separator is None
    context_size = max((lm.order - 1) if lm is not None else 1, 1)
    cutoff = math.log(token_min_prob) if token_min_prob > 0 else _NEG_INF

    def extend(prefix: _Prefix, c: int) -> _Prefix | None:
        """The prefix + label ``c``, with its word state and LM score; None if not allowed."""
        new = _Prefix(prefix.ids + (c,), lm=prefix.lm, words=prefix.words, partial=prefix.partial)
        if labels is None:
            return new
        if word_level:
            word = labels[c]
        elif c == separator_id:
            word = prefix.partial
            new.partial = ""
            if not word:  # a separator with no word before it: nothing to score
                return new
        else:
            new.partial = prefix.partial + labels[c]
            if word_list is not None and not word_list.is_prefix(new.partial):
                return None
            return new
        if word_list is not None and word not in word_list:
            return None
        if lm is not None:
            new.lm += lm_weight * lm.log_prob(("<s>",) + prefix.words[-context_size:], word)
        new.lm += word_bonus
        new.words = prefix.words + (word,)
        return new

    beam: dict[tuple[int, ...], _Prefix] = {(): _Prefix((), p_b=0.0)}
    children: dict[tuple[tuple[int, ...], int], _Prefix | None] = {}
    for row in frames_lp:
        order = sorted(range(num_classes), key=row.__getitem__, reverse=True)
        candidates = [c for rank, c in enumerate(order) if c != blank and (rank < beam_size or row[c] >= cutoff)]
        blank_lp = row[blank]
        nxt: dict[tuple[int, ...], _Prefix] = {}

        def entry(template: _Prefix) -> _Prefix:
            found = nxt.get(template.ids)
            if found is None:
                found = nxt[template.ids] = _Prefix(template.ids, lm=template.lm, words=template.words, partial=template.partial)
            return found

        for prefix in beam.values():
            total = prefix.total
            stay = entry(prefix)
            stay.p_b = _logaddexp(stay.p_b, total + blank_lp)
            last = prefix.ids[-1] if prefix.ids else None
            for c in candidates:
                lp = row[c]
                if c == last:
                    # "a" + a: the repeat merges into "a" unless a blank came between.
                    stay.p_nb = _logaddexp(stay.p_nb, prefix.p_nb + lp)
                    source = prefix.p_b + lp
                else:
                    source = total + lp
                if source == _NEG_INF:
                    continue
                key = (prefix.ids, c)
                if key not in children:
                    children[key] = extend(prefix, c)
                child = children[key]
                if child is None:
                    continue
                target = entry(child)
                target.p_nb = _logaddexp(target.p_nb, source)
        beam = dict(sorted(nxt.items(), key=lambda kv: kv[1].total + kv[1].lm, reverse=True)[:beam_size])
        # Only children of the kept prefixes can be needed at the next frame.
        children = {k: v for k, v in children.items() if k[0] in beam}

    finals: list[BeamHypothesis] = []
    for prefix in beam.values():
        lm_score, words = prefix.lm, list(prefix.words)
        if labels is not None and not word_level and prefix.partial:
            word = prefix.partial
            if word_list is not None and word not in word_list:
                continue  # ends inside a word that is not in the list
            if lm is not None:
                lm_score += lm_weight * lm.log_prob(("<s>",) + tuple(words[-context_size:]), word)
            lm_score += word_bonus
            words.append(word)
        if lm is not None:
            lm_score += lm_weight * lm.log_prob(("<s>",) + tuple(words[-context_size:]), "</s>")
        finals.append(BeamHypothesis(list(prefix.ids), prefix.total, lm_score, words))
    finals.sort(key=lambda h: h.score, reverse=True)
    return finals


# -- forced alignment --------------------------------------------------------------------------
@dataclass
class TokenSpan:
    """Where one label of a transcript sits: frames ``[start, end)`` and its mean probability."""

    label: int
    start: int
    end: int
    score: float


def ctc_align(log_probs: Tensor, targets: Sequence[int], length: int | None = None, blank: int = BLANK) -> list[TokenSpan] | None:
    """The most probable path for ``targets`` (Viterbi over CTC's 2L+1 states), as spans.

    ``log_probs`` ``(T, C)`` of one utterance. Returns one ``TokenSpan`` per target label
    (its frames and ``exp(mean log-prob)`` over them), ``[]`` for an empty target, or
    ``None`` when the target needs more frames than there are.

    >>> lp = torch.eye(3)[[0, 1, 1, 0, 2]].clamp_min(1e-4).log()
    >>> [(s.label, s.start, s.end) for s in ctc_align(lp, [1, 2])]
    [(1, 1, 3), (2, 4, 5)]
    """
    lp = log_probs.detach().float().cpu()
    if length is not None:
        lp = lp[: int(length)]
    frames = lp.shape[0]
    targets = [int(t) for t in targets]
    if not targets:
        return []
    needed = len(targets) + sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    if frames < needed:
        return None
    states = [blank]
    for t in targets:
        states += [t, blank]
    s_count = len(states)
    state_ids = torch.tensor(states)
    # A skip from s−2 to s is allowed into a label that differs from the label two back.
    skip = torch.zeros(s_count, dtype=torch.bool)
    for s in range(2, s_count):
        skip[s] = states[s] != blank and states[s] != states[s - 2]
    score = torch.full((s_count,), _NEG_INF)
    score[0] = lp[0, blank]
    score[1] = lp[0, states[1]]
    back = torch.zeros(frames, s_count, dtype=torch.long)
    for t in range(1, frames):
        stay = score
        step = torch.cat([torch.tensor([_NEG_INF]), score[:-1]])
        jump = torch.cat([torch.tensor([_NEG_INF, _NEG_INF]), score[:-2]])
        jump = torch.where(skip, jump, torch.full_like(jump, _NEG_INF))
        candidates = torch.stack([stay, step, jump])
        best, arg = candidates.max(0)
        back[t] = arg
        score = best + lp[t, state_ids]
    end = s_count - 1 if score[s_count - 1] >= score[s_count - 2] else s_count - 2
    path = [end]
    for t in range(frames - 1, 0, -1):
        path.append(path[-1] - int(back[t, path[-1]]))
    path.reverse()
    spans: list[TokenSpan] = []
    frame_lp = lp[torch.arange(frames), state_ids[torch.tensor(path)]]
    t = 0
    while t < frames:
        s = path[t]
        if states[s] == blank:
            t += 1
            continue
        start = t
        while t < frames and path[t] == s:
            t += 1
        spans.append(TokenSpan(states[s], start, t, float(frame_lp[start:t].mean().exp())))
    return spans


def beam_search_batch(
    log_probs: Tensor, lengths: Tensor, beam_size: int = 8, **kwargs: Any
) -> list[BeamHypothesis | None]:
    """``prefix_beam_search`` on each example of a ``(B, T, C)`` batch; the best (or None) each."""
    out: list[BeamHypothesis | None] = []
    cpu = log_probs.detach().float().cpu()
    for b in range(cpu.shape[0]):
        hyps = prefix_beam_search(cpu[b], beam_size, length=int(lengths[b]), **kwargs)
        out.append(hyps[0] if hyps else None)
    return out
