"""The bugs the fuzz suite found, pinned with their minimal inputs.

Each test states the behaviour seqlab should have — a documented error naming the input, or
a correct result. A bug not fixed yet is marked ``@bug`` (``xfail(strict=True)``), so its
test starts passing when it is fixed and strict xfail turns the pass into a failure: the
signal to change the marker to ``@fixed`` here and drop the matching entry in
``fuzzkit.KNOWN_BUGS``. ``@fixed`` tests are ordinary regression tests; their reason says
what the bug was.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from fuzzkit import call, check_explained
from seqlab.audio import MFCC, AudioLoader, LogMel
from seqlab.core.errors import DataError, InputError
from seqlab.text.tagged import TagEncoder
from seqlab.text.labels import LabelEncoder
from seqlab.text.tagging import convert_tags
from seqlab.text.vocab import VocabularyStage


def bug(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"bug: {reason}")


def fixed(reason: str):
    """A bug the fuzz suite found, since fixed (the test guards against its return)."""
    def mark(test):
        test.__doc__ = f"Was a bug: {reason}"
        return test
    return mark


@fixed("VocabularyStage.map: an unhashable token (a list) raises TypeError from Vocabulary.encode instead of InputError")
def test_vocabulary_unhashable_token():
    stage = VocabularyStage().fit({"tokens": [["a"]]})
    _, err = call(stage, {"tokens": [["a"], ["a", ["b"]]]})
    assert isinstance(err, InputError)
    check_explained(err, index=1)


@pytest.mark.parametrize("stage", [AudioLoader(), MFCC(device="cpu", threads=1), LogMel(device="cpu", threads=1)],
                         ids=["audio_loader", "mfcc", "log_mel"])
@fixed("audio.signal.as_array: a torch.bfloat16 tensor raises TypeError (numpy has no bfloat16) instead of being read as float")
def test_bfloat16_tensor_audio(stage):
    out, err = call(stage, {"audio": [np.zeros(800, np.float32), torch.full((800,), 0.25, dtype=torch.bfloat16)]})
    if err is not None:
        check_explained(err, index=1)
    else:
        assert np.isfinite(out[next(iter(out))][1]).all()


@pytest.mark.parametrize("value", ["a" * 256, {"path": "b" * 300}], ids=["path", "audio_dict"])
@fixed("audio.io.read_audio: a path with a name over 255 bytes raises OSError (File name too long) from Path.exists, "
     "not InputError")
def test_loader_path_too_long(value):
    _, err = call(AudioLoader(), {"audio": [np.zeros(800, np.float32), value]})
    assert isinstance(err, InputError)
    check_explained(err, index=1)


@pytest.mark.parametrize("batch", [
    {"audio": [np.zeros(800, np.float32)], "sample_rate": [float("inf")]},
    {"audio": [{"array": np.zeros(800, np.float32), "sampling_rate": float("inf")}]},
], ids=["column", "audio_dict"])
@fixed("AudioLoader._read_one: int(inf) raises OverflowError for an infinite sample rate instead of InputError")
def test_loader_infinite_sample_rate(batch):
    _, err = call(AudioLoader(), batch)
    assert isinstance(err, InputError)
    check_explained(err, index=0)


@pytest.mark.parametrize("rate", ["x", float("nan"), float("inf"), [16000]], ids=["str", "nan", "inf", "list"])
@fixed("LogMel/MFCC._clips: int(rate) of the sample_rate column raises ValueError/OverflowError/TypeError, not InputError")
def test_feature_stage_bad_sample_rate_column(rate):
    _, err = call(MFCC(device="cpu", threads=1), {"audio": [np.zeros(800, np.float32)], "sample_rate": [rate]})
    assert isinstance(err, InputError)
    check_explained(err, index=0)


@pytest.mark.parametrize("peak", [1e20, 3.4e38])
@fixed("LogMel/MFCC: finite samples above ~1e19 overflow the float32 power spectrum and give NaN features, silently")
def test_features_of_huge_finite_samples(peak):
    clip = np.full(1600, peak, np.float32)
    clip[::2] *= -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(MFCC(device="cpu", threads=1), {"audio": [clip]})
    if err is not None:
        check_explained(err, index=0)
    else:
        assert np.isfinite(out["features"][0]).all()


_RESAMPLE_PROBE = textwrap.dedent("""
    import json, sys, numpy as np
    from seqlab.audio import AudioLoader
    from seqlab.core.errors import SeqlabError
    out = {}
    for rate in (16001, 44101, 10**12):
        try:
            AudioLoader()({"audio": [np.zeros(100, np.float32)], "sample_rate": [rate]})
            out[rate] = "ok"
        except SeqlabError as err:
            out[rate] = "explained: " + str(err)
        except Exception as err:
            out[rate] = f"crash: {type(err).__name__}: {str(err)[:120]}"
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses prlimit to cap the probe's memory")
@fixed("audio.resample: a rate sharing no large factor with 16 kHz (16001, 44101 Hz) or a huge one (1e12) makes torchaudio "
     "build a polyphase kernel of several GB (the probe is capped at 4 GB); the rate is neither refused nor resampled")
def test_resampling_from_odd_or_huge_rates_stays_in_memory():
    result = subprocess.run(["prlimit", f"--as={4 << 30}", sys.executable, "-c", _RESAMPLE_PROBE],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert not any(v.startswith("crash") for v in outcomes.values()), outcomes


@fixed("TagEncoder: an entity type with white space ('B-PER PER') is a DataError from text.tagging that names no sentence")
def test_tag_type_with_space_names_the_sentence():
    _, err = call(TagEncoder().fit, {"tags": [["B-LOC"], ["O", "B-PER PER"]]})
    assert isinstance(err, DataError)
    check_explained(err, index=1)


@fixed("text.tagging._parse: a tag that is a numpy array makes `tag == 'O'` ambiguous (ValueError), not DataError")
def test_tag_that_is_an_array():
    _, err = call(TagEncoder(types=["PER"]), {"tags": [["O"], [np.array(["B", "PER"])]]})
    assert isinstance(err, DataError)
    check_explained(err, index=1)


@pytest.mark.parametrize("label", ["²", "①"])
@fixed("LabelEncoder.fit/sort_labels: a label str.isdigit() accepts but int() cannot read ('²', '①') raises ValueError")
def test_labels_that_look_like_digits(label):
    enc, err = call(LabelEncoder().fit, {"label": ["1", label]})
    assert err is None, err  # they are ordinary (non-integer) labels
    assert sorted(enc.labels) == sorted(["1", label])


@fixed("text.tagging.convert_tags(None, ...) raises TypeError ('NoneType' is not iterable), not DataError")
def test_convert_tags_of_none():
    _, err = call(convert_tags, None, "IOB2", "IOBES")
    assert isinstance(err, DataError)


@pytest.fixture(scope="module")
def speech_pipe(repo):
    from seqlab.recipe import load_recipe

    recipe = load_recipe(repo / "pipelines" / "speech.yaml", [
        "model.hidden_size=8", "model.num_layers=1", "data.limit_train=4", "mfcc.device=cpu", "model.spec_augment=null",
        "train.time_budget_s=null", "train.epochs=1", "train.progress=off", "device=cpu"])
    train, _ = recipe.datasets()
    pipe = recipe.build(list(train["text"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(train, None, recipe.train)
    return pipe


@pytest.mark.parametrize("beam_size", ["x", float("inf")], ids=["str", "inf"])
def test_speech_beam_size_that_is_not_a_number(speech_pipe, beam_size):
    """Found by the fuzz suite (ValueError/OverflowError from int(beam_size)); fixed: kept as a regression test."""
    _, err = call(speech_pipe, np.zeros(1600, np.float32), decoder="beam", beam_size=beam_size)
    assert isinstance(err, InputError)
    check_explained(err, names=[repr(beam_size), "beam_size"])
