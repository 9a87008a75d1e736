"""Resampling keeps frequencies, agrees with librosa, and batches without changing a clip."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from seqlab.audio import resample, resample_clips
from seqlab.audio.resample import resampled_length


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("orig_sr, freq", [(8000, 1000.0), (22050, 3000.0), (44100, 440.0)])
def test_a_sine_keeps_its_frequency(orig_sr, freq):
    t = np.arange(orig_sr) / orig_sr  # one second
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    (y,) = resample_clips([x], orig_sr, 16000)
    assert len(y) == 16000 == resampled_length(len(x), orig_sr, 16000)
    assert abs(_peak_hz(y, 16000) - freq) <= 1.0
    # The same signal as librosa's (soxr) resampler away from the edges. soxr is within 4e-7 of
    # the analytic sine here, so the gap is torchaudio's windowed sinc (Hann, 6 zero crossings,
    # rolloff 0.99): its passband droop grows towards the band edge, largest for 3 kHz from
    # 22.05 kHz, measured 8.6e-5 / 2.6e-4 / 1.1e-4 for the three cases. 5e-4 (0.1% of the
    # amplitude) is just above the worst; a real resampling bug (wrong rate, shift, filter) is
    # orders of magnitude larger. The RMS is off by at most 5.1e-4 relative (measured), so 1e-3.
    ref = librosa.resample(x, orig_sr=orig_sr, target_sr=16000)
    assert np.max(np.abs(y[200:-200] - ref[200:-200])) < 5e-4
    assert np.sqrt(np.mean(y[200:-200] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


def test_batched_clips_equal_clips_alone():
    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (5, 700, 2205, 44100, 1)]
    together = resample_clips(clips, 22050, 16000)
    for c, y in zip(clips, together):
        alone = resample(torch.from_numpy(c), 22050, 16000).numpy()
        assert len(y) == len(alone) == resampled_length(len(c), 22050, 16000)
        np.testing.assert_allclose(y, alone, atol=1e-6)


def test_same_rate_is_a_no_op():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(resample_clips([x], 16000, 16000)[0], x)


# -- rates whose polyphase kernel would be huge: FFT resampling ------------------------------------
resample_module = __import__("sys").modules["seqlab.audio.resample"]


def test_kernel_size_estimate_matches_torchaudio():
    import torchaudio

    for orig, new in [(8000, 16000), (44100, 16000), (22050, 16000), (48000, 44100), (16000, 8000)]:
        kernel = torchaudio.transforms.Resample(orig, new).kernel
        assert resample_module.kernel_taps(orig, new) == kernel.numel(), (orig, new)


@pytest.mark.parametrize("orig_sr, new_sr", [(16000, 22050), (22050, 16000)])
def test_fft_path_agrees_with_the_polyphase_filter(monkeypatch, orig_sr, new_sr):
    """On a band-limited clip both are exact away from the edges; the FFT path is the periodic ideal."""
    t = np.arange(2 * orig_sr) / orig_sr
    x = (0.6 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1234.5 * t)).astype(np.float32)
    (polyphase,) = resample_clips([x], orig_sr, new_sr)
    monkeypatch.setattr(resample_module, "MAX_KERNEL_TAPS", 0)
    (fft,) = resample_clips([x], orig_sr, new_sr)
    single = resample(torch.from_numpy(x), orig_sr, new_sr).numpy()
    assert len(fft) == len(polyphase) == len(single) == resampled_length(len(x), orig_sr, new_sr)
    np.testing.assert_array_equal(fft, single)
    t2 = np.arange(len(fft)) / new_sr
    ideal = 0.6 * np.sin(2 * np.pi * 440 * t2) + 0.3 * np.sin(2 * np.pi * 1234.5 * t2)
    assert np.max(np.abs(fft - ideal)) < 1e-5  # the clip holds whole periods: exact everywhere
    assert np.max(np.abs(polyphase[500:-500] - fft[500:-500])) < 2e-3


@pytest.mark.parametrize("orig_sr", [16001, 44101, 10**12])
def test_odd_and_huge_source_rates_use_little_memory(orig_sr):
    assert resample_module.kernel_taps(orig_sr, 16000) > resample_module.MAX_KERNEL_TAPS
    x = np.sin(np.arange(4000) * 0.05).astype(np.float32)
    (y,) = resample_clips([x], orig_sr, 16000)
    assert len(y) == resampled_length(4000, orig_sr, 16000) and np.isfinite(y).all()
    if orig_sr == 16001:  # one sample per second fewer: still the same waveform
        assert np.max(np.abs(y[100:-100] - x[100:len(y) - 100])) < 0.01


def test_resample_mixed_resamples_each_other_rate_and_warns_once_per_rate():
    import warnings

    from seqlab.audio.resample import resample_clips, resample_mixed

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (800, 1600, 441)]
    want = [resample_clips([clips[0]], 8000, 16000)[0], clips[1], resample_clips([clips[2]], 22050, 16000)[0]]
    warned: set = set()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = resample_mixed(list(clips), [8000, None, 22050], 16000, "cpu", warned, " before mfcc")
    assert [str(w.message) for w in caught] == [
        "resampled 8000 Hz → 16000 Hz before mfcc (first seen at example 0)",
        "resampled 22050 Hz → 16000 Hz before mfcc (first seen at example 2)",
    ]
    assert warned == {8000, 22050}
    for got, expected in zip(out, want):
        np.testing.assert_array_equal(got, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rate already warned about is resampled silently
        again = resample_mixed(list(clips), [8000, None, 22050], 16000, "cpu", warned)
    np.testing.assert_array_equal(again[0], want[0])
