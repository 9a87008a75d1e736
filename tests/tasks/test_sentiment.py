import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.pipeline import Pipeline
from seqlab.recipe import load_recipe
from seqlab.tasks.sentiment import SentimentConfig, SentimentModel
from seqlab.text.labels import LabelEncoder
from seqlab.text.tokenizers import WordTokenizer
from seqlab.text.vocab import VocabularyStage
from tests.conftest import toy_sentiment


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
def test_each_pooling_mode_learns(pooling):
    torch.manual_seed(0)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment",
                    model_config={"embedding_dim": 16, "hidden_size": 16, "pooling": pooling, "dropout": 0.0}, device="cpu")
    result = pipe.fit(toy_sentiment(200), toy_sentiment(60, seed=3),
                      {"epochs": 8, "batch_size": 16, "lr": 0.01, "progress": "off"})
    assert result.best_metrics["accuracy"] >= 0.85, (pooling, result.best_metrics)


def test_padding_does_not_change_a_sentence_prediction():
    torch.manual_seed(0)
    model = SentimentModel(SentimentConfig(embedding_dim=8, hidden_size=8, vocab_size=20, labels=["0", "1"], pooling="mean")).eval()
    alone = model.logits({"input_ids": torch.tensor([[5, 6]]), "input_ids_lengths": torch.tensor([2])})
    padded = model.logits({"input_ids": torch.tensor([[5, 6, 0, 0], [7, 8, 9, 10]]), "input_ids_lengths": torch.tensor([2, 4])})
    assert torch.allclose(alone[0], padded[0], atol=1e-6)


def test_trainer_reduces_loss_on_a_tiny_task():
    torch.manual_seed(0)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment",
                    model_config={"embedding_dim": 8, "hidden_size": 8, "dropout": 0.0}, device="cpu")
    result = pipe.fit(toy_sentiment(64), None, {"epochs": 5, "batch_size": 8, "lr": 0.01, "progress": "off"})
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0], losses


def test_model_config_validation():
    with pytest.raises(ConfigError, match="dropout"):
        SentimentConfig(dropout=1.5).validate()
    with pytest.raises(ConfigError, match="vocab_size"):
        SentimentModel(SentimentConfig())


def test_recipe_typo_is_an_error_naming_the_key(repo):
    with pytest.raises(ConfigError, match=r"unknown key 'hiden_size' \(did you mean 'hidden_size'\?\)"):
        load_recipe(repo / "pipelines" / "sentiment.yaml", ["model.hiden_size=3"])
    recipe = load_recipe(repo / "pipelines" / "sentiment.yaml", ["train.epochs=2"])
    assert recipe.train.epochs == 2 and recipe.model.pooling == "max"


def test_textcnn_encoder_and_word2vec_initialisation(tmp_path):
    import seqlab
    from seqlab.embeddings.word2vec import Word2VecStage

    torch.manual_seed(0)
    w2v = Word2VecStage(dim=16, epochs=2, min_count=1)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), w2v, LabelEncoder()], task="sentiment",
                    model_config={"embedding_dim": 16, "encoder": "textcnn", "cnn_filters": 8, "cnn_kernels": [2, 3],
                                  "dropout": 0.0, "freeze_embeddings": True}, device="cpu")
    pipe.fit(toy_sentiment(40), None, {"epochs": 1, "batch_size": 8, "lr": 0.01, "progress": "off"})
    vocab = pipe.stages[1].vocab
    word = "great"
    row = pipe.model.embedding.weight[vocab.token_to_id(word)]
    assert torch.allclose(row, torch.tensor(w2v.vectors[word]), atol=1e-6)  # frozen: still the word2vec vector
    assert not pipe.model.embedding.weight.requires_grad
    pipe.save(tmp_path / "m")
    loaded = seqlab.load(tmp_path / "m", device="cpu")
    assert loaded(["a great film"]) == pipe(["a great film"])


def test_mismatched_word2vec_dimension_is_a_config_error():
    from seqlab.embeddings.word2vec import Word2VecStage

    pipe = Pipeline([WordTokenizer(), VocabularyStage(), Word2VecStage(dim=8, epochs=1), LabelEncoder()], task="sentiment",
                    model_config={"embedding_dim": 16, "hidden_size": 4}, device="cpu")
    with pytest.raises(ConfigError, match="8 dimensions but model.embedding_dim is 16"):
        pipe.fit(toy_sentiment(20), None, {"epochs": 1, "progress": "off"})
