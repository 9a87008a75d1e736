"""ClipSet (a dataset of clips the Pipeline reads) and the digit labels (seqlab.data.clips)."""
from __future__ import annotations

import numpy as np
import pytest

from seqlab.core.errors import ConfigError, DataError
from seqlab.data.clips import ClipSet, digit_of, is_digit_string, read_clip_table


def test_digit_labels():
    assert [digit_of(x) for x in ("zero", "9", 4, "ten", "one two")] == [0, 9, 4, None, None]
    assert is_digit_string("three one 4") and not is_digit_string("go back")


def test_clipset_reads_like_a_dataset():
    clips = ClipSet([np.zeros(4, np.float32), "a.wav", np.ones(2, np.float32)], digits=[1, None, 2],
                    anomalous=[False, True, False])
    assert len(clips) == 3 and clips.column_names == ["audio", "digit", "anomalous", "name"]
    columns = clips.to_dict()
    assert columns["digit"] == [1, None, 2] and columns["anomalous"] == [False, True, False]
    assert columns["name"] == ["clip 0", "clip 1", "clip 2"]
    assert clips.outliers().audio == ["a.wav"] and len(clips.inliers() + clips.outliers()) == 3
    with pytest.raises(DataError, match="2 digits for 3 clips"):
        ClipSet([np.zeros(1)] * 3, digits=[1, 2])


def test_read_clip_table_resolves_paths_and_names_missing_columns(repo):
    paths, labels = read_clip_table(repo / "corpora" / "speech" / "dev.tsv")
    assert paths[0].is_file() and len(paths) == len(labels) > 0
    with pytest.raises(ConfigError, match="no column 'digit'"):
        read_clip_table(repo / "corpora" / "speech" / "dev.tsv", label_column="digit")
