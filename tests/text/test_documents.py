"""Document-case evidence (seqlab.text.documents): each token's case elsewhere in its document."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.core.errors import InputError
from seqlab.core.registry import stage_class
from seqlab.text.documents import (BOTH, CAPITALISED, LOWER, NO_DOCUMENT, NO_EVIDENCE, DocumentCaseStage,
                                   document_case_ids)


def test_hand_computed_document():
    doc = [
        ["SOCCER", "-", "JAPAN", "GET", "WIN"],      # a headline: its case says nothing
        ["Japan", "won", "the", "Asian", "Cup", "."],  # sentence-initial "Japan" says nothing either
        ["Fans", "of", "Japan", "saw", "the", "win", "."],
        ["Win", "or", "lose", ",", "japan", "sang", "."],
    ]
    got = document_case_ids(doc, ["d"] * 4)
    # JAPAN: capitalised mid-sentence (row 2) and lower-case (row 3) elsewhere; WIN: lower-case in row 2.
    assert got[0] == [NO_EVIDENCE, NO_EVIDENCE, BOTH, NO_EVIDENCE, LOWER]
    # "Japan" (row 1, first token) sees rows 2 and 3; "the" sees row 2's "the"; "won", "Asian", "Cup" only themselves.
    assert got[1] == [BOTH, NO_EVIDENCE, LOWER, NO_EVIDENCE, NO_EVIDENCE, NO_EVIDENCE]
    # Row 2's "Japan" is itself the capitalised one: only row 3's lower-case form is another's.
    assert got[2] == [NO_EVIDENCE, NO_EVIDENCE, LOWER, NO_EVIDENCE, LOWER, NO_EVIDENCE, NO_EVIDENCE]
    # Row 3's "Win" sees row 2's "win"; "japan" sees row 2's capitalised one.
    assert got[3] == [LOWER, NO_EVIDENCE, NO_EVIDENCE, NO_EVIDENCE, CAPITALISED, NO_EVIDENCE, NO_EVIDENCE]


def test_documents_do_not_see_each_other_and_need_not_be_contiguous():
    a1, b1, a2 = ["Paris", "is", "big"], ["we", "saw", "paris"], ["In", "Paris", "now"]
    got = document_case_ids([a1, b1, a2], [0, 1, 0])
    assert got[0][0] == CAPITALISED  # from a2, not from b1's lower-case "paris"
    assert got[1][2] == NO_EVIDENCE  # document 1 holds no other "paris"
    assert got[2][1] == NO_EVIDENCE  # a1's "Paris" opens its sentence


def test_without_documents_every_token_reads_no_document():
    assert document_case_ids([["Rome", "rome"], ["x"]]) == [[NO_DOCUMENT, NO_DOCUMENT], [NO_DOCUMENT]]
    with pytest.raises(InputError, match="2 given for 1 sentences"):
        document_case_ids([["a"]], [0, 0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["Ab", "ab", "AB", "x", ".", "Cd", "cd", "7"]), min_size=1, max_size=6),
                min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_ids_equal_a_brute_force_count_and_ignore_sentence_order(sentences, rnd: random.Random):
    documents = [rnd.randrange(3) for _ in sentences]
    got = document_case_ids(sentences, documents)

    def marks(sentence, position):
        token = sentence[position]
        headline = any(c.isupper() for t in sentence for c in t) and not any(c.islower() for t in sentence for c in t)
        return (not headline and position > 0 and token[0].isupper()), token.islower()

    for i, sentence in enumerate(sentences):
        for p, token in enumerate(sentence):
            others = [marks(s, q) for j, s in enumerate(sentences) for q, t in enumerate(s)
                      if documents[j] == documents[i] and t.lower() == token.lower() and (j, q) != (i, p)]
            want = NO_EVIDENCE + any(lo for _, lo in others) + 2 * any(c for c, _ in others)
            assert got[i][p] == want
    order = list(range(len(sentences)))
    rnd.shuffle(order)
    shuffled = document_case_ids([sentences[i] for i in order], [documents[i] for i in order])
    assert [shuffled[order.index(i)] for i in range(len(sentences))] == got


def test_stage_reads_an_optional_document_column():
    stage = stage_class("document_case")()
    assert isinstance(stage, DocumentCaseStage) and stage.takes == ("tokens",) and stage.provides == ("doc_case",)
    tokens = [["Rain", "fell"], ["rain", "."]]
    assert stage({"tokens": tokens, "document": [3, 3]})["doc_case"] == [[LOWER, NO_EVIDENCE], [NO_EVIDENCE, NO_EVIDENCE]]
    assert stage({"tokens": tokens})["doc_case"] == [[NO_DOCUMENT] * 2, [NO_DOCUMENT] * 2]
    assert stage({"tokens": tokens, "document": [None, None]})["doc_case"] == [[NO_DOCUMENT] * 2, [NO_DOCUMENT] * 2]
    with pytest.raises(InputError, match="every sentence or for none"):
        stage({"tokens": tokens, "document": [1, None]})
