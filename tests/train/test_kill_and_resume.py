"""`seqlab train` killed with SIGKILL at a random step, then `--resume`d, ends with the very
same weights as a run that was never interrupted (CPU, same seed)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from seqlab.recipe import load_recipe, run_recipe
from seqlab.train.checkpoint import checkpoint_step, list_checkpoints, load_checkpoint

REPO = Path(__file__).resolve().parents[2]

RECIPE = """\
task: sentiment
data:
  train: {repo}/corpora/sentiment/train.tsv
  dev: {repo}/corpora/sentiment/dev.tsv
  text_column: sentence
  label_column: label
  limit_train: 64
model: {{embedding_dim: 8, hidden_size: 8, dropout: 0.2}}
train: {{epochs: 3, batch_size: 8, lr: 0.01, seed: 3, schedule: exponential, decay_rate: 0.2, warmup_steps: 4,
        checkpoint_every_steps: 1, keep_checkpoints: 3, progress: "off"}}
output: {output}
device: cpu
examples: []
"""


def env():
    # One thread: float sums in the same order every time.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def train_command(recipe, *extra):
    return [sys.executable, "-m", "seqlab", "train", str(recipe), *extra]


def latest_step(directory: Path) -> int:
    steps = [checkpoint_step(p) for p in list_checkpoints(directory)]
    return max(steps) if steps else 0


def run_in_this_process(recipe_path):
    """The uninterrupted reference run, here (no second interpreter start), single-threaded like the others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_recipe(load_recipe(recipe_path), echo=lambda _line: None)
    finally:
        torch.set_num_threads(threads)


def test_sigkill_at_a_random_step_then_resume_is_bit_identical(tmp_path):
    full_out, cut_out = tmp_path / "full", tmp_path / "cut"
    for name, out in (("full", full_out), ("cut", cut_out)):
        (tmp_path / f"{name}.yaml").write_text(RECIPE.format(repo=REPO, output=out))
    total_steps = 3 * 8
    kill_after = random.SystemRandom().randint(2, total_steps - 6)
    where = f"(killed after checkpoint step {kill_after})"

    cut = subprocess.Popen(train_command(tmp_path / "cut.yaml"), env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while cut.poll() is None and latest_step(cut_out / "checkpoints") < kill_after and time.monotonic() < deadline:
        time.sleep(0.002)
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    assert cut.returncode == -signal.SIGKILL, f"the run ended before it could be killed {where}: {cut.stdout.read().decode()[-2000:]}"
    assert not (cut_out / "model.safetensors").exists()
    stopped_at = latest_step(cut_out / "checkpoints")
    assert 0 < stopped_at < total_steps, where

    resumed = subprocess.Popen(train_command(tmp_path / "cut.yaml", "--resume", str(cut_out), "--json"), env=env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_in_this_process(tmp_path / "full.yaml")  # meanwhile
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr[-3000:]
    assert "continued from checkpoint" in stdout

    # The saved (best) model, tensor by tensor.
    a, b = load_file(full_out / "model.safetensors"), load_file(cut_out / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs {where}"
    # The final weights and optimizer state, too (the last checkpoint of each run).
    last_a = load_checkpoint(full_out / "checkpoints" / f"step-{total_steps:09d}.pt")
    last_b = load_checkpoint(cut_out / "checkpoints" / f"step-{total_steps:09d}.pt")
    for name, tensor in last_a["model"].items():
        assert torch.equal(tensor, last_b["model"][name]), f"final {name} differs {where}"
    for sa, sb in zip(last_a["optimizers"]["model"]["state"].values(), last_b["optimizers"]["model"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa), where
    # Same log (but timings), curves written.
    def log(out):
        return [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "tokens_per_s")}
                for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert log(full_out) == log(cut_out) and len(log(cut_out)) == 3
    assert (cut_out / "logs" / "curves.png").is_file()
    assert json.loads(stdout[stdout.index("\n{\n"):])["steps"] == total_steps
