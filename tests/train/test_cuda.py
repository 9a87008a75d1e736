"""CUDA only: AMP steps (bf16; fp16 with a GradScaler), CUDA RNG in checkpoints, device moves."""
import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.train import TrainConfig, Trainer
from seqlab.train.checkpoint import load_latest_checkpoint
from tests.train.toys import ToyRegressor, toy_columns, weights

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


class DtypeRecorder(ToyRegressor):
    def loss(self, batch):
        self.seen = self.linear(batch["x"]).dtype
        return super().loss(batch)


def cfg(**kw):
    return from_dict(TrainConfig, {"progress": "off", "epochs": 2, "batch_size": 8, "lr": 0.05, **kw})


@pytest.mark.parametrize("amp,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("off", torch.float32)])
def test_amp_step_on_cuda(amp, dtype, tmp_path):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    model = DtypeRecorder()
    before = weights(model)
    result = Trainer(cfg(amp=amp), device="cuda", checkpoint_dir=tmp_path).fit(model, toy_columns(16))
    assert model.seen == dtype
    assert model.linear.weight.dtype == torch.float32 and model.linear.weight.device.type == "cuda"
    assert not torch.equal(before["linear.weight"], model.linear.weight.detach().cpu())
    assert result.skipped_steps == 0 and all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    state, _ = load_latest_checkpoint(tmp_path)
    assert state["model"]["linear.weight"].device.type == "cpu"  # checkpoints are device-free
    assert len(state["rng"][0]["cuda"]) == torch.cuda.device_count()
    if amp == "fp16":
        assert state["scaler"]["scale"] > 0 and "overflow_steps" in result.history[-1]
    else:
        assert state["scaler"] is None


def test_a_cuda_checkpoint_resumes_on_the_cpu_and_back(tmp_path):
    Trainer(cfg(amp="fp16"), device="cuda", checkpoint_dir=tmp_path / "gpu").fit(ToyRegressor(), toy_columns(16))
    on_cpu = ToyRegressor()
    result = Trainer(cfg(epochs=3, amp="fp16"), device="cpu", checkpoint_dir=tmp_path / "cpu").fit(
        on_cpu, toy_columns(16), resume_from=tmp_path / "gpu")
    assert result.steps == 6 and on_cpu.linear.weight.device.type == "cpu"
    back = ToyRegressor()
    result = Trainer(cfg(epochs=4), device="cuda").fit(back, toy_columns(16), resume_from=tmp_path / "cpu")
    assert result.steps == 8 and back.linear.weight.device.type == "cuda"


def test_pipeline_trains_on_cuda_and_loads_on_cpu(tmp_path):
    from seqlab import load
    from seqlab.pipeline import Pipeline
    from seqlab.text.labels import LabelEncoder
    from seqlab.text.tokenizers import WordTokenizer
    from seqlab.text.vocab import VocabularyStage
    from tests.conftest import toy_sentiment

    pipe = Pipeline([WordTokenizer(lowercase=True), VocabularyStage(), LabelEncoder()], task="sentiment",
                    model_config={"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}, device="cuda")
    pipe.fit(toy_sentiment(240), toy_sentiment(40, seed=1), {"epochs": 6, "batch_size": 16, "lr": 0.01, "progress": "off"},
             checkpoint_dir=tmp_path / "ckpt")
    assert next(pipe.model.parameters()).device.type == "cuda"
    pipe.save(tmp_path / "model")
    cpu = load(tmp_path / "model", device="cpu")
    texts = ["a great film", "a dull mess", "so boring"]
    on_gpu, on_cpu = pipe(texts), cpu(texts)
    assert [o["label"] for o in on_gpu] == [o["label"] for o in on_cpu] == ["1", "0", "0"]
    for a, b in zip(on_gpu, on_cpu):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
