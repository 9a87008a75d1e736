"""Fixtures for the audio tests: a few clips of the project's own speech corpus, seeded noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SPEECH = Path(__file__).resolve().parents[2] / "corpora" / "speech"


@pytest.fixture(scope="session")
def corpus_clips() -> list[np.ndarray]:
    """Six real clips (16 kHz float32) of different lengths from corpora/speech."""
    from seqlab.audio import read_audio

    rows = (SPEECH / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    names = [r.split("\t")[0] for r in rows[:6]]
    clips = []
    for name in names:
        audio, sr = read_audio(SPEECH / name)
        assert sr == 16000
        clips.append(audio)
    return clips


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
