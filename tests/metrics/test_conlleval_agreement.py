"""Where "conlleval-compatible" holds: B-/I-/O tags only. With S- and E- tags seqlab follows seqeval.

``conlleval`` below is the chunk reading of the CoNLL-2000 ``conlleval`` Perl script,
transcribed from its ``startOfChunk`` / ``endOfChunk`` rules: a chunk ends on B→B, B→O,
I→B, I→O, E→E, E→I, E→O or a type change, and starts on B after B/I/O, I or E after O,
E→E, E→I or a type change. It has no rule for ``S``, and ``E`` followed by ``B`` of the same
type neither ends nor starts a chunk. seqeval (seqlab's default mode) closes a chunk after
every ``E``/``S`` and opens one at every ``B``/``S``, so the two count differently once those
prefixes appear.
"""
from __future__ import annotations

import random

import pytest

from seqlab.metrics.entities import entity_f1


def _split(tag: str) -> tuple[str, str]:
    return ("O", "") if tag == "O" else (tag[0], tag[2:])


def _ends(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    return ((prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"), ("E", "E"), ("E", "I"), ("E", "O")}
            or (prev != "O" and prev_type != type_))


def _starts(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    return ((prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"), ("E", "E"), ("E", "I"), ("O", "E")}
            or (tag != "O" and prev_type != type_))


def conlleval_chunks(sentence: list[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) chunks as conlleval reads them (sentence boundaries act as O)."""
    chunks, start = set(), None
    prev, prev_type = "O", ""
    for i, tag in enumerate(list(sentence) + ["O"]):
        cur, type_ = _split(tag)
        if start is not None and _ends(prev, prev_type, cur, type_):
            chunks.add((prev_type, start, i - 1))
            start = None
        if _starts(prev, prev_type, cur, type_):
            start = i
        prev, prev_type = cur, type_
    return chunks


def conlleval_counts(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int, int]:
    """(correct, predicted, gold) chunk counts over a corpus, as conlleval reports them."""
    correct = predicted = support = 0
    for g, p in zip(gold, pred):
        gc, pc = conlleval_chunks(g), conlleval_chunks(p)
        correct, predicted, support = correct + len(gc & pc), predicted + len(pc), support + len(gc)
    return correct, predicted, support


def _random_corpus(rng: random.Random, tags: list[str], n: int = 40) -> list[list[str]]:
    return [[rng.choice(tags) for _ in range(rng.randint(1, 8))] for _ in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_default_mode_equals_conlleval_on_bio_tags(seed):
    """Any B-/I-/O sequences, well-formed or not (I- after O, type changes): the same counts."""
    rng = random.Random(seed)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold, pred = _random_corpus(rng, tags), _random_corpus(rng, tags)
    pred = [p[: len(g)] + ["O"] * (len(g) - len(p)) for g, p in zip(gold, pred)]
    micro = entity_f1(gold, pred).micro
    assert (micro.correct, micro.predicted, micro.support) == conlleval_counts(gold, pred)


@pytest.mark.parametrize("sentence, seqlab_n, conlleval_n", [
    (["S-PER", "S-PER"], 2, 1),                    # conlleval has no S rule: one 2-token chunk
    (["B-PER", "E-PER", "B-PER", "E-PER"], 2, 1),  # E→B of one type: conlleval neither ends nor starts
    (["S-PER", "I-PER"], 2, 1),
])
def test_with_s_and_e_tags_seqlab_follows_seqeval_not_conlleval(sentence, seqlab_n, conlleval_n):
    assert entity_f1([sentence], [sentence]).micro.support == seqlab_n
    assert len(conlleval_chunks(sentence)) == conlleval_n


def test_the_reference_reading_itself():
    """The transcription reads the textbook cases as conlleval does."""
    assert conlleval_chunks(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    assert conlleval_chunks(["O", "I-PER", "I-LOC"]) == {("PER", 1, 1), ("LOC", 2, 2)}
    assert conlleval_chunks(["B-PER", "B-PER"]) == {("PER", 0, 0), ("PER", 1, 1)}
    assert conlleval_chunks(["I-PER", "E-PER", "E-PER"]) == {("PER", 0, 1), ("PER", 2, 2)}  # IOE
