"""`seqlab train` errors a user can cause: CUDA asked for without a GPU, nothing to resume."""
import pytest
import torch

from seqlab.cli import main

RECIPE = """\
task: sentiment
data: {{train: {repo}/corpora/sentiment/train.tsv, dev: null, text_column: sentence, label_column: label, limit_train: 16}}
model: {{embedding_dim: 4, hidden_size: 4}}
train: {{epochs: 1, batch_size: 8, progress: "off"}}
output: {output}
device: {device}
examples: []
"""


def write(tmp_path, repo, device="cpu"):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(repo=repo, output=tmp_path / "out", device=device))
    return path


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_recipe_without_a_gpu_exits_2_with_a_clear_message(tmp_path, repo, capsys):
    code = main(["train", str(write(tmp_path, repo, device="cuda"))])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("seqlab train: device 'cuda' was asked for, but this machine has no usable CUDA GPU")
    assert "use device: auto or cpu" in err


def test_resume_without_checkpoints_exits_2(tmp_path, repo, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["train", str(write(tmp_path, repo)), "--resume", str(tmp_path / "empty")])
    assert code == 2
    assert "seqlab train: no checkpoints to resume from" in capsys.readouterr().err


def test_train_writes_checkpoints_logs_and_curves(tmp_path, repo, capsys):
    assert main(["train", str(write(tmp_path, repo))]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000000002.pt"]
    assert (out / "logs" / "metrics.jsonl").is_file() and (out / "logs" / "curves.png").is_file()
    assert (out / "model.safetensors").is_file()
