"""The cgan task: digit → generated MFCC image, trained by the Trainer through the model's own step; PNG outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlab.core.errors import ConfigError, InputError
from seqlab.data.clips import ClipSet
from seqlab.pipeline import Pipeline
from seqlab.tasks.cgan import CGANConfig, CGANModel, ClassifierConfig, DigitLabel, GANConfig, MFCCImage
from tests.tasks.clip_toys import FEATURES, tone

MODEL = {"gan": {"latent_size": 8, "channels": [8, 16], "num_classes": 3},
         "classifier": {"channels": [8], "hidden_size": 16, "epochs": 15, "eval_samples_per_class": 10}}


def three_tones(per_digit: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    labels = [d for d in range(3) for _ in range(per_digit)]
    return ClipSet([tone(200 + 100 * d, rng) for d in labels], digits=labels)


def cgan_stages():
    return [DigitLabel(), MFCCImage({"features": FEATURES, "image": {"frames": 8}})]


def test_cgan_trains_with_its_own_step_samples_and_judges(tmp_path):
    train = three_tones(8, seed=14)
    pipe = Pipeline(cgan_stages(), "cgan", MODEL, device="cpu")
    result = pipe.fit(train, three_tones(2, seed=15), {"epochs": 15, "batch_size": 8, "progress": "off", "clip_norm": None})
    last = result.history[-1]
    assert result.steps == 45 and {"train_d_loss", "train_g_loss", "train_classifier_loss", "dev_class_accuracy"} <= set(last)
    model = pipe.model
    assert model.sample(4, labels=2).shape == (4, 1, 13, 8)
    with pytest.raises(InputError, match="label 3 is out of range"):
        model.sample(2, labels=3)
    # The judge learned the real images: three tones an octave apart are easy to tell apart.
    real = torch.from_numpy(np.stack(pipe.preprocess(train.to_dict())["image"])).unsqueeze(1)
    assert float((model.classifier.predict(real) == torch.tensor(train.digits)).float().mean()) >= 0.9
    accs = model.class_accuracies(10, seed=0)
    assert len(accs) == 3 and all(0.0 <= a <= 1.0 for a in accs) and accs == model.class_accuracies(10, seed=0)
    # Saved and loaded, the generator draws the same images.
    import seqlab

    pipe.save(tmp_path / "gen")
    again = seqlab.load(tmp_path / "gen", device="cpu")
    assert [s.kind for s in again.stages] == ["digit_label", "mfcc_image"]
    torch.manual_seed(1)
    a = again.model.sample(3, labels=[0, 1, 2])
    torch.manual_seed(1)
    assert torch.allclose(a, model.sample(3, labels=[0, 1, 2]), atol=1e-6)
    assert again.evaluate(three_tones(1, seed=16)) == pipe.evaluate(three_tones(1, seed=16))


def test_predict_takes_digits_and_writes_pngs(tmp_path):
    import matplotlib.image

    model = CGANModel(CGANConfig(GANConfig(channels=[8, 16], num_classes=3), ClassifierConfig(channels=[4]), [1, 13, 8])).eval()
    pipe = Pipeline([DigitLabel()], "cgan", model.config, device="cpu", model=model)
    outputs = pipe.predict(["two", 0])
    assert [o["digit"] for o in outputs] == [2, 0] and outputs[0]["image"].shape == (13, 8)
    path = model.format_output(outputs[0], out_dir=tmp_path)
    assert path == str(tmp_path / "cgan-digit2-0001.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 50 and image.std() > 0.05
    with pytest.raises(InputError, match=r"input 0: 'seven and a half' is not a digit"):
        pipe.predict(["seven and a half"])
    with pytest.raises(InputError, match=r"input 1: 5 is not a digit this model draws \(0..2"):
        pipe.predict(["1", 5])


def test_shapes_a_conv_stack_cannot_take_name_the_layer():
    with pytest.raises(ConfigError, match=r"cgan.model: DCGAN: image shape \(1, 13, 4\) is too small .*ConvStack layer 2"):
        CGANModel(CGANConfig(GANConfig(channels=[4, 4, 4]), image_shape=[1, 13, 4]))
    with pytest.raises(ConfigError, match=r"cgan.classifier: DigitClassifier: images of shape \(1, 13, 8\) .*ConvStack layer 3"):
        CGANModel(CGANConfig(GANConfig(channels=[4]), ClassifierConfig(channels=[4, 4, 4, 4]), [1, 13, 8]))


def test_seqlab_train_eval_predict_run_the_cgan_recipe(repo, tmp_path, monkeypatch, capsys):
    from seqlab.cli import main

    monkeypatch.chdir(repo)
    run = tmp_path / "cgan"
    assert main(["train", "pipelines/cgan.yaml", "--output", str(run), "--set", "data.limit_train=20", "--set", "train.epochs=2",
                 "--set", "train.batch_size=8", "--set", "classifier.eval_samples_per_class=4", "--set", "device=cpu",
                 "--set", "train.progress=off", "--set", "model.channels=[8, 16]", "--set", "classifier.channels=[8]"]) == 0
    out = capsys.readouterr().out
    assert "class_accuracy" in out and f"seqlab: predict '3' → {run / 'predictions' / 'cgan-digit3-0001.png'}" in out
    assert main(["eval", str(run), "corpora/speech/dev.tsv"]) == 0
    assert "class_accuracy" in capsys.readouterr().out
    assert main(["predict", str(run), "seven", "--out-dir", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"seven\t{tmp_path / 'out' / 'cgan-digit7-0001.png'}"
    assert main(["predict", str(run), "eleven"]) == 2
    assert "not a digit" in capsys.readouterr().err
    assert main(["train", "pipelines/cgan.yaml", "--set", "image.mode=stretch"]) == 2
    assert "image.mode" in capsys.readouterr().err
