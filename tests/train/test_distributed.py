"""Data-parallel training: global-batch shards, and `torchrun --nproc_per_node=2` (gloo, CPU)
giving the weights of one process over the same global batches."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqlab.recipe import load_recipe, run_recipe
from seqlab.train.checkpoint import list_checkpoints, load_checkpoint
from seqlab.train.distributed import DistributedContext, shard_rows

REPO = Path(__file__).resolve().parents[2]

RECIPE = """\
task: sentiment
data:
  train: {repo}/corpora/sentiment/train.tsv
  dev: {repo}/corpora/sentiment/dev.tsv
  text_column: sentence
  label_column: label
  limit_train: 49          # 16 batches of 3 (shards of 2 and 1 rows) and one of 1 (rank 1's shard is empty)
model: {{embedding_dim: 8, hidden_size: 8, dropout: 0.0}}
train: {{epochs: 2, batch_size: 3, bucket_factor: 1, optimizer: momentum, lr: 0.05, seed: 5, l2: 0.0001,
        progress: "off"}}
output: {output}
device: cpu
examples: []
"""


def test_shards_cover_every_row_once_and_weights_average_to_the_batch_mean():
    for rows in (1, 2, 5, 8):
        for world in (2, 3):
            spans = [shard_rows(rows, r, world) for r in range(world)]
            covered = [i for start, count in spans for i in range(start, start + count)]
            assert covered == list(range(rows))
    batch = {"x": torch.arange(5.0), "x_lengths": torch.tensor([1, 2, 3, 4, 5]), "scalar": torch.tensor(7.0)}
    per_row_loss = batch["x"] ** 2
    total = 0.0
    for rank in range(2):
        ctx = DistributedContext(rank=rank, world_size=2)
        shard, weight = ctx.shard(batch)
        assert torch.equal(shard["scalar"], batch["scalar"])
        # DDP averages the ranks' gradients: Σ_r weight_r · mean_r / world = the global mean.
        total += weight * (shard["x"] ** 2).mean() / 2
    assert float(total) == pytest.approx(float(per_row_loss.mean()))
    shard, weight = DistributedContext(rank=1, world_size=2).shard({"x": torch.tensor([3.0])})
    assert weight == 0.0 and shard["x"].shape[0] == 1  # an empty shard computes on one row, weighted 0


def test_torchrun_two_processes_equal_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    (tmp_path / "one.yaml").write_text(RECIPE.format(repo=REPO, output=one))
    (tmp_path / "two.yaml").write_text(RECIPE.format(repo=REPO, output=two))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    ddp = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "seqlab", "train", str(tmp_path / "two.yaml")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    run_recipe(load_recipe(tmp_path / "one.yaml"), echo=lambda _line: None)  # one process: this one, meanwhile
    out, _ = ddp.communicate(timeout=120)
    assert ddp.returncode == 0, out[-4000:]
    assert out.count("seqlab: saved to") == 1 and "× 2 processes" in out  # only rank 0 writes and prints

    last_one = load_checkpoint(list_checkpoints(one / "checkpoints")[-1])
    last_two = load_checkpoint(list_checkpoints(two / "checkpoints")[-1])
    assert last_one["progress"]["step"] == last_two["progress"]["step"] == 34
    assert last_two["world_size"] == 2 and len(last_two["rng"]) == 2
    diffs = {name: float((tensor - last_two["model"][name]).abs().max()) for name, tensor in last_one["model"].items()}
    print("max |one - two| per tensor:", diffs)
    for name, tensor in last_one["model"].items():
        assert torch.allclose(tensor, last_two["model"][name], rtol=0, atol=1e-6), name
    # The logged (all-reduced) training loss is the global one.
    for a, b in zip(last_one["progress"]["history"], last_two["progress"]["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)
