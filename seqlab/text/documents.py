"""Document context for taggers: how a word is written *elsewhere in its document*.

A sentence alone often cannot say whether a capitalised word is a name: it may open the
sentence, or the sentence may be an all-capitals headline ("SOCCER - JAPAN GET LUCKY WIN").
The rest of the document usually can: the same word written "Japan" in the middle of an
ordinary sentence is a name, written "win" it is not. This is the "global" case evidence
of Chieu & Ng (2003) and the non-local features of Ratinov & Roth (2009), who found such
document-level evidence helps most on names unseen in training.

For each token, ``document_case_ids`` looks at the *other* occurrences of its lower-cased
form in the same document and gives one id:

==  ===========================================================================
0   padding (never produced here; the model's pad value)
1   no document given: the sentence was tagged alone (``NO_DOCUMENT``)
2   no evidence: no other occurrence that says anything about case
3   written lower-case elsewhere, never capitalised in running text
4   capitalised in running text elsewhere, never lower-case
5   both
==  ===========================================================================

"Capitalised in running text" means a first letter in upper case at a position other than
the first token of a sentence that is not a headline. A headline (every cased letter of the
sentence upper case) says nothing about case, so its tokens give no evidence; they receive
it from the rest of the document. Tokens without a cased letter (numbers, punctuation) are
always 2.

The stage (``DocumentCaseStage``) reads the ``tokens`` column and, when present, a
``document`` column (one document id per sentence, as ``read_conll(keep_documents=True)``
gives). Rows with equal ids form one document, wherever they are. Without a ``document``
column every token gets ``NO_DOCUMENT``: a user's single sentence carries no document, and
the model learns that case in training by ``document_dropout``. The stage must see whole
documents: with ``datasets.Dataset.map(stage, batched=True)`` give ``batch_size=None`` (or
batches that do not cut documents).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.errors import InputError
from ..core.stage import InputOutputStage

PAD, NO_DOCUMENT, NO_EVIDENCE, LOWER, CAPITALISED, BOTH = range(6)
#: Number of ids (the size of the model's embedding table).
NUM_IDS = 6


def _is_headline(tokens: Sequence[str]) -> bool:
    cased = [c for t in tokens for c in t if c.isupper() or c.islower()]
    return bool(cased) and not any(c.islower() for c in cased)


def _evidence(tokens: Sequence[str]) -> list[tuple[bool, bool]]:
    """(capitalised in running text, lower-case) for each token of one sentence."""
    headline = _is_headline(tokens)
    out = []
    for position, token in enumerate(tokens):
        lower = token.islower()
        capital = not headline and position > 0 and token[:1].isupper()
        out.append((capital, lower))
    return out


def document_case_ids(sentences: Sequence[Sequence[str]], documents: Sequence[Any] | None = None) -> list[list[int]]:
    """One id per token (see the module docstring); ``documents``: one id per sentence, or None.

    >>> doc = [["SOCCER", "-", "JAPAN", "WIN"], ["Japan", "beat", "Syria", "."], ["The", "win", "was", "Japan", "'s"]]
    >>> document_case_ids(doc, [0, 0, 0])
    [[2, 2, 4, 3], [4, 2, 2, 2], [2, 2, 2, 2, 2]]
    >>> document_case_ids(doc[:1])
    [[1, 1, 1, 1]]
    """
    if documents is None:
        return [[NO_DOCUMENT] * len(s) for s in sentences]
    if len(documents) != len(sentences):
        raise InputError(f"document ids: {len(documents)} given for {len(sentences)} sentences; give one per sentence")
    evidence = [_evidence(s) for s in sentences]
    counts: dict[tuple[Any, str], list[int]] = {}
    for doc, tokens, marks in zip(documents, sentences, evidence):
        for token, (capital, lower) in zip(tokens, marks):
            if capital or lower:
                entry = counts.setdefault((doc, token.lower()), [0, 0])
                entry[0] += capital
                entry[1] += lower
    out = []
    for doc, tokens, marks in zip(documents, sentences, evidence):
        row = []
        for token, (capital, lower) in zip(tokens, marks):
            entry = counts.get((doc, token.lower()))
            if entry is None:
                row.append(NO_EVIDENCE)
                continue
            others_capital, others_lower = entry[0] - capital, entry[1] - lower  # not this token itself
            row.append(NO_EVIDENCE + (others_lower > 0) + 2 * (others_capital > 0))
        out.append(row)
    return out


@dataclass
class DocumentCaseConfig:
    #: Column of sentences (lists of tokens).
    input: str = "tokens"
    #: Column of document ids, one per sentence; when absent every token gets NO_DOCUMENT.
    document: str = "document"
    output: str = "doc_case"


class DocumentCaseStage(InputOutputStage):
    """``tokens`` (+ ``document``) → ``doc_case``: per token, its case elsewhere in the document.

    >>> stage = DocumentCaseStage()
    >>> stage({"tokens": [["Rain", "fell"], ["rain", "."]], "document": [7, 7]})["doc_case"]
    [[3, 2], [2, 2]]
    """

    kind = "document_case"
    Config = DocumentCaseConfig

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        documents = batch.get(self.config.document)
        if documents is not None and any(d is None for d in documents):
            if all(d is None for d in documents):
                documents = None
            else:
                raise InputError(f"column {self.config.document!r}: give a document id for every sentence or for none")
        return {self.config.output: document_case_ids(batch[self.config.input], documents)}
