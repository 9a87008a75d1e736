"""Dynamic batching (``seqlab.serve.batching``): concurrent requests share model calls, and only their own answers come back."""
from __future__ import annotations

import asyncio
import json
import math
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf

import seqlab
from seqlab.core.errors import InputError
from seqlab.serve import DynamicBatcher, ServeSettings, create_app
from seqlab.serve.app import to_jsonable
from seqlab.tasks.speech_inference import transcribe_audio


def close(a, b) -> bool:
    """Equal JSON values, floats to 1e-5 (a batch pads and rounds differently from a batch of one)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


class Recorder:
    """Wraps a run function: records each call's inputs and options (from the worker thread)."""

    def __init__(self, run):
        self.run = run
        self.calls: list[tuple[list, dict]] = []
        self.threads: set[int] = set()

    def __call__(self, inputs, options):
        self.calls.append((list(inputs), dict(options)))
        self.threads.add(threading.get_ident())
        return self.run(inputs, options)


# -- the batcher alone -------------------------------------------------------------------------
def double(inputs, options):
    if any(x < 0 for x in inputs):
        raise InputError(f"negative input among {inputs}")
    return [x * options.get("factor", 2) for x in inputs]


def run_concurrently(batcher, requests):
    async def main():
        return await asyncio.gather(*(batcher.submit(xs, opts, json.dumps(opts, sort_keys=True)) for xs, opts in requests),
                                    return_exceptions=True)
    return asyncio.run(main())


def test_concurrent_requests_share_calls_up_to_max_batch():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=8, max_wait_ms=50)
    requests = [([i, i + 100], {}) for i in range(10)]
    answers = run_concurrently(batcher, requests)
    assert answers == [[2 * i, 2 * (i + 100)] for i in range(10)]
    sizes = [len(inputs) for inputs, _ in recorder.calls]
    assert sum(sizes) == 20 and max(sizes) > 2 and all(s <= 8 for s in sizes)
    assert len(recorder.threads) == 1  # one worker thread per model
    batcher.close()


def test_requests_with_other_options_are_never_mixed():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=16, max_wait_ms=50)
    requests = [([i], {"factor": 2 if i % 2 else 3}) for i in range(12)]
    answers = run_concurrently(batcher, requests)
    assert answers == [[i * (2 if i % 2 else 3)] for i in range(12)]
    for inputs, options in recorder.calls:
        assert all((x % 2 == 1) == (options["factor"] == 2) for x in inputs), recorder.calls
    assert max(len(inputs) for inputs, _ in recorder.calls) > 1
    batcher.close()


def test_a_failing_request_fails_alone():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=16, max_wait_ms=50)
    answers = run_concurrently(batcher, [([1], {}), ([2, -1], {}), ([3], {})])
    assert answers[0] == [2] and answers[2] == [6]
    assert isinstance(answers[1], InputError) and str(answers[1]) == "negative input among [2, -1]"
    assert len(recorder.calls[0][0]) == 4  # the shared call failed, then each ran alone
    batcher.close()


def test_without_batching_every_request_runs_alone():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=16, max_wait_ms=50, batching=False)
    answers = run_concurrently(batcher, [([i, i], {}) for i in range(6)])
    assert answers == [[2 * i, 2 * i] for i in range(6)]
    assert [inputs for inputs, _ in recorder.calls] == [[i, i] for i in range(6)]
    batcher.close()


def test_a_request_larger_than_max_batch_runs_by_itself():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=4, max_wait_ms=20)
    answers = run_concurrently(batcher, [(list(range(10)), {}), ([1], {})])
    assert answers == [[2 * i for i in range(10)], [2]]
    assert sorted(len(inputs) for inputs, _ in recorder.calls) == [1, 10]
    batcher.close()



def test_a_lone_client_is_not_kept_waiting_and_overlapping_requests_still_share_calls():
    import time

    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=8, max_wait_ms=300)

    async def one_after_another():
        waits = []
        for i in range(3):
            start = time.perf_counter()
            assert await batcher.submit([i], {}) == [2 * i]
            waits.append(time.perf_counter() - start)
        return waits

    waits = asyncio.run(one_after_another())
    # Without load nobody is coming: each request runs at once, not after max_wait (300 ms).
    assert max(waits) < 0.15, waits
    assert [inputs for inputs, _ in recorder.calls] == [[0], [1], [2]]
    # Requests that overlap share calls again: the batcher waits for company under load.
    recorder.calls.clear()
    answers = run_concurrently(batcher, [([i], {}) for i in range(6)])
    assert answers == [[2 * i] for i in range(6)]
    assert max(len(inputs) for inputs, _ in recorder.calls) > 1
    batcher.close()


def test_under_load_a_request_waits_for_company():
    recorder = Recorder(double)
    batcher = DynamicBatcher(recorder, max_batch=8, max_wait_ms=200)

    async def staggered():
        # A group of 4 first (load), then 3 requests 20 ms apart: the first of them waits for the other two.
        await asyncio.gather(*(batcher.submit([i], {}) for i in range(4)))
        tasks = []
        for i in range(3):
            tasks.append(asyncio.ensure_future(batcher.submit([10 + i], {})))
            await asyncio.sleep(0.02)
        return await asyncio.gather(*tasks)

    assert asyncio.run(staggered()) == [[20], [22], [24]]
    assert [inputs for inputs, _ in recorder.calls] == [[0, 1, 2, 3], [10, 11, 12]]
    batcher.close()

# -- through the HTTP API ----------------------------------------------------------------------
def serve_concurrently(app, requests):
    """POST every (model, body) at once through the ASGI app; the answers in order."""
    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # json.dumps writes NaN where a test wants it (httpx's json= refuses it).
            return await asyncio.gather(*(client.post(f"/api/models/{name}/predict", content=json.dumps(body),
                                                      headers={"content-type": "application/json"})
                                          for name, body in requests))
    return asyncio.run(main())


@pytest.fixture(scope="module")
def recorded(tiny_model_dirs):
    """An app over sentiment, NER, translation and speech whose model calls are recorded."""
    pipes = {task: seqlab.load(tiny_model_dirs[task], device="cpu") for task in ("sentiment", "ner", "translation", "speech")}
    app = create_app(pipes, ServeSettings(max_batch=8, max_wait_ms=50))
    recorders = {}
    for name, model in app.state.models.items():
        recorders[name] = model.batcher.run = Recorder(model.batcher.run)
    return app, pipes, recorders


WORDS = ["great", "dull", "film", "plot", "superb", "boring", "acting", "mess"]


@pytest.mark.parametrize("name", ["sentiment", "ner"])
def test_concurrent_http_requests_are_batched_and_each_gets_its_answer(recorded, name):
    app, pipes, recorders = recorded
    recorders[name].calls.clear()
    texts = [f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} in Paris {i}" for i in range(24)]
    answers = serve_concurrently(app, [(name, {"input": t}) for t in texts])
    assert all(a.status_code == 200 for a in answers)
    sizes = [len(inputs) for inputs, _ in recorders[name].calls]
    assert max(sizes) > 1 and all(s <= 8 for s in sizes) and sum(sizes) == 24
    for text, answer in zip(texts, answers):
        assert close(answer.json()["prediction"], to_jsonable(pipes[name].predict([text]))[0]), text


def test_requests_with_different_options_are_not_mixed(recorded):
    app, pipes, recorders = recorded
    recorders["translation"].calls.clear()
    texts = [f"A man is riding {WORDS[i % 8]} number {i}." for i in range(16)]
    beams = [1 + i % 2 for i in range(16)]
    answers = serve_concurrently(app, [("translation", {"input": t, "options": {"beam_size": b}}) for t, b in zip(texts, beams)])
    assert all(a.status_code == 200 for a in answers)
    for inputs, options in recorders["translation"].calls:
        assert {beams[texts.index(x)] for x in inputs} == {options["beam_size"]}
    assert max(len(inputs) for inputs, _ in recorders["translation"].calls) > 1
    for text, beam, answer in zip(texts, beams, answers):
        assert close(answer.json()["prediction"], to_jsonable(pipes["translation"].predict([text], beam_size=beam))[0])


def test_a_bad_request_among_good_ones_fails_alone(recorded, speech_wavs):
    app, pipes, recorders = recorded
    # Refused before queueing: an empty text among sentiment requests.
    texts = ["great film", "", "dull plot", "superb", 7, "boring mess"]
    answers = serve_concurrently(app, [("sentiment", {"input": t}) for t in texts])
    assert [a.status_code for a in answers] == [200, 400, 200, 200, 400, 200]
    for text, answer in zip(texts, answers):
        if answer.status_code == 200:
            assert close(answer.json()["prediction"], to_jsonable(pipes["sentiment"].predict([text]))[0])
    # Found only by the model's stages (NaN samples): the batch fails, then each runs alone.
    recorders["speech"].calls.clear()
    samples, rate = sf.read(speech_wavs[0], dtype="float32")
    clips = [samples * (0.5 + 0.1 * i) for i in range(5)]
    clips[2] = clips[2].copy()
    clips[2][10] = np.nan
    bodies = [{"input": {"samples": [float(v) for v in c], "sample_rate": rate}} for c in clips]
    answers = serve_concurrently(app, [("speech", b) for b in bodies])
    assert [a.status_code for a in answers] == [200, 200, 400, 200, 200]
    assert "NaN" in answers[2].json()["error"] and answers[2].json()["type"] == "InputError"
    assert max(len(inputs) for inputs, _ in recorders["speech"].calls) > 1
    for i, answer in enumerate(answers):
        if i != 2:
            expected = transcribe_audio(pipes["speech"], [{"array": clips[i], "sampling_rate": rate}])[0]
            assert answer.json() == {"prediction": expected}


def test_without_batching_each_request_runs_alone(tiny_model_dirs):
    pipe = seqlab.load(tiny_model_dirs["sentiment"], device="cpu")
    app = create_app({"sentiment": pipe}, ServeSettings(batching=False, max_wait_ms=50))
    recorder = app.state.models["sentiment"].batcher.run = Recorder(app.state.models["sentiment"].batcher.run)
    texts = [f"{w} film" for w in WORDS]
    answers = serve_concurrently(app, [("sentiment", {"inputs": [t, t + " again"]}) for t in texts])
    assert all(a.status_code == 200 for a in answers)
    assert sorted(inputs for inputs, _ in recorder.calls) == sorted([t, t + " again"] for t in texts)
    for text, answer in zip(texts, answers):
        assert answer.json()["predictions"] == to_jsonable(pipe.predict([text, text + " again"]))


def test_the_modules_examples_run():
    import doctest
    import importlib

    for name in ("seqlab.serve", "seqlab.serve.app", "seqlab.serve.batching"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and (result.attempted > 0 or name == "seqlab.serve.app"), name
