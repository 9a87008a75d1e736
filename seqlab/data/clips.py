"""Audio clip sets: clips (file paths or 1-D float32 arrays) with a digit label and an in-class flag each.

``ClipSet`` reads like a ``datasets.Dataset`` to the Pipeline (``column_names``, ``to_dict``,
``len`` = number of clips) while holding arrays as they are (cut segments of long
recordings have no file). ``read_clip_table`` reads a TSV of audio files and labels;
``digit_of`` / ``is_digit_string`` read spoken-digit labels ("three", "3", "three one four").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError

__all__ = ["DIGIT_WORDS", "ClipSet", "digit_of", "is_digit_string", "read_clip_table"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit_of(text: Any) -> int | None:
    """The digit a label names — ``"three"``, ``"3"`` or ``3`` → 3 — or None.

    >>> digit_of("Seven"), digit_of("7"), digit_of("seven one")
    (7, 7, None)
    """
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text) if 0 <= int(text) <= 9 else None
    word = str(text).strip().lower()
    if word in DIGIT_WORDS:
        return DIGIT_WORDS.index(word)
    return int(word) if len(word) == 1 and word.isdigit() else None


def is_digit_string(text: Any) -> bool:
    """Whether every word of ``text`` names a digit ("three one four").

    >>> is_digit_string("three one four"), is_digit_string("turn left"), is_digit_string("")
    (True, False, False)
    """
    words = str(text).split()
    return bool(words) and all(digit_of(w) is not None for w in words)


@dataclass
class ClipSet:
    """Audio clips (file paths, or 1-D float32 arrays at the pipeline's sample rate) with what is known about each.

    ``digits``: the spoken digit (or None); ``anomalous``: out-of-class (not a spoken digit);
    ``names``: where each clip came from (for messages). As a dataset its columns are
    ``audio``, ``digit``, ``anomalous`` and ``name``.

    >>> clips = ClipSet([np.zeros(800, np.float32)] * 3, digits=[1, 2, None], anomalous=[False, False, True])
    >>> len(clips), clips.subset([2]).anomalous
    (3, [True])
    """

    audio: list[Any]
    digits: list[int | None] = field(default_factory=list)
    anomalous: list[bool] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.audio)
        self.digits = list(self.digits) if self.digits else [None] * n
        self.anomalous = [bool(a) for a in self.anomalous] if self.anomalous else [False] * n
        self.names = list(self.names) if self.names else [f"clip {i}" for i in range(n)]
        for name in ("digits", "anomalous", "names"):
            if len(getattr(self, name)) != n:
                raise DataError(f"ClipSet: {len(getattr(self, name))} {name} for {n} clips")

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def column_names(self) -> list[str]:
        return ["audio", "digit", "anomalous", "name"]

    def to_dict(self) -> dict[str, list]:
        """The clips as columns (what ``Pipeline.fit``/``evaluate`` read)."""
        return {"audio": list(self.audio), "digit": list(self.digits), "anomalous": list(self.anomalous), "name": list(self.names)}

    def subset(self, indices: Sequence[int]) -> "ClipSet":
        idx = [int(i) for i in indices]
        return ClipSet([self.audio[i] for i in idx], [self.digits[i] for i in idx],
                       [self.anomalous[i] for i in idx], [self.names[i] for i in idx])

    def __add__(self, other: "ClipSet") -> "ClipSet":
        return ClipSet(self.audio + other.audio, self.digits + other.digits,
                       self.anomalous + other.anomalous, self.names + other.names)

    def inliers(self) -> "ClipSet":
        return self.subset([i for i, a in enumerate(self.anomalous) if not a])

    def outliers(self) -> "ClipSet":
        return self.subset([i for i, a in enumerate(self.anomalous) if a])


def read_clip_table(
    path: str | Path, audio_column: str = "file", label_column: str = "text", root: str | None = None,
) -> tuple[list[Path], list[str]]:
    """A TSV of audio files and labels → (paths, labels). Relative paths are read from ``root``,
    by default the table's own folder."""
    from .paths import resolve_path
    from .readers import read_tsv

    table_path = resolve_path(path, what="clip table")
    table = read_tsv(table_path)
    for column in (audio_column, label_column):
        if column not in table.column_names:
            raise ConfigError(
                f"data: {str(path)!r} has no column {column!r} (columns: {', '.join(table.column_names)}); "
                "set data.audio_column / data.label_column"
            )
    base = resolve_path(root, what="audio root folder") if root else table_path.parent
    paths = [p if p.is_absolute() else base / p for p in map(Path, table[audio_column])]
    return paths, list(table[label_column])
