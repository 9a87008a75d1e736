"""The stage protocol: one object that reads some columns of a batch and writes others.

A batch is a plain ``dict`` of equally long lists (``{"text": [...], "label": [...]}``),
which is exactly what ``datasets.Dataset.map(fn, batched=True)`` hands a function, so
every stage is usable there directly, and — holding only plain data — is picklable for
``num_proc``. A stage says which columns it ``takes`` and ``provides`` so a pipeline can
check its wiring when it is built.

Preprocessing stages may be *fitted* (build a vocabulary, train sentencepiece). A stage
marked ``training_only`` (e.g. a label encoder) needs target columns and is skipped at
prediction time.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from .config import from_dict, to_dict
from .errors import NotFittedError, WiringError


@dataclasses.dataclass
class StageConfig:
    """Settings shared by no one: each stage subclasses this with its own fields."""


class Stage:
    """Base class of preprocessing stages.

    Subclasses set ``kind`` (the registry name), ``Config`` (a dataclass), implement
    ``map`` and, when they learn something, ``fit`` / ``save_state`` / ``load_state``.

    >>> class Upper(Stage):
    ...     kind = "upper"
    ...     takes = ("text",)
    ...     provides = ("upper",)
    ...     def map(self, batch):
    ...         return {"upper": [t.upper() for t in batch["text"]]}
    >>> Upper()({"text": ["ab", "c"]})
    {'upper': ['AB', 'C']}
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type] = StageConfig
    #: Needs target columns; the pipeline skips it when predicting.
    training_only: ClassVar[bool] = False
    #: Learns from data; ``fitted`` must be true before ``map``.
    needs_fit: ClassVar[bool] = False

    takes: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        if config is None:
            config = from_dict(self.Config, overrides, where=f"stage {type(self).__name__}")
        elif isinstance(config, Mapping):
            config = from_dict(self.Config, {**config, **overrides}, where=f"stage {type(self).__name__}")
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.fitted = not self.needs_fit

    # -- protocol -----------------------------------------------------------------
    def fit(self, data: Any) -> "Stage":
        """Learn from ``data`` (a ``datasets.Dataset`` or a dict of lists); returns self."""
        self.fitted = True
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        """Return the new columns for ``batch``; never modifies the input."""
        raise NotImplementedError

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        if not self.fitted:
            raise NotFittedError(f"stage {self.describe()} is used before fit(); fit it on training data first")
        missing = [c for c in self.takes if c not in batch]
        if missing:
            have = ", ".join(sorted(batch.keys())) or "none"
            raise WiringError(
                f"stage {self.describe()} needs column(s) {', '.join(map(repr, missing))}; "
                f"the batch has: {have}"
            )
        return self.map(batch)

    def to(self, device: Any) -> "Stage":
        """Compute on ``device`` from now on; the Pipeline calls this with its device.

        Most stages compute on the CPU whatever the device and ignore it; feature stages
        (MFCC, log-mel) move their transform there.
        """
        return self

    # -- persistence ----------------------------------------------------------------
    def save_state(self, directory: Path) -> None:
        """Write what ``fit`` learned into ``directory`` (plain files, never pickle)."""

    def load_state(self, directory: Path) -> None:
        """Read back what ``save_state`` wrote."""

    def to_config(self) -> dict:
        return {"kind": self.kind, "config": to_dict(self.config)}

    def describe(self) -> str:
        return f"{type(self).__name__}({', '.join(self.takes)} → {', '.join(self.provides)})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"


class InputOutputStage(Stage):
    """A stage that reads the column ``config.input`` and writes the column ``config.output``.

    Its ``Config`` has ``input`` and ``output`` fields (column names); most text stages are
    of this kind (tokenizers, vocabulary, label and tag encoders, sentencepiece).
    """

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.input,)
        self.provides = (self.config.output,)


def check_wiring(stages: list[Stage], available: set[str], needed: tuple[str, ...] = (), consumer: str = "the model") -> set[str]:
    """Walk ``stages`` in order from the columns in ``available``; fail on the first gap.

    Returns the set of columns present after the last stage.
    """
    have = set(available)
    for position, stage in enumerate(stages):
        for column in stage.takes:
            if column not in have:
                raise WiringError(
                    f"stage {position} {stage.describe()} needs column {column!r}; nothing before it "
                    f"provides it (available: {', '.join(sorted(have)) or 'none'})"
                )
        have.update(stage.provides)
    for column in needed:
        if column not in have:
            raise WiringError(
                f"{consumer} needs column {column!r}; no stage provides it "
                f"(available: {', '.join(sorted(have)) or 'none'})"
            )
    return have
