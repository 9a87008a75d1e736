"""Dynamic batching for ``seqlab serve``: concurrent requests to one model run as one batch.

Each served model has one :class:`DynamicBatcher`: requests wait in its queue, and a
consumer task groups them — up to ``max_batch`` inputs, or until ``max_wait_ms`` after the
first of the group arrived — and runs the group as **one** call of the model in the model's
single worker thread (torch on the CPU gains little from two threads calling one model at
once, and the model is not meant to be re-entered). Each request then gets its own slice of
the outputs. This is what TorchServe and Triton call dynamic batching: under load the model
sees batches instead of single inputs, which is where a batched RNN earns its throughput.

Waiting pays only under load. A request that finds the queue otherwise empty while the
previous model call also served a single request runs at once: one client sending one
request after another gets the latency of a server without batching, not ``max_wait_ms``
more per request. As soon as requests overlap (one arrives while the model runs another),
calls serve several requests and the wait for company resumes.

Only requests with the same *group key* (the server passes the canonical JSON of the
request's options) share a batch, since a batch runs with one set of options. When a group's
call fails, each of its requests is run again alone, so one bad input fails only its own
request, with the same message the Python API gives for that request alone.

With ``batching=False`` every request runs alone, in arrival order, in the same worker thread.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("seqlab.serve")

#: ``run(inputs, options)`` → one output per input (``Pipeline.predict`` or ``transcribe_audio``).
RunFn = Callable[[list, dict], list]


@dataclass
class _Request:
    inputs: list
    options: dict
    key: str
    future: asyncio.Future
    arrived: float = 0.0


@dataclass
class BatchStats:
    """What the batcher has run: the size (in inputs) of every model call, and the requests served."""

    batch_sizes: list[int] = field(default_factory=list)
    requests: int = 0


class DynamicBatcher:
    """Groups concurrent requests for one model into batched calls of ``run`` in one worker thread.

    >>> import asyncio
    >>> batcher = DynamicBatcher(lambda xs, opts: [x * 2 for x in xs], max_batch=8, max_wait_ms=5)
    >>> async def two():
    ...     return await asyncio.gather(batcher.submit([1, 2], {}), batcher.submit([3], {}))
    >>> asyncio.run(two())
    [[2, 4], [6]]
    >>> batcher.stats.batch_sizes
    [3]
    >>> batcher.close()
    """

    def __init__(self, run: RunFn, max_batch: int = 32, max_wait_ms: float = 5.0, batching: bool = True,
                 name: str = "model") -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run = run
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.batching = batching
        self.name = name
        self.stats = BatchStats()
        # One thread per model: its calls never overlap, whichever event loop submits them.
        self.executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Request] = []
        self._wakeup: asyncio.Event | None = None
        self._consumer: asyncio.Task | None = None
        #: Requests in the last model call: 0 or 1 means no load, so a lone request runs at once.
        self._last_group_requests = 0

    # -- submitting -------------------------------------------------------------------
    async def submit(self, inputs: Sequence[Any], options: dict, key: str = "") -> list:
        """The outputs of ``run(inputs, options)``, computed in a batch with other requests of the same ``key``."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        request = _Request(list(inputs), dict(options), key, loop.create_future(), loop.time())
        self._pending.append(request)
        assert self._wakeup is not None
        self._wakeup.set()
        return await request.future

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # A server has one loop; a test client may start a new one per request. The consumer
        # task and its event belong to one loop, so a new loop gets new ones.
        if self.executor is None:  # first use, or used again after close() (an app started twice)
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seqlab-serve-{self.name}")
        if self._loop is loop and self._consumer is not None and not self._consumer.done():
            return
        self._loop = loop
        self._pending = [r for r in self._pending if not r.future.done() and r.future.get_loop() is loop]
        self._wakeup = asyncio.Event()
        self._consumer = loop.create_task(self._consume(), name=f"seqlab-serve-batcher-{self.name}")

    # -- the consumer -----------------------------------------------------------------
    def _group_of(self, first: _Request) -> list[_Request]:
        """``first`` and the waiting requests of its key that fit beside it in ``max_batch`` inputs."""
        group, size = [first], len(first.inputs)
        if not self.batching:
            return group
        for request in self._pending[1:]:
            if request.key == first.key and size + len(request.inputs) <= self.max_batch:
                group.append(request)
                size += len(request.inputs)
                if size >= self.max_batch:
                    break
        return group

    def _waiting_inputs(self, key: str) -> int:
        return sum(len(r.inputs) for r in self._pending if r.key == key)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            self._pending = [r for r in self._pending if not r.future.done()]  # timed out or cancelled
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
                continue
            first = self._pending[0]
            # A lone request while the previous call also served one request alone: no load, so
            # no company is coming, and waiting max_wait would only add latency (a batch-1 client
            # of a batching server then runs as fast as one of a server without batching).
            alone = self._last_group_requests <= 1 and len(self._pending) == 1
            if self.batching and not alone:
                # Wait for company until the batch is full or the first request has waited max_wait.
                while self._waiting_inputs(first.key) < self.max_batch:
                    remaining = first.arrived + self.max_wait - loop.time()
                    if remaining <= 0 or first.future.done():
                        break
                    wakeup.clear()
                    try:
                        await asyncio.wait_for(wakeup.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
                if first.future.done():
                    continue
            group = self._group_of(first)
            taken = {id(r) for r in group}
            self._pending = [r for r in self._pending if id(r) not in taken]
            await self._run_group(group)

    async def _run_group(self, group: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        group = [r for r in group if not r.future.done()]
        if not group:
            return
        inputs = [x for r in group for x in r.inputs]
        self.stats.batch_sizes.append(len(inputs))
        self.stats.requests += len(group)
        self._last_group_requests = len(group)
        try:
            assert self.executor is not None
            outputs = await loop.run_in_executor(self.executor, self.run, inputs, group[0].options)
            if len(outputs) != len(inputs):
                raise RuntimeError(f"the model gave {len(outputs)} outputs for {len(inputs)} inputs")
        except Exception as err:  # noqa: BLE001 - handed to the requests, never lost
            if len(group) == 1:
                _settle(group[0].future, error=err)
                return
            # Somebody's input is bad (or the batch as a whole failed): each request alone, so
            # only the bad one fails, with the message its own inputs give.
            log.debug("batch of %d requests failed (%s); running them one by one", len(group), err)
            for request in group:
                await self._run_group([request])
            self.stats.requests -= len(group)
            return
        position = 0
        for request in group:
            n = len(request.inputs)
            _settle(request.future, result=outputs[position: position + n])
            position += n

    def close(self) -> None:
        """Stop the consumer task (when its loop still runs) and the worker thread; a later submit starts them again."""
        if self._consumer is not None and not self._consumer.done():
            try:
                self._consumer.get_loop().call_soon_threadsafe(self._consumer.cancel)
            except RuntimeError:  # the loop is closed: the task is gone with it
                pass
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None
        self._consumer = None


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # its request timed out meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
