"""Shared fixtures: tiny data, fixed seeds, the repository root."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("SEQLAB_CORPORA", REPO.parent / "shared" / "corpora"))

# Tiny test models run faster on one thread (no intra-op sync), and results do not depend on the core count.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"shared benchmark corpora not found at {CORPORA}")
    return CORPORA


def toy_sentiment(n: int, seed: int = 0) -> dict[str, list]:
    """Sentences whose label is decided by one sentiment word among fillers."""
    rng = random.Random(seed)
    positive = ["great", "wonderful", "brilliant", "loved", "superb"]
    negative = ["awful", "dull", "boring", "mess", "terrible"]
    filler = ["the", "film", "was", "a", "really", "plot", "acting", "quite", "story", "so"]
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = rng.sample(filler, rng.randint(1, 5)) + [rng.choice(positive if label else negative)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return {"text": texts, "label": labels}
