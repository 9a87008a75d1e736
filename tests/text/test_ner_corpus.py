"""The small NER corpus in corpora/ner: well-formed, reproducible, dev distinct from train."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from seqlab.text.tagging import spans, validate

CORPUS = Path(__file__).resolve().parents[2] / "corpora" / "ner"


def read_conll(path: Path) -> list[list[list[str]]]:
    sentences, current = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        columns = line.split(" ")
        assert len(columns) == 4, f"{path.name}:{number}: expected 'token POS chunk NER', got {line!r}"
        current.append(columns)
    assert not current, f"{path.name} must end with a blank line"
    return sentences


@pytest.fixture(scope="module")
def corpus():
    return {name: read_conll(CORPUS / f"{name}.conll") for name in ("train", "dev")}


def test_files_are_well_formed_iob2_with_the_four_types(corpus):
    assert len(corpus["train"]) == 400 and len(corpus["dev"]) == 100
    for name, sentences in corpus.items():
        kinds = set()
        for s in sentences:
            tags = [row[3] for row in s]
            validate(tags, "IOB2")
            kinds |= {k for k, _, _ in spans(tags, "IOB2")}
        assert kinds == {"PER", "LOC", "ORG", "MISC"}, name


def test_dev_is_not_a_copy_of_train_and_has_unseen_names(corpus):
    def text(s):
        return " ".join(row[0] for row in s)

    train = {text(s) for s in corpus["train"]}
    assert not any(text(s) in train for s in corpus["dev"])

    def entities(sentences):
        out = set()
        for s in sentences:
            for kind, a, b in spans([row[3] for row in s], "IOB2"):
                out.add((kind, " ".join(row[0] for row in s[a:b])))
        return out

    unseen = entities(corpus["dev"]) - entities(corpus["train"])
    assert len(unseen) > 20


def test_corpus_has_the_variety_the_ner_task_needs(corpus):
    train = corpus["train"]
    found = {"no_entities": 0, "multi_token": 0, "number": 0, "person_city": 0}
    for s in train:
        tags = [row[3] for row in s]
        ents = spans(tags, "IOB2")
        found["no_entities"] += not ents
        found["multi_token"] += any(b - a > 1 for _, a, b in ents)
        found["number"] += any(row[0][0].isdigit() for row in s)
        words = {(k, " ".join(row[0] for row in s[a:b])) for k, a, b in ents}
        found["person_city"] += any(k == "PER" and len(w.split()) == 2 for k, w in words) and ("LOC", "Paris") in words
    assert found["no_entities"] >= 20 and found["multi_token"] >= 200 and found["number"] >= 100
    assert found["person_city"] >= 1  # "Angela Merkel visited Paris"-like sentences exist


def test_make_corpus_reproduces_the_files_exactly():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train, dev = module.generate()
    assert module.to_conll(train) == (CORPUS / "train.conll").read_text(encoding="utf-8")
    assert module.to_conll(dev) == (CORPUS / "dev.conll").read_text(encoding="utf-8")
