"""A checkpoint whose checksum is valid but whose random-generator state is malformed is a
ModelFileError naming the file (was a raw traceback from torch.set_rng_state on --resume)."""
import random

import numpy as np
import pytest
import torch

from seqlab.cli import main
from seqlab.core.errors import ModelFileError
from seqlab.train.checkpoint import (
    capture_rng_state,
    checkpoint_bytes,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    restore_rng_state,
)

RECIPE = """\
task: sentiment
data: {{train: {repo}/corpora/sentiment/train.tsv, dev: null, text_column: sentence, label_column: label, limit_train: 16}}
model: {{embedding_dim: 4, hidden_size: 4}}
train: {{epochs: 2, batch_size: 8, progress: "off", checkpoint_every_steps: 1}}
output: {output}
device: cpu
examples: []
"""


def _break(rng: dict, how: str) -> dict:
    rng = dict(rng)
    if how == "torch_float":
        rng["torch"] = rng["torch"].float()
    elif how == "torch_short":
        rng["torch"] = rng["torch"][:100]
    elif how == "torch_zeros":  # right size and dtype, but no valid Mersenne Twister state
        rng["torch"] = torch.zeros_like(rng["torch"])
    elif how == "python_short":
        version, internal, gauss = rng["python"]
        rng["python"] = (version, internal[:10], gauss)
    elif how == "python_string":
        rng["python"] = "not a state"
    elif how == "numpy_keys":
        keys, pos, has_gauss, gauss = rng["numpy"]
        rng["numpy"] = (keys[:5], pos, has_gauss, gauss)
    elif how == "numpy_negative":
        keys, pos, has_gauss, gauss = rng["numpy"]
        rng["numpy"] = (keys - 2**33, pos, has_gauss, gauss)
    elif how == "missing_torch":
        del rng["torch"]
    elif how == "cuda_list":
        rng["cuda"] = [torch.zeros(3)]
    return rng


BREAKS = ["torch_float", "torch_short", "torch_zeros", "python_short", "python_string", "numpy_keys",
          "numpy_negative", "missing_torch", "cuda_list"]


@pytest.mark.parametrize("how", BREAKS)
def test_restore_refuses_a_malformed_state_and_leaves_the_generators_alone(how):
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    before = capture_rng_state()
    bad = _break(capture_rng_state(), how)
    random.seed(6), np.random.seed(6), torch.manual_seed(6)  # what restore would overwrite
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(6), np.random.seed(6), torch.manual_seed(6)
    with pytest.raises(ModelFileError, match="random-generator state is malformed"):
        restore_rng_state(bad, where="test state")
    # Nothing was half restored: the generators continue where they were.
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    restore_rng_state(before)  # the good one still works


@pytest.mark.parametrize("how", ["torch_float", "torch_zeros", "python_short", "numpy_keys"])
@pytest.mark.parametrize("field", ["rng", "epoch_rng"])
def test_a_checkpoint_with_a_valid_checksum_but_a_malformed_rng_state_is_refused(tmp_path, how, field):
    good = capture_rng_state()
    state = {"model": {"w": torch.ones(2)}, "rng": [good], "epoch_rng": [good]}
    state[field] = [_break(good, how)]
    path = tmp_path / "step-000000001.pt"
    path.write_bytes(checkpoint_bytes(state))  # digest computed over the malformed state: it matches
    with pytest.raises(ModelFileError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "random-generator state is malformed" in message, message
    # A well-formed neighbour is still readable.
    ok = tmp_path / "ok.pt"
    ok.write_bytes(checkpoint_bytes({"model": {"w": torch.ones(2)}, "rng": [good], "epoch_rng": [None]}))
    assert torch.equal(load_checkpoint(ok)["model"]["w"], torch.ones(2))


def test_rng_must_be_a_non_empty_list(tmp_path):
    path = tmp_path / "step-000000001.pt"
    path.write_bytes(checkpoint_bytes({"rng": [], "epoch_rng": []}))
    with pytest.raises(ModelFileError, match=r"'rng' must be a non-empty list"):
        load_checkpoint(path)


def test_resume_from_such_a_checkpoint_is_one_clear_line(tmp_path, repo, capsys):
    """`seqlab train --resume`: the newest checkpoint is malformed, so it is refused with a warning
    naming it and the run continues from the one before; with none usable, exit 2 and one line."""
    recipe = tmp_path / "recipe.yaml"
    out = tmp_path / "out"
    recipe.write_text(RECIPE.format(repo=repo, output=out))
    assert main(["train", str(recipe)]) == 0
    files = list_checkpoints(out / "checkpoints")
    assert len(files) >= 2
    capsys.readouterr()

    newest = files[-1]
    state = load_checkpoint(newest)
    state["rng"] = [_break(r, "torch_float") for r in state["rng"]]
    newest.write_bytes(checkpoint_bytes(state))
    with pytest.raises(ModelFileError, match="random-generator state is malformed"):
        load_checkpoint(newest)
    assert load_latest_checkpoint(out)[1] == files[-2]  # falls back, like a corrupt file

    for path in files:  # now every checkpoint is malformed
        state = load_checkpoint(path) if path != newest else None
        if state is not None:
            state["rng"] = [_break(r, "torch_float") for r in state["rng"]]
            path.write_bytes(checkpoint_bytes(state))
    code = main(["train", str(recipe), "--resume", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("seqlab train: no usable checkpoint in") and str(newest) in err
    assert "random-generator state is malformed" in err
    # Given the file itself, the message names that file.
    code = main(["train", str(recipe), "--resume", str(newest)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"seqlab train: checkpoint {str(newest)!r}") and "Traceback" not in err
