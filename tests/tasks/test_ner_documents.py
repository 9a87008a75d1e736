"""NER with document context (``model.document_case_dim``): the case a word has elsewhere in its
document joins the BiLSTM's input; documents come from CoNLL ``-DOCSTART-`` lines or the
``document`` option, and a sentence tagged alone reads "no document"."""
from __future__ import annotations

import random

import pytest
import torch

import seqlab
from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.pipeline import Pipeline
from seqlab.recipe import load_recipe
from seqlab.tasks.ner import NERConfig
from seqlab.text.documents import NO_DOCUMENT, DocumentCaseStage
from seqlab.text.tagged import SentenceTokenizer, TagEncoder
from seqlab.text.vocab import VocabularyStage
from seqlab.train.config import TrainConfig

WORDS = ["Brown", "Green", "White", "Black", "Stone", "Wood", "Field", "Hill"]


def headline_documents(n: int, seed: int) -> dict[str, list]:
    """Documents whose all-capitals headline names a person or not, which only the body says: the
    body writes the word capitalised mid-sentence (a name) or lower-case (a colour, a material).
    Each word is a name in half the documents, so the headline alone is a coin toss."""
    rnd = random.Random(seed)
    tokens, tags, documents = [], [], []
    for d in range(n):
        word, name = rnd.choice(WORDS), d % 2 == 0
        tag = "B-PER" if name else "O"
        tokens.append(["NEWS", ":", word.upper(), "WINS"])
        tags.append(["O", "O", tag, "O"])
        if name:
            tokens.append(["we", "met", word, "today", "."])
            tags.append(["O", "O", "B-PER", "O", "O"])
        else:
            tokens.append(["we", "painted", "it", word.lower(), "today", "."])
            tags.append(["O", "O", "O", "O", "O", "O"])
        documents += [d, d]
    return {"tokens": tokens, "tags": tags, "document": documents}


def pipeline(document_case_dim: int) -> Pipeline:
    stages = [SentenceTokenizer(), *([DocumentCaseStage()] if document_case_dim else []), VocabularyStage(),
              TagEncoder(scheme="IOB2", target="IOBES")]
    cfg = {"embedding_dim": 8, "hidden_size": 16, "char_hidden_size": 8, "char_embedding_dim": 8, "dropout": 0.0,
           "word_dropout": 0.0, "document_case_dim": document_case_dim}
    return Pipeline(stages, task="ner", model_config=cfg, device="cpu")


def headline_accuracy(pipe: Pipeline, data: dict[str, list], **options) -> float:
    rows = list(range(0, len(data["tokens"]), 2))
    out = pipe.predict([data["tokens"][i] for i in range(len(data["tokens"]))], **options)
    return sum(out[i]["tags"][2] == data["tags"][i][2] for i in rows) / len(rows)


@pytest.fixture(scope="module")
def fitted():
    train, test = headline_documents(160, seed=0), headline_documents(40, seed=1)
    pipes = {}
    for dim in (0, 4):
        torch.manual_seed(0)
        pipe = pipeline(dim)
        pipe.fit(train, None, {"epochs": 12, "batch_size": 16, "lr": 0.02, "progress": "off"})
        pipes[dim] = pipe
    return pipes, test


def test_the_document_decides_what_the_sentence_cannot(fitted):
    pipes, test = fitted
    with_context = headline_accuracy(pipes[4], test, document=test["document"])
    alone = headline_accuracy(pipes[0], test)
    assert with_context >= 0.95, with_context
    assert alone <= 0.8, alone  # the same headlines without the body's evidence
    # Without its document the context model is back to guessing, but still tags.
    assert headline_accuracy(pipes[4], test) <= 0.8


def test_document_option_forms_and_the_eval_path_agree(fitted):
    pipes, test = fitted
    pipe = pipes[4]
    per_row = pipe.predict(test["tokens"][:4], document=test["document"][:4])
    pairs = pipe.predict(test["tokens"][:2], document=7) + pipe.predict(test["tokens"][2:4], document="x")
    assert per_row == pairs
    processed = pipe.preprocess({"tokens": test["tokens"][:2]}, with_targets=False)
    assert processed["doc_case"] == [[NO_DOCUMENT] * 4, [NO_DOCUMENT] * len(test["tokens"][1])]
    # evaluate() reads the data's document column, as seqlab eval does with a CoNLL file.
    metrics = pipe.evaluate(test)
    assert metrics["f1"] >= 95.0
    no_docs = {k: v for k, v in test.items() if k != "document"}
    assert pipe.evaluate(no_docs)["f1"] < metrics["f1"]
    with pytest.raises(InputError, match="one per sentence"):
        pipe.predict(test["tokens"][:3], document=[0, 1])


def test_save_load_keeps_the_stage_and_the_outputs(fitted, tmp_path):
    pipes, test = fitted
    pipes[4].save(tmp_path / "m")
    loaded = seqlab.load(tmp_path / "m", device="cpu")
    assert any(isinstance(s, DocumentCaseStage) for s in loaded.stages)
    assert loaded.predict(test["tokens"], document=test["document"]) == pipes[4].predict(test["tokens"], document=test["document"])


def test_document_dropout_only_in_training_and_per_sentence(fitted):
    import copy

    model = copy.deepcopy(fitted[0][4].model)
    model.config.document_dropout = 0.5
    data = headline_documents(64, seed=3)
    columns = fitted[0][4].preprocess(data)
    batch = next(iter(model.train_batches(columns, TrainConfig(batch_size=64), 1)))
    seen = []
    model.document_case.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    model.train()
    torch.manual_seed(0)
    model.emissions(batch)
    original, lengths = batch["doc_case"], batch["input_ids_lengths"]
    dropped = [bool((seen[0][i, :n] == NO_DOCUMENT).all()) and not bool((original[i, :n] == NO_DOCUMENT).all())
               for i, n in enumerate(lengths.tolist())]
    kept = [torch.equal(seen[0][i], original[i]) for i in range(len(lengths))]
    assert all(d or k for d, k in zip(dropped, kept))  # a whole sentence or nothing
    assert 0.25 < sum(dropped) / len(dropped) < 0.75
    assert bool((seen[0] == 0).eq(original == 0).all())  # padding stays padding
    model.eval()
    model.emissions(batch)
    assert torch.equal(seen[1], original)


def test_the_model_asks_for_its_column_and_checks_its_settings():
    pipe = Pipeline([SentenceTokenizer(), VocabularyStage(), TagEncoder(scheme="IOB2", target="IOBES")], task="ner",
                    model_config={"embedding_dim": 8, "hidden_size": 8, "document_case_dim": 4}, device="cpu")
    with pytest.raises(Exception, match="doc_case"):
        pipe.fit(headline_documents(8, 0), None, {"epochs": 1, "progress": "off"})
    with pytest.raises(ConfigError, match="document_dropout"):
        NERConfig(document_dropout=1.0).validate()
    with pytest.raises(ConfigError, match="document_case_dim"):
        NERConfig(document_case_dim=-1).validate()


def test_recipe_builds_the_stage_and_reads_conll_documents(repo, tmp_path):
    path = tmp_path / "docs.conll"
    path.write_text("-DOCSTART- O\n\nNEWS O\nBROWN B-PER\n\nwe O\nmet O\nBrown B-PER\n\n"
                    "-DOCSTART- O\n\nwe O\npainted O\nbrown O\n\n", encoding="utf-8")
    recipe = load_recipe(repo / "pipelines" / "ner.yaml", ["model.document_case_dim=4", f"data.train={path}",
                                                           "data.dev=null"])
    train, _ = recipe.datasets()
    assert train["document"] == [0, 0, 1]
    assert any(isinstance(s, DocumentCaseStage) for s in recipe.build().stages)
    assert not any(isinstance(s, DocumentCaseStage) for s in load_recipe(repo / "pipelines" / "ner.yaml").build().stages)
    # The project's corpus has no -DOCSTART- lines: no document column, so no document context.
    plain, _ = load_recipe(repo / "pipelines" / "ner.yaml").datasets()
    assert "document" not in plain.column_names
