"""Reading files and the audio_loader stage: formats, rates, channels, levels, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from seqlab.audio import AudioLoader, read_audio, split_clip
from seqlab.audio.signal import peak_normalize, rms_normalize
from seqlab.core.errors import ConfigError, InputError
from seqlab.core.registry import stage_class


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_registry_names_resolve():
    from seqlab.audio import MFCC, LogMel

    assert stage_class("audio_loader") is AudioLoader
    assert stage_class("mfcc") is MFCC and stage_class("log_mel") is LogMel


def test_read_wav_and_flac_stereo_mixed_to_mono(tmp_path):
    left, right = _sine(440, 16000, 0.1), _sine(440, 16000, 0.1, amp=0.1)
    stereo = np.stack([left, right], axis=1)
    for ext, subtype in (("wav", "PCM_16"), ("flac", "PCM_16"), ("wav", "FLOAT")):
        path = tmp_path / f"s_{subtype}.{ext}"
        sf.write(path, stereo, 16000, subtype=subtype)
        mono, sr = read_audio(path)
        assert sr == 16000 and mono.dtype == np.float32 and mono.ndim == 1
        np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-4)


def test_not_audio_and_missing_files_name_the_file(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("this is not a sound file\n" * 20)
    with pytest.raises(InputError, match="notes.wav.*not an audio file"):
        read_audio(text)
    with pytest.raises(InputError, match="missing.wav.*does not exist"):
        AudioLoader()({"audio": [str(tmp_path / "missing.wav")]})
    with pytest.raises(InputError, match="example 0 .*notes.wav"):
        AudioLoader()({"audio": [str(text)]})


def test_loader_reads_paths_relative_to_root_and_resamples_with_one_warning(tmp_path):
    sf.write(tmp_path / "a.wav", _sine(300, 8000, 0.5), 8000, subtype="PCM_16")
    sf.write(tmp_path / "b.wav", _sine(300, 16000, 0.25), 16000, subtype="PCM_16")
    loader = AudioLoader(root=str(tmp_path), sample_rate=16000)
    with pytest.warns(UserWarning, match="resampled 8000 Hz → 16000 Hz"):
        out = loader({"audio": ["a.wav", "b.wav"]})
    assert [len(a) for a in out["audio"]] == [8000, 4000]
    assert out["sample_rate"] == [16000, 16000]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader({"audio": ["a.wav"]})  # the same rate warns once only


def test_loader_reads_datasets_audio_values(tmp_path):
    import datasets
    import torch

    sf.write(tmp_path / "a.wav", _sine(300, 8000, 0.25), 8000, subtype="PCM_16")
    ds = datasets.Dataset.from_dict({"audio": [str(tmp_path / "a.wav")]}).cast_column("audio", datasets.Audio(decode=False))
    with pytest.warns(UserWarning, match="resampled 8000 Hz"):
        out = ds.map(AudioLoader(sample_rate=16000), batched=True)
    assert len(out[0]["audio"]) == 4000 and out[0]["sample_rate"] == 16000

    class FakeDecoder:  # what datasets >= 4 yields with torchcodec installed
        def get_all_samples(self):
            return type("Samples", (), {"data": torch.full((2, 800), 0.25), "sample_rate": 16000})()

    np.testing.assert_allclose(AudioLoader()({"audio": [FakeDecoder()]})["audio"][0], np.full(800, 0.25))


def test_loader_takes_arrays_dicts_and_a_rate_column():
    sine8k = _sine(500, 8000, 0.2)
    loader = AudioLoader(column="samples", sample_rate=16000)
    assert loader.takes == ("samples",)
    with pytest.warns(UserWarning, match="resampled 8000 Hz → 16000 Hz"):
        out = loader({"samples": [sine8k, {"array": sine8k, "sampling_rate": 8000}], "sample_rate": [8000, 16000]})
    assert [len(a) for a in out["audio"]] == [3200, 3200]  # the dict's own rate wins
    np.testing.assert_allclose(out["audio"][0], out["audio"][1])


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.array([0, 16384, -32768], np.int16), [0.0, 0.5, -1.0]),
        (np.array([0, 2**30], np.int32), [0.0, 0.5]),
        (np.array([128, 192], np.uint8), [0.0, 0.5]),
        (np.array([0.25, -0.5], np.float64), [0.25, -0.5]),
        ([0.25, -0.5], [0.25, -0.5]),
    ],
)
@pytest.mark.filterwarnings("ignore:example 0. 33.3% of the samples are at full scale")
def test_loader_scales_sample_formats(array, expected):
    out = AudioLoader(allow_empty=True)({"audio": [array]})["audio"][0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected)


def test_loader_mixes_array_channels_in_either_layout():
    stereo = np.stack([np.full(100, 0.2, np.float32), np.full(100, 0.4, np.float32)])
    a = AudioLoader()({"audio": [stereo]})["audio"][0]
    b = AudioLoader()({"audio": [stereo.T]})["audio"][0]
    np.testing.assert_allclose(a, 0.3, rtol=1e-6)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "value, message",
    [
        (np.array([np.zeros(3), None], dtype=object), "dtype object"),
        (np.array([1, 2, 3], np.int64), "no standard full scale"),
        (np.array([True, False]), "dtype bool"),
        (np.array([0.1, np.nan] * 10, np.float32), "NaN or infinite"),
        (np.zeros(0, np.float32), "empty"),
        (np.zeros((2, 2, 2), np.float32), "shape"),
        (None, "missing"),
        ({"sampling_rate": 8000}, "needs 'array'"),
    ],
)
def test_loader_refuses_bad_arrays_naming_the_example(value, message):
    with pytest.raises(InputError, match=message) as err:
        AudioLoader()({"audio": [np.zeros(10, np.float32), value]})
    assert "example 1" in str(err.value)


def test_nonfinite_samples_can_be_zeroed():
    out = AudioLoader(nonfinite="zero")({"audio": [np.array([0.5, np.nan, -np.inf, 0.25], np.float32)]})["audio"][0]
    np.testing.assert_array_equal(out, [0.5, 0.0, 0.0, 0.25])


def test_too_long_audio_is_refused_or_truncated():
    long = np.zeros(16000 * 3, np.float32)
    with pytest.raises(InputError, match=r"lasts 3\.0 s, longer than max_seconds=2"):
        AudioLoader(max_seconds=2.0)({"audio": [long]})
    out = AudioLoader(max_seconds=2.0, too_long="truncate")({"audio": [long]})["audio"][0]
    assert len(out) == 32000
    pieces = split_clip(np.arange(25.0), 10, 1.0, overlap_seconds=0.5)
    assert [p[0] for p in pieces] == [0, 5, 10, 15] and len(pieces[-1]) == 10


def test_clipped_and_unscaled_audio_warn_but_load():
    rng = np.random.default_rng(0)
    clipped = np.clip(4 * rng.standard_normal(1000), -1, 1).astype(np.float32)
    with pytest.warns(UserWarning, match="clipped"):
        out = AudioLoader()({"audio": [clipped]})
    np.testing.assert_array_equal(out["audio"][0], clipped)
    with pytest.warns(UserWarning, match="not scaled to"):
        AudioLoader()({"audio": [np.array([3000.0, -2000.0] * 50, np.float32)]})


def test_normalisation_peak_and_rms():
    x = _sine(200, 16000, 0.1, amp=0.1)
    peaked = AudioLoader(normalize="peak", peak_level=0.9)({"audio": [x]})["audio"][0]
    assert np.max(np.abs(peaked)) == pytest.approx(0.9, rel=1e-6)
    rmsed = AudioLoader(normalize="rms", rms_level_db=-20.0)({"audio": [x]})["audio"][0]
    assert 20 * np.log10(np.sqrt(np.mean(rmsed.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=1e-4)
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(peak_normalize(silent), silent)
    np.testing.assert_array_equal(rms_normalize(silent), silent)


def test_loader_config_errors():
    with pytest.raises(ConfigError, match="normalize"):
        AudioLoader(normalize="loud")
    with pytest.raises(ConfigError, match="max_seconds"):
        AudioLoader(max_seconds=-1.0)


def test_bytes_that_are_not_audio_are_named_without_an_object_address():
    """seqlab serve passes uploads as bytes: the message must not quote ``<_io.BytesIO object at 0x…>``."""
    from seqlab.audio.io import read_audio
    from seqlab.core.errors import InputError

    with pytest.raises(InputError, match=r"^audio bytes is not an audio file") as info:
        read_audio(b"not audio at all" * 10)
    assert "0x" not in str(info.value) and "BytesIO" not in str(info.value)
    assert "Error opening the bytes" in str(info.value)
