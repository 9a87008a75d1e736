"""The ``seqlab`` command: train, predict, eval, and its one-line error messages."""
import json
import subprocess
import sys

import pytest

from seqlab.cli import main

TINY = ["--set", "train.epochs=1", "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8",
        "--set", "train.progress=off"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, repo):
    out = tmp_path_factory.mktemp("run") / "sentiment"
    import os

    cwd = os.getcwd()
    os.chdir(repo)
    try:
        assert main(["train", "pipelines/sentiment.yaml", "--output", str(out), *TINY]) == 0
    finally:
        os.chdir(cwd)
    return out


def test_train_writes_model_logs_and_curves(trained):
    assert (trained / "config.json").is_file() and (trained / "model.safetensors").is_file()
    lines = (trained / "logs" / "metrics.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert record["epoch"] == 1 and "dev_accuracy" in record and record["train_loss"] > 0
    assert (trained / "logs" / "curves.png").stat().st_size > 1000


def test_predict_arguments_and_stdin(trained, capsys, monkeypatch):
    assert main(["predict", str(trained), "a great film", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["input"] == "a great film" and row["prediction"]["label"] in {"0", "1"}
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("a great film\n\na dull mess\n"))
    assert main(["predict", str(trained)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["a great film", "a dull mess"]


def test_eval_model_on_data(trained, repo, capsys):
    dev = repo / "corpora" / "sentiment" / "dev.tsv"
    assert main(["eval", str(trained), str(dev), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    # The same figures, recomputed independently: read dev.tsv with csv, predict in-process with
    # the saved pipeline, count. (One epoch of an 8-unit model is near chance on this corpus, so
    # a bar on the value itself would test luck; agreement with the predictions tests the eval.)
    import csv

    import seqlab

    with dev.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    gold = [r["label"] for r in rows]
    predicted = [p["label"] for p in seqlab.load(trained).predict([r["sentence"] for r in rows])]
    assert len(gold) == 120
    assert metrics["accuracy"] == pytest.approx(sum(g == p for g, p in zip(gold, predicted)) / len(gold), abs=1e-12)
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert metrics["macro_f1"] == pytest.approx(sum(f1s) / len(f1s), abs=1e-12)


def test_errors_are_one_line_with_exit_2(trained, repo, tmp_path, capsys):
    assert main(["train", str(repo / "pipelines" / "sentiment.yaml"), "--set", "model.poolin=max"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqlab train: ") and "unknown key 'poolin'" in err and "pooling" in err
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "text"]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["predict", str(trained), ""]) == 2
    assert "input 0: the text is empty" in capsys.readouterr().err
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nhello\t1\n")
    assert main(["eval", str(trained), str(bad)]) == 2
    assert "no column 'sentence'" in capsys.readouterr().err
    missing = tmp_path / "missing.tsv"
    assert main(["eval", str(trained), str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    done = subprocess.run([sys.executable, "-m", "seqlab", "eval", "wer", "-", "-"], capture_output=True, text=True, input="")
    assert done.returncode == 2 and done.stderr.startswith("seqlab eval: ")
