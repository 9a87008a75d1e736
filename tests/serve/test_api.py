"""``seqlab serve``'s HTTP API (docs/serve.md): what each endpoint answers, and that predictions are ``pipe.predict``'s."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

import seqlab
from seqlab.core.errors import InputError, SeqlabError
from seqlab.core.serialization import read_config
from seqlab.serve import ServeSettings, create_app
from seqlab.serve.app import to_jsonable
from seqlab.tasks.speech_inference import transcribe_audio


@pytest.fixture(scope="module")
def pipes(tiny_model_dirs):
    return {task: seqlab.load(folder, device="cpu") for task, folder in tiny_model_dirs.items()}


@pytest.fixture(scope="module")
def client(tiny_model_dirs):
    app = create_app(tiny_model_dirs, ServeSettings(max_wait_ms=1.0))
    with TestClient(app) as client:
        yield client


def predict(client, name, body):
    return client.post(f"/api/models/{name}/predict", json=body)


def python_error(call) -> SeqlabError:
    with pytest.raises(SeqlabError) as err:
        call()
    return err.value


def samples_of(path) -> tuple[list[float], int]:
    data, rate = sf.read(path, dtype="float32")
    return data.tolist(), rate


# -- health and model information -------------------------------------------------------------
def test_health_lists_the_models(client):
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "models": ["sentiment", "ner", "translation", "speech", "lm"],
                             "seqlab_version": seqlab.__version__}


def test_model_info_gives_task_input_labels_metrics_options(client, pipes, tiny_model_dirs):
    models = client.get("/api/models").json()["models"]
    assert [m["name"] for m in models] == ["sentiment", "ner", "translation", "speech", "lm"]
    info = {m["name"]: m for m in models}
    for name, one in info.items():
        assert client.get(f"/api/models/{name}").json() == one
        assert one["task"] == pipes[name].task and one["seqlab_version"] == seqlab.__version__
        assert one["input"] == ("audio" if name == "speech" else "text")
        # The dev metrics that training saved with the model.
        dev = read_config(tiny_model_dirs[name])["meta"]["summary"]["dev"]
        assert one["metrics"] == pytest.approx(dev) and one["metrics"]
    assert info["sentiment"]["labels"] == list(pipes["sentiment"].model.config.labels)
    tags = pipes["ner"].model.config.tags
    assert info["ner"]["labels"] == sorted({t.split("-", 1)[1] for t in tags if t != "O"})
    assert info["sentiment"]["options"] == {}
    # NER's one option is data: the document its inputs form (read by models with document context).
    assert set(info["ner"]["options"]) == {"document"} and info["ner"]["options"]["document"]["default"] is None
    beam = info["translation"]["options"]["beam_size"]
    assert beam == {"type": "int", "default": pipes["translation"].model.config.beam_size, "low": 1, "high": 256,
                    "choices": None, "doc": pipes["translation"].model.options["beam_size"].doc}
    assert set(info["translation"]["options"]) == set(pipes["translation"].model.options)
    # A clip's sample rate travels with its samples, not as an option.
    assert set(info["speech"]["options"]) == set(pipes["speech"].model.options) - {"sample_rate"}
    assert info["speech"]["options"]["decoder"]["choices"] == ["greedy", "beam"]
    assert info["lm"]["options"]["max_tokens"]["default"] == pipes["lm"].model.config.generation.max_tokens


def test_unknown_model_is_404_naming_the_loaded_ones(client):
    for answer in (client.get("/api/models/nope"), predict(client, "nope", {"input": "x"})):
        assert answer.status_code == 404
        assert answer.json()["error"] == "no model named 'nope'; loaded: sentiment, ner, translation, speech, lm"


# -- predictions are pipe.predict's ----------------------------------------------------------
@pytest.mark.parametrize("name, inputs, options", [
    ("sentiment", ["a great film", "a dull mess", "boring"], {}),
    ("ner", ["Angela Merkel visited Paris.", ["The", "United", "Nations", "met", "."]], {}),
    ("translation", ["A man is riding a bicycle.", "Two dogs."], {"beam_size": 1}),
    ("lm", ["the film", "a"], {"seed": 3, "max_tokens": 4}),
])
def test_predictions_equal_pipe_predict(client, pipes, name, inputs, options):
    expected = to_jsonable(pipes[name].predict(inputs, **options))
    many = predict(client, name, {"inputs": inputs, "options": options})
    assert many.status_code == 200, many.text
    assert many.json() == {"predictions": json.loads(json.dumps(expected))}
    one = predict(client, name, {"input": inputs[0], "options": options})
    alone = to_jsonable(pipes[name].predict(inputs[:1], **options))[0]  # a batch of one rounds its own way
    assert one.json() == {"prediction": json.loads(json.dumps(alone))}


def test_speech_from_json_samples_and_from_uploads(client, pipes, speech_wavs):
    expected = transcribe_audio(pipes["speech"], [str(p) for p in speech_wavs])  # what `seqlab predict` gives
    assert all(isinstance(e, str) for e in expected)
    clips = []
    for path in speech_wavs:
        samples, rate = samples_of(path)
        clips.append({"samples": samples, "sample_rate": rate})
    answer = predict(client, "speech", {"inputs": clips})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected}
    one = client.post("/api/models/speech/predict", files={"file": ("a.wav", speech_wavs[0].read_bytes(), "audio/wav")})
    assert one.json() == {"prediction": expected[0]}
    files = [("file", (p.name, p.read_bytes(), "audio/wav")) for p in speech_wavs]
    several = client.post("/api/models/speech/predict", files=files, data={"options": json.dumps({"decoder": "greedy"})})
    assert several.json() == {"predictions": expected}
    # FLAC decodes the same (soundfile from memory).
    samples, rate = sf.read(speech_wavs[0], dtype="int16")
    flac = io.BytesIO()
    sf.write(flac, samples, rate, format="FLAC")
    assert client.post("/api/models/speech/predict", files={"file": ("a.flac", flac.getvalue())}).json() == {"prediction": expected[0]}


def test_a_long_clip_is_transcribed_in_chunks_as_the_cli_does(client, pipes, speech_wavs):
    pieces = [sf.read(p, dtype="float32")[0] for p in speech_wavs] * 10
    rate = sf.info(speech_wavs[0]).samplerate
    long = np.concatenate([np.concatenate([p, np.zeros(rate // 2, np.float32)]) for p in pieces])
    expected = transcribe_audio(pipes["speech"], [{"array": long, "sampling_rate": rate}])[0]
    assert isinstance(expected, dict) and len(expected["chunks"]) > 1
    answer = predict(client, "speech", {"input": {"samples": long.tolist(), "sample_rate": rate}})
    assert answer.json() == {"prediction": json.loads(json.dumps(expected))}


# -- bad requests: 400 with the Python API's message ------------------------------------------
def test_unknown_option_names_the_valid_ones(client, pipes):
    answer = predict(client, "translation", {"input": "Two dogs.", "options": {"beam_sise": 2}})
    assert answer.status_code == 400
    assert answer.json() == {"type": "InputError", "error": "unknown option 'beam_sise' (did you mean 'beam_size'?); "
                             "valid options: " + ", ".join(pipes["translation"].model.options)}
    answer = predict(client, "sentiment", {"input": "good", "options": {"beam_size": 2}})
    assert answer.status_code == 400 and "takes no options" in answer.json()["error"]
    # A bad value: the Python API's message.
    answer = predict(client, "translation", {"input": "Two dogs.", "options": {"beam_size": 0}})
    err = python_error(lambda: pipes["translation"].predict(["Two dogs."], beam_size=0))
    assert answer.status_code == 400 and answer.json() == {"error": str(err), "type": "InputError"}


def test_empty_text_and_wrong_types_are_400_with_the_python_message(client, pipes):
    for name, inputs in [("sentiment", ["good", "  "]), ("sentiment", ["good", 5]), ("ner", [["Paris"], []]),
                         ("translation", [""]), ("lm", [None])]:
        err = python_error(lambda: pipes[name].predict(inputs))
        answer = predict(client, name, {"inputs": inputs})
        assert answer.status_code == 400, (name, inputs)
        assert answer.json() == {"error": str(err), "type": type(err).__name__}


def test_nan_samples_are_400_with_the_python_message(client, pipes, speech_wavs):
    samples, rate = samples_of(speech_wavs[0])
    samples[100] = float("nan")
    err = python_error(lambda: transcribe_audio(pipes["speech"], [{"array": np.array(samples, np.float32), "sampling_rate": rate}]))
    body = json.dumps({"input": {"samples": samples, "sample_rate": rate}})  # Python's json writes NaN
    assert "NaN" in body
    answer = client.post("/api/models/speech/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"error": str(err), "type": "InputError"} and "NaN" in str(err)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"{}", "give \"input\" (one input) or \"inputs\""),
    (b'{"input": "a", "inputs": ["b"]}', "not both"),
    (b'{"inputs": "a"}', "\"inputs\" must be a list"),
    (b'{"input": "a", "options": [1]}', "\"options\" must be a JSON object"),
    (b'{"input": "a", "option": {}}', "unknown field(s) ['option']"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_malformed_requests_are_400(client, body, message):
    answer = client.post("/api/models/sentiment/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["type"] == "InputError" and message in answer.json()["error"]


def test_deeply_nested_json_is_400(client):
    body = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = client.post("/api/models/sentiment/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"]


def test_an_app_serves_again_after_a_restart(pipes):
    app = create_app({"sentiment": pipes["sentiment"]})
    for _ in range(2):  # the lifespan's shutdown stops the worker; the next start brings it back
        with TestClient(app) as client:
            assert predict(client, "sentiment", {"input": "good"}).status_code == 200


def test_other_routes_and_methods_answer_json(client):
    assert client.get("/api/nothing").json() == {"error": "Not Found", "type": "HTTPError"}
    answer = client.get("/api/models/sentiment/predict")
    assert answer.status_code == 405 and answer.json()["type"] == "HTTPError"


@pytest.mark.parametrize("clip, message", [
    ("a.wav", "an audio input is {\"samples\""),
    ({"samples": [0.1] * 1000}, "give the clip's \"sample_rate\""),
    ({"samples": ["x"], "sample_rate": 16000}, "\"samples\" must be a list of numbers"),
    ({"samples": ["0.5", "0.25"], "sample_rate": 16000}, "\"samples\" must be a list of numbers"),
    ({"samples": [[0.5], [0.25]], "sample_rate": 16000}, "\"samples\" must be a list of numbers"),
    ({"samples": [0.5, None], "sample_rate": 16000}, "\"samples\" must be a list of numbers"),
    ({"samples": "0.5 0.25", "sample_rate": 16000}, "\"samples\" must be a list of numbers"),
    ({"samples": [0.1] * 1000, "sample_rate": 16000, "gain": 2}, "unknown key(s) ['gain']"),
    ({"samples": [0.0] * 16000, "sample_rate": -5}, "sample"),
    ({"samples": [], "sample_rate": 16000}, "the audio is empty"),
    # Never a path or bytes of the client's choosing: the server reads no file a request names.
    ({"bytes": "/etc/passwd", "path": "/etc/passwd"}, "an audio input is {\"samples\""),
    (str(Path(__file__).parent.parent.parent / "corpora" / "speech" / "wavs" / "utt0000.wav"), "an audio input is {\"samples\""),
])
def test_bad_audio_inputs_are_400(client, clip, message):
    answer = predict(client, "speech", {"inputs": [clip]})
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]


def test_bad_uploads_are_400(client, speech_wavs):
    answer = client.post("/api/models/speech/predict", files={"file": ("notes.txt", b"not audio at all" * 50)})
    assert answer.status_code == 400 and "notes.txt" in answer.json()["error"]
    answer = client.post("/api/models/speech/predict", files={"file": ("a.wav", speech_wavs[0].read_bytes())},
                         data={"options": "{bad"})
    assert answer.status_code == 400 and "\"options\" form field is not valid JSON" in answer.json()["error"]
    answer = client.post("/api/models/speech/predict", data={"options": "{}"},
                         files={"other": ("a.wav", speech_wavs[0].read_bytes())})
    assert answer.status_code == 400 and "unknown form field(s) ['other']" in answer.json()["error"]
    answer = client.post("/api/models/speech/predict", files={"file": ("a.wav", speech_wavs[0].read_bytes())},
                         data={"options": json.dumps({"sample_rate": 8000})})
    assert answer.status_code == 400 and "part of each input" in answer.json()["error"]


def test_other_content_types_are_415(client, speech_wavs):
    answer = client.post("/api/models/sentiment/predict", content=b"good film", headers={"content-type": "text/plain"})
    assert answer.status_code == 415 and answer.json()["type"] == "UnsupportedMediaType"
    # Uploads are for audio models only.
    answer = client.post("/api/models/sentiment/predict", files={"file": ("a.wav", speech_wavs[0].read_bytes())})
    assert answer.status_code == 415


# -- limits ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_limits(pipes):
    app = create_app({"sentiment": pipes["sentiment"], "speech": pipes["speech"]},
                     ServeSettings(max_body_bytes=2000, max_inputs=4))
    with TestClient(app) as client:
        yield client


def test_bodies_over_the_limit_are_413_by_length_and_by_count(small_limits):
    big = {"input": "good " * 500}
    answer = predict(small_limits, "sentiment", big)
    assert answer.status_code == 413 and "over the limit of 2,000 bytes" in answer.json()["error"]

    def stream():  # chunked: no Content-Length, so only counting the bytes catches it
        data = json.dumps(big).encode()
        for i in range(0, len(data), 100):
            yield data[i: i + 100]
    answer = small_limits.post("/api/models/sentiment/predict", content=stream(), headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "over the limit of 2,000 bytes" in answer.json()["error"]
    upload = small_limits.post("/api/models/speech/predict", files={"file": ("a.wav", b"\0" * 5000)})
    assert upload.status_code == 413
    assert predict(small_limits, "sentiment", {"inputs": ["good"] * 4}).status_code == 200


def test_too_many_inputs_are_413(small_limits):
    answer = predict(small_limits, "sentiment", {"inputs": ["good"] * 5})
    assert answer.status_code == 413 and answer.json()["error"] == "5 inputs in one request; the limit is 4"
    files = [("file", (f"{i}.wav", b"RIFF")) for i in range(5)]
    answer = small_limits.post("/api/models/speech/predict", files=files)
    assert answer.status_code == 413 and "the limit is 4" in answer.json()["error"]


def test_a_slow_prediction_is_504_and_a_crash_500(tiny_model_dirs, caplog):
    slow = seqlab.load(tiny_model_dirs["sentiment"], device="cpu")
    real = slow.predict
    slow.predict = lambda inputs, **kw: (time.sleep(1.0), real(inputs, **kw))[1]
    broken = seqlab.load(tiny_model_dirs["sentiment"], device="cpu")

    def crash(inputs, **kw):
        raise RuntimeError("boom")
    broken.predict = crash
    app = create_app({"slow": slow, "broken": broken}, ServeSettings(timeout_s=0.2))
    with TestClient(app) as client:  # raises what reaches the server: nothing may
        answer = predict(client, "slow", {"input": "good"})
        assert answer.status_code == 504 and answer.json() == {"error": "the prediction took longer than 0.2 s", "type": "Timeout"}
        answer = predict(client, "broken", {"input": "good"})
        assert answer.status_code == 500 and answer.json()["type"] == "InternalError" and "RuntimeError" in answer.json()["error"]
        assert "boom" not in answer.text and "boom" in caplog.text  # the details go to the log
        # Bad input to the crashing model is still a 400, found before the model runs.
        assert predict(client, "broken", {"input": ""}).status_code == 400


# -- the demo page -----------------------------------------------------------------------------
def test_index_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html") and "seqlab" in page.text
    assert client.get("/static/index.html").text == page.text
    assert client.get("/static/no-such-file.js").status_code == 404


def test_serve_settings_are_checked(pipes):
    for bad in ({"max_batch": 0}, {"timeout_s": float("nan")}, {"max_inputs": True}, {"timeout_s": 0}):
        with pytest.raises(InputError):
            create_app({"sentiment": pipes["sentiment"]}, ServeSettings(**bad))


def test_json_answers_convert_numpy_tensors_and_nan():
    import torch

    from seqlab.serve.app import json_response

    content = {"a": np.float32(0.5), "b": np.arange(3), "t": torch.tensor([1.5]), "pair": (1, 2), "bad": [float("nan"), np.inf]}
    assert json.loads(json_response(content).body) == {"a": 0.5, "b": [0, 1, 2], "t": [1.5], "pair": [1, 2], "bad": [None, None]}
    assert to_jsonable(content) == json.loads(json_response(content).body)
