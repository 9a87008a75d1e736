"""Entity-level precision, recall and F1 for sequence tagging, as a thin wrapper around seqeval.

An entity is a (type, first token, last token) chunk read from a tag sequence; a predicted
entity is correct only when both its span and its type match a gold entity exactly (the
CoNLL-2000/2003 shared-task measure, Tjong Kim Sang & De Meulder 2003). Precision =
correct / predicted, recall = correct / gold, F1 = 2PR / (P + R), each 0 when undefined
(seqeval's ``zero_division`` rule, without the warning). Scores are fractions in [0, 1].

Two ways to read chunks, both seqeval's:

- ``mode="default"``: seqeval's lenient reading (``seqeval.metrics.sequence_labeling.get_entities``):
  ``O I-PER`` starts a PER entity, any B-/I-/E-/S- prefix is understood. For tags with only
  B-/I-/O prefixes this equals the CoNLL ``conlleval`` script. With S- or E- tags it follows
  seqeval, not conlleval: conlleval has no rule for ``S`` (``S-PER S-PER`` is one entity to
  it, two here) and does not split ``E-PER B-PER`` (tests/metrics/test_conlleval_agreement.py).
- ``mode="strict"``: chunks follow a tagging ``scheme`` exactly (``seqeval.scheme``: IOB1,
  IOB2, IOE1, IOE2, IOBES, BILOU; default IOB2). A prediction that breaks the scheme
  (``O I-PER`` in IOB2) forms no entity and so costs precision/recall — that is what strict
  mode measures. The *gold* tags must follow the scheme: a gold token that belongs to no
  well-formed entity would silently vanish from the gold count, so it is a ``DataError``.

Tags that neither mode can read (a prefix outside the scheme such as ``S-PER`` in IOB2, a
missing ``-`` such as ``BPER``, an empty type ``B-``, a non-string) are a ``TagSequenceError``
naming the side, the sentence index (0-based, counted over all batches) and the tag, in
both modes. (seqeval itself would warn, crash with a bare ``KeyError``, or misread them.)

Streaming: entities never cross a sentence boundary (seqeval separates sentences with an
``O``), so per-type counts of correct/predicted/gold entities add up across batches and
``EntityF1Accumulator`` equals one seqeval call on the whole corpus.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError, DataError
from .base import Accumulator, check_choice, check_same_length

#: ``mode`` values: seqeval's lenient chunking (= conlleval for B/I/O tags) or scheme-strict.
ENTITY_MODES = ("default", "strict")
#: Tagging schemes strict mode accepts (the names of seqeval's scheme classes).
SCHEMES = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")
_DEFAULT_MODE_PREFIXES = "BIES"  # what seqeval's get_entities understands (conlleval: B, I, E)


class TagSequenceError(DataError):
    """A tag sequence that cannot be scored; says which side, sentence, token and tag."""

    def __init__(self, side: str, sentence: int, token: int, tag: Any, reason: str) -> None:
        self.side, self.sentence, self.token, self.tag, self.reason = side, sentence, token, tag, reason
        super().__init__(f"{side} sentence {sentence}, token {token}: tag {tag!r} {reason}")


@dataclass(frozen=True)
class EntityScore:
    """Precision, recall and F1 of one entity type (or of all types, micro-averaged).

    ``support`` is the number of gold entities, ``predicted`` of predicted ones, ``correct``
    of exact matches.
    """

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    correct: int

    @classmethod
    def from_counts(cls, correct: int, predicted: int, support: int) -> "EntityScore":
        # seqeval.metrics.v1._precision_recall_fscore_support with beta = 1 and
        # zero_division = 0, written in the same order of floating-point operations.
        precision = correct / predicted if predicted else 0.0
        recall = correct / support if support else 0.0
        denom = 1.0 * precision + recall
        f1 = (1 + 1.0) * precision * recall / denom if denom != 0.0 else 0.0
        return cls(precision, recall, f1, support, predicted, correct)

    def as_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1,
                "support": self.support, "predicted": self.predicted, "correct": self.correct}


@dataclass(frozen=True)
class EntityScores:
    """Micro-averaged and per-type entity scores; ``.f1`` etc. are the micro values.

    >>> s = entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> s.precision, s.recall, round(s.f1, 4), sorted(s.per_type)
    (1.0, 0.5, 0.6667, ['LOC', 'PER'])
    """

    micro: EntityScore
    per_type: dict[str, EntityScore] = field(default_factory=dict)
    mode: str = "default"
    scheme: str | None = None

    @property
    def precision(self) -> float:
        return self.micro.precision

    @property
    def recall(self) -> float:
        return self.micro.recall

    @property
    def f1(self) -> float:
        return self.micro.f1

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "scheme": self.scheme, "micro": self.micro.as_dict(),
                "per_type": {k: v.as_dict() for k, v in self.per_type.items()}}


def _scheme_class(name: str):
    from seqeval import scheme as seqeval_scheme

    return getattr(seqeval_scheme, name)


def _prefix_letters(scheme_cls) -> str:
    from seqeval.scheme import Prefix

    return "".join(name for name in "BIESUL" if Prefix[name] in scheme_cls.allowed_prefix)


def _check_tag(tag: Any, prefixes: str, side: str, sentence: int, token: int, scheme: str | None) -> None:
    if not isinstance(tag, str):
        raise TagSequenceError(side, sentence, token, tag, f"is a {type(tag).__name__}, not a string")
    if tag == "O":
        return
    where = f"the {scheme} scheme" if scheme else "the default mode (seqeval's reading)"
    if not tag or tag[0] not in prefixes:
        raise TagSequenceError(side, sentence, token, tag,
                               f"is not 'O' and does not start with a prefix {where} knows "
                               f"({', '.join(prefixes)}), e.g. 'B-PER'")
    if len(tag) > 1 and (tag[1] != "-" or len(tag) == 2):
        raise TagSequenceError(side, sentence, token, tag,
                               "is not of the form PREFIX-TYPE (e.g. 'B-PER') or a bare prefix")


class EntityF1Accumulator(Accumulator):
    """Streaming entity P/R/F1; ``compute()`` equals seqeval on the whole corpus.

    ``update(references, predictions)``: lists of tag sequences (one list of tags per
    sentence), aligned sentence by sentence and token by token.

    >>> acc = EntityF1Accumulator(mode="strict", scheme="IOB2")
    >>> acc.update([["B-PER", "I-PER"]], [["B-PER", "I-PER"]]).update([["B-LOC"]], [["I-LOC"]]).compute().f1
    0.6666666666666666
    """

    def __init__(self, mode: str = "default", scheme: str | None = None) -> None:
        self.mode = check_choice(mode, ENTITY_MODES, "entity F1 mode")
        if mode == "strict":
            self.scheme: str | None = check_choice(scheme or "IOB2", SCHEMES, "tagging scheme")
            self._scheme_cls = _scheme_class(self.scheme)
            self._prefixes = _prefix_letters(self._scheme_cls)
        else:
            if scheme is not None:
                raise ConfigError(f"scheme={scheme!r} applies only to mode='strict' (the default mode reads tags as seqeval's get_entities)")
            self.scheme = None
            self._prefixes = _DEFAULT_MODE_PREFIXES
        self.reset()

    def reset(self) -> None:
        self.correct: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.support: Counter[str] = Counter()
        self.sentences = 0

    def _as_batch(self, sequences: Any, side: str) -> list[list[str]]:
        if isinstance(sequences, str) or not isinstance(sequences, Sequence):
            raise DataError(f"{side}: expected a list of tag lists (one per sentence), got {type(sequences).__name__}")
        batch = []
        for i, seq in enumerate(sequences):
            if isinstance(seq, str) or not isinstance(seq, Sequence):
                raise DataError(f"{side} sentence {self.sentences + i}: expected a list of tags, "
                                f"got {type(seq).__name__} {seq!r:.60}")
            seq = list(seq)
            for j, tag in enumerate(seq):
                _check_tag(tag, self._prefixes, side, self.sentences + i, j, self.scheme)
            batch.append(seq)
        return batch

    def update(self, references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]]) -> "EntityF1Accumulator":
        refs = self._as_batch(references, "references")
        preds = self._as_batch(predictions, "predictions")
        check_same_length(refs, preds, "references", "predictions")
        for i, (r, p) in enumerate(zip(refs, preds)):
            if len(r) != len(p):
                raise DataError(f"sentence {self.sentences + i}: references has {len(r)} tags but "
                                f"predictions has {len(p)}; they must align token by token")
        if self.mode == "strict":
            gold, pred = self._strict_entities(refs, "references"), self._strict_entities(preds, None)
        else:
            from seqeval.metrics.sequence_labeling import get_entities

            # Nested lists: seqeval joins the sentences with an "O" between them.
            gold, pred = set(get_entities(refs)), set(get_entities(preds))
        for type_name, *_ in gold:
            self.support[type_name] += 1
        for type_name, *_ in pred:
            self.predicted[type_name] += 1
        for type_name, *_ in gold & pred:
            self.correct[type_name] += 1
        self.sentences += len(refs)
        return self

    def _strict_entities(self, batch: list[list[str]], check_side: str | None) -> set[tuple]:
        from seqeval.scheme import Tokens

        out = set()
        for i, seq in enumerate(batch):
            entities = Tokens(seq, self._scheme_cls, sent_id=i).entities
            if check_side is not None:
                covered = {k for e in entities for k in range(e.start, e.end)}
                for k, tag in enumerate(seq):
                    if tag != "O" and k not in covered:
                        before = f"after {seq[k - 1]!r}" if k else "at the start of the sentence"
                        raise TagSequenceError(
                            check_side, self.sentences + i, k, tag,
                            f"{before} is not part of any valid {self.scheme} entity (strict mode needs "
                            "well-formed gold tags; the default mode reads them leniently, as seqeval and conlleval do)",
                        )
            out.update((e.tag, e.sent_id, e.start, e.end) for e in entities)
        return out

    def compute(self) -> EntityScores:
        types = sorted(set(self.support) | set(self.predicted))
        per_type = {t: EntityScore.from_counts(self.correct[t], self.predicted[t], self.support[t]) for t in types}
        micro = EntityScore.from_counts(sum(self.correct.values()), sum(self.predicted.values()),
                                        sum(self.support.values()))
        return EntityScores(micro=micro, per_type=per_type, mode=self.mode, scheme=self.scheme)

    def __repr__(self) -> str:
        return f"EntityF1Accumulator(mode={self.mode!r}, scheme={self.scheme!r}, sentences={self.sentences})"


def entity_f1(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]], mode: str = "default",
              scheme: str | None = None) -> EntityScores:
    """Entity precision/recall/F1 (micro and per type) of tag sequences, as seqeval computes them.

    >>> entity_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]).f1
    1.0
    >>> entity_f1([["O", "I-PER"]], [["O", "I-PER"]], mode="strict", scheme="IOB2")
    Traceback (most recent call last):
    ...
    seqlab.metrics.entities.TagSequenceError: references sentence 0, token 1: tag 'I-PER' after 'O' is not part of any valid IOB2 entity (strict mode needs well-formed gold tags; the default mode reads them leniently, as seqeval and conlleval do)
    """
    return EntityF1Accumulator(mode, scheme).update(references, predictions).compute()
