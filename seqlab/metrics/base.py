"""The accumulator protocol and the input checks every metric in ``seqlab.metrics`` shares.

Corpus-level WER, BLEU, chrF and entity F1 are *micro* averages: ratios of counts summed
over the whole corpus, not means of sentence scores. An accumulator therefore keeps the
sufficient statistics (edit-operation counts, n-gram match counts, entity counts) of every
batch it is given, and ``compute()`` turns the sums into the score. Because sums of
integers do not depend on how the corpus was split, ``compute()`` after any sequence of
``update`` calls is exactly the one-shot score of the concatenated corpus. Every one-shot
function (``wer``, ``bleu``, ``entity_f1`` …) is the accumulator fed once, so there is one
code path per metric.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ..core.errors import ConfigError, DataError


class Accumulator(ABC):
    """Streaming metric: ``update(references, hypotheses)`` per batch, ``compute()`` at the end.

    ``update`` returns the accumulator itself, so ``Acc().update(refs, hyps).compute()``
    is the one-shot score.
    """

    @abstractmethod
    def update(self, references: Any, hypotheses: Any) -> "Accumulator":
        """Add one batch of aligned references and hypotheses (predictions)."""

    @abstractmethod
    def compute(self) -> Any:
        """The corpus score of everything added so far."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything added so far."""


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """Refuse a setting that is not one of ``allowed``, naming the valid ones."""
    if value not in allowed:
        raise ConfigError(f"{what} {value!r} is not one of {', '.join(repr(a) for a in allowed)}")
    return value


def as_list_of(values: Any, name: str, kind: type | tuple[type, ...], plural: str, item_error: str) -> list:
    """``values`` (a sequence, not one string) as a list whose items are all ``kind``.

    A ``DataError`` names ``name`` and, for a bad item, its index: ``{name}[i]: {item_error},
    got <type> …``.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise DataError(f"{name}: expected a list of {plural}, got {type(values).__name__}")
    out = list(values)
    for i, value in enumerate(out):
        if not isinstance(value, kind):
            raise DataError(f"{name}[{i}]: {item_error}, got {type(value).__name__} {value!r:.60}")
    return out


def as_texts(values: Any, name: str) -> list[str]:
    """A batch of sentences as a list of ``str``; one bare string is one sentence."""
    if isinstance(values, str):
        return [values]
    return as_list_of(values, name, str, "strings", "expected a string")


def check_same_length(references: Sequence, hypotheses: Sequence, ref_name: str = "references",
                      hyp_name: str = "hypotheses") -> None:
    """References and hypotheses must pair up one to one."""
    if len(references) != len(hypotheses):
        raise DataError(
            f"{ref_name} has {len(references)} items but {hyp_name} has {len(hypotheses)}; "
            "they must be aligned one to one"
        )
