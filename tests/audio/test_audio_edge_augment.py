"""Edge trimming and padding: the energy bounds, the exact cut, seeded draws, the recipe wiring."""
from __future__ import annotations

import numpy as np
import pytest

from seqlab.audio import EdgeAugmentConfig, edge_augment, edge_augment_data, speech_bounds, trim_edges
from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, InputError

RATE = 8000  # 10 ms frames = 80 samples


def _clip(rng: np.random.Generator, lead: int = 800, speech: int = 1600, tail: int = 400, floor: float = 1e-3) -> np.ndarray:
    """Low noise (-60 dB re the tone), a 0.5-amplitude tone, low noise again: frame-aligned lengths."""
    t = np.arange(speech) / RATE
    return np.concatenate([
        floor * rng.standard_normal(lead), 0.5 * np.sin(2 * np.pi * 440 * t), floor * rng.standard_normal(tail),
    ]).astype(np.float32)


def test_speech_bounds_find_the_loud_part_to_the_frame(rng):
    clip = _clip(rng)
    assert speech_bounds(clip, RATE) == (800, 2400)
    # A threshold below the noise floor counts every frame as speech.
    assert speech_bounds(clip, RATE, threshold_db=-90.0) == (0, len(clip))
    # Silence has no edges to cut; an empty clip has no bounds.
    assert speech_bounds(np.zeros(500, np.float32), RATE) == (0, 500)
    assert speech_bounds(np.zeros(0, np.float32), RATE) == (0, 0)


def test_speech_bounds_count_a_last_partial_frame():
    clip = np.zeros(850, np.float32)
    clip[820:] = 1.0  # only the last 30 samples, a partial frame
    assert speech_bounds(clip, RATE) == (800, 850)


def test_trim_edges_removes_exactly_the_quiet_edges(rng):
    clip = _clip(rng)
    out = trim_edges(clip, RATE)
    np.testing.assert_array_equal(out, clip[800:2400])
    # Keep half the lead and all the tail: 400 samples of noise stay in front.
    np.testing.assert_array_equal(trim_edges(clip, RATE, keep_start=0.5, keep_end=1.0), clip[400:])
    np.testing.assert_array_equal(trim_edges(clip, RATE, keep_start=1.0, keep_end=1.0), clip)
    with pytest.raises(InputError, match="keep_start"):
        trim_edges(clip, RATE, keep_start=1.5)


def test_edge_augment_trims_and_pads_within_its_bounds_and_is_seeded(rng):
    clips = [_clip(rng, lead=80 * int(rng.integers(0, 20)), tail=80 * int(rng.integers(0, 20))) for _ in range(40)]
    cfg = EdgeAugmentConfig(trim_p=0.5, max_keep=0.5, pad_p=0.5, max_pad_s=0.1, seed=3)
    out = edge_augment(clips, RATE, cfg)
    assert [len(c) for c in out] == [len(c) for c in edge_augment(clips, RATE, cfg)]  # same seed, same clips
    assert [len(c) for c in out] != [len(c) for c in edge_augment(clips, RATE, EdgeAugmentConfig(trim_p=0.5, pad_p=0.5, seed=4))]
    changed = 0
    for clip, new in zip(clips, out):
        start, end = speech_bounds(clip, RATE)
        lead, tail = start, len(clip) - end
        # The speech (the tone) is always there, whole: the clip is [zeros][part of the lead][speech][part of the tail][zeros].
        speech = clip[lead:len(clip) - tail]
        starts = [i for i in range(len(new) - len(speech) + 1) if np.array_equal(new[i:i + len(speech)], speech)]
        assert len(starts) == 1
        before, after = starts[0], len(new) - starts[0] - len(speech)
        assert before <= lead + 0.1 * RATE and after <= tail + 0.1 * RATE
        changed += len(new) != len(clip)
    assert changed > 10


def test_edge_augment_with_certain_trim_and_no_keep_cuts_to_the_speech(rng):
    clips = [_clip(rng), _clip(rng, lead=160, tail=0)]
    out = edge_augment(clips, RATE, EdgeAugmentConfig(trim_p=1.0, max_keep=0.0))
    np.testing.assert_array_equal(out[0], clips[0][800:2400])
    np.testing.assert_array_equal(out[1], clips[1][160:])
    # Nothing asked, nothing done.
    same = edge_augment(clips, RATE, EdgeAugmentConfig(trim_p=0.0, pad_p=0.0))
    assert all(np.array_equal(a, b) for a, b in zip(same, clips))


def test_edge_augment_data_copies_or_replaces_and_keeps_columns_aligned(rng):
    clips = [_clip(rng), _clip(rng, lead=400)]
    data = {"audio": clips, "text": ["a", "b"], "sample_rate": [RATE, RATE]}
    cfg = EdgeAugmentConfig(copies=2, trim_p=1.0, max_keep=0.0)
    out = edge_augment_data(data, cfg, RATE)
    assert out["text"] == ["a", "b"] * 3 and out["sample_rate"] == [RATE] * 6
    assert [len(a) for a in out["audio"]] == [2800, 2400, 1600, 1600, 1600, 1600]
    replaced = edge_augment_data(data, EdgeAugmentConfig(copies=1, keep_originals=False, trim_p=1.0, max_keep=0.0), RATE)
    assert replaced["text"] == ["a", "b"] and [len(a) for a in replaced["audio"]] == [1600, 1600]
    off = edge_augment_data(data, EdgeAugmentConfig(), RATE)
    assert off["text"] == ["a", "b"] and off["audio"][0] is clips[0]
    with pytest.raises(ConfigError, match="no column 'wav'"):
        edge_augment_data(data, cfg, RATE, audio_column="wav")


def test_bad_edge_config_is_refused_by_name():
    with pytest.raises(ConfigError, match="trim_p"):
        from_dict(EdgeAugmentConfig, {"trim_p": 1.5}, where="edge_augment")
    with pytest.raises(ConfigError, match="threshold_db"):
        from_dict(EdgeAugmentConfig, {"threshold_db": 3}, where="edge_augment")
    with pytest.raises(ConfigError, match="unknown key 'trim'"):
        from_dict(EdgeAugmentConfig, {"trim": 0.5}, where="edge_augment")


def test_the_speech_recipe_applies_edge_augment_to_the_training_set(tmp_path, rng):
    import soundfile as sf

    from seqlab.recipe import load_recipe

    lines = ["file\ttext"]
    for i in range(3):
        sf.write(tmp_path / f"c{i}.wav", _clip(rng), RATE)
        lines.append(f"c{i}.wav\tone")
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    recipe = load_recipe(data={
        "task": "speech", "data": {"train": str(tmp_path / "train.tsv"), "dev": None},
        "audio": {"sample_rate": RATE}, "mfcc": {"sample_rate": RATE},
        "edge_augment": {"copies": 1, "trim_p": 1.0, "max_keep": 0.0},
    })
    train, _ = recipe.datasets()
    lengths = [len(a) for a in train["audio"]]
    assert lengths == [2800] * 3 + [1600] * 3 and train["text"] == ["one"] * 6
