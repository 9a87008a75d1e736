"""Token ↔ id tables: the vocabulary and the stage that builds and applies it.

Ids follow one convention across seqlab (the same as the sentencepiece stage's):
``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3, then the corpus tokens by
decreasing frequency. Ties are broken by first occurrence in the corpus, so the same
corpus gives the same ids in every run and every process.

A vocabulary is saved as a plain UTF-8 text file, one token per line, line *i* holding
the token of id *i* (specials included). So that any token survives the round trip, four
characters are escaped with a backslash::

    backslash  → \\\\        newline → \\n        carriage return → \\r        tab → \\t

and the empty token is written as the line ``\\e`` (a bare empty line would be invisible
to most editors). Every other character — spaces included — is written as is. Lines are
separated by ``\\n`` only; the file ends with one.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.core.files import excerpt, read_regular_bytes
from seqlab.core.serialization import atomic_write_bytes
from seqlab.core.stage import InputOutputStage

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_EMPTY = "\\e"


def escape_token(token: str) -> str:
    """One token as one line of a token file (see the module docstring).

    >>> escape_token("a b\\nc"), escape_token("")
    ('a b\\\\nc', '\\\\e')
    """
    if token == "":
        return _EMPTY
    return "".join(_ESCAPES.get(c, c) for c in token)


def unescape_token(line: str, where: str = "token file") -> str:
    """Inverse of :func:`escape_token`; a malformed escape is a ``DataError`` naming ``where``."""
    if line == _EMPTY:
        return ""
    if "\\" not in line:
        return line
    out = []
    chars = iter(line)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        nxt = next(chars, None)
        if nxt not in _UNESCAPES:
            raise DataError(
                f"{where}: bad escape '\\{nxt or ''}' in {excerpt(line)}; only \\\\, \\n, \\r, \\t and a lone \\e are valid"
            )
        out.append(_UNESCAPES[nxt])
    return "".join(out)


def write_token_file(path: str | Path, tokens: Sequence[str]) -> None:
    """Write ``tokens`` one per line, escaped, atomically."""
    text = "".join(escape_token(t) + "\n" for t in tokens)
    atomic_write_bytes(path, text.encode("utf-8"))


def read_token_file(path: str | Path) -> list[str]:
    """Read a file written by :func:`write_token_file`; errors name the file and line."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise DataError(f"token file {str(path)!r} does not exist")
    raw = read_regular_bytes(path)  # a regular file, not a link (inside the model folder when loading one)
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    tokens = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{str(path)!r} line {number}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
        tokens.append(unescape_token(text, where=f"{str(path)!r} line {number}"))
    return tokens


class Vocabulary:
    """A fixed token ↔ id table with ``<pad>``/``<unk>``/``<bos>``/``<eos>`` at ids 0–3.

    >>> v = Vocabulary.build([["the", "cat"], ["the", "dog"]])
    >>> v.encode(["the", "bird"]), v.decode([4, 5])
    ([4, 1], ['the', 'cat'])
    >>> len(v), v.pad_id, "dog" in v
    (7, 0, True)
    """

    def __init__(self, tokens: Iterable[str], specials: bool = True) -> None:
        tokens = list(tokens)
        if specials and tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            tokens = list(SPECIALS) + [t for t in tokens if t not in SPECIALS]
        index: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise DataError(f"vocabulary entry {i} is {type(token).__name__} {token!r:.60}, expected a string")
            if token in index:
                raise DataError(f"vocabulary token {token!r} appears twice (ids {index[token]} and {i})")
            index[token] = i
        if not tokens:
            raise DataError("a vocabulary needs at least one token")
        self._tokens = tokens
        self._index = index
        self.has_specials = bool(specials)

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
        specials: bool = True,
    ) -> "Vocabulary":
        """Count tokens; keep those seen ``min_freq`` times, the ``max_size`` most frequent.

        ``max_size`` counts the corpus tokens only (the four specials come on top). Ties in
        frequency keep the order of first occurrence, so the result is the same in every run.
        """
        if min_freq < 1:
            raise ConfigError(f"vocabulary: min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ConfigError(f"vocabulary: max_size must be at least 1 or None, got {max_size}")
        counts: Counter[str] = Counter()
        rows = 0
        for row, tokens in enumerate(token_lists):
            rows += 1
            if isinstance(tokens, str) or not isinstance(tokens, Sequence):
                raise DataError(
                    f"vocabulary: row {row} is {type(tokens).__name__} {tokens!r:.60}, expected a list of tokens "
                    "(tokenize the text first)"
                )
            for token in tokens:
                if not isinstance(token, str):
                    raise DataError(f"vocabulary: row {row} holds {type(token).__name__} {token!r:.60}, expected strings")
            counts.update(tokens)
        if not counts:
            raise DataError(
                f"vocabulary: the corpus has no tokens ({rows} rows, all empty); build it from non-empty training data"
            )
        # Counter keeps first-insertion order and sorted() is stable: equal counts stay in
        # order of first occurrence.
        ranked = [t for t, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c >= min_freq]
        if specials:
            ranked = [t for t in ranked if t not in SPECIALS]
        if max_size is not None:
            ranked = ranked[:max_size]
        if not ranked:
            raise DataError(
                f"vocabulary: no token occurs at least min_freq={min_freq} times "
                f"(the most frequent occurs {max(counts.values())} times); lower min_freq"
            )
        return cls(ranked, specials=specials)

    # -- lookup -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __iter__(self):
        return iter(self._tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._tokens[:8]))
        return f"Vocabulary({len(self)} tokens: {head}{', …' if len(self) > 8 else ''})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    def _special(self, token: str) -> int | None:
        return self._index[token] if self.has_specials else None

    @property
    def pad_id(self) -> int | None:
        return self._special(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._special(UNK)

    @property
    def bos_id(self) -> int | None:
        return self._special(BOS)

    @property
    def eos_id(self) -> int | None:
        return self._special(EOS)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; an unknown token is ``unk_id`` (an error without specials)."""
        found = self._index.get(token)
        if found is not None:
            return found
        if not self.has_specials:
            raise InputError(f"token {token!r:.60} is not in the vocabulary, which has no <unk> entry")
        return self._index[UNK]

    def id_to_token(self, index: int) -> str:
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(self._tokens):
            raise InputError(f"id {index!r} is outside the vocabulary (0 … {len(self._tokens) - 1})")
        return self._tokens[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        index, has_unk = self._index, self.has_specials
        if has_unk:
            unk = index[UNK]
            return [index.get(t, unk) for t in tokens]
        return [self.token_to_id(t) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_token(int(i)) for i in ids]

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the tokens in id order, one per line (escaping: see the module docstring)."""
        write_token_file(path, self._tokens)

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a file written by :meth:`save`; it has specials when it starts with them."""
        tokens = read_token_file(path)
        if not tokens:
            raise DataError(f"vocabulary file {str(path)!r} is empty")
        return cls(tokens, specials=tuple(tokens[: len(SPECIALS)]) == SPECIALS)

    # Pickled (``num_proc``) and hashed (the ``datasets`` fingerprint) as its token list only:
    # the index is rebuilt, so the bytes depend on nothing but the tokens.
    def __getstate__(self) -> dict:
        return {"tokens": self._tokens, "specials": self.has_specials}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tokens"], specials=state["specials"])


def column_rows(data: Any, column: str, stage: str) -> Iterable:
    """The rows of ``column`` in a ``datasets.Dataset`` or a dict of lists, with clear errors."""
    if isinstance(data, Mapping):
        if column not in data:
            raise DataError(f"{stage}: the data has no column {column!r} (it has: {', '.join(map(str, data)) or 'none'})")
        return data[column]
    names = getattr(data, "column_names", None)
    if names is None:
        raise DataError(f"{stage}: expected a datasets.Dataset or a dict of lists, got {type(data).__name__}")
    if column not in names:
        raise DataError(f"{stage}: the dataset has no column {column!r} (it has: {', '.join(names) or 'none'})")
    return data[column]


@dataclasses.dataclass
class VocabularyStageConfig:
    #: Column of token lists to encode (and to count when fitting).
    input: str = "tokens"
    #: Column written with the ids.
    output: str = "input_ids"
    #: Keep tokens seen at least this often in the training data.
    min_freq: int = 1
    #: Keep at most this many corpus tokens (the most frequent), plus the four specials.
    max_size: int | None = None
    #: Start every sequence with ``<bos>``.
    add_bos: bool = False
    #: End every sequence with ``<eos>``.
    add_eos: bool = False

    def validate(self, where: str) -> None:
        if self.min_freq < 1:
            raise ConfigError(f"{where}.min_freq: must be at least 1, got {self.min_freq}")
        if self.max_size is not None and self.max_size < 1:
            raise ConfigError(f"{where}.max_size: must be at least 1 (or null for no limit), got {self.max_size}")
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")


class VocabularyStage(InputOutputStage):
    """Builds a :class:`Vocabulary` from a token column, then maps tokens → ids.

    >>> stage = VocabularyStage(add_eos=True).fit({"tokens": [["a", "b"], ["a"]]})
    >>> stage({"tokens": [["a", "zzz"]]})
    {'input_ids': [[4, 1, 3]]}
    """

    kind = "vocabulary"
    Config = VocabularyStageConfig
    needs_fit = True
    FILE = "vocab.txt"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.vocab: Vocabulary | None = None

    def fit(self, data: Any) -> "VocabularyStage":
        cfg = self.config
        rows = column_rows(data, cfg.input, type(self).__name__)
        self.vocab = Vocabulary.build(rows, min_freq=cfg.min_freq, max_size=cfg.max_size)
        self.fitted = True
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        cfg, vocab = self.config, self.vocab
        head = [vocab.bos_id] if cfg.add_bos else []
        tail = [vocab.eos_id] if cfg.add_eos else []
        out = []
        for i, tokens in enumerate(batch[cfg.input]):
            if isinstance(tokens, str) or not isinstance(tokens, (list, tuple)):
                raise InputError(
                    f"{type(self).__name__}: row {i} of column {cfg.input!r} is {type(tokens).__name__} "
                    f"{tokens!r:.60}, expected a list of string tokens (tokenize the text first)"
                )
            try:
                ids = vocab.encode(tokens)
            except TypeError:  # an unhashable token (a list, a dict) cannot be looked up
                bad = next(t for t in tokens if not isinstance(t, str))
                raise InputError(
                    f"{type(self).__name__}: row {i} of column {cfg.input!r} holds the token {bad!r:.60} "
                    f"({type(bad).__name__}); expected string tokens"
                ) from None
            out.append(head + ids + tail)
        return {cfg.output: out}

    def save_state(self, directory: Path) -> None:
        self.vocab.save(Path(directory) / self.FILE)

    def load_state(self, directory: Path) -> None:
        self.vocab = Vocabulary.load(Path(directory) / self.FILE)
        if not self.vocab.has_specials:
            raise DataError(f"{str(Path(directory) / self.FILE)!r} does not start with the specials {', '.join(SPECIALS)}")
        self.fitted = True
