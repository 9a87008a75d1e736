"""Shared plumbing for benchmark scripts: where the corpora are, the commit, the results file.

Every benchmark prints a short table and writes ``benchmarks/results/NAME.json``::

    {"benchmark", "commit", "device", "torch", "budget_s", "wall_s", "metrics", "settings"}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
RUNS = REPO / "runs" / "benchmarks"


def corpora_dir() -> Path:
    """``$SEQLAB_CORPORA``, else ``../shared/corpora`` beside the repository."""
    path = Path(os.environ.get("SEQLAB_CORPORA", REPO.parent / "shared" / "corpora"))
    if not path.is_dir():
        sys.exit(f"benchmark corpora not found at {path}; set SEQLAB_CORPORA to the folder holding ner/, sentiment/, …")
    return path


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parser(description: str, budget_min: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--budget-min", type=float, default=budget_min, help=f"training budget in minutes (default {budget_min})")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a train: key of the benchmark's recipe (YAML value; repeatable), e.g. average=ema")
    p.add_argument("--model-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model: key of the benchmark's recipe (YAML value; repeatable; the recipe checks it)")
    p.add_argument("--tag", default=None,
                   help="an experiment's name: results go to NAME_TAG.json and saved pipelines under runs/benchmarks/TAG/")
    return p


def _pairs(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings as a dict, the values read as YAML (numbers, true, null)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            sys.exit(f"{flag} wants KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def model_overrides(args: argparse.Namespace) -> dict:
    """The ``--model-set KEY=VALUE`` pairs (the recipe refuses an unknown key when it loads)."""
    return _pairs(args.model_set, "--model-set")


def train_overrides(args: argparse.Namespace) -> dict:
    """The ``--train-set KEY=VALUE`` pairs as a dict, checked against ``TrainConfig``."""
    from seqlab.core.config import from_dict
    from seqlab.train import TrainConfig

    out = _pairs(args.train_set, "--train-set")
    if out:
        from_dict(TrainConfig, out)  # a typo or a bad value stops here, naming the key
    return out


def runs_dir(args: argparse.Namespace) -> Path:
    """Where a benchmark saves its pipelines: runs/benchmarks, or runs/benchmarks/TAG for an experiment."""
    return RUNS / args.tag if args.tag else RUNS


def results_name(name: str, args: argparse.Namespace) -> str:
    return f"{name}_{args.tag}" if args.tag else name


def describe_device(device) -> str:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def write_results(name: str, metrics: dict, settings: dict, budget_s: float, wall_s: float, device) -> Path:
    import torch

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": name,
        "commit": git_commit(),
        "device": describe_device(device),
        "torch": torch.__version__,
        "budget_s": budget_s,
        "wall_s": round(wall_s, 1),
        "metrics": metrics,
        "settings": settings,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print_table(name, metrics)
    print(f"wrote {path.relative_to(REPO)} (commit {out['commit'][:12]}, wall {out['wall_s']} s, budget {budget_s} s)")
    return path


def print_table(name: str, metrics: dict) -> None:
    width = max((len(k) for k in metrics), default=10)
    print(f"\n{name}")
    print("-" * (width + 20))
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    print("-" * (width + 20))
