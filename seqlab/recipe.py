"""Recipes: a YAML file (``pipelines/*.yaml``) → the task's recipe dataclass → a trained, saved pipeline.

A recipe has a ``task:`` key choosing the recipe dataclass (``seqlab.core.registry.RECIPES``);
every other section maps onto that dataclass, so a typo anywhere is an error naming the key.
``--set section.key=value`` overrides any value from the command line.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from .core import registry
from .core.config import apply_overrides, from_dict, read_yaml, to_dict
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

    start = time.perf_counter()
    rank = env_rank()
    if rank != 0:
        echo = lambda _line: None  # noqa: E731
    pipe = recipe.build()
    train, dev = recipe.datasets()
    output = Path(recipe.output)
    processes = f" × {env_world_size()} processes" if env_world_size() > 1 else ""
    echo(f"seqlab: training {recipe.task} on {len(train)} examples (dev: {len(dev) if dev is not None else 0}) on {pipe.device}{processes}")
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
    plot_history(result.history, output / "logs" / "curves.png")
    echo("seqlab: dev metrics " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}))
    echo(f"seqlab: saved to {output} ({summary['steps']} steps, {summary['train_tokens_per_s']} tokens/s, {summary['wall_s']} s)")
    examples = getattr(recipe, "examples", None)
    if examples:
        for text, prediction in zip(examples, pipe.predict(examples)):
            echo(f"seqlab: predict {text!r} → {format_prediction(prediction)}")
    summary["pipeline"] = pipe
    return summary


def format_prediction(prediction: Any) -> str:
    """A short human form of one prediction."""
    if isinstance(prediction, dict) and "label" in prediction and "score" in prediction:
        return f"{prediction['label']} ({prediction['score']:.3f})"
    if isinstance(prediction, dict) and isinstance(prediction.get("text"), str):
        return prediction["text"]
    if isinstance(prediction, (dict, list)):
        return json.dumps(prediction, ensure_ascii=False, default=str)
    return str(prediction)
