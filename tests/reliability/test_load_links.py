"""Loading reads only regular files inside the model folder (issue #15, part 3).

Reproduction: a symlinked ``vocab.txt``, ``labels.txt``, ``config.json`` or
``model.safetensors`` was followed out of the folder — 7 of 9 cases read outside it, 3 loaded
and predicted, and in 4 the outside file's contents appeared in the error message (a link to
``/proc/self/environ`` printed the start of the environment).

Every link below is refused with a ``ModelFileError`` that quotes nothing of the target, and
the target is never opened: each is a canary whose access time is wound back to 1970 before
the load and checked after it (the file system updates it on any read).
"""
from __future__ import annotations

import json
import os
import shutil

import pytest

import seqlab
from model_folders import fingerprint, tiny_pipeline
from seqlab.cli import main as cli
from seqlab.core.errors import ModelFileError
from seqlab.pipeline import Pipeline

SECRET = "CANARY-SECRET-7f3a9c"
LINKED = ["config.json", "model.safetensors", "stages/01_vocabulary/vocab.txt", "stages/02_label_encoder/labels.txt",
          "stages/01_vocabulary"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("links")
    pipe = tiny_pipeline("a")
    pipe.save(root / "model")
    pipe.save(root / "twin")  # a valid model elsewhere: following a link into it would load
    return root, pipe


def _atime_works(path) -> bool:
    os.utime(path, (0, path.stat().st_mtime))
    path.read_bytes()
    return path.stat().st_atime > 0


def _canary(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (0, path.stat().st_mtime))  # atime 1970: any read moves it
    return path


def _assert_refused(folder, capsys) -> list[str]:
    messages = []
    for load in (lambda: seqlab.load(folder, device="cpu"), lambda: Pipeline.load(folder, device="cpu")):
        with pytest.raises(ModelFileError) as info:
            load()
        messages.append(str(info.value))
    capsys.readouterr()
    assert cli(["predict", str(folder), "good film"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqlab predict: ") and err.count("\n") == 1
    return [*messages, err]


@pytest.mark.parametrize("target_kind", ["twin", "canary", "environ"])
@pytest.mark.parametrize("linked", LINKED)
def test_a_symlinked_model_file_is_refused_and_its_target_not_read(saved, tmp_path, capsys, linked, target_kind):
    root, _ = saved
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    original = folder / linked
    if target_kind == "twin":
        target = tmp_path / "twin_copy" / linked
        shutil.copytree(root / "twin", tmp_path / "twin_copy")
    elif target_kind == "canary":
        target = tmp_path / "outside" / linked
        if original.is_dir():
            shutil.copytree(original, target)
            for path in target.iterdir():
                _canary(path, path.read_bytes())
        else:
            _canary(target, original.read_bytes() if linked != "config.json" else f'{{"format": "{SECRET}"}}'.encode())
    else:
        if original.is_dir():
            pytest.skip("/proc/self/environ is a file")
        target = "/proc/self/environ"
    if original.is_dir():
        shutil.rmtree(original)
    else:
        original.unlink()
    os.symlink(target, original)
    targets = [] if target_kind == "environ" else list(target.iterdir()) if target.is_dir() else [target]
    if target_kind == "twin":
        for path in targets:
            os.utime(path, (0, path.stat().st_mtime))
    probe = tmp_path / "probe.txt"
    probe.write_text("x")
    if targets and not _atime_works(probe):
        pytest.skip("this file system does not update access times")
    for message in _assert_refused(folder, capsys):
        assert "symbolic link" in message or "outside the model directory" in message, message
        assert SECRET not in message
        with open("/proc/self/environ", "rb") as handle:
            env_start = handle.read(40).split(b"\0")[0].decode(errors="replace")
        assert not env_start or env_start not in message
    for path in targets:
        assert path.stat().st_atime == 0, f"{path} was read through the link"


def test_a_fifo_in_place_of_a_stage_file_is_refused_without_blocking(saved, tmp_path):
    root, _ = saved
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    vocab = folder / "stages" / "01_vocabulary" / "vocab.txt"
    vocab.unlink()
    os.mkfifo(vocab)  # opening it for reading would wait for a writer forever
    with pytest.raises(ModelFileError, match="not a regular file"):
        seqlab.load(folder, device="cpu")


def test_a_directory_in_place_of_config_json_is_refused(saved, tmp_path):
    root, _ = saved
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.raises(ModelFileError, match="not a regular file"):
        seqlab.load(folder, device="cpu")


def test_the_model_folder_itself_may_be_a_link(saved, tmp_path):
    root, pipe = saved
    os.symlink(root / "model", tmp_path / "alias")
    assert fingerprint(seqlab.load(tmp_path / "alias", device="cpu")) == fingerprint(pipe)


def test_errors_quote_only_a_short_escaped_excerpt(saved, tmp_path):
    root, _ = saved
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    vocab = folder / "stages" / "01_vocabulary" / "vocab.txt"
    long_line = "\\q" + SECRET + "x" * 10_000 + "\x1b[31m"
    vocab.write_text(vocab.read_text() + long_line + "\n")
    with pytest.raises(ModelFileError) as info:
        seqlab.load(folder, device="cpu")
    message = str(info.value)
    assert "bad escape" in message and len(message) < 600 and "x" * 100 not in message and "\x1b" not in message
    config = json.loads((folder / "config.json").read_text())
    config["format"] = "\x1b[2J" + "y" * 5000
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError) as info:
        seqlab.load(folder, device="cpu")
    assert len(str(info.value)) < 600 and "\x1b" not in str(info.value) and "y" * 100 not in str(info.value)


def test_a_forged_commit_journal_cannot_lead_the_loader_out(saved, tmp_path):
    """The journal of an interrupted save is a file of the folder too: it cannot point outside it."""
    root, pipe = saved
    folder = tmp_path / "model"
    shutil.copytree(root / "model", folder)
    shutil.copytree(root / "twin", tmp_path / "outside")
    os.symlink(tmp_path / "outside", folder / ".seqlab-new-1-abcd")  # a staging folder that is a link
    journal = {"format": "seqlab.commit", "version": 1, "staging": ".seqlab-new-1-abcd", "trash": ".seqlab-old-1-abcd",
               "entries": ["config.json", "model.safetensors", "stages"], "remove": []}
    (folder / ".seqlab-commit.json").write_text(json.dumps(journal))
    with pytest.raises(ModelFileError, match="symbolic link"):
        seqlab.load(folder, device="cpu")
    for staging in ("../outside", "/tmp", ".seqlab-new-../../x"):  # not a staging folder's name: ignored
        (folder / ".seqlab-commit.json").write_text(json.dumps({**journal, "staging": staging}))
        assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)
