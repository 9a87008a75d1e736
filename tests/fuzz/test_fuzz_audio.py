"""Fuzzing the audio stages: the loader, MFCC and log-mel.

Clips of every dtype (int16/int32/int64, float16/32/64, complex, object, bool), shape (0 and
1 sample, stereo in both layouts, 3-D), content (NaN, inf, huge, denormal, silence), torch
tensors, lists, None, missing paths and junk bytes, at random sample rates (0, negative, 1 Hz,
1 MHz, NaN, strings), each put at a random position of a batch of good clips: a stage
returns finite 1-D float32 audio / finite features of the right size, or a documented error
naming the example.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import audio_values, call, check_explained, fuzz_settings, is_good_clip, sample_rates
from seqlab.audio import MFCC, AudioLoader, LogMel
from seqlab.core.errors import InputError

GOOD = np.linspace(-0.5, 0.5, 800, dtype=np.float32)


@pytest.fixture(scope="module")
def stages():
    return {
        "loader": AudioLoader(),
        "loader_rms": AudioLoader(normalize="rms", nonfinite="zero", max_seconds=1.0, too_long="truncate"),
        "mfcc": MFCC(device="cpu", threads=1),
        "log_mel": LogMel(device="cpu", threads=1, deltas=2, cmvn="utterance"),
        "mfcc_no_center": MFCC(device="cpu", threads=1, center=False),
    }


def _peak(value) -> float:
    try:
        arr = np.asarray(value.float() if hasattr(value, "float") else value, dtype=np.float64)
        return float(np.abs(arr).max()) if arr.size else 0.0
    except (TypeError, ValueError):
        return 0.0


def _check_features(stage, clips, out, value) -> None:
    for clip, feats in zip(clips, out["features"]):
        assert feats.dtype == np.float32 and feats.shape[1] == stage.config.dim
        shape = tuple(clip.shape) if hasattr(clip, "shape") else np.asarray(clip).shape
        n = shape[-1] if len(shape) == 1 else max(shape)
        assert feats.shape[0] == stage.config.num_frames(n)
        assert np.isfinite(feats).all(), f"non-finite features for an accepted clip {value!r:.80}"


@fuzz_settings()
@given(value=audio_values(), position=st.integers(0, 2))
def test_loader_gives_finite_mono_float32_or_names_the_example(stages, value, position):
    clips = [GOOD, GOOD, GOOD]
    clips[position] = value
    for name in ("loader", "loader_rms"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, err = call(stages[name], {"audio": clips})
        if err is not None:
            check_explained(err, index=position)
            continue
        assert len(out["audio"]) == 3 and out["sample_rate"] == [16000] * 3
        for y in out["audio"]:
            assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
        if name == "loader":
            assert is_good_clip(value), f"accepted {value!r:.80}"


@fuzz_settings()
@given(value=audio_values(), position=st.integers(0, 2), which=st.sampled_from(["mfcc", "log_mel", "mfcc_no_center"]))
def test_features_are_finite_and_sized_or_name_the_example(stages, value, position, which):
    stage = stages[which]
    clips = [GOOD, GOOD, GOOD]
    clips[position] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(stage, {"audio": clips})
    if err is not None:
        check_explained(err, index=position)
        return
    assert is_good_clip(value), f"accepted {value!r:.80}"
    _check_features(stage, clips, out, value)


@st.composite
def rate_and_clip(draw):
    rate = draw(sample_rates)
    # Upsampling from 1 Hz makes 16000 samples of each one: keep those clips tiny.
    try:
        low = 0 < float(rate) < 1000  # True is 1 Hz too
    except (TypeError, ValueError):
        low = False
    n = draw(st.integers(1, 8 if low else 3000))
    return rate, np.linspace(-0.3, 0.3, n, dtype=np.float32)


@fuzz_settings()
@given(pair=rate_and_clip(), position=st.integers(0, 1))
def test_sample_rates_are_resampled_or_refused_naming_the_example(stages, pair, position):
    rate, clip = pair
    rates = [16000, 16000]
    rates[position] = rate
    batch = {"audio": [clip, clip], "sample_rate": rates}
    for name in ("loader", "mfcc"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, err = call(stages[name], batch)
        if err is not None:
            check_explained(err, index=position, names=[repr(rate)])
            continue
        if name == "loader":
            assert all(y.dtype == np.float32 and np.isfinite(y).all() for y in out["audio"])
            assert len(out["audio"][1 - position]) == len(clip)  # the 16 kHz clip is untouched
        else:
            assert all(np.isfinite(f).all() for f in out["features"])


@fuzz_settings()
@given(rate=sample_rates)
def test_datasets_audio_dicts_with_any_rate(stages, rate):
    value = {"array": GOOD, "sampling_rate": rate}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(stages["loader"], {"audio": [GOOD, value]})
    if err is not None:
        check_explained(err, index=1)
    else:
        assert np.isfinite(out["audio"][1]).all()


@pytest.mark.parametrize("n", [0, 1, 2, 159, 160, 511, 512, 513, 16000 * 600])
def test_extreme_lengths(stages, n):
    """0 and 1 sample up to 10 minutes: refused with a reason, or features of librosa's frame count."""
    clip = np.zeros(n, np.float32)
    clip[::7] = 0.25
    _, err = call(stages["loader"], {"audio": [GOOD, clip]})
    if n == 0 or n > 120 * 16000:
        assert isinstance(err, InputError) and "example 1" in str(err)
        assert ("empty" if n == 0 else "longer than max_seconds") in str(err)
    else:
        assert err is None
    for name in ("mfcc", "log_mel"):
        out, err = call(stages[name], {"audio": [GOOD, clip]})
        if n == 0:
            check_explained(err, index=1)
            continue
        assert err is None, err
        _check_features(stages[name], [GOOD, clip], out, clip)
    out, err = call(stages["mfcc_no_center"], {"audio": [clip]})
    if n < 512:
        assert isinstance(err, InputError) and "example 0" in str(err)  # shorter than one frame
    else:
        assert out["features"][0].shape[0] == 1 + (n - 512) // 160


def test_a_truncated_ten_minute_clip_is_cut_to_max_seconds(stages):
    out = stages["loader_rms"]({"audio": [np.full(16000 * 600, 0.1, np.float32)]})
    assert out["audio"][0].shape == (16000,)
