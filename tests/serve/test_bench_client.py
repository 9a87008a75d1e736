"""The load generator of ``benchmarks/serve.py`` (``RawClient``, a minimal keep-alive HTTP/1.1
client) gets from the real app under uvicorn what httpx gets: the same statuses and bodies,
for JSON predictions, a 4xx, ``GET /health`` and a multipart upload, many on one connection."""
from __future__ import annotations

import asyncio
import importlib.util
import json

import httpx

from tests.conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "benchmarks" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_raw_client_answers_equal_httpx(served, speech_wavs):
    base, _ = served
    bench = _bench()
    host, port = base.rsplit("//", 1)[1].split(":")
    wav = speech_wavs[0]
    upload, kind = bench.multipart("file", wav.name, wav.read_bytes(), "audio/wav")
    requests = [
        ("GET", "/health", b"", ""),
        ("POST", "/api/models/ner/predict", json.dumps({"input": "Angela Merkel visited Paris ."}).encode(), "application/json"),
        ("POST", "/api/models/sentiment/predict", json.dumps({"input": "a gorgeous , witty film"}).encode(), "application/json"),
        ("POST", "/api/models/ner/predict", json.dumps({"input": ""}).encode(), "application/json"),  # a 4xx
        ("POST", "/api/models/nothing/predict", b"{}", "application/json"),  # another
        ("POST", "/api/models/speech/predict", upload, kind),
    ]

    async def raw():
        client = bench.RawClient(host, int(port))
        try:
            answers = [await client.request(*r) for r in requests * 2]  # one connection, kept alive
            await client.close()  # as after a failed request: the next one reconnects
            return answers, await client.request(*requests[0])
        finally:
            await client.close()

    got, after_close = asyncio.run(raw())
    assert after_close[0] == 200
    with httpx.Client(base_url=base, trust_env=False, timeout=60) as client:
        want = [client.request(m, path, content=body, headers={"content-type": k} if k else {}) for m, path, body, k in requests]
    statuses = [status for status, _ in got]
    assert statuses[:6] == statuses[6:] == [r.status_code for r in want]
    assert statuses[0] == 200 and statuses[5] == 200 and 400 <= statuses[3] < 500 and 400 <= statuses[4] < 500
    for (_, body), r in zip(got, want):
        assert json.loads(body) == r.json()
