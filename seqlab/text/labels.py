"""Class labels ↔ indices for classification targets (sentiment and the like).

Labels are compared as strings (``str(value)``), so a TSV's ``"0"``/``"1"`` and a hub
dataset's integer ``0``/``1`` name the same classes. When no fixed label set is given,
``fit`` collects the labels seen in the training data and sorts them — numerically when
every label is an integer ("2" before "10"), else alphabetically — so the index of each
class is the same in every run. A label never seen in training is an error, not a
silent new class.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.core.stage import InputOutputStage

from .vocab import column_rows, read_token_file, write_token_file


def _is_int(text: str) -> bool:
    """An ASCII integer literal ('-3', '10'); not '²' or '①', which str.isdigit() also accepts."""
    body = text[1:] if text.startswith("-") else text
    return body.isascii() and body.isdigit()


def sort_labels(labels: set[str] | list[str]) -> list[str]:
    """Numeric order when all labels are integers, else alphabetical.

    >>> sort_labels({"10", "2", "0"}), sort_labels({"pos", "neg"})
    (['0', '2', '10'], ['neg', 'pos'])
    """
    labels = set(labels)
    if labels and all(_is_int(l) for l in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _label_text(value: Any, index: int, column: str) -> str:
    if value is None or isinstance(value, (list, dict, tuple, set)):
        raise DataError(
            f"LabelEncoder: row {index} of column {column!r} is {value!r:.60}; expected one label per row"
        )
    return str(value)


@dataclasses.dataclass
class LabelEncoderConfig:
    #: Column holding the raw label of each example.
    input: str = "label"
    #: Column written with the class index.
    output: str = "labels"
    #: The fixed label set, in index order (ints are read as their strings, so a YAML
    #: ``[0, 1]`` works); ``null``: collect the labels of the training data.
    labels: list[str | int] | None = None

    def validate(self, where: str) -> None:
        if self.labels is not None:
            seen = set()
            for label in map(str, self.labels):
                if label in seen:
                    raise ConfigError(f"{where}.labels: {label!r} is listed twice")
                seen.add(label)
            if not self.labels:
                raise ConfigError(f"{where}.labels: the label set is empty; give the labels or null to learn them")
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")


class LabelEncoder(InputOutputStage):
    """Raw labels → class indices ``0 … K-1``.

    >>> enc = LabelEncoder().fit({"label": [1, 0, 1]})
    >>> enc.labels, enc({"label": ["1", 0]})
    (['0', '1'], {'labels': [1, 0]})
    >>> enc.decode(1)
    '1'
    """

    kind = "label_encoder"
    Config = LabelEncoderConfig
    training_only = True
    needs_fit = True
    FILE = "labels.txt"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.labels: list[str] = []
        self._index: dict[str, int] = {}
        if self.config.labels is not None:
            self._set_labels([str(l) for l in self.config.labels])

    def _set_labels(self, labels: list[str]) -> None:
        self.labels = list(labels)
        self._index = {label: i for i, label in enumerate(self.labels)}
        self.fitted = True

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def fit(self, data: Any) -> "LabelEncoder":
        column = self.config.input
        rows = column_rows(data, column, type(self).__name__)
        seen: set[str] = set()
        count = 0
        for i, value in enumerate(rows):
            seen.add(_label_text(value, i, column))
            count += 1
        if not count:
            raise DataError(f"LabelEncoder: the training data has no rows in column {column!r}; nothing to learn labels from")
        if self.config.labels is not None:
            # A fixed label set: check that the data fits it now, not mid-training.
            unknown = sorted(seen - set(self._index))
            if unknown:
                raise DataError(
                    f"LabelEncoder: the training data has label(s) {unknown[:5]} outside the fixed label set {self.labels}"
                )
            self.fitted = True
            return self
        self._set_labels(sort_labels(seen))
        return self

    def encode(self, value: Any, index: int = 0) -> int:
        """The class index of one label; an unknown label is a ``DataError``."""
        text = _label_text(value, index, self.config.input)
        found = self._index.get(text)
        if found is None:
            raise DataError(
                f"LabelEncoder: row {index} has label {value!r:.60}, which is not a known label "
                f"(known: {', '.join(map(repr, self.labels[:20]))}{' …' if len(self.labels) > 20 else ''})"
            )
        return found

    def decode(self, index: int) -> str:
        """The label of class ``index``."""
        if isinstance(index, bool) or not 0 <= int(index) < len(self.labels):
            raise InputError(f"LabelEncoder: class index {index!r} is outside 0 … {len(self.labels) - 1}")
        return self.labels[int(index)]

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {self.config.output: [self.encode(v, i) for i, v in enumerate(batch[self.config.input])]}

    def save_state(self, directory: Path) -> None:
        write_token_file(Path(directory) / self.FILE, self.labels)

    def load_state(self, directory: Path) -> None:
        path = Path(directory) / self.FILE
        labels = read_token_file(path)
        if not labels:
            raise DataError(f"{str(path)!r} holds no labels")
        self._set_labels(labels)
