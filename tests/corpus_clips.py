"""Clips of the project's own speech corpus (corpora/speech), for tests that train tiny speech models.

``tests/`` is on ``sys.path`` (pytest inserts the folder of the root ``conftest.py``), so any test
module can ``from corpus_clips import speech_clips``.
"""
from __future__ import annotations

import csv
from pathlib import Path


def speech_clips(repo: Path, wanted: list[str]) -> list[str]:
    """The path of the first clip in ``corpora/speech/train.tsv`` whose transcript is each of ``wanted``."""
    root = Path(repo) / "corpora" / "speech"
    with open(root / "train.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    picked: dict[str, str] = {}
    for row in rows:
        if row["text"] in wanted and row["text"] not in picked:
            picked[row["text"]] = str(root / row["file"])
    return [picked[t] for t in wanted]
