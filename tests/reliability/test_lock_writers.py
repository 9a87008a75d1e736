"""One writer per folder: a lock refuses the second, naming the first (issue #15, part 2).

Reproductions: two ``seqlab train`` runs into one ``--output`` both exited 0 and printed
"saved to", one run's model and checkpoints were lost and ``logs/metrics.jsonl`` was torn
into invalid JSON; 4 processes calling ``pipe.save`` on one folder raised raw ``OSError``s
and left hidden copies behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

import seqlab
from model_folders import fingerprint, hidden_leftovers, tiny_pipeline
from seqlab.cli import main as cli
from seqlab.core.errors import FolderLockedError
from seqlab.core.files import claim_output_dir, folder_lock, lock_holder

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

RECIPE = """\
task: sentiment
data: {{train: {repo}/corpora/sentiment/train.tsv, dev: {repo}/corpora/sentiment/dev.tsv, text_column: sentence, label_column: label, limit_train: 64}}
model: {{embedding_dim: 8, hidden_size: 8}}
train: {{epochs: {epochs}, batch_size: 8, progress: "off"}}
output: {output}
device: cpu
examples: []
"""


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline("a")


class Holder:
    """A forked process that holds a folder's lock (as ``seqlab train`` does) until told to stop."""

    def __init__(self, folder) -> None:
        ready_r, ready_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                with claim_output_dir(folder, purpose="seqlab train"):
                    os.write(ready_w, b"1")
                    signal.pause()
            finally:
                os._exit(0)
        os.close(ready_w)
        assert os.read(ready_r, 1) == b"1"
        os.close(ready_r)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def test_a_second_writer_is_refused_naming_the_holder(pipe, tmp_path, capsys, repo):
    folder = tmp_path / "run"
    holder = Holder(folder)
    try:
        with pytest.raises(FolderLockedError) as info:
            pipe.save(folder)
        message = str(info.value)
        assert f"pid {holder.pid}" in message and "seqlab train" in message and "since" in message
        assert lock_holder(folder)["pid"] == holder.pid
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(RECIPE.format(repo=repo, output=folder, epochs=1))
        assert cli(["train", str(recipe)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("seqlab train: ") and err.count("\n") == 1 and f"pid {holder.pid}" in err
        assert not (folder / "logs").exists()  # refused before training
    finally:
        holder.kill()
    # The holder died without unlocking: the kernel released the lock, and it blocks no one.
    pipe.save(folder)
    assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)


def test_the_lock_is_reentrant_in_one_thread_and_refuses_another(pipe, tmp_path):
    folder = tmp_path / "run"
    with claim_output_dir(folder):
        pipe.save(folder)  # seqlab train saves while holding its own lock
        pipe.save(folder)
        errors = []
        thread = threading.Thread(target=lambda: errors.append(_try_save(pipe, folder)))
        thread.start()
        thread.join()
        assert isinstance(errors[0], FolderLockedError) and "another thread of this process" in str(errors[0])
    pipe.save(folder)  # released
    assert hidden_leftovers(folder) == []


def _try_save(pipe, folder):
    try:
        pipe.save(folder)
    except Exception as err:  # noqa: BLE001
        return err
    return None


def test_many_processes_saving_into_one_folder(pipe, tmp_path):
    """4 writers × 25 saves: each save wins or gets the lock error; never a raw OSError, never a torn model."""
    folder = tmp_path / "shared"
    report = tmp_path / "report"
    report.mkdir()
    pids = []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:
            counts = {"saved": 0, "locked": 0, "other": []}
            try:
                for _ in range(25):
                    try:
                        pipe.save(folder)
                        counts["saved"] += 1
                    except FolderLockedError:
                        counts["locked"] += 1
                    except BaseException as err:  # noqa: BLE001
                        counts["other"].append(f"{type(err).__name__}: {err}")
                (report / f"{worker}.json").write_text(json.dumps(counts))
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    results = [json.loads((report / f"{w}.json").read_text()) for w in range(4)]
    assert [r["other"] for r in results] == [[], [], [], []]
    assert sum(r["saved"] + r["locked"] for r in results) == 100 and sum(r["saved"] for r in results) >= 1
    assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(pipe)
    assert hidden_leftovers(folder) == []


@pytest.mark.slow
def test_two_train_runs_into_one_output(tmp_path, repo):
    """The reported reproduction: started together, one trains and saves, the other is refused at start."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(repo=repo, output=tmp_path / "run", epochs=1))
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-m", "seqlab", "train", str(recipe)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outcomes = sorted((run.wait(timeout=600), *run.communicate()) for run in runs)
    (ok, ok_out, _), (refused, refused_out, refused_err) = outcomes
    assert (ok, refused) == (0, 2), outcomes
    assert "saved to" in ok_out and "saved to" not in refused_out
    assert refused_err.startswith("seqlab train: ") and refused_err.count("\n") == 1 and "in use by pid" in refused_err
    for line in (tmp_path / "run" / "logs" / "metrics.jsonl").read_text().splitlines():
        json.loads(line)  # one writer: no torn lines
    seqlab.load(tmp_path / "run", device="cpu")
    assert hidden_leftovers(tmp_path / "run") == []


def test_a_symlinked_lock_file_is_refused(tmp_path, pipe):
    folder = tmp_path / "model"
    pipe.save(folder)
    (folder / ".seqlab.lock").unlink()
    os.symlink(tmp_path / "elsewhere", folder / ".seqlab.lock")
    with pytest.raises(seqlab.core.errors.OutputDirError, match="symbolic link"):
        with folder_lock(folder):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_readers_see_a_whole_model_while_a_writer_replaces_it(tmp_path):
    """Loads racing a process that saves A and B in turn: each returns exactly A or B, never an error."""
    a, b = tiny_pipeline("a"), tiny_pipeline("b", seed=1)
    fingerprints = {fingerprint(a): "a", fingerprint(b): "b"}
    folder = tmp_path / "model"
    a.save(folder)
    pid = os.fork()
    if pid == 0:
        try:
            while True:
                b.save(folder)
                a.save(folder)
        finally:
            os._exit(0)
    try:
        seen = [fingerprints.get(fingerprint(seqlab.load(folder, device="cpu")), "neither") for _ in range(40)]
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert "neither" not in seen and set(seen) <= {"a", "b"}


def test_a_commit_waits_for_a_load_in_progress(tmp_path):
    """A load holds the commit lock shared, so a save cannot swap the files under it (CI once saw
    40 loads starved by a writer saving without pause: 20 retries each, then an error)."""
    from seqlab.core.files import _commit_lock

    a, b = tiny_pipeline("a"), tiny_pipeline("b", seed=1)
    folder = tmp_path / "model"
    a.save(folder)
    saved = threading.Event()
    with _commit_lock(folder, shared=True):  # as seqlab.load holds it
        thread = threading.Thread(target=lambda: (b.save(folder), saved.set()))
        thread.start()
        assert not saved.wait(1.0)  # the writer staged its files but may not commit
        assert fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(a)  # shared: a second load goes on
    thread.join(30)
    assert saved.is_set() and fingerprint(seqlab.load(folder, device="cpu")) == fingerprint(b)
