"""Cutting long clips at pauses, so that each piece can be recognised on its own.

Task-independent signal logic: where to cut a clip into chunks of at most a given length,
choosing the quietest stretch (lowest short-time energy) before each limit so that a cut
falls between words rather than inside one. ``seqlab.tasks.speech_inference.transcribe_audio``
uses it for ``seqlab predict`` on long recordings.
"""
from __future__ import annotations

import numpy as np

from seqlab.core.errors import InputError

__all__ = ["CHUNK_SECONDS", "MIN_AUDIO_SECONDS", "chunk_bounds"]

#: Clips shorter than this hold no word: speech's ``decode`` gives them an empty transcript,
#: ``transcribe_audio`` (``seqlab predict``) refuses them with an ``InputError``, and a
#: shorter tail joins the chunk before it.
MIN_AUDIO_SECONDS = 0.1
#: ``transcribe_audio`` cuts longer clips into chunks of at most this many seconds.
CHUNK_SECONDS = 20.0


def chunk_bounds(audio: np.ndarray, sample_rate: int, max_seconds: float = CHUNK_SECONDS,
                 search_seconds: float | None = None, frame_seconds: float = 0.02) -> list[tuple[int, int]]:
    """Where to cut a long clip: ``(start, end)`` samples of chunks of at most ``max_seconds``.

    Each cut lies in the middle of the quietest 0.1 s (lowest mean energy over five
    ``frame_seconds`` frames) of the last ``search_seconds`` (default a quarter of
    ``max_seconds``, at most 5 s) before the limit, so that it falls in a pause rather than
    inside a word. A tail shorter than ``MIN_AUDIO_SECONDS`` joins the chunk before it.

    >>> quiet = np.zeros(8000, np.float32); loud = np.ones(24000, np.float32)
    >>> chunk_bounds(np.concatenate([loud, quiet, loud]), 16000, max_seconds=2.0)
    [(0, 24800), (24800, 56000)]
    """
    if not max_seconds > MIN_AUDIO_SECONDS:
        raise InputError(f"chunk_seconds must be more than {MIN_AUDIO_SECONDS} s, got {max_seconds}")
    size, total = int(max_seconds * sample_rate), len(audio)
    search = int(min(max_seconds / 4, 5.0) * sample_rate) if search_seconds is None else int(search_seconds * sample_rate)
    frame = max(1, int(frame_seconds * sample_rate))
    energy = np.asarray(audio, dtype=np.float64) ** 2
    bounds, start = [], 0
    while total - start > size:
        low, high = start + max(size - search, frame), start + size
        window = energy[low:high]
        usable = (len(window) // frame) * frame
        if usable:
            means = window[:usable].reshape(-1, frame).mean(axis=1)
            width = min(len(means), max(1, int(round(0.1 / frame_seconds))))
            smooth = np.convolve(means, np.ones(width) / width, mode="valid")
            cut = low + (int(np.argmin(smooth)) + width // 2) * frame + frame // 2
        else:
            cut = high
        bounds.append((start, cut))
        start = cut
    if bounds and total - start < MIN_AUDIO_SECONDS * sample_rate:
        start = bounds.pop()[0]
    bounds.append((start, total))
    return bounds
