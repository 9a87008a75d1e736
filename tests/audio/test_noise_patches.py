"""Noise at an SNR and segments (seqlab.audio.noise); MFCC patches and fixed frames (seqlab.audio.patches)."""
from __future__ import annotations

import numpy as np
import pytest

from seqlab.audio.noise import add_noise, cut_segments, pink_noise, white_noise
from seqlab.audio.patches import fixed_frames, frame_patches, overlap_average
from seqlab.core.errors import ConfigError, InputError
from tests.tasks.clip_toys import RATE, tone


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_add_noise_hits_the_requested_snr(kind):
    rng = np.random.default_rng(2)
    x = tone(300, rng, seconds=1.0)
    for snr in (0.0, 10.0, 20.0):
        y = add_noise(x, snr, kind, np.random.default_rng(3))
        measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y.astype(np.float64) - x) ** 2))
        assert measured == pytest.approx(snr, abs=1e-3)
    with pytest.raises(InputError, match="silent"):
        add_noise(np.zeros(100, np.float32), 10.0, kind)


def test_pink_noise_has_a_one_over_f_spectrum():
    x = pink_noise(2 ** 16, np.random.default_rng(4)).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size)
    band = (freqs > 1e-3) & (freqs < 0.4)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)
    white = np.abs(np.fft.rfft(white_noise(2 ** 16, np.random.default_rng(4)))) ** 2
    assert np.polyfit(np.log(freqs[band]), np.log(white[band]), 1)[0] == pytest.approx(0.0, abs=0.1)


def test_cut_segments_lengths_and_pauses():
    rng = np.random.default_rng(6)
    speech = np.concatenate([tone(300, rng, 1.0), np.zeros(RATE, np.float32), tone(300, rng, 1.0)])
    segs = cut_segments(speech, RATE, 0.5, 0.5, rng=np.random.default_rng(0))
    assert [len(s) for s in segs] == [4000] * 4   # the two silent half-seconds are dropped
    kept = cut_segments(speech, RATE, 0.5, 0.5, silence_db=None)
    assert len(kept) == 6


def test_patches_cover_every_frame_and_average_back():
    rng = np.random.default_rng(5)
    feats = [rng.normal(size=(23, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)]
    patches, owner = frame_patches(feats, frames=5, hop=4)
    # starts 0, 4, 8, 12, 16 and one flush with the end (18) for the first clip; one padded window for the second
    assert owner.tolist() == [0] * 6 + [1]
    assert np.array_equal(patches[5], feats[0][18:23])
    assert np.array_equal(patches[6][:3], feats[1]) and np.array_equal(patches[6][3], feats[1][-1])
    back = overlap_average(patches, [23, 3], frames=5, hop=4)
    assert all(np.allclose(b, f) for b, f in zip(back, feats))
    with pytest.raises(InputError, match="coefficients"):
        frame_patches([np.zeros((6, 4)), np.zeros((6, 5))], frames=3, hop=1)


def test_fixed_frames_resize_and_pad_crop():
    f = np.stack([np.arange(10.0), -np.arange(10.0)], 1)
    out = fixed_frames(f, 19)
    assert out.shape == (19, 2) and out[0, 0] == 0 and out[-1, 0] == 9 and out[1, 0] == pytest.approx(0.5)
    assert fixed_frames(f, 4, "pad_crop")[:, 0].tolist() == [3, 4, 5, 6]
    padded = fixed_frames(f[:2], 5, "pad_crop")[:, 0].tolist()
    assert padded == [0, 0, 1, 1, 1]
    with pytest.raises(ConfigError, match="mode"):
        fixed_frames(f, 4, "stretch")
