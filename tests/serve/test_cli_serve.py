"""``seqlab serve``: model names, one-line errors before the server starts, and a real server answering."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
import uvicorn
from starlette.testclient import TestClient

from seqlab.cli import main
from tests.conftest import REPO


@pytest.fixture
def no_server(monkeypatch):
    """uvicorn.run replaced: records what it was given instead of serving."""
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append((app, kwargs)))
    return started


def test_serve_names_models_and_starts_uvicorn_quietly(tiny_model_dirs, no_server, capsys):
    code = main(["serve", str(tiny_model_dirs["sentiment"]), f"tagger={tiny_model_dirs['ner']}", "--port", "8123",
                 "--max-batch", "4", "--no-batching"])
    assert code == 0
    (app, kwargs), = no_server
    assert kwargs == {"host": "127.0.0.1", "port": 8123, "log_level": "warning", "access_log": False}
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "http://127.0.0.1:8123/" in out[0] and "sentiment (sentiment), tagger (ner)" in out[0]
    settings = app.state.settings
    assert settings.max_batch == 4 and settings.batching is False
    with TestClient(app) as client:
        assert client.get("/health").json()["models"] == ["sentiment", "tagger"]


@pytest.mark.parametrize("args, message", [
    (["{s}", "{s}"], "two models are named 'sentiment'"),
    (["{s}", "sentiment={n}"], "two models are named 'sentiment'"),
    (["{missing}"], "does not exist"),
    (["{empty}"], "model 'empty'"),
    (["{s}", "--max-batch", "0"], "max_batch must be a positive integer"),
    (["{s}", "--max-body-mb", "nan"], "--max-body-mb nan"),
    (["{s}", "--port", "70000"], "not a port number"),
    (["{s}", "--device", "tpu"], "device"),
])
def test_bad_arguments_are_one_line_before_the_server_starts(tiny_model_dirs, tmp_path, no_server, capsys, args, message):
    (tmp_path / "empty").mkdir()
    names = {"s": tiny_model_dirs["sentiment"], "n": tiny_model_dirs["ner"], "missing": tmp_path / "missing",
             "empty": tmp_path / "empty"}
    code = main(["serve", *(a.format(**names) for a in args)])
    err = capsys.readouterr().err
    assert code == 2 and not no_server
    assert err.startswith("seqlab serve: ") and message in err and len(err.strip().splitlines()) == 1, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_answers_over_http(tiny_model_dirs):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seqlab", "serve", str(tiny_model_dirs["sentiment"]), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "the server did not come up"
                time.sleep(0.1)
        assert health.json()["models"] == ["sentiment"]
        answer = httpx.post(f"http://127.0.0.1:{port}/api/models/sentiment/predict", json={"input": ""}, timeout=10)
        assert answer.status_code == 400 and answer.json()["type"] == "InputError"
        answer = httpx.post(f"http://127.0.0.1:{port}/api/models/sentiment/predict", json={"input": "a great film"}, timeout=10)
        assert answer.status_code == 200 and answer.json()["prediction"]["label"] in ("0", "1")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Quiet: no access log lines, no tracebacks.
    assert proc.stderr.read().strip() == ""
