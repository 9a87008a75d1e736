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
``attach_stages``      ``Pipeline.fit``                 hand the fitted stages to a model, new or
                                                        loaded, before it trains (tokenizers it
                                                        resamples with)
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
``network_outputs``,   ``run_network``, ``seqlab        the exportable tensor-in/tensor-out network;
``run_network``        export``; decoding               decoding calls ``run_network`` (the exported
                                                        network when loaded from an export)
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
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .errors import InputError
from .options import Option, Options, parse_options


@dataclass
class StepContext:
    """What the Trainer tells a model's own :meth:`TaskModel.train_step` about the step.

    >>> context = StepContext(step=0, epoch=1, device=torch.device("cpu"), clip=lambda params: 0.0)
    >>> context.epoch
    1
    """

    #: Optimisation steps already taken in the run (0 before the first).
    step: int
    #: The epoch being trained, from 1.
    epoch: int
    #: Where the model and the batch are.
    device: torch.device
    #: ``clip(parameters)`` clips their gradients as the train config says (``clip_norm``,
    #: ``clip_value``) and returns their norm before clipping (logged as ``grad_norm``).
    clip: Callable[[Iterable[nn.Parameter]], float]


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
    #: Whether :meth:`format_output` writes each prediction to files (arrays: denoised
    #: features, generated images) and returns their paths instead of rendering it.
    writes_files: ClassVar[bool] = False
    #: Prediction on a CPU: ``(call_cost, step_cost)`` of one padded batch in units of one padded
    #: token (see ``seqlab.data.collate.split_padded``), so ``Pipeline.predict`` cuts a batch of
    #: mixed lengths into tighter ones; None keeps each batch whole (a GPU always does).
    padded_batch_costs: ClassVar[tuple[float, float] | None] = None

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    # -- training (called by the Trainer) ------------------------------------------------
    # The Trainer calls these directly (never looked up by name). Every default suits a
    # model trained by "loss → backward → clip → one optimiser step" on length-bucketed,
    # padded batches; a task overrides only what it does differently.

    #: True when the model runs its own optimisation step (a GAN with two optimisers): the
    #: Trainer calls :meth:`train_step` instead of its own loss → backward → clip → step.
    custom_train_step: ClassVar[bool] = False
    #: True when the loss carries state from one training batch to the next (truncated BPTT:
    #: the language model's hidden state between windows) in :attr:`tbptt_state`.
    stateful: ClassVar[bool] = False
    #: The carried state of a :attr:`stateful` model (tensors in tuples/lists/dicts; None: start
    #: afresh). Its ``loss`` reads and replaces it (detached); the Trainer keeps it across dev
    #: evaluations, saves it in checkpoints and puts it back on resume.
    tbptt_state: Any = None

    def train_batches(self, columns: Mapping[str, list], config: Any, epoch: int) -> Iterable[dict[str, Any]] | None:
        """The epoch's training batches (dicts of CPU tensors, in order), or None for the shared default.

        ``columns`` are the processed training columns; ``config`` is the ``TrainConfig``
        (``batch_size``, ``max_tokens``, ``bucket_factor``, ``seed``); ``epoch`` counts from 1.
        The default, None, makes the Trainer use ``seqlab.data.collate.default_train_batches``:
        length-bucketed batches, shuffled with ``seed + epoch``, of the columns in
        ``pad_values(training=True)`` padded with those values. A task overrides this to encode
        targets, skip or cut examples, or yield truncated-BPTT windows in order. Random draws
        must come from seeded generators or the global ones (a resumed run replays them).
        """
        return None

    def reset_tbptt_state(self) -> None:
        """Forget the carried state; the Trainer calls this at each epoch start (stateful models)."""
        self.tbptt_state = None

    def build_optimizers(self, make: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name. ``make(params)`` builds one from the train config (``optimizer``,
        ``lr``, ``weight_decay``, ``momentum``). Default: ``{"model": make(self.parameters())}``.

        The learning-rate schedule scales every optimiser's rate by the same factor, relative
        to the rate it was built with (a GAN's two rates keep their ratio); checkpoints hold
        each one's state under its name.
        """
        return {"model": make(self.parameters())}

    def train_step(self, batch: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer], step: StepContext) -> dict[str, float]:
        """One optimisation step of a :attr:`custom_train_step` model, on one batch (on ``step.device``).

        Zero the gradients, run backward and ``optimizer.step()`` on each optimiser itself,
        calling ``step.clip(parameters)`` before each ``step()`` to apply the configured
        clipping. Return the losses to log (floats or 0-d tensors): ``"loss"`` is required (the
        training-loss curve, the NaN/inf check and, without dev data, model selection); the
        others are logged per epoch as ``train_<name>``. It runs in full precision (no AMP),
        without the ``l1``/``l2`` penalties, and a NaN/inf ``"loss"`` is counted as a
        non-finite step (the model decides whether its own updates ran).
        """
        raise NotImplementedError(f"{type(self).__name__} sets custom_train_step = True but defines no train_step")

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

    def attach_stages(self, stages: list) -> None:
        """Keep what training needs from the fitted stages (called before every ``fit``, also on a
        loaded model; nothing is saved from it). Default: nothing."""

    def check_references(self, references: Any, where: str = "dev example") -> None:
        """Check the raw target columns of evaluation data against what this model can represent.

        ``Pipeline.fit`` calls it on the dev set before training starts, so a dev row the
        evaluation would fail on (a transcript character no output label covers) is a
        ``DataError`` naming ``where``, the row and the value before any epoch is spent, not
        at the end of the first one. Nothing to check by default.
        """

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

    # -- export (``seqlab export``; docs/export.md) ------------------------------------------
    # A task that can be exported declares the tensor-in/tensor-out part of its network
    # (``network_outputs``) and reaches it in prediction only through ``run_network``; its
    # decoding (Viterbi, CTC search, label lookup) stays in Python. An exported pipeline sets
    # ``exported_network`` to an ONNX Runtime session or a TorchScript module with the same
    # inputs and outputs, so the same ``decode`` runs on it.

    #: Whether :meth:`network_outputs` can be exported (``seqlab export`` refuses other tasks).
    exportable: ClassVar[bool] = False
    #: ``state_dict`` prefixes of what the Python part of decoding reads (NER: the CRF's
    #: transitions): an exported artefact keeps these weights beside the exported network.
    decoder_state: ClassVar[tuple[str, ...]] = ()
    #: The exported network that replaces :meth:`network_outputs` (set by ``seqlab.load`` on an
    #: exported artefact): called with the input tensors by name, returns the outputs by name.
    exported_network: Any = None

    def network_outputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The exportable network: named input tensors → named output tensors (no Python values out)."""
        raise NotImplementedError(f"the {self.task} task declares no exportable network")

    def example_network_inputs(self, variant: int = 0) -> dict[str, torch.Tensor]:
        """Inputs to trace :meth:`network_outputs` with, in the order the exported graph takes them.

        Lengths must differ within the batch, so that a trace takes the padded path. ``variant=1``
        gives a batch of another size and other lengths, on which the export checks that the
        exported network did not keep the traced shapes.
        """
        raise NotImplementedError(f"the {self.task} task declares no exportable network")

    def network_axes(self) -> dict[str, dict[int, str]]:
        """The dynamic axes of every input and output of :meth:`network_outputs` (name → axis → label)."""
        raise NotImplementedError(f"the {self.task} task declares no exportable network")

    def run_network(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`network_outputs`, or the exported network that replaces it; decoding calls this."""
        if self.exported_network is not None:
            return self.exported_network(inputs)
        return self.network_outputs(inputs)

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
    # -- presenting -------------------------------------------------------------------
    def format_output(self, output: Any, out_dir: Path | None = None) -> str:
        """One decoded output as one line of plain text (``seqlab predict``, the examples after training).

        A task with :attr:`writes_files` writes the output (an array) to files under ``out_dir``
        (default ``./seqlab-predictions``, numbered, never overwritten) and returns their paths,
        comma-separated; other tasks ignore ``out_dir``.

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
