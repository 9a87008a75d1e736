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


# -- plain `predict` output: the prediction column, for every task ----------------------------------
#: Per task: tiny settings for a 1-epoch run (seconds), and an input to predict.
TASK_RUNS = {
    "sentiment": (TINY, "a great film"),
    "ner": (["--set", "train.epochs=1", "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8",
             "--set", "train.progress=off", "--set", "data.limit_train=60"], "Angela Merkel visited Paris."),
    "translation": (["--set", "train.epochs=1", "--set", "model.embedding_dim=8", "--set", "model.encoder_hidden=8",
                     "--set", "model.decoder_hidden=16", "--set", "model.attention_dim=8", "--set", "model.beam_size=2",
                     "--set", "train.progress=off", "--set", "data.limit_train=60"], "A man is riding a bicycle."),
    "speech": (["--set", "train.epochs=1", "--set", "model.hidden_size=8", "--set", "model.num_layers=1",
                "--set", "train.progress=off", "--set", "train.time_budget_s=null"],
               "corpora/speech/wavs/utt0000.wav"),
    "lm": (["--set", "train.epochs=1", "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8",
            "--set", "train.progress=off"], "the food"),
}


@pytest.fixture(scope="module")
def task_models(tmp_path_factory, repo):
    """Each task's recipe trained for one epoch with tiny settings (through the CLI, like a user)."""
    import os

    root = tmp_path_factory.mktemp("tasks")
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        for task, (sets, _) in TASK_RUNS.items():
            assert main(["train", f"pipelines/{task}.yaml", "--output", str(root / task), *sets]) == 0
    finally:
        os.chdir(cwd)
    return root


def _predict_plain_and_json(model_dir, text, capsys):
    assert main(["predict", str(model_dir), text]) == 0
    plain = capsys.readouterr().out.rstrip("\n").split("\n")
    assert main(["predict", str(model_dir), text, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert len(plain) == 1
    column_in, column_out = plain[0].split("\t")
    assert column_in == text and row["input"] == text
    return column_out, row["prediction"]


def _entities_inline(prediction):
    """The NER column built from the JSON spans, independently of the code under test."""
    text, out, at = prediction["text"], "", 0
    for span in prediction["spans"]:
        out += text[at:span["char_start"]] + f"[{span['text']}]({span['type']} {span['score']:.2f})"
        at = span["char_end"]
    return out + text[at:] if prediction["spans"] else f"{text}  (no entities)"


@pytest.mark.parametrize("task", list(TASK_RUNS))
def test_plain_predict_shows_the_prediction(task, task_models, repo, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    text = TASK_RUNS[task][1]
    shown, prediction = _predict_plain_and_json(task_models / task, text, capsys)
    assert shown != text  # the sentence echoed back is not a prediction
    if task == "sentiment":
        assert shown == f"{prediction['label']} ({prediction['score']:.3f})"
        assert prediction["label"] in {"0", "1"}
    elif task == "ner":
        assert shown == _entities_inline(prediction)
    elif task == "translation":
        assert isinstance(prediction, str)
        assert shown == (prediction if prediction.strip() else "(empty translation)")
    elif task == "speech":
        assert isinstance(prediction, str)
        assert shown == (prediction if prediction.strip() else "(no words recognised)")
    else:  # lm: the prompt and its continuation
        assert prediction["text"].startswith(text)
        expected = prediction["text"] if prediction["continuation"] else \
            f"{prediction['text']}  (no continuation: the model ended the text at once)"
        assert shown == expected


def test_ner_column_marks_entities_inline(task_models, capsys):
    """A hand-made output through the saved model's renderer: the task's convention, exactly."""
    import seqlab

    pipe = seqlab.load(task_models / "ner")
    output = {"text": "Angela Merkel 🇩🇪 visited Paris.", "spans": [
        {"text": "Paris", "type": "LOC", "char_start": 25, "char_end": 30, "score": 0.996},
        {"text": "Angela Merkel", "type": "PER", "char_start": 0, "char_end": 13, "score": 0.981},
    ]}
    assert pipe.model.format_output(output) == "[Angela Merkel](PER 0.98) 🇩🇪 visited [Paris](LOC 1.00)."
    assert pipe.model.format_output({"text": "nothing here", "spans": []}) == "nothing here  (no entities)"


def test_speech_long_audio_is_transcribed_in_chunks_with_times(task_models, repo, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    clip, rate = sf.read(repo / "corpora" / "speech" / "wavs" / "utt0000.wav", dtype="float32")
    gap = np.zeros(rate, np.float32)
    long = np.concatenate([np.concatenate([clip, gap])] * int(np.ceil(45 * rate / (len(clip) + rate))))
    path = tmp_path / "long.wav"
    sf.write(path, long, rate)
    assert main(["predict", str(task_models / "speech"), str(path), "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)["prediction"]
    chunks = prediction["chunks"]
    assert len(chunks) == 3  # > 40 s in chunks of at most 20 s
    assert chunks[0]["start"] == 0.0 and chunks[-1]["end"] == pytest.approx(len(long) / rate, abs=0.01)
    for a, b in zip(chunks, chunks[1:]):
        assert a["end"] == b["start"] and 15.0 <= a["end"] - a["start"] <= 20.0
        cut = int(a["end"] * rate)
        assert not long[cut - 80: cut + 80].any()  # cut in a pause, not inside the clip
    assert prediction["text"] == " ".join(c["text"] for c in chunks if c["text"])
    assert main(["predict", str(task_models / "speech"), str(path)]) == 0
    shown = capsys.readouterr().out.split("\t")[1]
    assert shown.startswith("[0:00.0–0:") and shown.count("[") == 3 and "–0:4" in shown


def test_speech_too_short_audio_is_a_clear_error(task_models, tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    import seqlab

    path = tmp_path / "blip.wav"
    sf.write(path, np.full(160, 0.3, np.float32), 16000)  # 10 ms
    assert main(["predict", str(task_models / "speech"), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqlab predict: input 0") and "0.010 s" in err and "at least 0.1 s" in err
    assert "\n" not in err.rstrip("\n")
    assert seqlab.load(task_models / "speech")(str(path)) == ""  # the Python API: an empty transcript


def test_predict_with_empty_stdin_is_an_error(trained, capsys, monkeypatch):
    import io

    for stdin in ("", "\n  \n"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        assert main(["predict", str(trained)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("seqlab predict: standard input held no inputs")


def test_eval_help_names_its_data_argument():
    done = subprocess.run([sys.executable, "-m", "seqlab", "eval", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "usage: seqlab eval MODEL_DIR DATA" in done.stdout and "\n  DATA " in done.stdout


# -- what training says at the end --------------------------------------------------------------
def test_training_reports_its_stop_curves_and_replacement(tmp_path, repo, capsys, monkeypatch):
    monkeypatch.chdir(repo)
    out = tmp_path / "run"
    assert main(["train", "pipelines/sentiment.yaml", "--output", str(out), *TINY]) == 0
    first = capsys.readouterr().out
    assert "already holds" not in first
    assert "seqlab: trained all 1 epoch (" in first
    assert f"seqlab: training curves in {out / 'logs' / 'curves.png'}" in first
    assert main(["train", "pipelines/sentiment.yaml", "--output", str(out), *TINY,
                 "--set", "train.epochs=5", "--set", "train.time_budget_s=0.001"]) == 0
    second = capsys.readouterr().out.splitlines()
    notice = next(line for line in second if "already holds" in line)
    assert notice.startswith(f"seqlab: note: {out} already holds a sentiment model (dev accuracy ")
    assert notice.endswith("this run replaces it (give --output another folder to keep it)")
    warning = next(line for line in second if "WARNING" in line)
    assert warning.startswith("seqlab: WARNING: training hit its time budget (train.time_budget_s=0.001 s) in epoch 1 of 5")
    assert "undertrained" in warning
    advice = second[second.index(warning) + 1]
    assert "--set train.time_budget_s=60" in advice and f"--resume {out}" in advice
    assert [line for line in second if line.startswith("seqlab: saved to")]


def test_unknown_task_lists_every_task_a_recipe_can_name(tmp_path):
    from seqlab.core import registry
    from seqlab.core.errors import ConfigError
    from seqlab.recipe import load_recipe

    everything = ", ".join(sorted(set(registry.TASKS) | set(registry.RECIPES)))
    (tmp_path / "r.yaml").write_text("task: banana\n")
    with pytest.raises(ConfigError, match=f"unknown task 'banana'; known: {everything}$"):
        load_recipe(tmp_path / "r.yaml")
    with pytest.raises(ConfigError, match=f"unknown task 'banana'; known: {everything}$"):
        registry.task_class("banana")
    assert set(registry.RECIPES) == set(registry.TASKS)   # every recipe trains a Pipeline task (anomaly, denoise, cgan too)


def test_stop_report_says_why_and_how_far():
    from pathlib import Path

    from seqlab.recipe import stop_report
    from seqlab.train import TrainConfig
    from seqlab.train.trainer import TrainResult

    history = [{"epoch": e, "step": 5 * e} for e in (1, 2, 3)]
    early = TrainResult(history=history, best_step=5, steps=15, stopped_by="early_stopping")
    assert stop_report(early, TrainConfig(epochs=10, patience=2), Path("runs/x")) == [
        "seqlab: stopped early in epoch 3 of 10: the dev metric did not improve for 2 evaluations (train.patience); "
        "the saved model is the best evaluation, epoch 1 (step 5)"]
    # Patience running out in the last epoch is a full run.
    assert stop_report(early, TrainConfig(epochs=3, patience=2), Path("runs/x")) == [
        "seqlab: trained all 3 epochs (15 steps); the saved model is the best evaluation, epoch 1 (step 5)"]
    budget = TrainResult(history=history, best_step=15, steps=15, stopped_by="time_budget")
    lines = stop_report(budget, TrainConfig(epochs=60, time_budget_s=240), Path("runs/speech"))
    assert lines == [
        "seqlab: WARNING: training hit its time budget (train.time_budget_s=240 s) in epoch 3 of 60, after 15 steps; "
        "the saved model is the best evaluation, epoch 3 (step 15); the model may be undertrained",
        "seqlab: to train longer, raise the budget (e.g. --set train.time_budget_s=4800) or continue this run with "
        "--resume runs/speech",
    ]


def test_replacement_notice_names_what_is_there(tmp_path):
    from seqlab.recipe import replacement_notice

    assert replacement_notice(tmp_path / "new") is None
    (tmp_path / "config.json").write_text("{not json")
    assert replacement_notice(tmp_path) == (
        f"seqlab: note: {tmp_path} already holds a model; this run replaces it (give --output another folder to keep it)")
    (tmp_path / "config.json").write_text(json.dumps({"task": "ner", "meta": {"summary": {"dev": {"f1": 97.5, "precision": 97.5, "recall": 1}}}}))
    assert replacement_notice(tmp_path) == (
        f"seqlab: note: {tmp_path} already holds a ner model (dev f1 97.5, dev precision 97.5); this run replaces it "
        "(give --output another folder to keep it)")


def test_a_reader_that_goes_away_stops_the_output_quietly(tmp_path):
    """`seqlab eval ... | head -1`: when the pipe closes, no traceback, the shell's SIGPIPE status."""
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("a b c\nd e\n")
    hyp.write_text("a b x\nd e\n")
    process = subprocess.Popen([sys.executable, "-m", "seqlab", "eval", "wer", str(ref), str(hyp)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has started, so its first print meets a closed pipe
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
