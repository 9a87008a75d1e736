"""The denoise task: noisy → clean MFCC patches, SNR metrics, outputs written as files (.npy + Griffin-Lim .wav)."""
from __future__ import annotations

import numpy as np
import pytest

from seqlab.core.errors import ConfigError
from seqlab.pipeline import Pipeline
from tests.tasks.clip_toys import FEATURES, RATE, stages, tones

MODEL = {"autoencoder": {"code_size": 64, "hidden_sizes": [128]}, "patches": {"frames": 5, "hop": 1, "inference_hop": 1},
         "noise": {"kinds": ["white"], "train_snr_db": [10.0, 10.0], "copies": 3}}


@pytest.fixture(scope="module")
def trained():
    pipe = Pipeline(stages(), "denoise", MODEL, device="cpu")
    result = pipe.fit(tones(24, seed=11), tones(4, seed=12), {"epochs": 30, "batch_size": 64, "lr": 2e-3, "progress": "off"})
    return pipe, result


def test_denoiser_improves_the_mfcc_snr_of_noisy_tones(trained):
    pipe, result = trained
    report = pipe.evaluate(tones(8, seed=13))
    assert report["snr_gain_db"] == pytest.approx(report["snr_denoised_db"] - report["snr_noisy_db"])
    assert report["snr_gain_db"] > 3.0, (report, result.history[-1])
    assert report["white_snr_gain_db"] == pytest.approx(report["snr_gain_db"])   # one kind: the same clips
    assert report == pipe.evaluate(tones(8, seed=13))   # the evaluation noise is seeded
    # The Trainer kept the epoch with the best dev gain.
    assert result.best_metrics["snr_gain_db"] == max(h["dev_snr_gain_db"] for h in result.history)


def test_predictions_are_written_as_features_and_audio(trained, tmp_path):
    import soundfile

    import seqlab

    pipe, _ = trained
    pipe.save(tmp_path / "den")
    again = seqlab.load(tmp_path / "den", device="cpu")
    clip = tones(1, seed=20).audio[0]
    out = again.predict([clip])[0]
    assert isinstance(out, np.ndarray) and out.shape[1] == 13 and np.allclose(out, pipe.predict([clip])[0], atol=1e-5)
    written = again.model.format_output(out, out_dir=tmp_path / "preds").split(", ")
    assert written == [str(tmp_path / "preds" / "denoised-0001.npy"), str(tmp_path / "preds" / "denoised-0001.wav")]
    raw = np.load(written[0])
    # The .npy holds the MFCCs with the global CMVN undone.
    settings = again.model.config.features
    assert np.allclose((raw - np.asarray(settings.cmvn_mean)) / np.asarray(settings.cmvn_std), out, atol=1e-4)
    audio, rate = soundfile.read(written[1])
    assert rate == RATE and abs(len(audio) - len(clip)) <= 256 and np.abs(audio).max() > 0
    # A second prediction never overwrites the first.
    assert again.model.format_output(out, out_dir=tmp_path / "preds").startswith(str(tmp_path / "preds" / "denoised-0002.npy"))


def test_utterance_cmvn_and_other_autoencoders_are_refused():
    with pytest.raises(ConfigError, match="utterance"):
        Pipeline(stages({**FEATURES, "cmvn": "utterance"}), "denoise", MODEL, device="cpu").fit(
            tones(2, seed=1), None, {"epochs": 1, "progress": "off"})
    with pytest.raises(ConfigError, match="denoise task takes dense, denoising or conv"):
        Pipeline(stages(), "denoise", {"autoencoder": {"kind": "variational"}}, device="cpu").fit(
            tones(2, seed=1), None, {"epochs": 1, "progress": "off"})


def test_seqlab_predict_writes_files_and_says_where(repo, tmp_path, monkeypatch, capsys):
    from seqlab.cli import main

    monkeypatch.chdir(repo)
    run = tmp_path / "run"
    assert main(["train", "pipelines/denoise.yaml", "--output", str(run), "--set", "data.limit_train=8", "--set", "data.limit_dev=4",
                 "--set", "train.epochs=1", "--set", "noise.copies=1", "--set", "model.hidden_sizes=[32]",
                 "--set", "model.code_size=16", "--set", "device=cpu", "--set", "train.progress=off"]) == 0
    assert "snr_gain_db" in capsys.readouterr().out
    assert main(["eval", str(run), "corpora/speech/dev.tsv"]) == 0
    assert "snr_gain_db" in capsys.readouterr().out
    assert main(["predict", str(run), "corpora/speech/wavs/utt0001.wav", "--out-dir", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"corpora/speech/wavs/utt0001.wav\t{tmp_path / 'out' / 'denoised-0001.npy'}, {tmp_path / 'out' / 'denoised-0001.wav'}"
    assert main(["predict", "--json", str(run), "corpora/speech/wavs/utt0001.wav", "--out-dir", str(tmp_path / "out")]) == 0
    assert '"files": [' in capsys.readouterr().out and (tmp_path / "out" / "denoised-0002.wav").is_file()
