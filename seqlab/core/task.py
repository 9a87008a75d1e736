"""The task interface: the one shape every task has, and the only way the Pipeline and the Trainer see a task.

A task is a configuration dataclass (``Config``) plus a ``TaskModel`` subclass — an
``nn.Module`` that is encoder + head, the head owning its loss and its decoding. The
Pipeline and the Trainer call these members directly (none is looked up with ``getattr``);
each has a working default where one makes sense. ``docs/architecture.md`` walks through
them with a complete small task.

=====================  ===============================  ==========================================
member                 called by                        does
=====================  ===============================  ==========================================
``task``, ``Config``   registry, ``Pipeline.load``      name; the config dataclass (from YAML/JSON)
``input_column``,      ``Pipeline.fit/predict/eval``    the raw prediction column; the raw target
``target_columns``                                      columns of training/evaluation data
``configure``          ``from_stages``, ``load``        fill the config from the fitted stages
``from_stages``,       ``Pipeline.fit``                 build a fresh model for fitted stages
``initialize``
``pad_values``,        ``Pipeline`` (prediction         processed columns the model reads and their
``length_column``      batches), default batching       padding; the column that drives bucketing
``check_input``        ``Pipeline.predict/evaluate``    validate one raw input (``InputError``)
``options``            ``Pipeline.predict``             the per-call options (``core.options``),
                                                        validated once; ``decode`` gets ``Options``
``loss``/``forward``   the Trainer                      the training loss of a batch
``decode``             ``Pipeline.predict``             one output per example of a batch
``metrics``            ``metrics_on_processed``         the task's metrics of decoded outputs
``metrics_on_          ``Pipeline.evaluate``, the       metrics of preprocessed data (default:
processed``            Trainer's dev evaluation         decode, then ``metrics``)
``selection_*``,       the Trainer                      which dev metric picks the best weights;
``tiebreak_metrics``                                    a metric that breaks its ties
training section       the Trainer                      batching (``train_batches``, default in
                                                        ``data/collate``), optional TBPTT state,
                                                        an optional custom optimisation step
=====================  ===============================  ==========================================

Its config holds everything needed to rebuild the model — including what it learned from
the fitted stages (vocabulary size, label names) — so ``config.json`` + ``model.safetensors``
+ the stages' files restore it, and a loaded pipeline can be trained further.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import InputError
from .options import Option, Options, parse_options


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
    #: The per-call options of ``pipe(x, name=value)`` / ``Pipeline.predict``: name → ``Option``.
    #: An undeclared name is an ``InputError`` naming these (and ``batch_size``).
    options: ClassVar[dict[str, Option]] = {}

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

    def parse_options(self, given: dict[str, Any], rows: int | None = None) -> Options:
        """``given`` checked against :attr:`options`; every option comes back, defaults filled in.

        Unknown names and ill-typed or out-of-range values are an ``InputError``.
        """
        return parse_options(self.options, given, self.config, rows=rows)

    # -- training and decoding -------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss; ``forward`` so that DDP's gradient hooks see the call."""
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Options) -> list[Any]:
        """One output per example (label with scores, tags, text…).

        ``batch`` holds the padded tensors of :meth:`pad_values` and, under ``"_raw"``, the
        batch's other processed columns as lists (the raw text, the tokens). ``options``
        holds every declared option, validated (see :attr:`options`).
        """
        raise NotImplementedError

    # -- metrics ---------------------------------------------------------------------
    def metrics(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        """The task's metrics for decoded ``outputs`` against the raw target columns.

        The keys include :attr:`selection_metric` (unless that is ``"loss"``).
        """
        raise NotImplementedError

    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list],
                             decode: Callable[[Mapping[str, list]], list[Any]], device: Any) -> dict[str, float]:
        """The metrics of preprocessed data: what ``Pipeline.evaluate`` and the Trainer's dev evaluation report.

        ``decode(processed)`` decodes the rows in batches with the default options. The
        default is :meth:`metrics` of those outputs plus :meth:`tiebreak_metrics`; a task
        whose metric needs no decoding (perplexity) or a cheaper decoding (Viterbi without
        confidences) overrides this.
        """
        metrics = self.metrics(decode(processed), dict(references))
        if self.selection_tiebreak is not None:
            metrics.update(self.tiebreak_metrics(processed, references, device))
        return metrics

    def tiebreak_metrics(self, processed: Any, references: Any, device: Any) -> dict[str, float]:
        """The :attr:`selection_tiebreak` metric on processed dev data (none by default)."""
        return {}
