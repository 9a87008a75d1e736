"""Tagged sentences: a sentence's tokens with their character offsets, and the stages around them.

- ``Sentence``: the tokens of one sentence, remembering its text and each token's offsets,
  so that spans found on tokens point back into the text (``char_start``/``char_end``);
- ``SentenceTokenizer`` (stage ``sentence_tokenizer``): raw input → ``Sentence`` — a string is
  tokenised (``WordTokenizer``, ``split="punct"``), a list of tokens is taken as it is;
- ``TagEncoder`` (stage ``tag_encoder``): tag sequences in one scheme (IOB1, IOB2, IOBES,
  BILOU) → tag indices in another, learning the entity types. The schemes and spans
  themselves are ``seqlab.text.tagging``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.core.stage import InputOutputStage, Stage

from .tagging import normalize_scheme, spans, tag_set, tags_from_spans
from .vocab import column_rows, read_token_file, write_token_file

__all__ = ["Sentence", "SentenceTokenizer", "SentenceTokenizerConfig", "TagEncoder", "TagEncoderConfig", "sentence_of"]


# -- input: raw text or tokens → one sentence --------------------------------------------------
class Sentence(list):
    """The tokens of one sentence, remembering the text and each token's character offsets.

    Raw text keeps its own spelling (``text``); pre-tokenized input gets ``text`` = the
    tokens joined by single spaces. Spans in the output carry ``char_start``/``char_end``
    into ``text``.

    >>> s = Sentence.from_text("Hi,  you", ["Hi", ",", "you"])
    >>> list(s), s.offsets
    (['Hi', ',', 'you'], [(0, 2), (2, 3), (5, 8)])
    """

    @classmethod
    def from_text(cls, text: str, tokens: Sequence[str]) -> "Sentence":
        sentence = cls(tokens)
        sentence.text, sentence.offsets, position = text, [], 0
        for token in tokens:
            start = text.find(token, position)
            if start < 0:  # a tokenizer that rewrites tokens: fall back to the running position
                start = position
            sentence.offsets.append((start, start + len(token)))
            position = start + len(token)
        return sentence

    @classmethod
    def from_tokens(cls, tokens: Sequence[str]) -> "Sentence":
        return cls.from_text(" ".join(tokens), tokens)


def sentence_of(tokens: Sequence[str]) -> Sentence:
    """``tokens`` as a ``Sentence`` (kept as is when it already is one)."""
    if isinstance(tokens, Sentence) and len(getattr(tokens, "offsets", ())) == len(tokens):
        return tokens
    return Sentence.from_tokens(list(tokens))


# -- the tag encoder stage ---------------------------------------------------------------------
@dataclass
class TagEncoderConfig:
    #: Column of tag sequences (one list of tags per sentence).
    input: str = "tags"
    #: Column written with the tag indices in the ``target`` scheme.
    output: str = "tag_ids"
    #: Scheme of the data's tags: IOB1, IOB2 (BIO), IOBES (BIOES) or BILOU.
    scheme: str = "IOB2"
    #: Scheme the model is trained in.
    target: str = "IOBES"
    #: Fixed entity types (null: the types seen in the training data, sorted).
    types: list[str] | None = None
    #: Refuse sequences that break ``scheme``'s rules (``O I-PER`` in IOB2) instead of
    #: reading them as seqeval does.
    strict: bool = False

    def validate(self, where: str = "tags") -> None:
        self.scheme = normalize_scheme(self.scheme)
        self.target = normalize_scheme(self.target)
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")
        if self.types is not None and not self.types:
            raise ConfigError(f"{where}.types: empty; give the entity types or null to learn them")


def _sentence_error(err: DataError, index: int, what: str = "training data") -> DataError:
    return DataError(f"{what} sentence {index}: {err}")


class TagEncoder(InputOutputStage):
    """Tag sequences (in ``scheme``) → tag indices in the ``target`` scheme; learns the entity types.

    A tag the scheme does not have (``S-PER`` in IOB2, ``PER``) is a ``DataError`` naming the
    sentence and position. Training-only: at prediction time there are no tags.

    >>> enc = TagEncoder(scheme="IOB2", target="IOBES").fit({"tags": [["B-PER", "I-PER", "O", "B-LOC"]]})
    >>> enc.types, enc.tags
    (['LOC', 'PER'], ['O', 'B-LOC', 'I-LOC', 'E-LOC', 'S-LOC', 'B-PER', 'I-PER', 'E-PER', 'S-PER'])
    >>> enc({"tags": [["B-PER", "I-PER", "O", "B-LOC"]]})
    {'tag_ids': [[5, 7, 0, 4]]}
    """

    kind = "tag_encoder"
    Config = TagEncoderConfig
    training_only = True
    needs_fit = True
    FILE = "entity_types.txt"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.types: list[str] = []
        self.tags: list[str] = []
        self._index: dict[str, int] = {}
        if self.config.types is not None:
            self._set_types(list(self.config.types))

    def _set_types(self, types: list[str]) -> None:
        self.types = list(types)
        self.tags = tag_set(self.types, self.config.target)
        self._index = {t: i for i, t in enumerate(self.tags)}
        self.fitted = True

    def _read(self, row: Any, index: int) -> list[tuple[str, int, int]]:
        if isinstance(row, str) or not isinstance(row, Sequence):
            raise DataError(f"TagEncoder: sentence {index} of column {self.config.input!r} is "
                            f"{type(row).__name__} {row!r:.60}, expected a list of tags")
        try:
            if self.config.strict:
                from .tagging import validate

                validate(list(row), self.config.scheme)
            return spans(list(row), self.config.scheme)
        except DataError as err:
            raise _sentence_error(err, index) from None

    def fit(self, data: Any) -> "TagEncoder":
        rows = column_rows(data, self.config.input, type(self).__name__)
        tokens = data.get("tokens") if isinstance(data, Mapping) else None
        seen: set[str] = set()
        count = 0
        for i, row in enumerate(rows):
            if tokens is not None and len(tokens[i]) != len(row):
                raise DataError(f"training data sentence {i}: {len(tokens[i])} tokens but {len(row)} tags")
            for kind, _, _ in self._read(row, i):
                if kind not in seen and (not kind or any(c.isspace() for c in kind)):
                    raise DataError(f"training data sentence {i}: entity type {kind!r} must be a non-empty string "
                                    "without spaces")
                seen.add(kind)
            count += 1
        if not count:
            raise DataError(f"TagEncoder: the training data has no sentences in column {self.config.input!r}")
        if self.config.types is not None:
            unknown = sorted(seen - set(self.types))
            if unknown:
                raise DataError(f"TagEncoder: the training data has entity type(s) {unknown} outside the fixed types {self.types}")
            return self
        if not seen:
            raise DataError(
                f"TagEncoder: the training data holds no entity at all ({count} sentences, every tag 'O'); "
                "is the tag column right (data.tag_column)?"
            )
        self._set_types(sorted(seen))
        return self

    def encode(self, row: Sequence[str], index: int = 0) -> list[int]:
        """Tag indices (target scheme) of one sentence's tags (in ``scheme``)."""
        found = self._read(row, index)
        out = [0] * len(row)
        try:
            target = tags_from_spans(found, len(row), self.config.target)
        except DataError as err:  # e.g. an entity type with white space
            raise _sentence_error(err, index) from None
        for i, tag in enumerate(target):
            j = self._index.get(tag)
            if j is None:
                raise DataError(f"training data sentence {index}, token {i}: entity type of {row[i]!r} is not one of "
                                f"the known types {self.types}")
            out[i] = j
        return out

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {self.config.output: [self.encode(row, i) for i, row in enumerate(batch[self.config.input])]}

    def save_state(self, directory: Path) -> None:
        write_token_file(Path(directory) / self.FILE, self.types)

    def load_state(self, directory: Path) -> None:
        types = read_token_file(Path(directory) / self.FILE)
        if not types:
            raise DataError(f"{str(Path(directory) / self.FILE)!r} holds no entity types")
        self._set_types(types)


# -- the sentence tokenizer stage ------------------------------------------------------------------
@dataclass
class SentenceTokenizerConfig:
    #: Column of sentences: raw texts or lists of tokens (rewritten in place as ``Sentence``s).
    column: str = "tokens"
    #: How a raw text is cut into tokens (``WordTokenizer``'s ``split``).
    split: str = "punct"


class SentenceTokenizer(Stage):
    """Raw sentences (a text, or a list of tokens) → ``Sentence``s, in the same column.

    A text is tokenised, keeping each token's character offsets; a list of tokens is kept as
    given (its text is the tokens joined by spaces). An empty sentence or a token that is not
    a non-empty string is an ``InputError`` naming the row.

    >>> stage = SentenceTokenizer()
    >>> out = stage({"tokens": ["Hi, you", ["New", "York"]]})["tokens"]
    >>> [list(s) for s in out], out[0].offsets
    ([['Hi', ',', 'you'], ['New', 'York']], [(0, 2), (2, 3), (4, 7)])
    """

    kind = "sentence_tokenizer"
    Config = SentenceTokenizerConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.column,)
        self.provides = (self.config.column,)
        self._tokenizer = None

    def sentence(self, value: Any, index: int = 0) -> Sentence:
        """One raw sentence as a ``Sentence``."""
        if isinstance(value, str):
            if not value.strip():
                raise InputError(f"input {index}: the text is empty or only white space; give at least one word")
            if self._tokenizer is None:
                from .tokenizers import WordTokenizer

                self._tokenizer = WordTokenizer(split=self.config.split)
            return Sentence.from_text(value, self._tokenizer.tokenize(value))
        if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
            for position, token in enumerate(value):
                if not isinstance(token, str):
                    raise InputError(f"input {index}, token {position}: expected a string, got {type(token).__name__} {token!r:.40}")
                if not token.strip():
                    raise InputError(f"input {index}, token {position}: the token is empty or white space")
            return sentence_of(value)
        raise InputError(f"input {index}: expected a text or a list of tokens, got {type(value).__name__} {value!r:.60}")

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {self.config.column: [self.sentence(v, i) for i, v in enumerate(batch[self.config.column])]}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tokenizer": None}

