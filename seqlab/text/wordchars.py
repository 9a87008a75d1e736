"""The characters of each word, as ids: the input of a character-level word encoder.

A word the training data never showed gets the vocabulary's ``<unk>`` id, and with it the
same vector as every other unseen word. Its spelling still says a lot: ``dazzles`` shares
most of its letters with ``dazzling``, ``warmly`` with ``warm``. The ``word_chars`` stage
turns each example's ``tokens`` into a ``(tokens, max_word_length)`` matrix of character ids
(``seqlab.nn.charenc.CharTable``: 0 padding, 1 an unknown character), which a model feeds to
``seqlab.nn.charenc.char_encoder`` beside the word embedding. The alphabet is every character
of the training words, in code-point order; it is kept in the stage's config, so a saved
pipeline maps new words exactly as in training.

>>> stage = WordChars(max_word_length=4).fit({"tokens": [["ab", "c"]]})
>>> stage.config.alphabet, stage({"tokens": [["cab", "z", ""]]})["char_ids"]
('abc', [[[4, 2, 3, 0], [1, 0, 0, 0], [1, 0, 0, 0]]])
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..core.errors import ConfigError
from ..core.stage import InputOutputStage


@dataclasses.dataclass
class WordCharsConfig:
    input: str = "tokens"
    output: str = "char_ids"
    #: Characters kept per word; a longer word keeps its first and last half (``char_ids``).
    max_word_length: int = 20
    #: The characters with ids; None until ``fit`` (every character of the training words).
    alphabet: str | None = None


class WordChars(InputOutputStage):
    """``tokens`` (a list of words per example) → ``char_ids`` (a ``(words, max_word_length)`` id list)."""

    kind = "word_chars"
    Config = WordCharsConfig
    needs_fit = True

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if self.config.max_word_length < 2:
            raise ConfigError(f"word_chars.max_word_length must be >= 2, got {self.config.max_word_length}")
        self.table = None
        if self.config.alphabet is not None:
            self._set_alphabet(self.config.alphabet)

    def _set_alphabet(self, alphabet: str) -> None:
        from ..nn.charenc import CharTable

        self.table = CharTable(alphabet)
        # A copy: the config object given (a recipe's section) stays as it was.
        self.config = dataclasses.replace(self.config, alphabet=self.table.alphabet)
        self.fitted = True

    def fit(self, data: Any) -> "WordChars":
        from .vocab import column_rows

        rows = column_rows(data, self.config.input, type(self).__name__)
        self._set_alphabet("".join(sorted({c for row in rows for word in row for c in word})))
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        import torch

        from ..nn.charenc import char_ids

        width = self.config.max_word_length
        rows = [list(row) for row in batch[self.config.input]]
        # One vectorised lookup for every word of the batch, then cut back into its rows.
        ids, _ = char_ids([word for row in rows for word in row], self.table, width)
        padded = torch.nn.functional.pad(ids, (0, width - ids.shape[1])).tolist() if ids.shape[0] else []
        out, start = [], 0
        for row in rows:
            out.append(padded[start : start + len(row)])
            start += len(row)
        return {self.config.output: out}


__all__ = ["WordChars", "WordCharsConfig"]
