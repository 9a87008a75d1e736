"""seqlab.audio.chunks: where long clips are cut."""
import doctest

import numpy as np
import pytest

import seqlab.audio.chunks
from seqlab.audio.chunks import chunk_bounds
from seqlab.core.errors import InputError


def test_chunk_bounds_respect_the_limit_and_keep_a_short_tail():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000 * 10).astype(np.float32)
    bounds = chunk_bounds(noise, 16000, max_seconds=3.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(noise)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(0 < end - start <= 3 * 16000 for start, end in bounds)
    # A quiet stretch inside the search window is where the cut goes.
    loud = noise.copy()
    loud[int(2.5 * 16000): int(2.6 * 16000)] = 0.0
    first_cut = chunk_bounds(loud, 16000, max_seconds=3.0)[0][1]
    assert 2.5 * 16000 <= first_cut <= 2.6 * 16000
    # A tail shorter than the minimum joins the chunk before it; short clips are one chunk.
    assert chunk_bounds(np.ones(16000 * 3 + 800, np.float32), 16000, max_seconds=3.0, search_seconds=0.0001) == [(0, 48800)]
    assert chunk_bounds(noise[:16000], 16000, max_seconds=3.0) == [(0, 16000)]
    with pytest.raises(InputError, match="chunk_seconds"):
        chunk_bounds(noise, 16000, max_seconds=0.05)


def test_cuts_fall_in_the_quietest_stretch_and_the_docstring_example_runs():
    quiet, loud = np.zeros(8000, np.float32), np.ones(24000, np.float32)
    first, second = chunk_bounds(np.concatenate([loud, quiet, loud]), 16000, max_seconds=2.0)
    assert first[1] == second[0] and 24000 <= first[1] < 32000  # inside the half second of silence
    result = doctest.testmod(seqlab.audio.chunks)
    assert result.failed == 0 and result.attempted >= 2
