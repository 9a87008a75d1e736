"""Rule-based tokenizers: text → word tokens, text or words → characters.

These are the simple front ends that need no training. ``WordTokenizer`` splits on white
space, or also splits punctuation off words (a small regular-expression tokenizer in the
spirit of the Penn Treebank/Moses rules, without their language-specific exceptions), and
can lower-case and map every digit to ``0`` (the number normalisation of Lample et al.,
2016, "Neural Architectures for Named Entity Recognition", which lets ``1984`` and ``2001``
share one embedding ``0000``). ``CharTokenizer`` gives the characters of a text (for
character-level models) or of every word of a token list (for the character features of
a NER tagger, Lample et al. 2016 §4.1).

Both keep grapheme clusters whole (Unicode UAX #29 extended grapheme clusters: a flag's two
regional indicators 🇩🇪, emoji ZWJ sequences 👨‍👩‍👧, skin-tone modifiers 👍🏽, a letter with its
combining marks e + ◌́): a token or character never ends inside one, so a span never shows
half an emoji. The segmentation is the ``regex`` package's ``\\X``.

Both are :class:`~seqlab.core.stage.Stage` s: ``ds.map(stage, batched=True)`` works directly,
and, holding only their config, they pickle (``num_proc``) and hash (the ``datasets``
cache fingerprint) the same way in every process.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

import regex

from seqlab.core.errors import ConfigError, InputError
from seqlab.core.stage import InputOutputStage

# Numbers with inner separators ("3.5", "1,000") stay whole; words keep inner hyphens and
# apostrophes ("state-of-the-art", "don't"); any other non-space, non-word character is a
# token of its own. Order matters: the first alternative that matches at a position wins.
_PUNCT_SPLIT = re.compile(r"\d+(?:[.,]\d+)+|\w+(?:['’-]\w+)*|[^\w\s]")
_DIGIT = re.compile(r"\d")
# One extended grapheme cluster (what a reader sees as one character).
_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> list[str]:
    """The extended grapheme clusters of ``text`` (Unicode UAX #29).

    >>> graphemes("a🇩🇪👍🏽e\\u0301") == ["a", "🇩🇪", "👍🏽", "e\\u0301"]
    True
    """
    return _GRAPHEME.findall(text)


def _grapheme_boundaries(text: str) -> set[int]:
    return {0, *(m.end() for m in _GRAPHEME.finditer(text))}


def split_punct(text: str) -> list[str]:
    """``text`` split into words, numbers and single symbols, never inside a grapheme cluster.

    A piece that starts inside a cluster (the second regional indicator of a flag, a combining
    mark, a skin-tone modifier, a ZWJ) joins the piece before it.

    >>> split_punct("Angela Merkel 🇩🇪, 3.5 km!")
    ['Angela', 'Merkel', '🇩🇪', ',', '3.5', 'km', '!']
    """
    if text.isascii():  # no ASCII cluster spans two pieces ("\r\n" is white space): the fast path
        return _PUNCT_SPLIT.findall(text)
    pieces: list[str] = []
    boundaries: set[int] | None = None
    end = -1
    for match in _PUNCT_SPLIT.finditer(text):
        start = match.start()
        if pieces and start == end:
            if boundaries is None:
                boundaries = _grapheme_boundaries(text)
            if start not in boundaries:
                pieces[-1] += match.group()
                end = match.end()
                continue
        pieces.append(match.group())
        end = match.end()
    return pieces


def _check_text(value: Any, index: int, column: str, stage: str) -> str:
    if not isinstance(value, str):
        raise InputError(
            f"{stage}: row {index} of column {column!r} is {type(value).__name__} {value!r:.60}, expected a string"
        )
    return value


def _check_tokens(value: Any, index: int, column: str, stage: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise InputError(
            f"{stage}: row {index} of column {column!r} is {type(value).__name__} {value!r:.60}, "
            "expected a list of string tokens"
        )
    for position, token in enumerate(value):
        if not isinstance(token, str):
            raise InputError(
                f"{stage}: row {index} of column {column!r}, token {position} is "
                f"{type(token).__name__} {token!r:.60}, expected a string"
            )
    return list(value)


@dataclasses.dataclass
class WordTokenizerConfig:
    #: Column holding the raw text.
    input: str = "text"
    #: Column written with the list of tokens of each text.
    output: str = "tokens"
    #: Lower-case every token.
    lowercase: bool = False
    #: Replace every digit by ``0`` ("1984" → "0000").
    normalize_numbers: bool = False
    #: ``whitespace``: split on runs of white space only; ``punct``: also split punctuation off words.
    split: Literal["whitespace", "punct"] = "whitespace"

    def validate(self, where: str) -> None:
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")


class WordTokenizer(InputOutputStage):
    """Text → list of word tokens.

    >>> tok = WordTokenizer(split="punct", lowercase=True, normalize_numbers=True)
    >>> tok({"text": ["In 1984, Orwell wrote it."]})
    {'tokens': [['in', '0000', ',', 'orwell', 'wrote', 'it', '.']]}
    >>> WordTokenizer()({"text": ["a  b\\tc"]})
    {'tokens': [['a', 'b', 'c']]}
    """

    kind = "word_tokenizer"
    Config = WordTokenizerConfig

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text."""
        cfg = self.config
        tokens = split_punct(text) if cfg.split == "punct" else text.split()
        if cfg.lowercase:
            tokens = [t.lower() for t in tokens]
        if cfg.normalize_numbers:
            tokens = [_DIGIT.sub("0", t) for t in tokens]
        return tokens

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        column = self.config.input
        name = type(self).__name__
        return {
            self.config.output: [
                self.tokenize(_check_text(text, i, column, name)) for i, text in enumerate(batch[column])
            ]
        }


@dataclasses.dataclass
class CharTokenizerConfig:
    #: Column read: a text per row (``per_token: false``) or a list of word tokens (``per_token: true``).
    input: str = "text"
    #: Column written: a list of characters per row, or a list of lists (one per word).
    output: str = "chars"
    #: Split every word of a token list into characters instead of splitting a whole text.
    per_token: bool = False
    #: Lower-case before splitting.
    lowercase: bool = False
    #: Keep white-space characters when splitting a whole text (ignored with ``per_token``).
    keep_spaces: bool = True

    def validate(self, where: str) -> None:
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")


class CharTokenizer(InputOutputStage):
    """Text → characters, or word tokens → characters of each word.

    >>> CharTokenizer()({"text": ["ab c"]})
    {'chars': [['a', 'b', ' ', 'c']]}
    >>> CharTokenizer()({"text": ["o🇩🇪"]})          # a flag is one character, not two
    {'chars': [['o', '🇩🇪']]}
    >>> CharTokenizer(input="tokens", per_token=True)({"tokens": [["Hi", "you"]]})
    {'chars': [[['H', 'i'], ['y', 'o', 'u']]]}
    """

    kind = "char_tokenizer"
    Config = CharTokenizerConfig

    def _chars(self, text: str) -> list[str]:
        if self.config.lowercase:
            text = text.lower()
        chars = graphemes(text)
        if not self.config.keep_spaces and not self.config.per_token:
            return [c for c in chars if not c.isspace()]
        return chars

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        column = self.config.input
        name = type(self).__name__
        rows = batch[column]
        if self.config.per_token:
            out = [[self._chars(t) for t in _check_tokens(v, i, column, name)] for i, v in enumerate(rows)]
        else:
            out = [self._chars(_check_text(v, i, column, name)) for i, v in enumerate(rows)]
        return {self.config.output: out}
