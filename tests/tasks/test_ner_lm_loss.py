"""NER with Rei (2017)'s language-modelling auxiliary loss (``model.lm_loss``, ``seqlab.nn.lm_objective``)."""
from __future__ import annotations

import doctest

import pytest
import torch

import seqlab
import seqlab.nn.lm_objective as lm_objective
from seqlab.core.errors import ConfigError
from seqlab.nn.lm_objective import BidirectionalLMObjective, frequent_rows, neighbour_targets
from seqlab.nn.masking import lengths_to_mask
from seqlab.tasks.ner import NERConfig
from seqlab.train.config import TrainConfig

from tests.tasks.test_ner import toy_data, toy_pipeline


def test_doctests():
    result = doctest.testmod(lm_objective)
    assert result.attempted >= 3 and result.failed == 0


def test_frequent_rows_against_a_count():
    """Random rows: the kept rows are the most counted ones, in order, and the rest are 'other'."""
    generator = torch.Generator().manual_seed(3)
    for top in (1, 5, 40, 100):
        rows = torch.randint(0, 60, (500,), generator=generator)
        classes = frequent_rows(rows, 60, top, never=(0, 1))
        counts = torch.bincount(rows, minlength=60)
        counts[[0, 1]] = 0
        kept = [r for r in range(60) if classes[r] < top]
        assert len(kept) == min(top, int((counts > 0).sum()))
        assert sorted(int(classes[r]) for r in kept) == list(range(len(kept)))
        by_class = sorted(kept, key=lambda r: int(classes[r]))
        assert [int(counts[r]) for r in by_class] == sorted((int(counts[r]) for r in kept), reverse=True)
        others = [r for r in range(60) if classes[r] == top]
        if others and kept:
            assert max(int(counts[r]) for r in others) <= min(int(counts[r]) for r in kept)
        assert int(classes[0]) == int(classes[1]) == top


def test_neighbour_targets_by_hand():
    classes = torch.tensor([[3, 1, 4, 1], [5, 9, 0, 0], [2, 0, 0, 0]])
    mask = lengths_to_mask(torch.tensor([4, 2, 1]), 4)
    nxt, prev = neighbour_targets(classes, mask, boundary=7)
    assert nxt[mask].tolist() == [1, 4, 1, 7, 9, 7, 7]
    assert prev[mask].tolist() == [7, 3, 1, 4, 7, 5, 7]


def test_objective_reads_each_direction_for_its_own_neighbour():
    """The forward half predicts the next word, the backward half the previous one: moving the
    forward features changes only the next-word term (a swapped split would fail this)."""
    torch.manual_seed(0)
    objective = BidirectionalLMObjective(direction_size=4, top=6, hidden=5)
    outputs = torch.randn(2, 5, 8)
    classes = torch.randint(0, 7, (2, 5))
    mask = lengths_to_mask(torch.tensor([5, 3]), 5)
    nxt, prev = neighbour_targets(classes, mask, objective.boundary)
    sum_ce = torch.nn.functional.cross_entropy
    expected = (sum_ce(objective.ahead(outputs[..., :4][mask]), nxt[mask], reduction="sum")
                + sum_ce(objective.behind(outputs[..., 4:][mask]), prev[mask], reduction="sum")) / 2
    assert torch.allclose(objective(outputs, classes, mask), expected)
    # Padded steps do not count.
    noisy = outputs.clone()
    noisy[1, 3:] = 100.0
    assert torch.allclose(objective(noisy, classes, mask), expected)
    with pytest.raises(ValueError, match="2 x 4"):
        objective(torch.randn(2, 5, 6), classes, mask)


def test_forward_states_never_see_the_word_they_predict():
    """With a one-layer BiLSTM, the forward half at step t is unchanged when word t+1 changes,
    and the backward half at t when word t-1 changes: the objective's targets are unseen."""
    pipe = toy_pipeline(lm_loss=0.1)
    data = toy_data()
    pipe.fit(data, None, TrainConfig(epochs=1, batch_size=8, progress="off", seed=0))
    model = pipe.model.eval()
    size = model.config.hidden_size
    tokens = ["we", "met", "Anna", "in", "Rome", "today"]
    changed = ["we", "met", "Anna", "Bert", "Rome", "today"]  # word 3 differs
    batches = [pipe.preprocess({"tokens": [t], "tags": [["O"] * 6]}) for t in (tokens, changed)]
    outs = []
    for columns in batches:
        batch = model._batch(columns["input_ids"], columns["tokens"], None, torch.device("cpu"))
        outs.append(model._encode(batch)[0][0])
    a, b = outs
    assert torch.equal(a[:3, :size], b[:3, :size])  # forward: steps before the change
    assert not torch.equal(a[3:, :size], b[3:, :size])
    assert torch.equal(a[4:, size:], b[4:, size:])  # backward: steps after the change
    assert not torch.equal(a[:4, size:], b[:4, size:])


def test_training_uses_the_objective_and_prediction_ignores_it():
    data = toy_data()
    plain, with_lm = toy_pipeline(), toy_pipeline(lm_loss=0.5, lm_vocab=5, lm_hidden=6)
    for pipe in (plain, with_lm):
        torch.manual_seed(0)
        pipe.fit(data, None, TrainConfig(epochs=4, batch_size=8, progress="off", seed=0, lr=0.02))
    model = with_lm.model
    assert model.lm_objective is not None and plain.model.lm_objective is None
    # The objective's vocabulary: the 5 most frequent (lower-cased) training words.
    columns = with_lm.preprocess(data)
    classes = model.lm_classes(columns["input_ids"])
    assert int((classes < 5).sum()) == 5 and int(classes.max()) == 5
    # Its heads were trained (they have gradients in training) ...
    batch = next(iter(model.train_batches(columns, TrainConfig(batch_size=8), 1)))
    model.train()
    model.zero_grad()
    loss = model.loss(batch)
    loss.backward()
    assert model.lm_objective.ahead[0].weight.grad.abs().sum() > 0
    assert model.lm_objective.behind[0].weight.grad.abs().sum() > 0
    # ... the training loss is the tagging loss plus lm_loss times the objective (no dropout in
    # this toy model, so training and evaluation see the same states) ...
    model.eval()
    with torch.no_grad():
        outputs, mask = model._encode(batch)
        tagging = model.crf.nll(model.head(outputs), batch["tag_ids"], mask, reduction="mean")
        term = model.lm_objective(outputs, model._lm_classes[model.word_map[batch["input_ids"]]], mask)
        # ... and evaluation reports the tagging loss alone.
        assert model.loss(batch).item() == pytest.approx(tagging.item(), rel=1e-6)
    assert term.item() > 0
    assert loss.item() == pytest.approx(tagging.item() + 0.5 * term.item(), rel=1e-5)
    # Prediction does not read the objective: scrambling its weights changes nothing.
    sentences = [["we", "met", "Cleo", "in", "Oslo", "today"], ["Dirk", "Smith", "lives", "in", "Lima"]]
    before = with_lm.predict(sentences)
    with torch.no_grad():
        for p in model.lm_objective.parameters():
            p.normal_()
    assert with_lm.predict(sentences) == before
    assert [o["tags"] for o in before] == [["O", "O", "B-PER", "O", "B-LOC", "O"], ["B-PER", "I-PER", "O", "O", "B-LOC"]]


def test_the_loss_falls_with_the_objective():
    """The language-modelling term itself is learnt: it falls over training on the toy data."""
    pipe = toy_pipeline(lm_loss=1.0, lm_vocab=20, lm_hidden=8)
    data = toy_data()
    pipe.fit(data, None, TrainConfig(epochs=1, batch_size=8, progress="off", seed=0))
    model = pipe.model
    columns = pipe.preprocess(data)
    batch = next(iter(model.train_batches(columns, TrainConfig(batch_size=64), 1)))
    mask = lengths_to_mask(batch["input_ids_lengths"], batch["input_ids"].shape[1])

    def lm_term() -> float:
        model.eval()
        with torch.no_grad():
            outputs, _ = model._encode(batch)
            classes = model._lm_classes[model.word_map[batch["input_ids"]]]
            return model.lm_objective(outputs, classes, mask).item()

    before = lm_term()
    pipe.fit(data, None, TrainConfig(epochs=8, batch_size=8, progress="off", seed=1, lr=0.02))
    assert lm_term() < 0.7 * before


def test_save_load_keeps_the_objective(tmp_path):
    pipe = toy_pipeline(lm_loss=0.1, lm_vocab=10)
    pipe.fit(toy_data(), None, TrainConfig(epochs=2, batch_size=8, progress="off", seed=0))
    pipe.save(tmp_path / "ner")
    loaded = seqlab.load(tmp_path / "ner")
    assert loaded.model.config.lm_loss == 0.1
    for name, value in pipe.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name]), name
    sentences = [["we", "met", "Anna", "in", "Rome", "today"]]
    assert loaded.predict(sentences) == pipe.predict(sentences)


@pytest.mark.parametrize("bad, message", [
    ({"lm_loss": -0.1}, "lm_loss must be >= 0"),
    ({"lm_loss": float("nan")}, "lm_loss must be >= 0"),
    ({"lm_loss": 0.1, "num_layers": 2}, "num_layers: 1"),
    ({"lm_vocab": 0}, "lm_vocab must be >= 1"),
    ({"lm_hidden": 0}, "lm_hidden must be >= 1"),
])
def test_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        NERConfig(**bad).validate()
