"""The committed speech corpus (corpora/speech) is what its script says it is."""
from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf

SPEECH = Path(__file__).resolve().parents[2] / "corpora" / "speech"


def _rows(name: str) -> list[tuple[str, str]]:
    lines = (SPEECH / name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file\ttext"
    return [tuple(line.split("\t")) for line in lines[1:]]


def test_transcripts_splits_and_files():
    rows = _rows("transcripts.tsv")
    train, dev = _rows("train.tsv"), _rows("dev.tsv")
    assert 300 <= len(rows) <= 500
    assert not set(train) & set(dev) and sorted(train + dev) == sorted(rows)
    assert len(dev) >= 30
    for file, text in rows:
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", text), text
    assert {w for _, t in rows for w in t.split()} >= {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    total = 0
    for file, _ in rows:
        info = sf.info(str(SPEECH / file))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert 0.15 < info.duration < 4.0
        total += (SPEECH / file).stat().st_size
    assert total <= 6_000_000
    assert sorted(p.name for p in (SPEECH / "wavs").iterdir()) == sorted(Path(f).name for f, _ in rows)
