"""MFCC / log-mel: parity with librosa, padding invariance, deltas, CMVN, the stages."""
from __future__ import annotations

import pickle
import warnings

import librosa
import numpy as np
import pytest
import scipy.fft
import torch

from seqlab.audio import MFCC, LogMel, LogMelConfig, LogMelTransform, MFCCConfig, MFCCTransform, librosa_reference
from seqlab.audio import filters
from seqlab.core.errors import ConfigError, InputError, NotFittedError
from seqlab.core.registry import stage_class

#: The stated parity tolerance (absolute, on MFCC values of magnitude up to ~400 dB·√n).
TOL = 1e-3
LIBROSA = dict(sr=16000, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)


def _max_err(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    assert [o.shape for o in ours] == [r.shape for r in ref]
    return max(float(np.max(np.abs(o - r))) for o, r in zip(ours, ref))


# -- parity --------------------------------------------------------------------------------
def test_mfcc_matches_librosa_on_corpus_clips(corpus_clips):
    ours = MFCCTransform().clips(corpus_clips)
    ref = [librosa.feature.mfcc(y=c, **LIBROSA).T for c in corpus_clips]
    assert _max_err(ours, ref) < TOL
    assert max(float(np.abs(r).max()) for r in ref) > 100  # the check is on real magnitudes


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mfcc_matches_librosa_on_noise(rng, dtype):
    clips = [(0.1 * rng.standard_normal(n)).astype(dtype) for n in (333, 4000, 16000)]
    ours = MFCC(device="cpu")({"audio": clips})["features"]
    ref = [librosa.feature.mfcc(y=c, **LIBROSA).T for c in clips]
    assert all(o.dtype == np.float32 for o in ours)
    assert _max_err(ours, ref) < TOL


def test_log_mel_matches_librosa(corpus_clips):
    ours = LogMelTransform().clips(corpus_clips[:3])
    ref = [
        librosa.power_to_db(librosa.feature.melspectrogram(y=c, sr=16000, n_fft=512, hop_length=160, n_mels=40)).T
        for c in corpus_clips[:3]
    ]
    assert _max_err(ours, ref) < TOL


@pytest.mark.parametrize(
    "settings",
    [
        dict(mel_scale="htk", mel_norm="none", window="hamming", win_length=400, lifter=22.0),
        dict(pad_mode="reflect", n_fft=400, hop_length=100, f_min=20.0, f_max=7600.0, n_mels=64, n_mfcc=20),
        dict(center=False, dct_norm="none", top_db=60.0, ref=0.01),
        dict(log="ln", power=1.0),
        dict(sample_rate=8000, n_fft=256, hop_length=80, n_mels=23),
    ],
)
def test_mfcc_matches_librosa_reference_for_other_settings(corpus_clips, settings):
    cfg = MFCCConfig(**settings)
    clips = corpus_clips[:3]
    ours = MFCCTransform(cfg).clips(clips)
    ref = [librosa_reference(c, cfg) for c in clips]
    scale = max(float(np.abs(r).max()) for r in ref)
    assert _max_err(ours, ref) < 2e-5 * scale + TOL


@pytest.mark.parametrize("order", [1, 2])
def test_deltas_match_librosa_delta(corpus_clips, order):
    cfg = MFCCConfig(deltas=order, delta_width=9)
    ours = MFCCTransform(cfg).clips(corpus_clips[:3])
    for o, c in zip(ours, corpus_clips[:3]):
        static = librosa.feature.mfcc(y=c, **LIBROSA)
        want = np.concatenate([static] + [librosa.feature.delta(static, width=9, order=k) for k in range(1, order + 1)]).T
        assert o.shape == want.shape == (static.shape[1], 13 * (1 + order))
        assert np.max(np.abs(o - want)) < TOL


def test_deltas_of_clips_shorter_than_the_window_fit_all_frames(rng):
    t = MFCCTransform(deltas=1, delta_width=9, top_db=None)
    clip = (0.1 * rng.standard_normal(480)).astype(np.float32)  # 4 frames < 9
    out = t.clips([clip])[0]
    static = out[:, :13]
    slope = np.polyfit(np.arange(4), static, 1)[0]  # least-squares slope per coefficient
    np.testing.assert_allclose(out[:, 13:], np.broadcast_to(slope, (4, 13)), atol=1e-3)


def test_filterbank_and_dct_match_librosa_and_scipy():
    for htk in (False, True):
        ours = filters.mel_filterbank(16000, 512, 40, 0.0, None, "htk" if htk else "slaney", "slaney")
        np.testing.assert_allclose(ours, librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, htk=htk), rtol=1e-5, atol=1e-9)
    x = np.random.default_rng(0).standard_normal((5, 40))
    np.testing.assert_allclose(x @ filters.dct_matrix(40, 13), scipy.fft.dct(x, norm="ortho")[:, :13], atol=1e-12)
    np.testing.assert_allclose(x @ filters.dct_matrix(40, 40, None), scipy.fft.dct(x), atol=1e-10)


# -- batching ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "settings", [dict(), dict(deltas=2, cmvn="utterance"), dict(pad_mode="reflect", deltas=1), dict(center=False)]
)
def test_padding_never_changes_a_clips_features(corpus_clips, rng, settings):
    clips = [c[:n] for c, n in zip(corpus_clips, (16000, 5000, 700, 9000, 513, 2000))]
    t = MFCCTransform(**settings)
    alone = [t.clips([c])[0] for c in clips]
    together = t.clips(clips)
    tol = 5e-4  # float rounding only: block boundaries differ between the two calls
    assert _max_err(together, alone) < tol
    # padded batch with garbage past each clip's end: masked out, same features
    batch = torch.from_numpy(rng.standard_normal((len(clips), max(map(len, clips)))).astype(np.float32))
    for i, c in enumerate(clips):
        batch[i, : len(c)] = torch.from_numpy(c)
    lengths = torch.tensor([len(c) for c in clips])
    feats, frames = t(batch, lengths)
    assert frames.tolist() == [len(a) for a in alone]
    for i, a in enumerate(alone):
        assert np.max(np.abs(feats[i, : len(a)].numpy() - a)) < tol
        assert torch.all(feats[i, len(a):] == 0)


def test_frame_lengths_match_librosa_frame_count():
    for center in (True, False):
        t = MFCCTransform(center=center)
        for n in (512, 513, 671, 672, 1600, 1759, 16000):
            y = np.zeros(n, np.float32)
            want = librosa.feature.mfcc(y=y, center=center, **LIBROSA).shape[1]
            assert t.frame_lengths(torch.tensor([n])).item() == want == t.config.num_frames(n)


def test_stage_through_datasets_map(corpus_clips):
    import datasets

    stage = stage_class("mfcc")(device="cpu")
    ds = datasets.Dataset.from_dict({"audio": [c.tolist() for c in corpus_clips[:4]]})
    mapped = ds.map(stage, batched=True, batch_size=3)
    direct = stage({"audio": corpus_clips[:4]})["features"]
    for row, want in zip(mapped["features"], direct):
        np.testing.assert_allclose(np.asarray(row, dtype=np.float32), want, atol=1e-5)
    # picklable for num_proc
    again = pickle.loads(pickle.dumps(stage))
    np.testing.assert_array_equal(again({"audio": corpus_clips[:1]})["features"][0], direct[0])


def test_threaded_stage_equals_one_call_and_restores_torch_threads(corpus_clips):
    from seqlab.audio.features import _balanced_chunks

    before = torch.get_num_threads()
    clips = [c[: 500 * (i + 1)] for i, c in enumerate(corpus_clips)]
    threaded = MFCC(threads=3, deltas=1, device="cpu")({"audio": clips})["features"]
    assert torch.get_num_threads() == before
    one_call = MFCCTransform(deltas=1).clips(clips)
    assert _max_err(threaded, one_call) < 5e-4
    chunks = _balanced_chunks(clips, 3)
    assert [len(c) for ch in chunks for c in ch] == [len(c) for c in clips]  # order kept
    assert len(chunks) == 3 and max(sum(map(len, ch)) for ch in chunks) < 0.6 * sum(map(len, clips))


def test_stage_resamples_other_rates_with_one_warning(corpus_clips):
    stage = MFCC(device="cpu")
    clip8k = librosa.resample(corpus_clips[0], orig_sr=16000, target_sr=8000)
    with pytest.warns(UserWarning, match="resampled 8000 Hz → 16000 Hz"):
        out = stage({"audio": [clip8k, corpus_clips[1]], "sample_rate": [8000, 16000]})
    assert out["features"][0].shape[0] == 1 + 2 * len(clip8k) // 160
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stage({"audio": [clip8k], "sample_rate": [8000]})  # warned once already


# -- CMVN ----------------------------------------------------------------------------------
def test_utterance_cmvn_statistics(corpus_clips):
    out = MFCC(cmvn="utterance", deltas=1, device="cpu")({"audio": corpus_clips[:3]})["features"]
    for f in out:
        np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(f.std(axis=0), 1.0, atol=1e-3)
    plain = MFCC(cmvn="utterance", cmvn_variance=False, device="cpu")({"audio": corpus_clips[:1]})["features"][0]
    raw = MFCC(device="cpu")({"audio": corpus_clips[:1]})["features"][0]
    np.testing.assert_allclose(plain, raw - raw.mean(axis=0), atol=1e-3)


def test_global_cmvn_is_fitted_on_training_data_and_saved(tmp_path, corpus_clips):
    import datasets

    train = datasets.Dataset.from_dict({"audio": [c.tolist() for c in corpus_clips[:4]]})
    stage = MFCC(cmvn="global", device="cpu")
    assert stage.needs_fit
    with pytest.raises(NotFittedError):
        stage({"audio": corpus_clips[:1]})
    stage.fit(train, batch_size=3)
    raw = np.concatenate(MFCC(device="cpu")({"audio": corpus_clips[:4]})["features"])
    np.testing.assert_allclose(stage.transform.cmvn_mean.numpy(), raw.mean(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(stage.transform.cmvn_std.numpy(), raw.std(0), rtol=1e-4, atol=1e-3)
    normed = np.concatenate(stage({"audio": corpus_clips[:4]})["features"])
    np.testing.assert_allclose(normed.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(normed.std(0), 1.0, atol=1e-3)
    stage.save_state(tmp_path)
    loaded = MFCC(cmvn="global", device="cpu")
    loaded.load_state(tmp_path)
    np.testing.assert_array_equal(loaded({"audio": corpus_clips[:1]})["features"][0], stage({"audio": corpus_clips[:1]})["features"][0])
    # the module form keeps its statistics in the state dict
    module = MFCCTransform(cmvn="global")
    module.load_state_dict(stage.transform.state_dict())
    assert module.cmvn_fitted


# -- bad input -----------------------------------------------------------------------------
def test_silent_and_clipped_audio_give_finite_features(rng):
    silent = np.zeros(4000, np.float32)
    clipped = np.clip(5 * rng.standard_normal(4000), -1, 1).astype(np.float32)
    f_silent, f_clipped = MFCC(deltas=2, cmvn="utterance", device="cpu")({"audio": [silent, clipped]})["features"]
    assert np.isfinite(f_silent).all() and np.isfinite(f_clipped).all()
    # silence: every mel energy floors at amin → -100 dB → c0 = -100·√40, the rest 0
    raw = MFCC(device="cpu")({"audio": [silent]})["features"][0]
    np.testing.assert_allclose(raw[:, 0], -100 * np.sqrt(40), rtol=1e-5)
    np.testing.assert_allclose(raw[:, 1:], 0.0, atol=1e-3)


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.1, np.nan, 0.2] * 200, np.float32), "NaN or infinite"),
        (np.array([0.1, np.inf] * 300), "NaN or infinite"),
        (np.array([[0.1], None], dtype=object), "dtype object"),
        ("not audio", "expected audio samples"),
        (None, "missing"),
    ],
)
def test_feature_stage_refuses_bad_audio_with_a_message(value, message):
    with pytest.raises(InputError, match=message) as err:
        MFCC(device="cpu")({"audio": [np.zeros(800, np.float32), value]})
    assert "example 1" in str(err.value)


def test_short_clip_without_centering_is_refused():
    with pytest.raises(InputError, match="shorter than one frame"):
        LogMel(center=False, device="cpu")({"audio": [np.zeros(100, np.float32)]})


def test_int16_and_float64_inputs_match_float32(corpus_clips):
    clip = corpus_clips[0]
    pcm = np.round(clip * 32767).astype(np.int16)
    stage = MFCC(device="cpu")
    a, b, c = stage({"audio": [pcm.astype(np.float32) / 32768, pcm, clip.astype(np.float64)]})["features"]
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(c - stage({"audio": [clip]})["features"][0])) < 1e-4


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="n_mfc"):
        MFCC(n_mfc=13)
    with pytest.raises(ConfigError, match="n_mfcc"):
        MFCCConfig(n_mfcc=50, n_mels=40).validate()
    with pytest.raises(ConfigError, match="f_max"):
        LogMel(f_max=9000.0)
    with pytest.raises(ConfigError, match="deltas"):
        LogMelConfig(deltas=3).validate()
    assert MFCCConfig(deltas=2).dim == 39 and LogMelConfig(n_mels=80, deltas=1).dim == 160


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(corpus_clips):
    cfg = MFCCConfig(deltas=2, cmvn="utterance")
    cpu = MFCCTransform(cfg).clips(corpus_clips[:4])
    gpu = MFCCTransform(cfg).to("cuda").clips(corpus_clips[:4])
    assert _max_err(gpu, cpu) < 1e-2
    batch = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(c) for c in corpus_clips[:4]], batch_first=True)
    feats, frames = MFCCTransform(cfg).to("cuda")(batch.to("cuda"), torch.tensor([len(c) for c in corpus_clips[:4]]).to("cuda"))
    assert feats.device.type == "cuda" and frames.tolist() == [len(c) for c in cpu]


def test_reflect_padding_of_clips_shorter_than_half_a_frame(rng):
    t = MFCCTransform(pad_mode="reflect", n_fft=64, hop_length=16, n_mels=10, n_mfcc=5)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (1, 5, 40, 100)]
    packed = t.clips(clips)  # numpy's reflect (repeated mirroring)
    batch = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(c) for c in clips], batch_first=True)
    feats, frames = t(batch, torch.tensor([len(c) for c in clips]))  # index arithmetic on the device
    for i, p in enumerate(packed):
        assert frames[i] == len(p)
        np.testing.assert_allclose(feats[i, : len(p)].numpy(), p, atol=1e-3)


def test_empty_batches():
    assert MFCC(device="cpu", deltas=2)({"audio": []}) == {"features": []}
    feats, frames = MFCCTransform(deltas=1)(torch.zeros(0, 100))
    assert feats.shape == (0, 0, 26) and frames.numel() == 0
