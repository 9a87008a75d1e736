"""Recipes: a YAML file (``pipelines/*.yaml``) → the task's recipe dataclass → a trained, saved pipeline.

A recipe has a ``task:`` key choosing the recipe dataclass (``seqlab.core.registry.RECIPES``);
every other section maps onto that dataclass, so a typo anywhere is an error naming the key.
``--set section.key=value`` overrides any value from the command line.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from .core import registry
from .core.config import apply_overrides, from_dict, read_yaml, to_dict
from .core.device import set_threads
from .core.errors import ConfigError
from .train.plots import plot_history


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None, data: dict | None = None) -> Any:
    """Read a recipe file (or ``data``) with ``--set`` overrides into its task's dataclass."""
    where = str(path) if path is not None else "recipe"
    raw = read_yaml(path) if path is not None else dict(data or {})
    raw = apply_overrides(raw, overrides or [])
    task = raw.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{where}: missing 'task:' (one of {', '.join(sorted(registry.RECIPES))})")
    return from_dict(registry.recipe_class(task), raw, where=where)


def run_recipe(recipe: Any, echo: Callable[[str], None] = print, resume_from: str | Path | None = None) -> dict[str, Any]:
    """Train, evaluate on dev, save to ``recipe.output``, predict the recipe's examples.

    Before anything is built, the output folder is checked and locked for the whole run
    (``seqlab.core.files.claim_output_dir``): a file, the current directory, a folder of other
    files or a folder another run is writing to is refused at once, with one line saying why.
    """
    from .core.files import claim_output_dir
    from .train.distributed import env_rank

    with claim_output_dir(recipe.output, purpose="seqlab train", enabled=env_rank() == 0):  # rank 0 alone writes
        return _run_recipe(recipe, echo, resume_from)


def _run_recipe(recipe: Any, echo: Callable[[str], None] = print, resume_from: str | Path | None = None) -> dict[str, Any]:
    """Train, evaluate on dev, save to ``recipe.output``, predict the recipe's examples.

    Checkpoints go to ``<output>/checkpoints``, logs and curves to ``<output>/logs``;
    ``resume_from`` continues a run from its checkpoints. Under ``torchrun`` every process
    trains; only rank 0 evaluates, saves, plots and prints.
    """
    from .train.distributed import env_rank, env_world_size
    from .train.trainer import amp_settings

    start = time.perf_counter()
    rank = env_rank()
    if rank != 0:
        echo = lambda _line: None  # noqa: E731
    pipe = recipe.build()
    train, dev = recipe.datasets()
    output = Path(recipe.output)
    processes = f" × {env_world_size()} processes" if env_world_size() > 1 else ""
    if resume_from is None:
        notice = replacement_notice(output)
        if notice:
            echo(notice)
    threads = set_threads(recipe.train.threads)  # the Trainer applies the same setting
    where = f"{pipe.device}{processes}" + (f", {threads} CPU thread{'s' if threads > 1 else ''}" if pipe.device.type == "cpu" else "")
    if pipe.device.type == "cpu" and amp_settings(recipe.train.amp, pipe.device, recipe.train.cpu_amp)[0] is not None:
        where += ", bf16 autocast (train.cpu_amp)"
    echo(f"seqlab: training {recipe.task} on {len(train)} examples (dev: {len(dev) if dev is not None else 0}) on {where}")
    result = pipe.fit(
        train, dev, recipe.train, log_dir=output / "logs", checkpoint_dir=output / "checkpoints", resume_from=resume_from,
    )
    if result.resumed_from:
        echo(f"seqlab: this run continued from checkpoint {result.resumed_from}")
    if rank != 0:
        return {"task": recipe.task, "steps": result.steps, "rank": rank, "pipeline": pipe}
    metrics = pipe.evaluate(dev) if dev is not None else {}
    summary = {
        "task": recipe.task,
        "dev": metrics,
        "epochs_run": result.history[-1]["epoch"] if result.history else 0,
        "steps": result.steps,
        "train_tokens_per_s": round(result.tokens_per_s, 1),
        "stopped_by": result.stopped_by,
        "skipped_steps": result.skipped_steps,
        "wall_s": round(time.perf_counter() - start, 1),
    }
    pipe.save(output, meta={"recipe": to_dict(recipe), "summary": summary})
    curves = plot_history(result.history, output / "logs" / "curves.png")
    echo("seqlab: dev metrics " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    for line in stop_report(result, recipe.train, output):
        echo(line)
    echo(f"seqlab: saved to {output} ({summary['steps']} steps, {summary['train_tokens_per_s']} tokens/s, {summary['wall_s']} s)")
    if curves is not None:
        echo(f"seqlab: training curves in {curves}")
    examples = getattr(recipe, "examples", None)
    if examples:
        for text, prediction in zip(examples, pipe.predict(examples)):
            echo(f"seqlab: predict {text!r} → {format_prediction(prediction, pipe, output / 'predictions')}")
    summary["pipeline"] = pipe
    return summary


def replacement_notice(output: Path) -> str | None:
    """A line saying which saved model a new run into ``output`` will replace (None: nothing there)."""
    config = output / "config.json"
    if not config.is_file():
        return None
    try:
        saved = json.loads(config.read_text(encoding="utf-8"))
        summary = (saved.get("meta") or {}).get("summary") or {}
        task = saved.get("task") or summary.get("task")
        dev = summary.get("dev") or {}
    except (OSError, ValueError, AttributeError):  # an unreadable folder is still replaced: say so
        task, dev = None, {}
    what = f"a {task} model" if isinstance(task, str) else "a model"
    scores = ", ".join(f"dev {k} {v:.4g}" for k, v in list(dev.items())[:2] if isinstance(v, (int, float)))
    return (
        f"seqlab: note: {output} already holds {what}{f' ({scores})' if scores else ''}; "
        "this run replaces it (give --output another folder to keep it)"
    )


def stop_report(result: Any, train: Any, output: Path) -> list[str]:
    """Why training stopped and how far it got, as lines for the user.

    ``result`` is the Trainer's ``TrainResult``, ``train`` the ``TrainConfig``. A stop at the
    time budget is a warning naming the setting to raise (and ``--resume``).
    """
    history = result.history or []
    last_epoch = history[-1].get("epoch", 0) if history else 0
    best = next((r for r in history if r.get("step") == result.best_step and "epoch" in r), None)
    best_part = f"; the saved model is the best evaluation, epoch {best['epoch']} (step {best['step']})" if best else ""
    if result.stopped_by == "time_budget":
        budget = train.time_budget_s
        suggestion = int(math.ceil(budget * max(2.0, train.epochs / max(last_epoch, 1)) / 60.0) * 60)
        return [
            f"seqlab: WARNING: training hit its time budget (train.time_budget_s={budget:g} s) in epoch {last_epoch} "
            f"of {train.epochs}, after {result.steps} steps{best_part}; the model may be undertrained",
            f"seqlab: to train longer, raise the budget (e.g. --set train.time_budget_s={suggestion}) "
            f"or continue this run with --resume {output}",
        ]
    if result.stopped_by in ("early_stopping", "patience") and last_epoch < train.epochs:
        return [
            f"seqlab: stopped early in epoch {last_epoch} of {train.epochs}: the dev metric did not improve for "
            f"{train.patience} evaluations (train.patience){best_part}"
        ]
    return [f"seqlab: trained all {train.epochs} epoch{'s' if train.epochs != 1 else ''} ({result.steps} steps){best_part}"]


def format_prediction(prediction: Any, pipe: Any = None, out_dir: str | Path | None = None) -> str:
    """One prediction as one line of plain text: the task's ``TaskModel.format_output``; a task
    whose outputs are arrays (``writes_files``) writes them under ``out_dir`` and gives the paths.

    >>> format_prediction({"label": "1", "score": 0.98765})
    '1 (0.988)'
    """
    from .core.task import TaskModel

    model = getattr(pipe, "model", None)
    if isinstance(model, TaskModel) and model.writes_files:
        return model.format_output(prediction, out_dir=Path(out_dir) if out_dir is not None else None)
    if isinstance(model, TaskModel):
        return model.format_output(prediction)
    return TaskModel.format_output(None, prediction)  # no model: the generic form
