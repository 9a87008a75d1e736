"""A crash at any step of a save leaves the old or the new model loadable (issue #15, part 2).

Reproduction: a crash between the two renames of the old save left only hidden
``.X.old-PID`` / ``.X.tmp-*`` folders, the model folder gone, and nothing recovered them.

Each test forks a process that saves model B over model A and SIGKILLs itself at the k-th
step of the save (``seqlab.core.files.kill_at_step``), for every k until the save completes;
after each crash the folder must load as exactly A or exactly B, and the next save must
finish or discard the interrupted one and leave no hidden leftovers.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

import seqlab
import seqlab.core.files as files
from model_folders import fingerprint, hidden_leftovers, tiny_pipeline
from seqlab.core.errors import ModelFileError

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    a, b = tiny_pipeline("a"), tiny_pipeline("b", seed=1)
    root = tmp_path_factory.mktemp("crash")
    a.save(root / "A")
    return {"a": a, "b": b, "A": root / "A", "fa": fingerprint(a), "fb": fingerprint(b)}


def _save_and_die_at(pipe, folder, k: int) -> bool:
    """Fork; the child saves ``pipe`` into ``folder`` and SIGKILLs itself at step ``k``. True if it died."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            files.kill_at_step(k)
            pipe.save(folder)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the save failed instead of completing"
    return False


def _loads_as(folder) -> str:
    return fingerprint(seqlab.load(folder, device="cpu"))


def test_killed_at_every_step_of_a_replacing_save(models, tmp_path):
    seen_states = set()
    k = 0
    while True:
        k += 1
        folder = tmp_path / f"k{k}"
        shutil.copytree(models["A"], folder)
        died = _save_and_die_at(models["b"], folder, k)
        got = _loads_as(folder)
        assert got in (models["fa"], models["fb"]), f"killed at step {k}: the folder holds neither model"
        seen_states.add("old" if got == models["fa"] else "new")
        # Loading never writes: the interrupted save is still there for the next writer to finish.
        models["a"].save(folder)
        assert _loads_as(folder) == models["fa"]
        assert hidden_leftovers(folder) == [], f"killed at step {k}"
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["config.json", "model.safetensors", "stages"]
        shutil.rmtree(folder)
        if not died:
            break
        assert k < 100
    assert k > 10  # every step of the save was a kill point (and there are that many)
    assert seen_states == {"old", "new"}


def test_killed_at_every_step_of_a_first_save(models, tmp_path):
    k = 0
    while True:
        k += 1
        folder = tmp_path / f"k{k}"
        died = _save_and_die_at(models["b"], folder, k)
        try:
            assert _loads_as(folder) == models["fb"]
        except ModelFileError:
            assert died  # no model yet is the "old" state of a first save
        models["b"].save(folder)
        assert _loads_as(folder) == models["fb"] and hidden_leftovers(folder) == []
        if not died:
            break


def test_an_interrupted_commit_is_finished_by_the_next_lock_holder(models, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(models["A"], folder)
    # Die right after the commit point: the journal says B, half of B's entries are in place.
    died = _save_and_die_at(models["b"], folder, 6)
    assert died and (folder / files.JOURNAL_FILE).exists()
    assert _loads_as(folder) == models["fb"]
    with files.folder_lock(folder):
        files.recover(folder)
    assert not (folder / files.JOURNAL_FILE).exists() and hidden_leftovers(folder) == []
    assert _loads_as(folder) == models["fb"]


def test_the_kill_switch_works_in_a_fresh_process(models, tmp_path, repo):
    """The same crash through the environment variable a benchmark or a user can set."""
    code = "import sys, seqlab; seqlab.load(sys.argv[1], device='cpu').save(sys.argv[2])"
    b_folder = tmp_path / "B"
    models["b"].save(b_folder)
    for k in (7,):
        folder = tmp_path / f"k{k}"
        shutil.copytree(models["A"], folder)
        result = subprocess.run([sys.executable, "-c", code, str(b_folder), str(folder)], capture_output=True, text=True,
                                timeout=300, env={**os.environ, "PYTHONPATH": str(repo), files.KILL_ENV: str(k)})
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert _loads_as(folder) in (models["fa"], models["fb"])
