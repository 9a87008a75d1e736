"""Speech task: the CNN → BiRNN → CTC model, the pipeline on audio, bad input, save/load, the recipe."""
import dataclasses
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import seqlab
from corpus_clips import speech_clips
from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.recipe import load_recipe
from seqlab.tasks.speech import (
    SpeechConfig, SpeechModel, collect_tokens, recognise_digits, speech_features,
)

#: Short clips of the project's corpus, one per transcript (first in train.tsv).
WANTED = ["two", "three", "eight", "no", "four", "go back"]
SMALL_CNN = [
    {"channels": 8, "kernel": 3, "stride": [2, 2], "padding": 1, "norm": "layer", "activation": "leaky_relu"},
    {"channels": 8, "kernel": 3, "stride": [2, 1], "padding": 1, "norm": "layer", "activation": "leaky_relu"},
]


def _recipe(**model):
    settings = {
        "task": "speech",
        "audio": {"sample_rate": 16000, "max_seconds": 5},
        "mfcc": {"sample_rate": 16000, "n_mfcc": 20, "cmvn": "utterance", "device": "cpu"},
        "model": {"unit": "word", "cnn": SMALL_CNN, "hidden_size": 32, "num_layers": 1, "dropout": 0.0,
                  "spec_augment": None, **model},
        "train": {"epochs": 60, "batch_size": 2, "lr": 0.01, "progress": "off", "seed": 1},
        "device": "cpu",
    }
    return load_recipe(data=settings)


@pytest.fixture(scope="module")
def trained(request):
    repo = request.config.rootpath
    torch.manual_seed(0)
    paths, texts = speech_clips(repo, WANTED), list(WANTED)
    recipe = _recipe()
    pipe = recipe.build(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe.fit({"audio": paths, "text": texts}, None, recipe.train)
    return pipe, paths, texts, result


# -- the model ---------------------------------------------------------------------------------
def test_a_padded_batch_gives_each_example_its_own_result():
    torch.manual_seed(0)
    model = SpeechModel(SpeechConfig(unit="word", tokens=["a", "b"], feature_dim=12, hidden_size=8, cnn=[
        dict(channels=4, kernel=3, stride=(2, 2), padding=1, norm="layer")])).eval()
    x = torch.randn(3, 23, 12)
    lengths = torch.tensor([23, 9, 14])
    x[1, 9:] = 0
    x[2, 14:] = 0
    batch_lp, batch_len = model.log_probs(x, lengths)
    assert batch_len.tolist() == model.output_lengths(lengths).tolist() == [12, 5, 7]
    for b in range(3):
        alone, n = model.log_probs(x[b : b + 1, : lengths[b]])
        assert int(n) == int(batch_len[b])
        assert torch.allclose(alone[0], batch_lp[b, : int(n)], atol=1e-5)


def test_spec_augment_masks_in_training_only():
    torch.manual_seed(0)
    cfg = SpeechConfig(unit="word", tokens=["a"], feature_dim=12, hidden_size=8, dropout=0.0)
    model = SpeechModel(cfg)
    plain = SpeechModel(dataclasses.replace(cfg, spec_augment=None))
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 40, 12)
    model.eval(), plain.eval()
    assert torch.equal(model.log_probs(x)[0], plain.log_probs(x)[0])
    model.train(), plain.train()
    assert not torch.allclose(model.log_probs(x)[0], plain.log_probs(x)[0])


def test_transcripts_that_cannot_fit_their_frames_are_left_out_with_a_warning():
    from seqlab.train import TrainConfig

    model = SpeechModel(SpeechConfig(unit="char", tokens=list(" abc"), feature_dim=12, hidden_size=8, num_layers=1))
    assert model.time_stride == 2
    columns = {"features": [np.zeros((20, 12), np.float32), np.zeros((6, 12), np.float32)], "text": ["abc", "abcabc"]}
    with pytest.warns(UserWarning, match="1 of 2 training examples are left out"):
        batches = model.train_batches(columns, TrainConfig(batch_size=4), epoch=1)
    assert model.skipped_examples == 1
    assert [b["targets"].tolist() for b in batches] == [[[2, 3, 4]]]
    with pytest.raises(DataError, match="every one of the 1 training transcripts"):
        model.train_batches({"features": columns["features"][1:], "text": ["aaaa"]}, TrainConfig(), epoch=1)
    with pytest.raises(DataError, match="'z'"):
        model.encode_text("zap")


def test_labels_come_from_the_recipe_or_default_to_letters():
    from seqlab.audio import MFCC, AudioLoader
    from seqlab.tasks.speech import DEFAULT_CHARS

    stages = [AudioLoader(), MFCC(n_mfcc=13, device="cpu")]
    model = SpeechModel.from_stages(SpeechConfig(unit="char", hidden_size=8), stages)
    assert model.config.tokens == DEFAULT_CHARS and model.config.feature_dim == 13
    assert model.config.frame_shift_s == 0.01
    with pytest.raises(ConfigError, match="unit: word needs model.tokens"):
        SpeechModel.from_stages(SpeechConfig(unit="word"), stages)
    with pytest.raises(ConfigError, match="one character"):
        SpeechConfig(unit="char", tokens=["ab"]).validate()


def test_a_tiny_character_model_overfits_a_few_clips(repo):
    torch.manual_seed(0)
    texts = ["two", "no", "eight", "go back"]
    paths = speech_clips(repo, texts)
    recipe = _recipe(unit="char", hidden_size=48)
    pipe = recipe.build(texts)
    assert pipe.model_config.tokens == collect_tokens(texts) == [" ", "a", "b", "c", "e", "g", "h", "i", "k", "n", "o", "t", "w"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipe.fit({"audio": paths, "text": texts}, None, recipe.train)
    losses = [h["train_loss"] for h in result.history]
    # CTC first learns to emit blanks (the loss plateaus near 3), then the labels.
    assert losses[-1] < 0.1 * losses[5], losses[::10]
    assert pipe.predict(paths) == texts


# -- the pipeline on audio ------------------------------------------------------------------------
def test_the_trained_pipeline_transcribes_its_clips(trained):
    pipe, paths, texts, result = trained
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.05 * losses[5]
    assert pipe.predict(paths) == texts
    assert isinstance(pipe(paths[0]), str) and pipe(paths[0]) == texts[0]


def test_pipe_on_an_array_at_another_sample_rate_is_resampled(trained):
    from seqlab.audio import resample

    pipe, paths, texts, _ = trained
    audio, rate = sf.read(paths[5], dtype="float32")
    assert rate == 16000
    assert pipe(audio, sample_rate=16000) == texts[5]
    upsampled = resample(torch.from_numpy(audio), 16000, 32000).numpy()
    with pytest.warns(UserWarning, match="32000 Hz → 16000 Hz"):
        assert pipe(upsampled, sample_rate=32000) == texts[5]
    # int16 PCM and a stereo copy are read as the same audio.
    pcm = np.round(audio * 32767).astype(np.int16)
    assert pipe(pcm) == texts[5]
    assert pipe(np.stack([audio, audio], axis=1), sample_rate=16000) == texts[5]


def test_bad_audio_through_the_pipeline(trained, tmp_path):
    pipe, paths, texts, _ = trained
    silent = pipe(np.zeros(16000, np.float32))
    assert isinstance(silent, str)
    with pytest.raises(InputError, match="NaN"):
        pipe(np.full(8000, np.nan, np.float32))
    with pytest.raises(InputError, match="empty"):
        pipe(np.zeros(0, np.float32))
    with pytest.raises(InputError, match="does not exist"):
        pipe(str(tmp_path / "missing.wav"))
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio\n")
    with pytest.raises(InputError, match="not an audio file"):
        pipe(str(fake))
    with pytest.raises(InputError, match="max_seconds"):
        pipe(np.zeros(16000 * 6, np.float32))
    with pytest.raises(InputError, match="expected an audio file path"):
        pipe.predict([None])
    audio, _ = sf.read(paths[0], dtype="float32")
    with pytest.warns(UserWarning, match="clipped"):
        clipped = pipe(np.clip(audio * 50, -1, 1))
    assert isinstance(clipped, str)


def test_timings_and_beam_search_through_the_pipeline(trained):
    pipe, paths, texts, _ = trained
    out = pipe(paths[5], timings=True)
    duration = sf.info(paths[5]).duration
    assert out["text"] == texts[5] == "go back"
    assert [w["word"] for w in out["words"]] == ["go", "back"]
    starts = [w["start"] for w in out["words"]]
    assert starts == sorted(starts) and all(0 <= w["start"] < w["end"] <= duration + 0.05 for w in out["words"])
    assert all(0 < w["score"] <= 1 for w in out["words"])
    assert pipe.predict(paths, decoder="beam", beam_size=4) == texts
    with pytest.raises(InputError, match="did you mean 'beam_size'"):
        pipe(paths[0], beam_sise=4)
    for bad, pattern in [({"beam_size": "x"}, "beam_size='x'"), ({"beam_size": float("inf")}, "beam_size=inf"),
                         ({"decoder": "viterbi"}, "decoder='viterbi'"), ({"timings": "yes"}, "timings='yes'")]:
        with pytest.raises(InputError, match=pattern):
            pipe(paths[0], **bad)


def test_save_load_round_trip_is_identical(trained, tmp_path):
    pipe, paths, texts, _ = trained
    pipe.save(tmp_path / "model")
    loaded = seqlab.load(tmp_path / "model", device="cpu")
    assert loaded.predict(paths) == pipe.predict(paths)
    feats = speech_features(pipe, paths[:2])
    for a, b in zip(feats, speech_features(loaded, paths[:2])):
        np.testing.assert_array_equal(a, b)
    x = torch.as_tensor(feats[0]).unsqueeze(0)
    assert torch.equal(loaded.model.log_probs(x)[0], pipe.model.log_probs(x)[0])
    assert loaded.model_config == pipe.model_config


def test_recognise_digits_from_audio_or_precomputed_features(trained):
    pipe, paths, texts, _ = trained
    words = ("two", "three", "eight", "four")
    from_audio = recognise_digits(pipe, paths[:3] + [paths[4]], words=words)
    assert [r["word"] for r in from_audio] == ["two", "three", "eight", "four"]
    assert [r["digit"] for r in from_audio] == [0, 1, 2, 3]
    assert all(abs(sum(r["scores"]) - 1) < 1e-5 for r in from_audio)
    feats = speech_features(pipe, paths[:3] + [paths[4]])
    from_features = recognise_digits(pipe.model, features=feats, words=words)
    np.testing.assert_allclose([r["scores"] for r in from_features], [r["scores"] for r in from_audio], atol=1e-6)
    with pytest.raises(InputError, match="either audio or features"):
        recognise_digits(pipe)


# -- the recipe ------------------------------------------------------------------------------------
def test_recipe_parses_and_reads_the_corpus(repo):
    recipe = load_recipe(repo / "pipelines" / "speech.yaml", ["train.epochs=2"])
    assert recipe.train.epochs == 2 and recipe.model.cnn[0].stride == (2, 2) and recipe.features == "mfcc"
    train, dev = recipe.datasets()
    assert len(train) == 272 and len(dev) == 48 and set(train.column_names) == {"audio", "text"}
    assert all(p.endswith(".wav") and (repo / "corpora" / "speech" / "wavs").exists() for p in train["audio"][:3])
    with pytest.raises(ConfigError, match=r"unknown key 'hiden_size' \(did you mean 'hidden_size'\?\)"):
        load_recipe(repo / "pipelines" / "speech.yaml", ["model.hiden_size=3"])
    with pytest.raises(ConfigError, match="differs from audio.sample_rate"):
        load_recipe(repo / "pipelines" / "speech.yaml", ["audio.sample_rate=8000"])
    words = load_recipe(repo / "pipelines" / "speech.yaml", ["model.unit=word", "word_list_from_train=true", "lm_order_from_train=2"])
    config = words.model_config(list(train["text"]))
    assert "seven" in config.tokens and config.decoder.word_list == config.tokens and "\\2-grams:" in config.decoder.lm_arpa


def test_recipe_speed_perturbation_triples_the_training_set(repo):
    recipe = load_recipe(repo / "pipelines" / "speech.yaml", ["data.limit_train=3", "speed_perturb=[0.9, 1.1]"])
    train, _ = recipe.datasets()
    assert len(train) == 9 and list(train["text"][:3]) == list(train["text"][3:6]) == list(train["text"][6:])
    assert len(train["audio"][3]) > len(train["audio"][0]) > len(train["audio"][6])  # slower is longer
    with pytest.raises(ConfigError, match="speed factor"):
        load_recipe(repo / "pipelines" / "speech.yaml", ["speed_perturb=[3]"])



# -- very short and long audio (issue #17) ------------------------------------------------------------
def test_audio_shorter_than_the_minimum_gives_an_empty_transcript_or_a_clear_error(trained, tmp_path):
    from seqlab.tasks.speech import MIN_AUDIO_SECONDS, transcribe_audio

    pipe, paths, texts, _ = trained
    audio, rate = sf.read(paths[0], dtype="float32")
    blip = audio[len(audio) // 2: len(audio) // 2 + 160]  # 10 ms of speech
    assert pipe(blip) == "" and pipe(blip, timings=True)["text"] == ""
    assert pipe.predict([blip, paths[0]]) == ["", texts[0]]  # the others in the batch are unaffected
    just_enough = audio[: int(MIN_AUDIO_SECONDS * rate)]
    assert isinstance(pipe(just_enough), str)
    path = tmp_path / "blip.wav"
    sf.write(path, blip, rate)
    with pytest.raises(InputError, match=r"^input 1 \('.*blip.wav'\): the audio lasts 0\.010 s; speech needs at least 0\.1 s"):
        transcribe_audio(pipe, [paths[0], str(path)])


def test_long_audio_is_transcribed_in_chunks_cut_at_pauses(trained, tmp_path):
    from seqlab.tasks.speech import chunk_bounds, transcribe_audio

    pipe, paths, texts, _ = trained
    clips = [sf.read(p, dtype="float32")[0] for p in paths]
    gap = np.zeros(int(1.2 * 16000), np.float32)
    long = np.concatenate([part for clip in clips for part in (clip, gap)])
    path = tmp_path / "long.wav"
    sf.write(path, long, 16000)
    with pytest.raises(InputError, match="longer than max_seconds=5"):
        pipe(str(path))  # the pipeline's own loader refuses it …
    # 2-s chunks hold about one word each, as the tiny model was trained on (with 4-s chunks of two
    # words and long pauses, its utterance CMVN shifts and it may hear nothing at all on some CPUs).
    out = transcribe_audio(pipe, [str(path), paths[0]], chunk_seconds=2.0)  # … transcribe_audio chunks it
    assert out[1] == texts[0]  # a short clip: a plain transcript, as pipe.predict gives
    chunks = out[0]["chunks"]
    bounds = chunk_bounds(long, 16000, 2.0)
    assert len(chunks) == len(bounds) >= len(long) / 16000 / 2.0
    assert [(c["start"], c["end"]) for c in chunks] == [(round(a / 16000, 2), round(b / 16000, 2)) for a, b in bounds]
    assert chunks[0]["start"] == 0.0 and chunks[-1]["end"] == round(len(long) / 16000, 2)
    for (a, b), (c, _) in zip(bounds, bounds[1:]):
        assert b == c and b - a <= 2.0 * 16000
        assert not long[b - 800: b + 800].any()  # every cut lies inside a pause, 50 ms from its speech
    # Each chunk's text is what the pipeline hears in that stretch of audio alone.
    assert [c["text"] for c in chunks] == pipe.predict([long[a:b] for a, b in bounds])
    assert out[0]["text"] == " ".join(c["text"] for c in chunks if c["text"]) != ""
    shown = pipe.model.format_output(out[0])
    assert shown.startswith(f"[0:00.0–0:0{chunks[0]['end']:.1f}] {chunks[0]['text']} [0:0")
