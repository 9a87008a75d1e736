"""The task-model interface that the Trainer and the Pipeline rely on.

A task model is ``encoder + head`` as one ``torch.nn.Module``; the head owns its loss
and its decoding. The Trainer knows a task only through ``loss``; the Pipeline through
``collate``, ``decode``, ``score`` and ``check_input``. Its config (a dataclass) holds
everything needed to rebuild it — including what it learned from the fitted stages
(vocabulary size, label names) — so ``config.json`` + ``model.safetensors`` restore it.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from .errors import InputError


class TaskModel(nn.Module):
    """Base class of every task model (sentiment, NER, translation, speech, LM)."""

    #: Registry name, e.g. ``"sentiment"``.
    task: ClassVar[str] = ""
    #: The config dataclass.
    Config: ClassVar[type]
    #: The raw column a user gives at prediction time (``"text"``, ``"audio"``).
    input_column: ClassVar[str] = "text"
    #: Raw columns that hold the targets in training/evaluation data.
    target_columns: ClassVar[tuple[str, ...]] = ()
    #: Metric that selects the best checkpoint, and whether larger is better.
    selection_metric: ClassVar[str] = "loss"
    selection_mode: ClassVar[str] = "min"
    #: A dev metric (lower is better) that breaks ties of the selection metric, for metrics that
    #: saturate on a small dev set (a WER of 0 reached early); computed by :meth:`tiebreak_metrics`.
    selection_tiebreak: ClassVar[str | None] = None

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    # -- building -----------------------------------------------------------------
    @classmethod
    def configure(cls, config: Any, stages: list) -> Any:
        """``config`` with what the fitted stages know filled in (vocabulary sizes, labels, tag sets).

        Pure: the same stages give the same config. ``Pipeline.load`` uses it to check that
        the saved stage files agree with the saved model config.
        """
        return config

    @classmethod
    def from_stages(cls, config: Any, stages: list) -> "TaskModel":
        """Build a fresh model for the fitted stages: :meth:`configure`, then :meth:`initialize`."""
        model = cls(cls.configure(config, stages))
        model.initialize(stages)
        return model

    def initialize(self, stages: list) -> None:
        """Set what a new model takes from the stages beyond its config (pretrained vectors, tokenizers)."""

    def tiebreak_metrics(self, processed: Any, references: Any, device: Any) -> dict[str, float]:
        """The :attr:`selection_tiebreak` metric on processed dev data (none by default)."""
        return {}

    # -- data -----------------------------------------------------------------------
    @property
    def columns(self) -> tuple[str, ...]:
        """The processed columns the model reads (wiring is checked against these)."""
        return tuple(self.pad_values(training=True))

    def pad_values(self, training: bool) -> dict[str, Any]:
        """Column → padding value for ``collate`` (``None``: a scalar per example)."""
        raise NotImplementedError

    def length_column(self) -> str:
        """The column whose length drives bucketing."""
        return next(iter(self.pad_values(training=False)))

    def check_input(self, value: Any, index: int) -> Any:
        """Validate one raw prediction input; raise ``InputError`` naming it."""
        if self.input_column == "text":
            if not isinstance(value, str):
                raise InputError(f"input {index}: expected a string, got {type(value).__name__} {value!r:.60}")
            if not value.strip():
                raise InputError(f"input {index}: the text is empty or only white space; give at least one word")
        return value

    # -- training and decoding -------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss; ``forward`` so that DDP's gradient hooks see the call."""
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, batch: dict[str, torch.Tensor]) -> list[Any]:
        """One output per example (label with scores, tags, text…)."""
        raise NotImplementedError

    def score(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        """The task's metrics for ``outputs`` against the raw target columns."""
        raise NotImplementedError

    # -- presenting -------------------------------------------------------------------
    def format_output(self, output: Any) -> str:
        """One decoded output as one line of plain text (``seqlab predict``, the examples after training).

        The task's own conventions: a label with its score, entities marked in the sentence, the
        translation, the transcript, the generated text. This default covers outputs with a
        ``label`` and a ``score`` (``"positive (0.982)"``), plain strings, and dicts with a
        ``text``; anything else becomes compact JSON. ``--json`` output is the decoded value itself.

        >>> TaskModel(None).format_output({"label": "pos", "score": 0.9812})
        'pos (0.981)'
        """
        if isinstance(output, dict) and "label" in output and isinstance(output.get("score"), (int, float)):
            return f"{output['label']} ({output['score']:.3f})"
        if isinstance(output, str):
            return output
        if isinstance(output, dict) and isinstance(output.get("text"), str):
            return output["text"]
        import json

        return json.dumps(output, ensure_ascii=False, default=str)
