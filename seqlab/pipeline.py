"""The Pipeline: ordered preprocessing stages plus a task model.

``fit`` fits the stages on the training data, maps the data through them, builds the
model from what the stages learned and trains it; ``predict``/``__call__`` run raw input
through the same stages and decode; ``save``/``load`` write and read ``config.json`` +
``model.safetensors`` + each stage's own files — never a pickle.

It sits above ``core``, ``data`` and ``train`` and knows tasks only through
``TaskModel`` and the registry.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .core import registry
from .core.config import from_dict, to_dict
from .core.device import resolve_device, set_threads, to_device
from .core.errors import DataError, InputError, NotFittedError, WiringError
from .core.files import ModelFiles, load_consistently, reading_model
from .core.options import Options, check_batch_size
from .core.serialization import (
    CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE, atomic_directory, check_model_dir, check_weights_before_building,
    is_exported_dir, load_weights, save_weights, write_json,
)
from .core.stage import Stage, check_wiring
from .core.task import TaskModel
from .data.collate import bucket_batches, pad_collate, select_rows, split_padded


def _columns(data: Any) -> dict[str, list]:
    """A ``datasets.Dataset`` or a dict of lists, as a dict of lists."""
    if isinstance(data, Mapping):
        return {k: list(v) for k, v in data.items()}
    if hasattr(data, "column_names") and hasattr(data, "to_dict"):
        return data.to_dict()
    raise DataError(f"expected a datasets.Dataset or a dict of lists, got {type(data).__name__}")


def _num_rows(columns: Mapping[str, list]) -> int:
    sizes = {len(v) for v in columns.values()}
    if len(sizes) > 1:
        raise DataError(f"columns have different lengths: { {k: len(v) for k, v in columns.items()} }")
    return sizes.pop() if sizes else 0


class Pipeline:
    """Stages + task model, from raw input to prediction.

    >>> from seqlab.text.tokenizers import WordTokenizer
    >>> from seqlab.text.vocab import VocabularyStage
    >>> from seqlab.text.labels import LabelEncoder
    >>> pipe = Pipeline([WordTokenizer(lowercase=True), VocabularyStage(), LabelEncoder()],
    ...                 task="sentiment", model_config={"hidden_size": 8, "embedding_dim": 8}, device="cpu")
    >>> data = {"text": ["good film", "bad film", "great", "awful"], "label": [1, 0, 1, 0]}
    >>> _ = pipe.fit(data, train_config={"epochs": 2, "progress": "off"})
    >>> sorted(pipe("good")["scores"])
    ['0', '1']
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        task: str | type[TaskModel],
        model_config: Any = None,
        device: str | torch.device = "auto",
        model: TaskModel | None = None,
    ) -> None:
        self.stages = list(stages)
        self.task_cls = registry.task_class(task) if isinstance(task, str) else task
        if model_config is None or isinstance(model_config, Mapping):
            model_config = from_dict(self.task_cls.Config, dict(model_config or {}), where=f"{self.task_cls.task} model")
        self.model_config = model_config
        self.device = resolve_device(device)
        for stage in self.stages:
            stage.to(self.device)  # feature stages compute on the pipeline's device
        self.model = model.to(self.device) if model is not None else None
        self.train_result = None
        # Fail at construction, not deep inside training.
        raw = {self.task_cls.input_column, *self.task_cls.target_columns}
        check_wiring(self.stages, raw)

    @property
    def task(self) -> str:
        return self.task_cls.task

    def inference_stages(self) -> list[Stage]:
        return [s for s in self.stages if not s.training_only]

    # -- preprocessing ----------------------------------------------------------------
    def preprocess(self, data: Any, with_targets: bool = True) -> dict[str, list]:
        """Map data (dict of lists or Dataset) through the (fitted) stages."""
        columns = _columns(data)
        stages = self.stages if with_targets else self.inference_stages()
        check_wiring(stages, set(columns), consumer=f"the {self.task} model")
        for stage in stages:
            columns.update(stage(columns))
        return columns

    def _fit_stages(self, columns: dict[str, list]) -> dict[str, list]:
        check_wiring(self.stages, set(columns))
        for stage in self.stages:
            if stage.needs_fit and not stage.fitted:
                stage.fit(columns)
            columns.update(stage(columns))
        return columns

    # -- training -------------------------------------------------------------------
    def fit(
        self,
        train: Any,
        dev: Any = None,
        train_config: Any = None,
        log_dir: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        resume_from: str | Path | None = None,
    ):
        """Fit the stages on ``train``, build the model, train it; returns the TrainResult.

        ``checkpoint_dir`` turns checkpoints on; ``resume_from`` (a run directory, its
        ``checkpoints/`` folder or one checkpoint file) continues a run where it stopped.
        Under ``torchrun`` every process calls this; each trains on its shard of every batch.
        """
        from .train import TrainConfig, Trainer
        from .train.checkpoint import seed_everything
        from .train.distributed import process_device

        self._refuse_exported("trained")
        if train_config is None or isinstance(train_config, Mapping):
            train_config = from_dict(TrainConfig, dict(train_config or {}), where="train")
        columns = _columns(train)
        if _num_rows(columns) == 0:
            raise DataError("the training dataset is empty: nothing to fit")
        missing = [c for c in (self.task_cls.input_column, *self.task_cls.target_columns) if c not in columns]
        if missing:
            raise WiringError(
                f"the training data lacks column(s) {missing}; the {self.task} task needs "
                f"{[self.task_cls.input_column, *self.task_cls.target_columns]} (has {sorted(columns)})"
            )
        columns = self._fit_stages(columns)
        # Under torchrun on GPUs, each process trains on its own GPU (cuda:LOCAL_RANK).
        self.device = process_device(self.device)
        if self.model is None:
            # torch seeds each process at random: the recipe's seed makes the initial
            # weights, and so the whole run, reproducible (and equal on every DDP rank).
            seed_everything(train_config.seed)
            self.model = self.task_cls.from_stages(self.model_config, self.stages)
            self.model_config = self.model.config
        self.model.attach_stages(self.stages)
        self.model.to(self.device)
        check_wiring([], set(columns), needed=tuple(self.model.pad_values(training=True)), consumer=f"the {self.task} model")
        evaluate = None
        if dev is not None:
            dev_columns = _columns(dev)
            if _num_rows(dev_columns) == 0:
                raise DataError("the dev dataset is empty; pass dev=None to train without one")
            processed = self.preprocess(dev_columns, with_targets=False)
            references = {c: dev_columns[c] for c in self.task_cls.target_columns}
            # Now, not at the end of epoch 1: a dev row the evaluation cannot use (a transcript
            # character the model has no label for) would otherwise throw that epoch away.
            self.model.check_references(references, "dev example")
            evaluate = lambda: self._metrics_on_processed(processed, references)  # noqa: E731
        trainer = Trainer(train_config, device=self.device, log_dir=log_dir, checkpoint_dir=checkpoint_dir)
        self.train_result = trainer.fit(self.model, columns, evaluate, resume_from=resume_from)
        self.model.eval()
        return self.train_result

    def _refuse_exported(self, what: str) -> None:
        if self.model is not None and self.model.exported_network is not None:
            raise InputError(
                f"this pipeline was loaded from an exported artefact (its network is an ONNX/TorchScript graph); it cannot be "
                f"{what}: use the original model folder, and `seqlab export` it again"
            )

    # -- prediction -----------------------------------------------------------------
    def _require_model(self) -> TaskModel:
        if self.model is None:
            raise NotFittedError("this pipeline has no model yet: call fit() or seqlab.load() first")
        return self.model

    def _decode(self, processed: Mapping[str, list], batch_size: int, options: Options | None = None) -> list[Any]:
        model = self._require_model()
        if any(m.training for m in model.modules()):  # eval() itself walks and sets every module: not per call
            model.eval()
        if options is None:
            options = model.parse_options({})
        pads = model.pad_values(training=False)
        length_column = model.length_column()
        # A scalar column (a class to generate from) counts as length 1.
        lengths = [len(v) if hasattr(v, "__len__") else 1 for v in processed[length_column]]
        outputs: list[Any] = [None] * len(lengths)
        needed = {c: processed[c] for c in pads if c in processed}
        extra = {c: processed[c] for c in processed if c not in needed}
        batches = bucket_batches(lengths, batch_size, shuffle=False, bucket_factor=10**9)
        if model.padded_batch_costs is not None and self.device.type == "cpu":
            batches = [part for b in batches for part in split_padded(b, lengths, *model.padded_batch_costs)]
        for indices in batches:
            batch = to_device(pad_collate(select_rows(needed, indices), pads), self.device)
            batch["_raw"] = select_rows(extra, indices)
            with torch.inference_mode():
                decoded = model.decode(batch, options)
            for i, out in zip(indices, decoded):
                outputs[i] = out
        return outputs

    def predict(self, inputs: Sequence[Any], batch_size: int = 64, **options: Any) -> list[Any]:
        """Predict for a list of raw inputs, ``batch_size`` at a time.

        ``options`` are the task's per-call options (``TaskModel.options``): an unknown
        name, or a value of the wrong type or range, is an ``InputError`` raised before
        anything runs.
        """
        model = self._require_model()
        batch_size = check_batch_size(batch_size)
        inputs = list(inputs)
        opts = model.parse_options(options, rows=len(inputs))
        if not inputs:
            return []
        checked = [model.check_input(x, i) for i, x in enumerate(inputs)]
        data = {model.input_column: checked}
        for name, option in model.options.items():
            value = opts[name]
            if option.column and value is not None:  # data for the stages (a clip's sample rate)
                data[name] = list(value) if isinstance(value, list) else [value] * len(inputs)
        processed = self.preprocess(data, with_targets=False)
        return self._decode(processed, batch_size, opts)

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        """``pipe("text")`` → one output; ``pipe(["a", "b"])`` → a list."""
        if isinstance(inputs, (list, tuple)):
            return self.predict(inputs, **kwargs)
        return self.predict([inputs], **kwargs)[0]

    # -- evaluation -----------------------------------------------------------------
    def _metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list], batch_size: int = 128) -> dict[str, float]:
        model = self._require_model()
        return model.metrics_on_processed(processed, references, lambda rows: self._decode(rows, batch_size), self.device)

    def evaluate(self, data: Any, batch_size: int = 128) -> dict[str, float]:
        """The task's metrics on labelled ``data`` (dict of lists or Dataset)."""
        model = self._require_model()
        batch_size = check_batch_size(batch_size)
        columns = _columns(data)
        if _num_rows(columns) == 0:
            raise DataError("the evaluation dataset is empty")
        missing = [c for c in (model.input_column, *model.target_columns) if c not in columns]
        if missing:
            raise DataError(f"evaluation data lacks column(s) {missing} (has {sorted(columns)})")
        for i, x in enumerate(columns[model.input_column]):
            model.check_input(x, i)
        processed = self.preprocess(columns, with_targets=False)
        references = {c: columns[c] for c in model.target_columns}
        return self._metrics_on_processed(processed, references, batch_size)

    # -- files ----------------------------------------------------------------------
    def save(self, directory: str | Path, meta: Mapping[str, Any] | None = None) -> Path:
        """Write the pipeline into ``directory``: new, empty, or a folder seqlab saved to before.

        A crash at any point leaves the previous model or this one loadable; only the files the
        previous save wrote are replaced (``logs/``, ``checkpoints/`` and your own files stay).
        A folder of other files is refused (``OutputDirError``), and so is one another process is
        writing to (``FolderLockedError``, naming it).
        """
        model = self._require_model()
        self._refuse_exported("saved with Pipeline.save")
        directory = Path(directory)
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "seqlab_version": __version__,
            "task": self.task,
            "model": to_dict(model.config),
            "stages": [],
            "meta": dict(meta or {}),
        }
        with atomic_directory(directory) as tmp:
            for index, stage in enumerate(self.stages):
                sub = f"stages/{index:02d}_{stage.kind}"
                (tmp / sub).mkdir(parents=True)
                stage.save_state(tmp / sub)
                config["stages"].append({**stage.to_config(), "dir": sub})
            save_weights(model, tmp / WEIGHTS_FILE, metadata={"format": FORMAT, "task": self.task})
            write_json(tmp / CONFIG_FILE, config)
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "auto") -> "Pipeline":
        """Read a directory written by ``save``; refuses pickles, foreign and newer formats.

        Only regular files inside ``directory`` are read (links are refused), the weights' shapes
        are checked against the config before the model is allocated, and NaN/inf weights are refused.
        """
        directory = Path(directory)
        if is_exported_dir(directory):  # written by `seqlab export`: the network runs in ONNX Runtime / TorchScript
            from .export import load_exported

            return load_exported(directory, device=device)
        return load_consistently(directory, lambda: cls._load_once(directory, device))

    @classmethod
    def _load_once(cls, directory: Path, device: str | torch.device) -> "Pipeline":
        from .core.errors import ConfigError, ModelFileError

        files = ModelFiles(directory)
        config = check_model_dir(directory, files)
        where = f"{directory / CONFIG_FILE}"
        try:
            task_cls, model_config, stages = cls._read_saved(directory, files, config)
            # Shapes from the header against a meta-device model: no allocation for absurd sizes.
            with reading_model(directory):
                check_weights_before_building(lambda: task_cls(model_config), files.path(WEIGHTS_FILE))
            model = task_cls(model_config)
        except ModelFileError:
            raise
        except (ConfigError, DataError, KeyError, TypeError, AttributeError, ValueError, OSError) as err:
            raise ModelFileError(f"{where} cannot be used: {_short(str(err), 300)}") from None
        except (RuntimeError, MemoryError) as err:  # sizes in the config that no machine can allocate
            raise ModelFileError(f"{where}: the model it describes cannot be built: {str(err)[:200]}") from None
        with reading_model(directory):
            load_weights(model, files.path(WEIGHTS_FILE))
        model.eval()
        set_threads()  # seqlab's CPU thread default (auto), as in training
        return cls(stages, task_cls, model_config, device=device, model=model)

    @classmethod
    def _read_saved(cls, directory: Path, files: ModelFiles, config: dict) -> tuple[type, Any, list[Stage]]:
        """The task class, the model config and the loaded stages of a saved folder's ``config.json``.

        Raises ``ConfigError``/``KeyError``/… on a bad config (the caller words them as a
        ``ModelFileError``); stage files are read only inside ``directory``.
        """
        from .core.errors import ConfigError

        where = f"{directory / CONFIG_FILE}"
        root = directory.resolve()
        task_cls = registry.task_class(config["task"])
        model_config = from_dict(task_cls.Config, config.get("model"), where=f"{where}: model")
        stages = []
        for index, entry in enumerate(config.get("stages", [])):
            if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
                raise ConfigError(f"stage {index}: expected a mapping with 'kind', 'config' and 'dir'")
            if not isinstance(entry.get("dir"), str) or not (directory / entry["dir"]).resolve().is_relative_to(root):
                raise ConfigError(f"stage {index}: its files {str(entry.get('dir'))[:80]!r} lie outside the model directory")
            stage_dir = files.path(entry["dir"])
            stage = registry.stage_class(entry["kind"])(entry.get("config") or {})
            with reading_model(directory):  # stage files: regular files inside the folder only
                stage.load_state(stage_dir)
            stage.fitted = True
            stages.append(stage)
        _check_stages_agree(task_cls, model_config, stages, where)
        return task_cls, model_config, stages

    def __repr__(self) -> str:
        stages = ", ".join(type(s).__name__ for s in self.stages)
        return f"Pipeline(task={self.task!r}, stages=[{stages}], device={self.device}, fitted={self.model is not None})"


def _check_stages_agree(task_cls: type, model_config: Any, stages: list, where: str) -> None:
    """Refuse a model directory whose stage files disagree with its model config.

    A vocabulary file one token longer than the embedding (edited, or copied from another
    model) would load, then fail with an IndexError on the first sentence holding that token.
    """
    from .core.config import to_dict
    from .core.errors import ConfigError

    saved, derived = to_dict(model_config), to_dict(task_cls.configure(model_config, stages))
    differ = [key for key in saved if saved[key] != derived.get(key)]
    if differ:
        key = differ[0]
        raise ConfigError(
            f"the stage files disagree with the model config on {', '.join(differ)} (e.g. {key}: "
            f"{_short(saved[key])} in the model config, {_short(derived.get(key))} from the stage files); "
            "were files edited or copied from another model?"
        )


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) and limit > 60 else repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."

