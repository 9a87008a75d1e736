"""``seqlab serve`` under load: latency and throughput with dynamic batching on and off.

    python benchmarks/serve.py [--clients 32] [--seconds 5] [--rounds 2] [--max-requests 2000] [--threads 1]

Four models are trained quickly (a time budget each; their accuracy does not matter here,
their size does) and served by ``seqlab serve`` processes (uvicorn, subprocesses of this
script, ``OMP_NUM_THREADS`` = ``--threads``):

* **ner**: the shipped recipe ``pipelines/ner.yaml`` (BiLSTM 100 per direction, char-CNN, CRF)
  on the project's corpus ``corpora/ner``, as ``seqlab train pipelines/ner.yaml`` trains it.
* **ner_conll**: the CoNLL-2003 benchmark's larger tagger (benchmarks/ner.py: BiLSTM 200 per
  direction, char-CNN 30, CRF, IOBES; no word2vec) on the first ``--ner-train`` sentences of
  ``$SEQLAB_CORPORA/ner/conll2003/train.txt``.
  Both NER models are sent ``$SEQLAB_CORPORA/ner/conll2003/valid.txt`` sentences as text.
* **sentiment**: pipelines/sentiment.yaml's BiLSTM on the first ``--sentiment-train`` rows of
  ``$SEQLAB_CORPORA/sentiment/sst2/train.tsv``; requests are SST-2 dev sentences.
* **speech**: pipelines/speech.yaml's CNN-BiLSTM-CTC (beam search) on the project's corpus
  ``corpora/speech``; requests upload its wav files (multipart/form-data), as the demo page does.

Two servers run side by side, one batching (``--max-batch 32 --max-wait-ms 5``) and one not
(``--no-batching``). Each model is driven by ``--clients`` concurrent clients (asyncio on uvloop;
one keep-alive connection each, :class:`RawClient`, one request at a time, one input per request;
until commit bb87a5f an ``httpx.AsyncClient`` each, which cost 0.47–0.62 ms of CPU per request
against the raw client's 0.03–0.04 ms, taken from the server's two cores) for ``--seconds``
or ``--max-requests`` requests, whichever ends first, against each server; then NER by a
single client sending one request after another (the batch-1 loop). The settings take turns
for ``--rounds`` rounds, so that the load of a shared machine falls on all alike; the figures
pool the rounds (requests/s over their total time, p50/p99 of all requests).
``ner_dynamic_batching_speedup`` is NER requests/s with batching under ``--clients`` clients
over requests/s of the batch-1 loop against the server without batching (the bar is >= 5);
the two are measured back to back in each round. Two ceilings put it in context: ``*_model_batch32_speedup``,
what batching can gain at most (``pipe.predict`` sentences/s at batch 32 over one at a time,
in-process), and ``health_batching_requests_per_s``, what the clients and the server's HTTP
stack manage with no model at all (``GET /health`` under the same clients).

About 5 minutes with the defaults (training 4 × 25 s, then 2 rounds of load).
Writes ``benchmarks/results/serve.json``; the models are saved under ``runs/benchmarks/serve/``.
"""
from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RUNS, corpora_dir, write_results  # noqa: E402

OUT = RUNS / "serve"
#: benchmarks/ner.py's CoNLL-2003 tagger (without its word2vec initialisation).
NER_CONLL_MODEL = {"embedding_dim": 100, "lowercase": True, "normalize_numbers": True, "char_encoder": "cnn",
                   "char_embedding_dim": 30, "char_hidden_size": 30, "char_kernel": 3, "hidden_size": 200,
                   "num_layers": 1, "dropout": 0.5, "word_dropout": 0.05, "decoder": "crf"}
MODELS = ("ner", "ner_conll", "sentiment", "speech")


# -- models ------------------------------------------------------------------------------------
def _fit_and_save(recipe, output: Path) -> dict:
    from seqlab.core.config import to_dict

    pipe = recipe.build()
    train, dev = recipe.datasets()
    start = time.perf_counter()
    result = pipe.fit(train, dev, recipe.train)
    metrics = pipe.evaluate(dev) if dev is not None else {}
    pipe.save(output, meta={"recipe": to_dict(recipe), "summary": {"task": recipe.task, "dev": metrics, "steps": result.steps}})
    return {"train_s": round(time.perf_counter() - start, 1), "train_examples": len(train), "dev": metrics}


def train_models(args) -> dict:
    import torch

    from seqlab.recipe import load_recipe

    corpora = corpora_dir()
    conll = corpora / "ner" / "conll2003"
    sst2 = corpora / "sentiment" / "sst2"
    budget = [f"train.time_budget_s={args.train_s}", "train.progress=off", "device=cpu", "examples=[]"]
    recipes = {
        "ner": load_recipe(REPO / "pipelines" / "ner.yaml", [*budget, f"output={OUT / 'ner'}"]),
        "ner_conll": load_recipe(data={
            "task": "ner", "data": {"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt"), "scheme": "IOB2",
                                    "token_column": 0, "tag_column": -1, "limit_train": args.ner_train},
            "scheme": "IOBES", "model": NER_CONLL_MODEL,
            "train": {"epochs": 50, "batch_size": 32, "lr": 1e-3, "clip_norm": 5.0, "seed": 1,
                      "time_budget_s": args.train_s, "progress": "off"},
            "output": str(OUT / "ner_conll"), "device": "cpu", "examples": []}),
        "sentiment": load_recipe(REPO / "pipelines" / "sentiment.yaml", [
            *budget, f"data.train={sst2 / 'train.tsv'}", f"data.dev={sst2 / 'dev.tsv'}",
            f"data.limit_train={args.sentiment_train}", f"output={OUT / 'sentiment'}"]),
        "speech": load_recipe(REPO / "pipelines" / "speech.yaml", [*budget, f"output={OUT / 'speech'}"]),
    }
    info = {}
    for name, recipe in recipes.items():
        torch.manual_seed(0)
        print(f"training {name} for up to {args.train_s:g} s …", flush=True)
        info[name] = _fit_and_save(recipe, OUT / name)
        print(f"  {name}: {info[name]['train_examples']} examples, {info[name]['train_s']} s, dev "
              + ", ".join(f"{k} {v:.3g}" for k, v in list(info[name]["dev"].items())[:3]), flush=True)
    return info


def model_batch_speedup(name: str, sentences: list[str], batch: int = 32) -> float:
    """``pipe.predict`` sentences/s at ``batch`` over one sentence at a time, in this process: what
    batching can gain at most, before any HTTP."""
    import seqlab

    pipe = seqlab.load(OUT / name, device="cpu")
    pipe.predict(sentences[:batch], batch_size=batch)
    start = time.perf_counter()
    for s in sentences[:48]:
        pipe.predict([s])
    one = 48 / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, 8 * batch, batch):
        pipe.predict(sentences[i: i + batch], batch_size=batch)
    many = 8 * batch / (time.perf_counter() - start)
    return many / one


def request_inputs(limit: int = 2000) -> dict[str, list]:
    """What the clients send: NER and sentiment texts, speech wav files (bytes)."""
    corpora = corpora_dir()
    sentences, tokens = [], []
    for line in (corpora / "ner" / "conll2003" / "valid.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                sentences.append(" ".join(tokens))
                tokens = []
            continue
        tokens.append(line.split()[0])
    rows = (corpora / "sentiment" / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split("\t")
    column = header.index("sentence") if "sentence" in header else 0
    reviews = [r.split("\t")[column] for r in rows[1:] if r.strip()]
    wavs = sorted((REPO / "corpora" / "speech" / "wavs").glob("*.wav"))
    rng = random.Random(0)
    rng.shuffle(sentences)
    rng.shuffle(reviews)
    return {"health": [None], "ner": sentences[:limit], "ner_conll": sentences[:limit], "sentiment": reviews[:limit],
            "speech": [(p.name, p.read_bytes()) for p in wavs[:200]]}


# -- the server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``seqlab serve`` in a subprocess (this script's own child; stopped by its pid)."""

    def __init__(self, batching: bool, threads: int, max_batch: int, max_wait_ms: float) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        models = [f"{name}={OUT / name}" for name in MODELS]
        command = [sys.executable, "-m", "seqlab", "serve", *models, "--port", str(self.port), "--device", "cpu",
                   "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), *([] if batching else ["--no-batching"])]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        print(self.proc.stdout.readline().strip(), flush=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(self.url + "/health", timeout=5).raise_for_status()
                return
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the server did not start")
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the clients -------------------------------------------------------------------------------
class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator's client, as wrk or
    hey are, not a general one (``Content-Length`` bodies only, which is all ``seqlab serve`` sends).

    The clients share this machine's two cores with the server, so their CPU time per request is
    taken from the server's. Measured here with 32 clients (the client process's CPU time over
    the requests): httpx 0.47 ms per ``/health`` request and 0.61 ms per NER request, this client
    0.03 and 0.04 ms; so the figures measure the server rather than the load generator.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
        if body or method == "POST":
            head += f"content-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        self.writer.write(head.encode("latin-1") + b"\r\n" + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding":
                raise ConnectionError(f"{path}: a {value.strip()} response; this client reads Content-Length bodies only")
        if length is None:
            raise ConnectionError(f"{path}: a response without Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection, if open; the next request opens a new one."""
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


def multipart(field: str, filename: str, data: bytes, mime: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one file, as a browser's upload sends it."""
    boundary = "seqlab-bench-7d1f0c2a"
    body = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"content-type: {mime}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def drive(url: str, name: str, inputs: list, clients: int, seconds: float, max_requests: int) -> dict:
    """``clients`` concurrent clients, one request at a time each, until ``seconds`` or ``max_requests``.

    Each client is its own connection (:class:`RawClient`), as independent callers are.
    Request bodies are encoded before the clock starts.
    """
    import json

    host, port = url.rsplit("//", 1)[1].split(":")
    endpoint = f"/api/models/{name}/predict"
    if name == "health":  # the HTTP stack alone: what these clients and the server manage with no model
        bodies = [("GET", "/health", b"", "")]
    elif name == "speech":  # an upload, as the demo page sends it
        bodies = [("POST", endpoint, *multipart("file", x[0], x[1], "audio/wav")) for x in inputs]
    else:
        bodies = [("POST", endpoint, json.dumps({"input": x}).encode(), "application/json") for x in inputs]
    pool = [RawClient(host, int(port)) for _ in range(clients)]

    async def send(client, i: int) -> int:
        method, path, body, kind = bodies[i % len(bodies)]
        status, _ = await client.request(method, path, body, kind)
        return status

    latencies: list[float] = []
    errors = 0
    issued = 0
    try:
        async def warm_up(client, i: int) -> None:  # connections opened, first batches run
            for _ in range(2):
                await send(client, i)

        await asyncio.gather(*(warm_up(client, i) for i, client in enumerate(pool)))
        start = time.perf_counter()
        end = start + seconds

        async def client_loop(client) -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < end:
                i = issued
                issued += 1
                t = time.perf_counter()
                try:
                    status = await send(client, i)
                    errors += status != 200
                except (OSError, asyncio.IncompleteReadError, ConnectionError):  # counted, not retried
                    errors += 1
                    await client.close()  # the next request reconnects
                    continue
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(client_loop(client) for client in pool))
        wall = time.perf_counter() - start
    finally:
        for client in pool:
            await client.close()
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def summarise(parts: list[dict]) -> dict:
    """The runs of one setting pooled: requests/s over their total time, latency percentiles of all requests."""
    latencies = sorted(x for part in parts for x in part["latencies"])
    wall = sum(part["wall_s"] for part in parts)

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else float("nan")

    return {"requests": len(latencies), "errors": sum(part["errors"] for part in parts), "wall_s": round(wall, 2),
            "requests_per_s": round(len(latencies) / wall, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    import argparse

    # httpcore imports sniffio at every lock it takes; where sniffio is not installed (it is in
    # seqlab's test extra), each failed import searches sys.path again. None in sys.modules
    # fails it at once (the same outcome: asyncio). Only the clients use httpx.
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=5.0, help="each load run's time limit (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of every setting, taking turns (default 2)")
    p.add_argument("--max-requests", type=int, default=2000, help="each load run's request limit (default 2000)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads of trainer and server (default 1)")
    p.add_argument("--train-s", type=float, default=25.0, help="training budget per model in seconds (default 25)")
    p.add_argument("--ner-train", type=int, default=3000, help="CoNLL-2003 training sentences (default 3000)")
    p.add_argument("--sentiment-train", type=int, default=5000, help="SST-2 training rows (default 5000)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--skip-training", action="store_true", help="serve the models of an earlier run (runs/benchmarks/serve)")
    args = p.parse_args()

    import torch
    import uvloop

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    wall_start = time.perf_counter()
    trained = {} if args.skip_training else train_models(args)
    inputs = request_inputs()
    # Both servers run side by side, and the settings take turns round after round, so that a
    # change in the machine's load (it is shared) falls on all of them alike.
    parts: dict[str, list[dict]] = {}
    per_round: dict[str, list[float]] = {}
    servers = {mode: Server(mode == "batching", args.threads, args.max_batch, args.max_wait_ms)
               for mode in ("batching", "no_batching")}

    def load(name: str, mode: str, clients: int) -> float:
        key = f"{name}_{mode}" if clients > 1 else f"{name}_sequential_{mode}"
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the server's event loop too
            part = runner.run(drive(servers[mode].url, name, inputs[name], clients, args.seconds, args.max_requests))
        parts.setdefault(key, []).append(part)
        brief = summarise([part])
        print(f"round {round_}  {name:9} {mode:11} {clients:2} client(s): {brief['requests_per_s']:7.1f} requests/s, "
              f"p50 {brief['p50_ms']:7.1f} ms, p99 {brief['p99_ms']:7.1f} ms, errors {brief['errors']}", flush=True)
        return brief["requests_per_s"]

    try:
        for round_ in range(1, args.rounds + 1):
            for name in ("ner", "ner_conll"):
                # The two figures of the speedup back to back, under the same load of the machine:
                # batching under --clients clients, and one client sending one request after another.
                batched = load(name, "batching", args.clients)
                sequential = load(name, "no_batching", 1)
                per_round.setdefault(f"{name}_dynamic_batching_speedup", []).append(round(batched / sequential, 2))
                ratio = model_batch_speedup(name, inputs[name])
                per_round.setdefault(f"{name}_model_batch32_speedup", []).append(round(ratio, 2))
                print(f"round {round_}  {name:9} speedup {batched / sequential:.2f} (pipe.predict alone, batch 32 vs 1: "
                      f"{ratio:.2f})", flush=True)
            load("health", "batching", args.clients)
            load("ner", "no_batching", args.clients)
            load("ner", "batching", 1)  # what the batch wait costs a lone client
            for name in ("sentiment", "speech"):
                load(name, "batching", args.clients)
                load(name, "no_batching", args.clients)
    finally:
        for server in servers.values():
            server.stop()
    runs = {key: summarise(value) for key, value in parts.items()}

    metrics: dict[str, float] = {}
    for key, figures in runs.items():
        for figure in ("requests_per_s", "p50_ms", "p99_ms"):
            metrics[f"{key}_{figure}"] = figures[figure]
    for name in ("ner", "ner_conll"):
        metrics[f"{name}_dynamic_batching_speedup"] = round(
            runs[f"{name}_batching"]["requests_per_s"] / runs[f"{name}_sequential_no_batching"]["requests_per_s"], 2)
        metrics[f"{name}_model_batch32_speedup"] = round(statistics.median(per_round[f"{name}_model_batch32_speedup"]), 2)
    metrics["ner_batching_vs_no_batching_speedup"] = round(
        runs["ner_batching"]["requests_per_s"] / runs["ner_no_batching"]["requests_per_s"], 2)
    metrics["errors"] = sum(f["errors"] for f in runs.values())
    settings = {**vars(args), "runs": runs, "per_round": per_round, "trained": trained, "corpora": {
        "ner": "pipelines/ner.yaml on corpora/ner (requests: $SEQLAB_CORPORA/ner/conll2003/valid.txt sentences)",
        "ner_conll": "benchmarks/ner.py's model on the first --ner-train sentences of $SEQLAB_CORPORA/ner/conll2003/train.txt "
                     "(requests: valid.txt sentences)",
        "sentiment": "$SEQLAB_CORPORA/sentiment/sst2 (train: first --sentiment-train rows; requests: dev.tsv)",
        "speech": "corpora/speech (pipelines/speech.yaml; requests: wav uploads of corpora/speech/wavs)"}}
    write_results("serve", metrics, settings, budget_s=args.train_s * len(MODELS), wall_s=time.perf_counter() - wall_start,
                  device=torch.device("cpu"))


if __name__ == "__main__":
    main()
