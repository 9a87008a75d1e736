"""Resuming reads only regular checkpoint files: a link planted among the checkpoints is refused,
its target is never read, and its contents never reach the message."""
import pytest

from seqlab.core.errors import ModelFileError
from seqlab.train.checkpoint import capture_rng_state, checkpoint_bytes, load_checkpoint


def _state():
    return {"model": {}, "rng": [capture_rng_state()], "epoch_rng": [None], "progress": {}}


def test_a_regular_checkpoint_loads(tmp_path):
    path = tmp_path / "step-000000001.pt"
    path.write_bytes(checkpoint_bytes(_state()))
    assert load_checkpoint(path)["progress"] == {}


def test_a_symlinked_checkpoint_is_refused_without_reading_its_target(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.pt"
    secret.write_bytes(b"TOP-SECRET " * 100)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    link = folder / "step-000000001.pt"
    link.symlink_to(secret)
    with pytest.raises(ModelFileError) as caught:
        load_checkpoint(link)
    assert "TOP-SECRET" not in str(caught.value)
    assert "step-000000001.pt" in str(caught.value)


def test_a_fifo_checkpoint_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "step-000000001.pt"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_checkpoint(fifo)
