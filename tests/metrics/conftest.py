"""Seeded random text and tag generators shared by the metric tests (exposed as fixtures)."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

# Words with mixed case, punctuation, digits and non-ASCII letters, so normalisation,
# tokenisation (sacrebleu 13a) and character n-grams all have something to do.
VOCAB = [
    "the", "The", "cat", "sat", "on", "a", "mat", "dog", "ran", "home", "Müller", "straße", "über",
    "naïve", "café", "don't", "it's", "well-known", "3.5", "42", "hello,", "world!", "(yes)", "end.",
    "a", "an", "of", "to", "Hund", "Katze", "日本", "x", "y", "z",
]


def corrupt(words: list[str], rng: random.Random, rate: float, vocab: list[str] = VOCAB) -> list[str]:
    """Random substitutions, deletions, insertions and adjacent swaps, each at ``rate``/4."""
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < rate / 4:
            continue  # deletion
        if r < rate / 2:
            out.append(rng.choice(vocab))  # substitution
            continue
        out.append(w)
        if r < 3 * rate / 4:
            out.append(rng.choice(vocab))  # insertion
    for k in range(len(out) - 1):
        if rng.random() < rate / 4:
            out[k], out[k + 1] = out[k + 1], out[k]  # swap
    return out


def random_sentence(rng: random.Random, max_words: int = 12, min_words: int = 0) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(rng.randint(min_words, max_words))]


def random_pairs(rng: random.Random, n: int, min_words: int = 0) -> tuple[list[str], list[str]]:
    """``n`` (reference, hypothesis) strings: corrupted copies, unrelated text, empties, odd spacing."""
    refs, hyps = [], []
    for _ in range(n):
        ref = random_sentence(rng, min_words=min_words)
        kind = rng.random()
        if kind < 0.6:
            hyp = corrupt(ref, rng, rng.choice([0.0, 0.1, 0.3, 0.8]))
        elif kind < 0.8:
            hyp = random_sentence(rng)
        elif kind < 0.9:
            hyp = []  # empty hypothesis
        else:
            hyp = list(ref)
        sep = rng.choice([" ", " ", " ", "  "])
        refs.append(sep.join(ref) + rng.choice(["", "", " "]))
        hyps.append(" ".join(hyp))
    return refs, hyps


def random_batches(items: list, rng: random.Random) -> list[tuple[int, int]]:
    """Random contiguous (start, end) slices covering ``items``, empty slices included."""
    cuts = sorted(rng.randint(0, len(items)) for _ in range(rng.randint(0, 4)))
    bounds = [0, *cuts, len(items)]
    return list(zip(bounds[:-1], bounds[1:]))


@pytest.fixture
def text_tools():
    """The generators above, for tests that need them: ``text_tools.corrupt(...)`` etc."""

    return SimpleNamespace(vocab=VOCAB, corrupt=corrupt, random_sentence=random_sentence,
                           random_pairs=random_pairs, random_batches=random_batches)
