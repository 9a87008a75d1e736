"""Chunk tagging schemes for NER: IOB1, IOB2 (BIO), IOBES (BIOES) and BILOU.

A tagging scheme writes a set of non-overlapping typed spans as one tag per token
(Ramshaw & Marcus 1995, "Text chunking using transformation-based learning";
Ratinov & Roth 2009, "Design challenges and misconceptions in NER" for IOBES/BILOU):

============  ==========================================  ===============================
scheme        tags                                        a span of type X is written
============  ==========================================  ===============================
IOB1          ``O``, ``I-X``, ``B-X``                     ``I-X I-X``; ``B-X`` only opens a
                                                          span that directly follows another X
IOB2 (BIO)    ``O``, ``B-X``, ``I-X``                     ``B-X I-X I-X``
IOBES/BIOES   ``O``, ``B-X``, ``I-X``, ``E-X``, ``S-X``   ``B-X I-X E-X``; one token: ``S-X``
BILOU         ``O``, ``B-X``, ``I-X``, ``L-X``, ``U-X``   ``B-X I-X L-X``; one token: ``U-X``
============  ==========================================  ===============================

All of them describe the same thing (a list of spans), so conversion goes through the
spans and loses nothing: ``convert_tags`` = ``tags_from_spans(spans(tags))``.

Reading is lenient and matches seqeval's default entity extraction
(``seqeval.metrics.sequence_labeling.get_entities``; the same as conlleval's for B-/I-/O
tags, not for S-/E- tags, which conlleval reads differently), so spans read here agree with the
entity F1 that seqeval reports: an ``I-X`` after ``O`` or after another type opens a new
span, ``B-X``/``S-X`` always open one, a change of type closes the current span, and so
on. ``validate`` is the strict check: it names the first position where a sequence
breaks the scheme's rules.

``allowed_transitions`` gives the same rules as boolean masks (tag→tag, start, end) for
a constrained CRF, so Viterbi decoding never produces a sequence ``validate`` rejects.

>>> spans(["B-PER", "I-PER", "O", "B-LOC"], "IOB2")
[('PER', 0, 2), ('LOC', 3, 4)]
>>> convert_tags(["I-PER", "I-PER", "O", "I-LOC"], "IOB1", "IOBES")
['B-PER', 'E-PER', 'O', 'S-LOC']
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

import torch

from ..core.errors import ConfigError, DataError

__all__ = [
    "SCHEMES",
    "TransitionMask",
    "allowed_transitions",
    "convert_tags",
    "normalize_scheme",
    "parse_tag",
    "spans",
    "tag_set",
    "tags_from_spans",
    "validate",
]

#: The canonical scheme names.
SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU")

# Accepted spellings → canonical name. Plain "IOB" is refused on purpose: papers use it
# for IOB1 (Ramshaw & Marcus) and tools use it for IOB2, and guessing wrong silently
# changes which spans a file contains.
_SYNONYMS = {
    "IOB1": "IOB1",
    "IOB2": "IOB2",
    "BIO": "IOB2",
    "IOBES": "IOBES",
    "BIOES": "IOBES",
    "BILOU": "BILOU",
    "BIOLU": "BILOU",
}

# Prefix letters of each scheme, in the order ``tag_set`` lists them.
_PREFIXES = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "IOBES": ("B", "I", "E", "S"),
    "BILOU": ("B", "I", "L", "U"),
}

# BILOU is IOBES with other letters (Last = End, Unit = Single); internally every
# prefix is mapped to the IOBES letters so one set of rules serves both.
_TO_CANONICAL = {"IOB1": {}, "IOB2": {}, "IOBES": {}, "BILOU": {"L": "E", "U": "S"}}
_FROM_CANONICAL = {"IOB1": {}, "IOB2": {}, "IOBES": {}, "BILOU": {"E": "L", "S": "U"}}

Span = tuple[str, int, int]


def normalize_scheme(scheme: str) -> str:
    """The canonical name of a scheme (case-insensitive; BIO → IOB2, BIOES → IOBES).

    >>> normalize_scheme("bioes")
    'IOBES'
    """
    if not isinstance(scheme, str):
        raise ConfigError(f"tagging scheme must be a name such as 'IOB2', got {scheme!r}")
    name = _SYNONYMS.get(scheme.strip().upper().replace("-", ""))
    if name is None:
        hint = " ('IOB' is ambiguous: say IOB1 or IOB2)" if scheme.strip().upper() == "IOB" else ""
        raise ConfigError(
            f"unknown tagging scheme {scheme!r}{hint}; known: {', '.join(sorted(_SYNONYMS))}"
        )
    return name


def parse_tag(tag: str, scheme: str, position: int | None = None) -> tuple[str, str | None]:
    """Split ``tag`` into (prefix, type) in ``scheme``: ``"B-PER"`` → ``("B", "PER")``, ``"O"`` → ``("O", None)``.

    The prefix is returned as written (``L``/``U`` stay as they are in BILOU). A tag
    whose prefix the scheme does not use, or that has no type, is a ``DataError``.

    >>> parse_tag("I-MISC", "IOB2")
    ('I', 'MISC')
    """
    scheme = normalize_scheme(scheme)
    return _parse(tag, scheme, position)


def _where(position: int | None) -> str:
    return "" if position is None else f" at position {position}"


def _parse(tag: str, scheme: str, position: int | None) -> tuple[str, str | None]:
    if not isinstance(tag, str):
        raise DataError(f"tag {tag!r:.60}{_where(position)} is a {type(tag).__name__}, not a string tag of the {scheme} "
                        "scheme (e.g. 'O', 'B-PER')")
    if tag == "O":
        return "O", None
    if len(tag) < 3 or tag[1] != "-":
        raise DataError(
            f"tag {tag!r}{_where(position)} is not a tag of the {scheme} scheme: expected 'O' or "
            f"PREFIX-TYPE with PREFIX one of {', '.join(_PREFIXES[scheme])} (e.g. 'B-PER')"
        )
    prefix, kind = tag[0], tag[2:]
    if prefix not in _PREFIXES[scheme]:
        raise DataError(
            f"tag {tag!r}{_where(position)} has prefix {prefix!r}, which {scheme} does not use "
            f"(its prefixes: {', '.join(_PREFIXES[scheme])}, O); convert the tags or name the right scheme"
        )
    return prefix, kind


def _canonical(tags: Sequence[str], scheme: str) -> list[tuple[str, str | None]]:
    """Parse every tag and map its prefix to the IOBES letters."""
    table = _TO_CANONICAL[scheme]
    if tags is None or isinstance(tags, (str, bytes)) or not hasattr(tags, "__len__"):
        raise DataError(f"expected a sequence of {scheme} tags (a list of strings), got {type(tags).__name__} {tags!r:.60}")
    out = []
    for i, tag in enumerate(tags):
        prefix, kind = _parse(tag, scheme, i)
        out.append((table.get(prefix, prefix), kind))
    return out


# --------------------------------------------------------------------------- reading
# The two predicates below are seqeval's ``end_of_chunk`` / ``start_of_chunk`` (default
# mode), written over (prefix, type) pairs with prefixes in the IOBES letters. Keeping
# them rule-for-rule is what makes our spans equal seqeval's entities on messy input.


def _chunk_ends(prev: str, prev_type: str | None, cur: str, cur_type: str | None) -> bool:
    """Does a span end between a token tagged (prev, prev_type) and one tagged (cur, cur_type)?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _chunk_starts(prev: str, prev_type: str | None, cur: str, cur_type: str | None) -> bool:
    """Does a span start at a token tagged (cur, cur_type) that follows (prev, prev_type)?"""
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur != "O" and prev_type != cur_type


def spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """The typed spans ``[(type, start, end_exclusive), ...]`` that ``tags`` encode, in order.

    Lenient: ill-formed sequences are read the way seqeval (default mode) reads them, so
    ``O I-PER`` is a PER span and ``B-PER I-LOC`` is two spans. Only tags the scheme
    does not have (``S-PER`` in IOB2, ``X``) are refused with a ``DataError``.

    >>> spans(["O", "I-PER", "I-PER", "B-PER", "O"], "IOB1")
    [('PER', 1, 3), ('PER', 3, 4)]
    >>> spans(["S-LOC", "B-ORG", "E-ORG"], "IOBES")
    [('LOC', 0, 1), ('ORG', 1, 3)]
    """
    scheme = normalize_scheme(scheme)
    parsed = _canonical(tags, scheme)
    out: list[Span] = []
    prev, prev_type, begin = "O", None, 0
    # A sentinel "O" after the last token closes a span that runs to the end.
    for i, (cur, cur_type) in enumerate(parsed + [("O", None)]):
        if _chunk_ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, begin, i))
        if _chunk_starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


# --------------------------------------------------------------------------- writing
def _check_spans(span_list: Iterable[Span], length: int) -> list[Span]:
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise DataError(f"length must be a non-negative integer, got {length!r}")
    checked = []
    for n, item in enumerate(span_list):
        try:
            kind, start, end = item
        except (TypeError, ValueError):
            raise DataError(f"span #{n} {item!r} is not a (type, start, end) triple") from None
        if not isinstance(kind, str) or not kind or any(c.isspace() for c in kind):
            raise DataError(f"span #{n} {item!r}: the type must be a non-empty string without spaces")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= length):
            raise DataError(
                f"span #{n} {item!r}: need integers 0 <= start < end <= {length} (end is exclusive)"
            )
        checked.append((kind, start, end))
    checked.sort(key=lambda s: (s[1], s[2]))
    for a, b in zip(checked, checked[1:]):
        if b[1] < a[2]:
            raise DataError(f"spans {a!r} and {b!r} overlap; a tagging scheme can only write disjoint spans")
    return checked


def tags_from_spans(span_list: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Write disjoint spans ``(type, start, end_exclusive)`` as ``length`` tags in ``scheme``.

    >>> tags_from_spans([("PER", 0, 2), ("PER", 2, 3)], 4, "IOB1")
    ['I-PER', 'I-PER', 'B-PER', 'O']
    >>> tags_from_spans([("PER", 0, 2), ("LOC", 3, 4)], 4, "BILOU")
    ['B-PER', 'L-PER', 'O', 'U-LOC']
    """
    scheme = normalize_scheme(scheme)
    checked = _check_spans(span_list, length)
    tags = ["O"] * length
    letters = _FROM_CANONICAL[scheme]
    end_of: dict[int, str] = {}  # token index just after a span → its type (IOB1 needs it)
    for kind, start, end in checked:
        if scheme == "IOB1":
            # B- only where this span touches a previous span of the same type.
            first = "B" if end_of.get(start) == kind else "I"
            tags[start] = f"{first}-{kind}"
            for i in range(start + 1, end):
                tags[i] = f"I-{kind}"
        elif scheme == "IOB2":
            tags[start] = f"B-{kind}"
            for i in range(start + 1, end):
                tags[i] = f"I-{kind}"
        else:
            b, i_, e, s = (letters.get(p, p) for p in ("B", "I", "E", "S"))
            if end - start == 1:
                tags[start] = f"{s}-{kind}"
            else:
                tags[start] = f"{b}-{kind}"
                for i in range(start + 1, end - 1):
                    tags[i] = f"{i_}-{kind}"
                tags[end - 1] = f"{e}-{kind}"
        end_of[end] = kind
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str, *, strict: bool = False) -> list[str]:
    """Rewrite ``tags`` from scheme ``source`` to ``target`` through their spans.

    Lossless: ``spans(convert_tags(t, a, b), b) == spans(t, a)`` for every ``t``, and a
    valid sequence comes back unchanged from a round trip. Ill-formed input is read as
    seqeval reads it (see ``spans``) unless ``strict=True``, which calls ``validate`` first.

    >>> convert_tags(["B-LOC", "I-LOC", "O", "B-PER"], "IOB2", "IOBES")
    ['B-LOC', 'E-LOC', 'O', 'S-PER']
    """
    if strict:
        validate(tags, source)
    return tags_from_spans(spans(tags, source), len(tags), target)


# --------------------------------------------------------------------------- rules
# One rule function serves ``validate`` and ``allowed_transitions``, so the strict
# check and the CRF constraints cannot disagree. ``None`` stands for the sequence
# start (as ``prev``) or end (as ``cur``). Prefixes are in the IOBES letters.


def _transition_ok(scheme: str, prev: tuple[str, str | None] | None, cur: tuple[str, str | None] | None) -> bool:
    if scheme in ("IOBES", "BILOU"):
        open_prev = prev is not None and prev[0] in ("B", "I")  # a span is open and must go on
        if cur is None:
            return not open_prev
        if open_prev:
            return cur[0] in ("I", "E") and cur[1] == prev[1]
        return cur[0] in ("O", "B", "S")
    if cur is None:
        return True  # IOB1/IOB2 spans close by themselves
    if scheme == "IOB2":
        if cur[0] == "I":
            return prev is not None and prev[0] in ("B", "I") and prev[1] == cur[1]
        return True
    # IOB1: I-X may open or continue a span anywhere; B-X only separates two adjacent X spans.
    if cur[0] == "B":
        return prev is not None and prev[0] in ("B", "I") and prev[1] == cur[1]
    return True


def _reason(scheme: str, cur: str) -> str:
    if scheme in ("IOBES", "BILOU"):
        b, i, e, s = ("B", "I", "L", "U") if scheme == "BILOU" else ("B", "I", "E", "S")
        return (
            f"in {scheme} a span is {b}-X ({i}-X)* {e}-X or a single {s}-X; "
            f"{i}-X and {e}-X continue an open {b}-X/{i}-X of the same type, which must be closed"
        )
    if scheme == "IOB2":
        return "in IOB2 an I-X tag must follow B-X or I-X of the same type"
    return "in IOB1 a B-X tag only separates two adjacent spans of type X, so it must follow B-X or I-X"


def validate(tags: Sequence[str], scheme: str) -> None:
    """Raise ``DataError`` at the first tag that breaks the rules of ``scheme``.

    >>> validate(["B-PER", "E-PER", "O"], "IOBES")
    >>> validate(["O", "O", "O", "I-PER"], "IOBES")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    seqlab.core.errors.DataError: I-PER after O at position 3 is invalid in IOBES (...)
    """
    scheme = normalize_scheme(scheme)
    parsed = _canonical(tags, scheme)
    prev = None
    for i, cur in enumerate(parsed):
        if not _transition_ok(scheme, prev, cur):
            where = f"after {tags[i - 1]} at position {i}" if i else "at position 0 (sequence start)"
            raise DataError(f"{tags[i]} {where} is invalid in {scheme} ({_reason(scheme, tags[i])})")
        prev = cur
    if parsed and not _transition_ok(scheme, prev, None):
        n = len(parsed) - 1
        raise DataError(
            f"{tags[n]} at position {n} cannot end the sequence in {scheme} ({_reason(scheme, tags[n])})"
        )


# --------------------------------------------------------------------------- tag sets
def tag_set(types: Iterable[str], scheme: str) -> list[str]:
    """All tags of ``scheme`` for entity ``types``: ``O`` first, then each type's tags.

    Types keep the order given (duplicates dropped), so sort them first for a tag
    vocabulary that does not depend on the order the data was read in.

    >>> tag_set(["PER", "LOC"], "IOBES")
    ['O', 'B-PER', 'I-PER', 'E-PER', 'S-PER', 'B-LOC', 'I-LOC', 'E-LOC', 'S-LOC']
    """
    scheme = normalize_scheme(scheme)
    if isinstance(types, str):
        raise DataError(f"types must be a list of entity types, got the string {types!r}")
    seen: list[str] = []
    for kind in types:
        if not isinstance(kind, str) or not kind or any(c.isspace() for c in kind):
            raise DataError(f"entity type {kind!r} must be a non-empty string without spaces")
        if kind not in seen:
            seen.append(kind)
    return ["O"] + [f"{p}-{kind}" for kind in seen for p in _PREFIXES[scheme]]


class TransitionMask(NamedTuple):
    """Which tag sequences a scheme allows, as boolean masks over tag indices.

    ``transitions[i, j]``: tag ``j`` may follow tag ``i``; ``start[j]``: a sequence may
    begin with ``j``; ``end[i]``: a sequence may end with ``i``. A plain tuple of
    three ``BoolTensor``s, which is what ``seqlab.nn.crf.CRF(constraints=...)`` takes.
    """

    transitions: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor

    def pairs(self) -> list[tuple[int, int]]:
        """The allowed ``(from, to)`` index pairs (tag to tag only)."""
        return [tuple(p) for p in self.transitions.nonzero().tolist()]


def allowed_transitions(tag_names: Sequence[str], scheme: str, *, unused: Iterable[str] = ()) -> TransitionMask:
    """The scheme's rules over ``tag_names`` (a tag vocabulary, index = position).

    Tags in ``unused`` (for example a padding label kept in the vocabulary) are allowed
    nowhere, so a constrained CRF never outputs them.

    >>> m = allowed_transitions(["O", "B-PER", "I-PER", "E-PER", "S-PER"], "IOBES")
    >>> m.start.tolist(), m.end.tolist()
    ([True, True, False, False, True], [True, False, False, True, True])
    >>> m.transitions[1].tolist()  # after B-PER only I-PER or E-PER
    [False, False, True, True, False]
    """
    scheme = normalize_scheme(scheme)
    names = list(tag_names)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"tag names must be unique; repeated: {', '.join(map(repr, dup))}")
    unused = set(unused)
    table = _TO_CANONICAL[scheme]
    parsed: list[tuple[str, str | None] | None] = []
    for i, name in enumerate(names):
        if name in unused:
            parsed.append(None)
            continue
        try:
            prefix, kind = _parse(name, scheme, i)
        except DataError as err:
            raise DataError(f"tag vocabulary: {err}; list tags such as a padding label in unused=[...]") from None
        parsed.append((table.get(prefix, prefix), kind))
    k = len(names)
    trans = torch.zeros(k, k, dtype=torch.bool)
    start = torch.zeros(k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    for j, cur in enumerate(parsed):
        if cur is None:
            continue
        start[j] = _transition_ok(scheme, None, cur)
        end[j] = _transition_ok(scheme, cur, None)
        for i, prev in enumerate(parsed):
            if prev is not None:
                trans[i, j] = _transition_ok(scheme, prev, cur)
    return TransitionMask(trans, start, end)
