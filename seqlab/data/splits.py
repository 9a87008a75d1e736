"""The data splits a task recipe reads: its train/dev files and evaluation data.

A task's recipe dataclass (``SentimentRecipe``, ``NERRecipe`` …) has a ``data`` section
with ``train``, ``dev`` and ``limit_train`` and a ``read(path, limit)`` method for its
file format; this mixin turns that into ``datasets()`` (for training) and ``read_eval``
(for ``seqlab eval MODEL_DIR DATA``).
"""
from __future__ import annotations

from typing import Any


class FileRecipe:
    """Mixin: ``datasets()`` and ``read_eval()`` from the recipe's own ``read``."""

    data: Any

    def read(self, path: str, limit: int | None = None) -> Any:
        raise NotImplementedError

    def datasets(self) -> tuple[Any, Any]:
        train = self.read(self.data.train, self.data.limit_train)
        dev = self.read(self.data.dev) if self.data.dev else None
        return train, dev

    def read_eval(self, path: str) -> Any:
        """Data for ``seqlab eval MODEL_DIR DATA``: a file in the recipe's format."""
        return self.read(path)


def first_rows(dataset: Any, limit: int | None) -> Any:
    """The first ``limit`` rows of a ``datasets.Dataset`` (all when ``limit`` is None)."""
    if limit is None:
        return dataset
    return dataset.select(range(min(limit, len(dataset))))
