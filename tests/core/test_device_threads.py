"""The CPU thread default (``seqlab.core.device``): auto never oversubscribes, and every entry point applies it."""
import pytest
import torch

from seqlab.core import device
from seqlab.core.device import auto_threads, set_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_is_half_the_usable_cores_between_1_and_4():
    assert [auto_threads(c) for c in (1, 2, 3, 4, 6, 8, 16, 128)] == [1, 1, 1, 2, 3, 4, 4, 4]
    assert 1 <= auto_threads() <= max(1, device.usable_cores())


def test_set_threads_auto_never_raises_what_torch_uses(restore_threads, monkeypatch):
    monkeypatch.setattr(device, "usable_cores", lambda: 16)  # auto would be 4
    torch.set_num_threads(1)  # e.g. OMP_NUM_THREADS=1, or the user's own choice
    assert set_threads(None) == 1 and torch.get_num_threads() == 1
    torch.set_num_threads(8)  # torch's default on an 8-core machine
    assert set_threads(None) == 4 and torch.get_num_threads() == 4
    assert set_threads(3) == 3 and torch.get_num_threads() == 3  # an explicit number is used as given


def test_training_prediction_and_loading_apply_the_default(restore_threads, monkeypatch, tmp_path):
    from seqlab import load
    from seqlab.pipeline import Pipeline
    from seqlab.text.labels import LabelEncoder
    from seqlab.text.tokenizers import WordTokenizer
    from seqlab.text.vocab import VocabularyStage

    from tests.conftest import toy_sentiment

    monkeypatch.setattr(device, "usable_cores", lambda: 4)  # auto: 2
    torch.set_num_threads(3)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment",
                    model_config={"hidden_size": 4, "embedding_dim": 4}, device="cpu")
    pipe.fit(toy_sentiment(8), None, {"epochs": 1, "progress": "off"})  # threads: null → auto
    assert torch.get_num_threads() == 2
    pipe.save(tmp_path / "m")
    torch.set_num_threads(3)
    load(tmp_path / "m")  # seqlab predict / eval load through here
    assert torch.get_num_threads() == 2
