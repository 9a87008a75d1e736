"""Tests of the generative speech-feature pipelines: AUC, SNR, noise, patches, the three pipelines, recipes."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.tasks import generative as G

RATE = 8000
FEATURES = {"sample_rate": RATE, "n_fft": 256, "hop_length": 80, "n_mels": 20, "n_mfcc": 13, "cmvn": "global", "device": "cpu"}


def tone(f0: float, rng: np.random.Generator, seconds: float = 0.3) -> np.ndarray:
    """A voiced-sounding clip: three harmonics of f0 under a smooth envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
    return (0.3 * np.hanning(t.size) * x).astype(np.float32)


def noise_clip(rng: np.random.Generator, seconds: float = 0.3) -> np.ndarray:
    return (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def tones(n: int, seed: int) -> G.ClipSet:
    rng = np.random.default_rng(seed)
    return G.ClipSet([tone(rng.uniform(200, 400), rng) for _ in range(n)])


# -- metrics and signals ------------------------------------------------------------------------

def test_roc_auc_equals_sklearn_on_random_cases():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for case in range(30):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        labels[0], labels[1] = 0, 1  # both classes present
        # Integer scores make ties common, which is where rank formulas go wrong.
        scores = rng.integers(0, 5, n) if case % 2 else rng.normal(size=n) + labels
        assert G.roc_auc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_values_and_errors():
    assert G.roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert G.roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert G.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75   # 3 of the 4 (pos, neg) pairs ordered
    with pytest.raises(DataError, match="both classes"):
        G.roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(InputError, match="NaN"):
        G.roc_auc([float("nan"), 0.2], [0, 1])


def test_snr_db_is_the_formula():
    rng = np.random.default_rng(1)
    ref = [rng.normal(size=(7, 13)), rng.normal(size=(3, 13))]
    est = [r + 0.3 * rng.normal(size=r.shape) for r in ref]
    signal = sum(float((r ** 2).sum()) for r in ref)
    error = sum(float(((r - e) ** 2).sum()) for r, e in zip(ref, est))
    assert G.snr_db(ref, est) == pytest.approx(10 * math.log10(signal / error), rel=1e-12)
    # An error with exactly 1/100 of the reference's energy is 20 dB.
    r = np.array([3.0, 4.0])
    assert G.snr_db(r, r + np.array([0.3, 0.4])) == pytest.approx(20.0)
    assert G.snr_db(r, r) == math.inf
    with pytest.raises(InputError, match="shape"):
        G.snr_db(np.zeros((2, 3)) + 1, np.zeros((3, 2)))


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_add_noise_hits_the_requested_snr(kind):
    rng = np.random.default_rng(2)
    x = tone(300, rng, seconds=1.0)
    for snr in (0.0, 10.0, 20.0):
        y = G.add_noise(x, snr, kind, np.random.default_rng(3))
        measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y.astype(np.float64) - x) ** 2))
        assert measured == pytest.approx(snr, abs=1e-3)
    with pytest.raises(InputError, match="silent"):
        G.add_noise(np.zeros(100, np.float32), 10.0, kind)


def test_pink_noise_has_a_one_over_f_spectrum():
    x = G.pink_noise(2 ** 16, np.random.default_rng(4)).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size)
    band = (freqs > 1e-3) & (freqs < 0.4)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    white = np.abs(np.fft.rfft(G.white_noise(2 ** 16, np.random.default_rng(4)))) ** 2
    assert np.polyfit(np.log(freqs[band]), np.log(white[band]), 1)[0] == pytest.approx(0.0, abs=0.1)


def test_choose_threshold():
    inl, out = np.linspace(0, 1, 101), np.linspace(2, 3, 11)
    assert G.choose_threshold(inl, method="quantile", quantile=0.9) == pytest.approx(0.9)
    cut = G.choose_threshold(inl, out, method="youden")
    assert 1.0 < cut < 2.0   # separates the two perfectly
    with pytest.raises(DataError, match="youden"):
        G.choose_threshold(inl, None, method="youden")
    with pytest.raises(ConfigError, match="quantile"):
        G.choose_threshold(inl, quantile=1.5)


# -- data helpers --------------------------------------------------------------------------------

def test_patches_cover_every_frame_and_average_back():
    rng = np.random.default_rng(5)
    feats = [rng.normal(size=(23, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)]
    patches, owner = G.frame_patches(feats, frames=5, hop=4)
    # starts 0, 4, 8, 12, 16 and one flush with the end (18) for the first clip; one padded window for the second
    assert owner.tolist() == [0] * 6 + [1]
    assert np.array_equal(patches[5], feats[0][18:23])
    assert np.array_equal(patches[6][:3], feats[1]) and np.array_equal(patches[6][3], feats[1][-1])
    back = G.overlap_average(patches, [23, 3], frames=5, hop=4)
    assert all(np.allclose(b, f) for b, f in zip(back, feats))
    with pytest.raises(InputError, match="coefficients"):
        G.frame_patches([np.zeros((6, 4)), np.zeros((6, 5))], frames=3, hop=1)


def test_fixed_frames_resize_and_pad_crop():
    f = np.stack([np.arange(10.0), -np.arange(10.0)], 1)
    out = G.fixed_frames(f, 19)
    assert out.shape == (19, 2) and out[0, 0] == 0 and out[-1, 0] == 9 and out[1, 0] == pytest.approx(0.5)
    assert G.fixed_frames(f, 4, "pad_crop")[:, 0].tolist() == [3, 4, 5, 6]
    padded = G.fixed_frames(f[:2], 5, "pad_crop")[:, 0].tolist()
    assert padded == [0, 0, 1, 1, 1]
    with pytest.raises(ConfigError, match="mode"):
        G.fixed_frames(f, 4, "stretch")


def test_cut_segments_lengths_and_pauses():
    rng = np.random.default_rng(6)
    speech = np.concatenate([tone(300, rng, 1.0), np.zeros(RATE, np.float32), tone(300, rng, 1.0)])
    segs = G.cut_segments(speech, RATE, 0.5, 0.5, rng=np.random.default_rng(0))
    assert [len(s) for s in segs] == [4000] * 4   # the two silent half-seconds are dropped
    kept = G.cut_segments(speech, RATE, 0.5, 0.5, silence_db=None)
    assert len(kept) == 6


def test_digit_labels():
    assert [G.digit_of(x) for x in ("zero", "9", 4, "ten", "one two")] == [0, 9, 4, None, None]
    assert G.is_digit_string("three one 4") and not G.is_digit_string("go back")


# -- the pipelines -------------------------------------------------------------------------------

def test_anomaly_pipeline_separates_tones_from_noise(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    train = tones(24, seed=8)
    dev = tones(8, seed=9) + G.ClipSet([noise_clip(rng) for _ in range(8)], anomalous=[True] * 8)
    test = tones(10, seed=10) + G.ClipSet([noise_clip(rng) for _ in range(10)], anomalous=[True] * 10)
    det = G.AnomalyDetector(FEATURES, {"frames": 6, "hop": 2}, {"code_size": 4, "hidden_sizes": [32]},
                            {"method": "youden"}, device="cpu")
    result = det.fit(train, dev, {"epochs": 25, "batch_size": 64, "lr": 3e-3, "progress": "off"}, log_dir=tmp_path / "logs")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    report = det.evaluate(test)
    assert report["auc"] >= 0.95, report
    assert report["outlier_score_mean"] > 2 * report["inlier_score_mean"]
    assert report["detection_rate"] >= 0.8 and report["false_alarm_rate"] <= 0.3
    assert (tmp_path / "logs" / "metrics.jsonl").is_file()
    # Saved and loaded, the detector scores the same.
    det.save(tmp_path / "det")
    again = G.load_generative(tmp_path / "det", device="cpu")
    assert again.threshold == pytest.approx(det.threshold)
    assert np.allclose(again.scores(test), det.scores(test), atol=1e-6)
    flagged = again.predict(test.audio[-2:])
    assert [p["label"] for p in flagged] == ["not a digit"] * 2


def test_anomaly_pipeline_reports_bad_feature_shapes():
    det = G.AnomalyDetector(FEATURES, {"frames": 6}, {"code_size": 4, "hidden_sizes": [8]}, device="cpu")
    with pytest.raises(InputError, match=r"features.n_mfcc=13"):
        det.scores_of_features([np.zeros((20, 20), np.float32)])


def test_paired_denoiser_trains_noisy_to_clean_with_its_own_loss():
    torch.manual_seed(0)
    ae = G.build_autoencoder(G.AutoencoderConfig(code_size=4, hidden_sizes=[8]), n_coeffs=3, frames=2, paired=True)
    clean, noisy = torch.randn(5, 6), torch.randn(5, 6)
    ae.train()
    total, parts = ae.paired_loss(clean, noisy)
    recon = ae.decode(ae.encode(noisy))
    assert torch.allclose(total, (recon - clean).pow(2).mean())
    assert torch.allclose(ae.denoise(noisy), recon)


def test_denoiser_improves_the_mfcc_snr_of_noisy_tones():
    torch.manual_seed(0)
    den = G.MFCCDenoiser(FEATURES, {"frames": 5, "hop": 1, "inference_hop": 1},
                         {"code_size": 64, "hidden_sizes": [128]},
                         {"kinds": ["white"], "train_snr_db": [10.0, 10.0], "copies": 3}, device="cpu")
    result = den.fit(tones(24, seed=11), tones(4, seed=12), {"epochs": 30, "batch_size": 64, "lr": 2e-3, "progress": "off"})
    report = den.evaluate(tones(8, seed=13))
    assert report["snr_gain_db"] == pytest.approx(report["snr_denoised_db"] - report["snr_noisy_db"])
    assert report["snr_gain_db"] > 3.0, (report, result.history[-1])
    assert report["white_snr_gain_db"] == pytest.approx(report["snr_gain_db"])   # one kind: the same clips
    with pytest.raises(ConfigError, match="utterance"):
        G.MFCCDenoiser({**FEATURES, "cmvn": "utterance"}, device="cpu")


def test_cgan_samples_grid_and_label_validation(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(14)
    labels = [d for d in range(3) for _ in range(8)]
    train = G.ClipSet([tone(200 + 100 * d, rng) for d in labels], digits=labels)
    gen = G.DigitGenerator(FEATURES, {"frames": 8}, {"latent_size": 8, "channels": [8, 16], "num_classes": 3},
                           {"channels": [8], "hidden_size": 16, "epochs": 15, "eval_samples_per_class": 10}, device="cpu")
    result = gen.fit(train, None, {"epochs": 4, "batch_size": 8, "progress": "off"})
    assert result.steps == 12 and {"d_loss", "g_loss", "dev_class_accuracy"} <= set(result.history[-1])
    assert gen.sample(4, labels=2).shape == (4, 1, 13, 8)
    with pytest.raises(InputError, match="label 3 is out of range"):
        gen.sample(2, labels=3)
    with pytest.raises(InputError, match="not a digit"):
        gen.predict(["seven and a half"])
    assert gen.classifier_accuracy(train) >= 0.9   # three tones an octave apart are easy to tell apart
    accs = gen.class_accuracies(10, seed=0)
    assert len(accs) == 3 and all(0.0 <= a <= 1.0 for a in accs)
    assert accs == gen.class_accuracies(10, seed=0)    # seeded: reproducible
    png = gen.save_grid(tmp_path / "grid.png", per_class=4)
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert png.read_bytes()[:4] == b"\x89PNG" and image.shape[0] > 50 and image.std() > 0.05
    gen.save(tmp_path / "gen")
    assert (tmp_path / "gen" / G.GRID_FILE).is_file()
    again = G.load_generative(tmp_path / "gen", device="cpu")
    torch.manual_seed(1)
    a = again.sample(3, labels=[0, 1, 2])
    torch.manual_seed(1)
    assert torch.allclose(a, gen.sample(3, labels=[0, 1, 2]), atol=1e-6)
    with pytest.raises(DataError, match="no digit label"):
        gen.fit(G.ClipSet(train.audio[:2]), None, {"epochs": 1, "progress": "off"})


# -- bad settings surface with the place and the reason -----------------------------------------

def test_bad_model_settings_name_the_module_and_the_value():
    with pytest.raises(ConfigError, match=r"anomaly.model: SparseAutoencoder: sparsity_target ρ must be in \(0, 1\)"):
        G.AnomalyDetector(FEATURES, model={"kind": "sparse", "sparsity_target": 0.0})
    with pytest.raises(ConfigError, match=r"anomaly.model: VariationalAutoencoder: beta must be a number >= 0"):
        G.AnomalyDetector(FEATURES, model={"kind": "variational", "beta": -1.0})
    # Shapes a conv stack cannot take: the stack names the layer and the sizes.
    with pytest.raises(ConfigError, match=r"cgan.model: DCGAN: image shape \(1, 13, 4\) is too small .*ConvStack layer 2 "
                                          r"\(conv 4→4 kernel 4, stride 2.*would leave 0 step"):
        G.DigitGenerator(FEATURES, image={"frames": 4}, model={"channels": [4, 4, 4]})
    with pytest.raises(ConfigError, match=r"cgan.classifier: DigitClassifier: images of shape \(1, 13, 8\) .*ConvStack layer 3"):
        G.DigitGenerator(FEATURES, image={"frames": 8}, model={"channels": [4]}, classifier={"channels": [4, 4, 4, 4]})
    conv = G.AnomalyDetector(FEATURES, patches={"frames": 8}, model={"kind": "conv", "channels": [4, 8], "code_size": None})
    with pytest.raises(InputError, match=r"ConvAutoencoder expects x of shape \(B, 1, 13, 8\), got \(2, 1, 13, 9\)"):
        conv.model.reconstruction_error(torch.zeros(2, 1, 13, 9))
    with pytest.raises(ConfigError, match="denoising pipeline takes dense, denoising or conv"):
        G.MFCCDenoiser(FEATURES, model={"kind": "variational"})


def test_recipes_parse_and_refuse_typos(repo):
    for task in ("anomaly", "denoise", "cgan"):
        recipe = G.load_recipe(repo / "pipelines" / f"{task}.yaml")
        assert recipe.task == task and type(recipe) is G.RECIPES[task]
    recipe = G.load_recipe(repo / "pipelines" / "denoise.yaml", ["noise.eval_snr_db=5", "train.epochs=2"])
    assert recipe.noise.eval_snr_db == 5.0 and recipe.train.epochs == 2 and recipe.features.cmvn == "global"
    with pytest.raises(ConfigError, match=r"unknown key 'code_sise' \(did you mean 'code_size'\?\)"):
        G.load_recipe(repo / "pipelines" / "anomaly.yaml", ["model.code_sise=3"])
    with pytest.raises(ConfigError, match="noise.kinds: unknown noise 'brown'"):
        G.load_recipe(repo / "pipelines" / "denoise.yaml", ["noise.kinds=[brown]"])
    bad = G.load_recipe(repo / "pipelines" / "anomaly.yaml", ["model.kind=sparse", "model.sparsity_target=2"])
    with pytest.raises(ConfigError, match="sparsity_target"):
        bad.build()


def test_seqlab_train_runs_the_anomaly_recipe(repo, tmp_path, monkeypatch, capsys):
    """The registry lines the report asks for, applied here: ``seqlab train`` runs the recipe end to end."""
    from seqlab.cli import main
    from seqlab.core import registry

    monkeypatch.chdir(repo)
    monkeypatch.setitem(registry.RECIPES, "anomaly", "seqlab.tasks.generative:AnomalyRecipe")
    code = main(["train", "pipelines/anomaly.yaml", "--output", str(tmp_path / "run"), "--set", "data.limit_train=12",
                 "--set", "data.limit_dev=6", "--set", "train.epochs=2", "--set", "device=cpu", "--set", "train.progress=off"])
    assert code == 0
    out = capsys.readouterr().out
    assert "seqlab: dev metrics" in out and "predict" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == "anomaly" and config["threshold_value"] is not None
    assert (tmp_path / "run" / "logs" / "metrics.jsonl").is_file()


def test_module_runner_trains_the_cgan_recipe(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    code = G.main(["pipelines/cgan.yaml", "--output", str(tmp_path / "cgan"), "--set", "data.limit_train=20",
                   "--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "classifier.epochs=2",
                   "--set", "classifier.eval_samples_per_class=4", "--set", "device=cpu", "--set", "train.progress=off",
                   "--set", "model.channels=[8, 16]", "--set", "classifier.channels=[8]", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.split("seqlab: sample grid")[-1].split("\n", 1)[1])
    assert 0.0 <= summary["dev"]["class_accuracy"] <= 1.0 and 0.0 <= summary["dev"]["classifier_accuracy"] <= 1.0
    assert (tmp_path / "cgan" / G.GRID_FILE).is_file()
    assert G.main(["pipelines/cgan.yaml", "--set", "image.mode=stretch"]) == 2
    assert "image.mode" in capsys.readouterr().err


def test_the_python_examples_in_the_docs_run(repo):
    text = (repo / "docs" / "generative.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/generative.md", "exec"), {})


@pytest.mark.parametrize("model", [
    {"kind": "conv", "channels": [4, 8], "code_size": 8},
    {"kind": "sequence", "code_size": 4, "hidden_sizes": [8]},
    {"kind": "variational", "code_size": 4, "hidden_sizes": [16], "beta": 0.1},
    {"kind": "sparse", "code_size": 16, "hidden_sizes": [16], "sparsity_target": 0.1},
    {"kind": "contractive", "code_size": 4, "hidden_sizes": [], "contractive_weight": 0.01},
])
def test_every_autoencoder_kind_trains_and_scores_clips(model):
    torch.manual_seed(0)
    det = G.AnomalyDetector(FEATURES, {"frames": 6, "hop": 3}, model, device="cpu")
    result = det.fit(tones(10, seed=15), None, {"epochs": 3, "batch_size": 16, "lr": 3e-3, "progress": "off"})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    scores = det.scores(tones(3, seed=16))
    assert scores.shape == (3,) and np.isfinite(scores).all() and det.threshold is not None


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(G, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 30 and result.failed == 0
