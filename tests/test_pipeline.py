"""Pipeline: wiring, fit/predict/evaluate, save/load round trip, refusals, bad input."""
import json
import pickle

import pytest
import torch

import seqlab
from seqlab.core.errors import DataError, InputError, ModelFileError, NotFittedError, WiringError
from seqlab.pipeline import Pipeline
from seqlab.text.labels import LabelEncoder
from seqlab.text.tokenizers import WordTokenizer
from seqlab.text.vocab import VocabularyStage
from tests.conftest import toy_sentiment

SMALL = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}
FAST = {"epochs": 6, "batch_size": 16, "lr": 0.01, "progress": "off", "seed": 1}


def make_pipe(**model):
    stages = [WordTokenizer(lowercase=True), VocabularyStage(), LabelEncoder()]
    return Pipeline(stages, task="sentiment", model_config={**SMALL, **model}, device="cpu")


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    pipe = make_pipe()
    pipe.fit(toy_sentiment(240), toy_sentiment(60, seed=1), FAST)
    return pipe


def test_wiring_checked_at_construction():
    with pytest.raises(WiringError, match="stage 0 VocabularyStage.*needs column 'tokens'"):
        Pipeline([VocabularyStage(), WordTokenizer()], task="sentiment", device="cpu")


def test_fit_learns_and_predicts_labels_with_scores(fitted):
    metrics = fitted.evaluate(toy_sentiment(80, seed=2))
    assert metrics["accuracy"] >= 0.9, metrics
    out = fitted(["a great film", "a dull mess"])
    assert [o["label"] for o in out] == ["1", "0"]
    for o in out:
        assert set(o["scores"]) == {"0", "1"} and abs(sum(o["scores"].values()) - 1) < 1e-5
        assert o["score"] == max(o["scores"].values())
    assert fitted("superb")["label"] == "1"


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path):
    texts = ["a great film", "a dull mess", "the plot was so boring", "unknownword"]
    fitted.save(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    # + seqlab's manifest (what this save wrote) and its two lock files (docs/errors.md, "Files and faults")
    assert files == [".seqlab-commit.lock", ".seqlab-manifest.json", ".seqlab.lock", "config.json", "model.safetensors", "stages"]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["format"] == "seqlab.pipeline" and config["task"] == "sentiment"
    loaded = seqlab.load(tmp_path / "model", device="cpu")
    assert loaded(texts) == fitted(texts)


def test_load_refuses_pickles_and_other_tasks_checkpoints(fitted, tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(fitted.model.state_dict()))
    with pytest.raises(ModelFileError, match="never loads pickled"):
        seqlab.load(evil)
    fitted.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["model"]["hidden_size"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="has shape|does not fit"):
        seqlab.load(tmp_path / "m")
    config["model"]["hidden_sise"] = 32
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="unknown key 'hidden_sise'"):
        seqlab.load(tmp_path / "m")


def test_bad_prediction_inputs_are_named(fitted):
    with pytest.raises(InputError, match="input 1: the text is empty"):
        fitted(["good", "   "])
    with pytest.raises(InputError, match="input 0: expected a string, got int"):
        fitted([3])
    with pytest.raises(InputError, match="empty"):
        fitted("")
    assert fitted.predict([]) == []


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8", None])
def test_bad_batch_size_is_an_input_error(fitted, bad):
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        fitted.predict(["good"], batch_size=bad)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        fitted.evaluate({"text": ["good"], "label": [1]}, batch_size=bad)


def test_unknown_per_call_option_is_refused_naming_the_valid_ones(fitted):
    # Sentiment declares no options: only the Pipeline's own batch_size is valid.
    with pytest.raises(InputError, match=r"unknown option 'batch_sise' \(did you mean 'batch_size'\?\); valid options: batch_size"):
        fitted("good", batch_sise=2)
    with pytest.raises(InputError, match="unknown option 'temprature'"):
        fitted.predict([], temprature=0.5)  # refused even when there is nothing to predict
    one, all_ = fitted.predict(["good", "bad film"], batch_size=1), fitted.predict(["good", "bad film"], batch_size=64)
    assert [o["label"] for o in one] == [o["label"] for o in all_]
    assert [o["score"] for o in one] == pytest.approx([o["score"] for o in all_], abs=1e-6)


def test_bad_training_data():
    with pytest.raises(DataError, match="empty"):
        make_pipe().fit({"text": [], "label": []})
    with pytest.raises(WiringError, match="lacks column"):
        make_pipe().fit({"text": ["a", "b"]})
    data = toy_sentiment(10)
    pipe = make_pipe()
    pipe.fit(data, train_config={**FAST, "epochs": 1})
    with pytest.raises(DataError, match="row 0 has label .7., which is not a known label"):
        pipe.preprocess({"text": ["a"], "label": ["7"]})


def test_unfitted_pipeline_refuses_prediction():
    with pytest.raises(NotFittedError):
        make_pipe()("hello")


def test_failed_save_leaves_previous_model(fitted, tmp_path, monkeypatch):
    target = tmp_path / "model"
    fitted.save(target)
    before = (target / "model.safetensors").read_bytes()
    import seqlab.pipeline as pipeline_module

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline_module, "save_weights", broken)
    with pytest.raises(OSError, match="No space"):
        fitted.save(target)
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_predict_runs_every_module_in_eval_mode_even_one_left_in_training(fitted):
    """predict sets eval() only when some module is training (not a walk per call), but then always."""
    texts = ["good film", "bad film", "great"]
    expected = fitted.predict(texts)
    for module in (fitted.model, next(m for m in fitted.model.modules() if m is not fitted.model)):
        module.train()
        assert any(m.training for m in fitted.model.modules())
        assert fitted.predict(texts) == expected
        assert not any(m.training for m in fitted.model.modules())
