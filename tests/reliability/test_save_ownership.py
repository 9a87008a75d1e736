"""Saving never deletes what seqlab did not write (issue #15, part 2).

Reproductions: ``seqlab train --output DIR`` and ``Pipeline.save(DIR)`` into a folder of the
user's files deleted them all and exited 0; ``--output .`` ended in an EBUSY traceback after
training; ``--output FILE`` in ``NotADirectoryError``; model folders came out 0700/0600
whatever the umask.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

import seqlab
from model_folders import fingerprint, hidden_leftovers, tiny_pipeline, tree
from seqlab.cli import main as cli
from seqlab.core.errors import OutputDirError
from seqlab.core.files import MANIFEST_FILE, model_transaction, read_manifest
from seqlab.core.serialization import atomic_directory

USER_FILES = {"train.tsv": b"sentence\tlabel\nok\t1\n", "dev.tsv": b"sentence\tlabel\nno\t0\n", "NOTES.md": b"# my notes\n"}

RECIPE = """\
task: sentiment
data: {{train: {repo}/corpora/sentiment/train.tsv, dev: null, text_column: sentence, label_column: label, limit_train: 16}}
model: {{embedding_dim: 4, hidden_size: 4}}
train: {{epochs: 1, batch_size: 8, progress: "off"}}
output: {output}
device: cpu
examples: []
"""


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline("a")


def _user_folder(path):
    path.mkdir(parents=True)
    for name, data in USER_FILES.items():
        (path / name).write_bytes(data)
    return path


def _recipe(tmp_path, repo, output):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(repo=repo, output=output))
    return path


def _one_line(err: str, command: str = "train") -> str:
    assert err.startswith(f"seqlab {command}: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- a folder of the user's files ------------------------------------------------------------------
def test_save_refuses_a_folder_of_user_files_and_leaves_them(pipe, tmp_path):
    folder = _user_folder(tmp_path / "data")
    with pytest.raises(OutputDirError, match="not a seqlab model folder") as info:
        pipe.save(folder)
    assert "NOTES.md" in str(info.value) and "new or empty folder" in str(info.value)
    assert tree(folder) == USER_FILES  # nothing deleted, nothing added (not even a lock file)


def test_train_refuses_a_folder_of_user_files_before_training(tmp_path, repo, capsys):
    folder = _user_folder(tmp_path / "data")
    start = time.perf_counter()
    code = cli(["train", str(_recipe(tmp_path, repo, tmp_path / "elsewhere")), "--output", str(folder)])
    err = _one_line(capsys.readouterr().err)
    assert code == 2 and "not a seqlab model folder" in err and str(folder) in err
    assert "seqlab: training" not in capsys.readouterr().out  # refused before training started
    assert tree(folder) == USER_FILES
    assert time.perf_counter() - start < 60  # (generous) no training happened: it takes longer


def test_saving_into_an_empty_folder_and_a_new_one(pipe, tmp_path):
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        pipe.save(folder)
        assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)
        assert hidden_leftovers(folder) == []


# -- a seqlab model folder --------------------------------------------------------------------------
def test_replacing_a_model_keeps_the_users_files_logs_and_checkpoints(pipe, tmp_path):
    folder = tmp_path / "run"
    tiny_pipeline("b").save(folder)
    (folder / "NOTES.md").write_bytes(b"my notes on this run\n")
    (folder / "logs").mkdir()
    (folder / "logs" / "metrics.jsonl").write_text('{"step": 1}\n')
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "step-000000001.pt").write_bytes(b"checkpoint")
    pipe.save(folder)
    assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)
    assert (folder / "NOTES.md").read_bytes() == b"my notes on this run\n"
    assert (folder / "logs" / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert (folder / "checkpoints" / "step-000000001.pt").read_bytes() == b"checkpoint"
    assert hidden_leftovers(folder) == []


def test_a_replacing_save_removes_exactly_the_previous_saves_entries(tmp_path):
    folder = tmp_path / "model"
    with atomic_directory(folder) as staging:
        (staging / "a.txt").write_text("one")
        (staging / "extra").mkdir()
        (staging / "extra" / "x.bin").write_bytes(b"x")
    assert read_manifest(folder)["entries"] == ["a.txt", "extra"]
    assert read_manifest(folder)["files"] == ["a.txt", "extra/x.bin"]
    (folder / "mine.txt").write_text("the user's")
    with atomic_directory(folder) as staging:
        (staging / "a.txt").write_text("two")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["a.txt", "mine.txt"]
    assert (folder / "a.txt").read_text() == "two" and (folder / "mine.txt").read_text() == "the user's"


def test_a_user_file_inside_seqlabs_own_subfolder_is_refused_not_deleted(pipe, tmp_path):
    folder = tmp_path / "model"
    pipe.save(folder)
    stray = next(folder.glob("stages/*")) / "my_notes.txt"
    stray.write_text("mine")
    with pytest.raises(OutputDirError, match="was not written by seqlab") as info:
        pipe.save(folder)
    assert str(stray) in str(info.value) and stray.read_text() == "mine"


def test_a_user_file_where_a_new_save_would_write_is_refused(tmp_path):
    folder = tmp_path / "model"
    with atomic_directory(folder) as staging:
        (staging / "a.txt").write_text("one")
    (folder / "b.txt").write_text("the user's b")
    with pytest.raises(OutputDirError, match="not written by seqlab"):
        with atomic_directory(folder) as staging:
            (staging / "a.txt").write_text("two")
            (staging / "b.txt").write_text("seqlab's b")
    assert (folder / "a.txt").read_text() == "one" and (folder / "b.txt").read_text() == "the user's b"
    assert hidden_leftovers(folder) == []


def test_a_model_saved_before_manifests_existed_is_replaced_by_its_known_files(pipe, tmp_path):
    folder = tmp_path / "old"
    tiny_pipeline("b").save(folder)
    (folder / MANIFEST_FILE).unlink()
    (folder / ".seqlab.lock").unlink()  # as an older seqlab left it: config.json marks it
    (folder / "NOTES.md").write_text("mine")
    pipe.save(folder)
    assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)
    assert (folder / "NOTES.md").read_text() == "mine"


def test_a_failed_save_leaves_the_previous_model_and_no_leftovers(pipe, tmp_path):
    folder = tmp_path / "model"
    pipe.save(folder)
    before = tree(folder)
    with pytest.raises(RuntimeError, match="disk full"):
        with model_transaction(folder) as staging:
            (staging / "config.json").write_text("{}")
            raise RuntimeError("disk full")
    after = tree(folder)
    assert after.pop(".seqlab.lock") and before.pop(".seqlab.lock")  # it names the latest holder
    assert after == before and hidden_leftovers(folder) == []


# -- folders that are no place for a model ----------------------------------------------------------
@pytest.mark.parametrize("where", ["dot", "cwd_absolute", "parent_of_cwd", "file", "inside_a_model", "dangling_link"])
def test_bad_output_folders_are_one_line_errors_before_training(tmp_path, repo, capsys, monkeypatch, where, pipe):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "existing.txt").write_text("a file")
    pipe.save(tmp_path / "model")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    output = {"dot": ".", "cwd_absolute": str(work), "parent_of_cwd": str(tmp_path), "file": "existing.txt",
              "inside_a_model": str(tmp_path / "model" / "stages" / "new"), "dangling_link": str(tmp_path / "dangling")}[where]
    expected = {"dot": "is the current directory", "cwd_absolute": "is the current directory",
                "parent_of_cwd": "is the current directory or holds it", "file": "is a file, not a folder",
                "inside_a_model": "lies inside", "dangling_link": "symbolic link to nothing"}[where]
    recipe = _recipe(tmp_path, repo, "unused")
    before = tree(tmp_path)
    code = cli(["train", str(recipe), "--output", output])
    err = _one_line(capsys.readouterr().err)
    assert code == 2 and expected in err, err
    assert tree(tmp_path) == before  # nothing written anywhere
    with pytest.raises(OutputDirError, match=expected):
        pipe.save(output)


def test_train_output_dot_in_a_fresh_process(tmp_path, repo):
    """The reported reproduction, as a user runs it: one line, exit 2, no traceback, nothing left behind."""
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-m", "seqlab", "train", str(_recipe(tmp_path, repo, "x")), "--output", "."],
                            cwd=work, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    assert result.returncode == 2, result.stderr
    _one_line(result.stderr)
    assert "current directory" in result.stderr and list(work.iterdir()) == []


# -- modes follow the umask --------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_model_folders_and_files_honour_the_umask(pipe, tmp_path, umask):
    old = os.umask(umask)
    try:
        folder = tmp_path / "model"
        pipe.save(folder)
        pipe.save(folder)  # a replacing save too
    finally:
        os.umask(old)
    paths = [folder, *folder.rglob("*")]
    assert paths
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == expected, f"{path}: {oct(mode)} != {oct(expected)}"


def test_the_manifest_lists_what_the_save_wrote(pipe, tmp_path):
    pipe.save(tmp_path / "model")
    manifest = json.loads((tmp_path / "model" / MANIFEST_FILE).read_text())
    assert manifest["entries"] == ["config.json", "model.safetensors", "stages"]
    on_disk = sorted(p.relative_to(tmp_path / "model").as_posix() for p in (tmp_path / "model").rglob("*")
                     if p.is_file() and not p.name.startswith(".seqlab"))
    assert manifest["files"] == on_disk
