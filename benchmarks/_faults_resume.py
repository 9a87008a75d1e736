"""Kill-and-resume cycles for benchmarks/faults.py: does ``seqlab train --resume`` end exactly
where an uninterrupted run ends, whatever stopped the first run?

Each cycle trains a tiny sentiment recipe (corpora/sentiment, 64 examples, dropout on, a
warm-up + decay schedule, a checkpoint every step) in a subprocess, interrupts it, resumes it
with ``--resume`` and compares, tensor by tensor, the saved model and the last checkpoint's
weights and optimizer state with an uninterrupted run of the same recipe. Modes:

- ``epochs``: the run would stop after its epochs; it is SIGKILLed after a random checkpoint
  step, then resumed.
- ``early_stopping``: the recipe stops early (patience 1, plateau LR schedule); SIGKILLed
  after a random step before that, then resumed.
- ``time_budget``: the first run has ``time_budget_s`` drawn at random below the reference
  run's training time, so it stops itself mid-epoch; it is resumed without a budget and runs
  to the end of its epochs. This is exact only if a time-budget stop leaves no trace in the
  training itself (the epoch-end evaluation of the cut epoch must not feed the LR plateau
  schedule, early stopping or model selection); a trainer that does evaluate there shows up
  here as non-identical.

Everything runs single-threaded on the CPU (the same float sums in the same order), so
"identical" means bit for bit. ``resume_cycles(2, seed, workdir)`` takes about 2-3 minutes
on one core.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
MODES = ("epochs", "early_stopping", "time_budget")

_RECIPE = """\
task: sentiment
data:
  train: {repo}/corpora/sentiment/train.tsv
  dev: {repo}/corpora/sentiment/dev.tsv
  text_column: sentence
  label_column: label
  limit_train: 64
model: {{embedding_dim: 8, hidden_size: 8, dropout: 0.2}}
train: {{epochs: {epochs}, batch_size: 8, lr: {lr}, seed: {seed}, {schedule}
        checkpoint_every_steps: 1, keep_checkpoints: 3, progress: "off"{extra}}}
output: {output}
device: cpu
examples: []
"""

_SETTINGS = {
    "epochs": dict(epochs=3, lr=0.01, schedule="schedule: exponential, decay_rate: 0.2, warmup_steps: 4,", extra=""),
    # A high rate and patience 1: dev accuracy stops improving within a few epochs.
    "early_stopping": dict(epochs=12, lr=0.05, schedule="schedule: plateau, plateau_patience: 1, plateau_factor: 0.5,",
                           extra=", patience: 1"),
    "time_budget": dict(epochs=3, lr=0.01, schedule="schedule: exponential, decay_rate: 0.2, warmup_steps: 4,", extra=""),
}


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


def _write_recipe(path: Path, mode: str, output: Path, seed: int, budget: float | None = None) -> Path:
    settings = dict(_SETTINGS[mode])
    if budget is not None:
        settings["extra"] += f", time_budget_s: {budget:.4f}"
    path.write_text(_RECIPE.format(repo=REPO, output=output, seed=seed, **settings), encoding="utf-8")
    return path


def _train(recipe: Path, *extra: str, timeout: float = 300) -> dict:
    """Run ``seqlab train RECIPE --json``; the summary it prints (raises on failure)."""
    done = subprocess.run([sys.executable, "-m", "seqlab", "train", str(recipe), "--json", *extra], env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"seqlab train {recipe.name} {' '.join(extra)} failed ({done.returncode}): {done.stderr[-1500:]}")
    out = done.stdout
    return json.loads(out[out.index("\n{\n") + 1:]) if "\n{\n" in out else {}


def _checkpoint_steps(directory: Path) -> list[int]:
    from seqlab.train.checkpoint import checkpoint_step, list_checkpoints

    return [checkpoint_step(p) for p in list_checkpoints(directory)]


def _kill_after(recipe: Path, output: Path, step: int, timeout: float = 120) -> int | None:
    """Start a run, SIGKILL it once checkpoint ``step`` exists; the last checkpoint step, or None if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "seqlab", "train", str(recipe)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            steps = _checkpoint_steps(output / "checkpoints")
            if steps and max(steps) >= step:
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        return None
    steps = _checkpoint_steps(output / "checkpoints")
    return max(steps) if steps else 0


def _same_run(a: Path, b: Path) -> tuple[bool, str]:
    """Bit-identical saved model, final weights and optimizer state, and the same log (but timings)?"""
    import torch
    from safetensors.torch import load_file

    from seqlab.train.checkpoint import load_checkpoint

    saved_a, saved_b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    if saved_a.keys() != saved_b.keys() or any(not torch.equal(saved_a[k], saved_b[k]) for k in saved_a):
        return False, "saved (best) model differs"
    last_a, last_b = max(_checkpoint_steps(a / "checkpoints")), max(_checkpoint_steps(b / "checkpoints"))
    if last_a != last_b:
        return False, f"ran {last_b} steps, the uninterrupted run {last_a}"
    ca = load_checkpoint(a / "checkpoints" / f"step-{last_a:09d}.pt")
    cb = load_checkpoint(b / "checkpoints" / f"step-{last_b:09d}.pt")
    if any(not torch.equal(t, cb["model"][k]) for k, t in ca["model"].items()):
        return False, "final weights differ"
    def optimizer_states(checkpoint: dict) -> dict:
        # Checkpoints keep optimisers by name; those written before the per-step hook had one "optimizer".
        return checkpoint.get("optimizers") or {"model": checkpoint["optimizer"]}

    opt_a, opt_b = optimizer_states(ca), optimizer_states(cb)
    if opt_a.keys() != opt_b.keys():
        return False, "optimizers differ"
    for name in opt_a:
        for sa, sb in zip(opt_a[name]["state"].values(), opt_b[name]["state"].values()):
            if any(not torch.equal(sa[k], sb[k]) for k in sa):
                return False, f"optimizer {name!r} state differs"

    def log(run: Path) -> list[dict]:
        lines = (run / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "tokens_per_s")} for line in lines]

    if log(a) != log(b):
        return False, "weights equal, but the metrics logs differ"
    return True, "identical"


def _training_seconds(run: Path) -> float:
    lines = (run / "logs" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return float(json.loads(lines[-1])["elapsed_s"])


def resume_cycles(n: int, seed: int, workdir: Path, *, echo: Callable[[str], None] | None = None) -> dict:
    """``n`` interrupt-and-resume cycles in each stop mode under ``workdir``.

    Returns ``{"resume_cycles": tried, "resume_identical": identical, "by_mode": {mode: [tried,
    identical]}}``. A cycle whose interruption did not happen where it should (the run ended
    before the kill, the budget fell on an epoch boundary) is drawn again, at most 3 times.
    """
    say = echo or (lambda _line: None)
    rng = random.Random(seed)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    by_mode: dict[str, list[int]] = {}
    for mode in MODES:
        run_seed = rng.randint(0, 10_000)
        ref = workdir / mode / "reference"
        ref.parent.mkdir(parents=True, exist_ok=True)
        summary = _train(_write_recipe(workdir / mode / "reference.yaml", mode, ref, run_seed))
        total = max(_checkpoint_steps(ref / "checkpoints"))
        stopped_by = summary.get("stopped_by")
        if mode == "early_stopping" and stopped_by != "early_stopping":
            say(f"  {mode}: the reference run stopped by {stopped_by!r}, not early stopping")
        tried = identical = 0
        for cycle in range(n):
            for attempt in range(3):
                cut = workdir / mode / f"cycle{cycle}-{attempt}"
                if mode == "time_budget":
                    budget = rng.uniform(0.1, 0.8) * _training_seconds(ref)
                    first = _write_recipe(workdir / mode / f"cycle{cycle}-{attempt}-budget.yaml", mode, cut, run_seed, budget)
                    result = _train(first)
                    from seqlab.train.checkpoint import load_checkpoint

                    steps = _checkpoint_steps(cut / "checkpoints")
                    last = load_checkpoint(cut / "checkpoints" / f"step-{max(steps):09d}.pt")
                    mid_epoch = last["progress"]["batch_index"] > 0
                    if result.get("stopped_by") != "time_budget" or not mid_epoch:
                        say(f"  {mode} cycle {cycle}: budget {budget:.2f}s stopped by {result.get('stopped_by')!r} "
                            f"{'mid-epoch' if mid_epoch else 'at an epoch boundary'}; drawing again")
                        continue
                    where = f"budget {budget:.2f}s, stopped mid-epoch after step {max(steps)} of {total}"
                else:
                    kill_at = rng.randint(2, max(2, total - 3))
                    recipe = _write_recipe(workdir / mode / f"cycle{cycle}-{attempt}.yaml", mode, cut, run_seed)
                    stopped = _kill_after(recipe, cut, kill_at)
                    if stopped is None or stopped >= total:
                        say(f"  {mode} cycle {cycle}: the run ended before the kill at step {kill_at}; drawing again")
                        continue
                    where = f"SIGKILL after checkpoint step {stopped} of {total}"
                resume_recipe = _write_recipe(workdir / mode / f"cycle{cycle}-{attempt}-resume.yaml", mode, cut, run_seed)
                _train(resume_recipe, "--resume", str(cut))
                same, why = _same_run(ref, cut)
                tried += 1
                identical += same
                say(f"  {mode} cycle {cycle}: {where}; resumed: {why}")
                break
        by_mode[mode] = [tried, identical]
    return {
        "resume_cycles": sum(t for t, _ in by_mode.values()),
        "resume_identical": sum(i for _, i in by_mode.values()),
        "by_mode": by_mode,
    }


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2, help="cycles per stop mode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqlab-resume-") as tmp:
        figures = resume_cycles(args.cycles, args.seed, Path(tmp), echo=print)
    print(json.dumps(figures))
    print(f"({time.perf_counter() - start:.0f} s)")
