"""The anomaly task: autoencoder of MFCC patches, threshold calibrated on dev, pipeline save/load, recipe via the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqlab.core.errors import ConfigError, InputError
from seqlab.data.clips import ClipSet
from seqlab.pipeline import Pipeline
from tests.tasks.clip_toys import noise_clip, stages, tones

TRAIN = {"epochs": 25, "batch_size": 64, "lr": 3e-3, "progress": "off"}


def test_anomaly_pipeline_separates_tones_from_noise(tmp_path):
    rng = np.random.default_rng(7)
    dev = tones(8, seed=9) + ClipSet([noise_clip(rng) for _ in range(8)], anomalous=[True] * 8)
    test = tones(10, seed=10) + ClipSet([noise_clip(rng) for _ in range(10)], anomalous=[True] * 10)
    pipe = Pipeline(stages(), "anomaly", {"autoencoder": {"code_size": 4, "hidden_sizes": [32]}, "patches": {"frames": 6, "hop": 2},
                                          "threshold": {"method": "youden"}}, device="cpu")
    result = pipe.fit(tones(24, seed=8), dev, TRAIN, log_dir=tmp_path / "logs")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    report = pipe.evaluate(test)
    assert report["auc"] >= 0.95, report
    assert report["outlier_score_mean"] > 2 * report["inlier_score_mean"]
    assert report["detection_rate"] >= 0.8 and report["false_alarm_rate"] <= 0.3
    # The threshold is the one calibrated at the best epoch's evaluation (the Trainer keeps it with the weights).
    best = max((h for h in result.history if h["step"] == result.best_step), key=lambda h: h["epoch"])
    assert report["threshold"] == pytest.approx(best["dev_threshold"])
    assert (tmp_path / "logs" / "metrics.jsonl").is_file()
    # Saved and loaded, the pipeline scores the same and keeps its threshold.
    pipe.save(tmp_path / "det")
    import seqlab

    again = seqlab.load(tmp_path / "det", device="cpu")
    assert again.evaluate(test) == pytest.approx(report)
    flagged = again.predict(test.audio[-2:])
    assert [p["label"] for p in flagged] == ["not a digit"] * 2 and all(p["anomaly"] for p in flagged)
    assert again.model.format_output(flagged[0]).startswith("not a digit (score ")


def test_without_dev_data_there_is_no_threshold():
    pipe = Pipeline(stages(), "anomaly", {"autoencoder": {"code_size": 4, "hidden_sizes": [8]}, "patches": {"frames": 6}}, device="cpu")
    pipe.fit(tones(6, seed=1), None, {"epochs": 1, "progress": "off"})
    out = pipe.predict(tones(1, seed=2).audio)[0]
    assert out["label"] is None and out["anomaly"] is None and np.isfinite(out["score"])
    assert "no threshold" in pipe.model.format_output(out)


def test_features_of_the_wrong_size_name_the_clip():
    from seqlab.tasks.anomaly import AnomalyConfig, AnomalyModel

    model = AnomalyModel(AnomalyConfig(dim=13))
    with pytest.raises(InputError, match=r"clip 0: .*takes \(frames, 13\) MFCCs"):
        model.clip_scores([np.zeros((20, 20), np.float32)])


@pytest.mark.parametrize("model", [
    {"kind": "conv", "channels": [4, 8], "code_size": 8},
    {"kind": "sequence", "code_size": 4, "hidden_sizes": [8]},
    {"kind": "variational", "code_size": 4, "hidden_sizes": [16], "beta": 0.1},
    {"kind": "sparse", "code_size": 16, "hidden_sizes": [16], "sparsity_target": 0.1},
    {"kind": "contractive", "code_size": 4, "hidden_sizes": [], "contractive_weight": 0.01},
])
def test_every_autoencoder_kind_trains_and_scores_clips(model):
    pipe = Pipeline(stages(), "anomaly", {"autoencoder": model, "patches": {"frames": 6, "hop": 3}}, device="cpu")
    result = pipe.fit(tones(10, seed=15), tones(3, seed=16), {"epochs": 3, "batch_size": 16, "lr": 3e-3, "progress": "off"})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    scores = [p["score"] for p in pipe.predict(tones(3, seed=16).audio)]
    assert len(scores) == 3 and np.isfinite(scores).all() and pipe.model.current_threshold() is not None


def test_bad_model_settings_name_the_module_and_the_value():
    from seqlab.tasks.anomaly import AnomalyConfig, AnomalyModel
    from seqlab.tasks.audio_clips import AutoencoderConfig, PatchConfig

    with pytest.raises(ConfigError, match=r"anomaly.model: SparseAutoencoder: sparsity_target ρ must be in \(0, 1\)"):
        AnomalyModel(AnomalyConfig(AutoencoderConfig(kind="sparse", sparsity_target=0.0), dim=13))
    with pytest.raises(ConfigError, match=r"anomaly.model: VariationalAutoencoder: beta must be a number >= 0"):
        AnomalyModel(AnomalyConfig(AutoencoderConfig(kind="variational", beta=-1.0), dim=13))
    conv = AnomalyModel(AnomalyConfig(AutoencoderConfig(kind="conv", channels=[4, 8], code_size=None), PatchConfig(frames=8), dim=13))
    with pytest.raises(InputError, match=r"ConvAutoencoder expects x of shape \(B, 1, 13, 8\), got \(2, 1, 13, 9\)"):
        conv.autoencoder.reconstruction_error(torch.zeros(2, 1, 13, 9))


def test_seqlab_train_eval_predict_run_the_anomaly_recipe(repo, tmp_path, monkeypatch, capsys):
    from seqlab.cli import main

    monkeypatch.chdir(repo)
    run = tmp_path / "run"
    assert main(["train", "pipelines/anomaly.yaml", "--output", str(run), "--set", "data.limit_train=30",
                 "--set", "data.limit_dev=12", "--set", "train.epochs=2", "--set", "device=cpu",
                 "--set", "train.progress=off"]) == 0
    out = capsys.readouterr().out
    assert "seqlab: dev metrics" in out and "seqlab: predict 'corpora/speech/wavs/utt0001.wav' → " in out
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == "seqlab.pipeline" and config["task"] == "anomaly"
    assert [s["kind"] for s in config["stages"]] == ["audio_loader", "mfcc"]
    assert main(["eval", str(run), "corpora/speech/dev.tsv"]) == 0
    assert "auc" in capsys.readouterr().out
    assert main(["predict", str(run), "corpora/speech/wavs/utt0001.wav"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("corpora/speech/wavs/utt0001.wav\t") and "(score " in line and "threshold" in line
