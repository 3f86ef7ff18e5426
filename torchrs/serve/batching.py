"""Server-side batching: concurrent requests to one signature run as one model call.

Requests queue up; the first one waits at most ``timeout_s`` for others, rows are gathered up to
``max_batch_size``, concatenated along axis 0, run once (in the model's own thread, under
``torch.inference_mode``), and each request gets its rows back. Requests whose inputs cannot be
concatenated with the batch (other trailing shapes or dtypes) start the next batch; a request
larger than ``max_batch_size`` runs alone (TF Serving would split it; the answer is the same).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import torch

Arrays = dict[str, np.ndarray]


def run_batch(run: Callable[[Arrays], Arrays], inputs: Arrays) -> Arrays:
    """``run(inputs)`` under ``torch.inference_mode()``."""
    with torch.inference_mode():
        return run(inputs)


def _rows(inputs: Arrays) -> int:
    sizes = {a.shape[0] if a.ndim else 1 for a in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else -1


def _key(inputs: Arrays) -> tuple[object, ...]:
    return tuple((n, a.shape[1:], a.dtype.str) for n, a in sorted(inputs.items()))


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays] = field(repr=False)


class Batcher:
    """Batches the requests of one signature of one model version.

    Args:
        run: the signature's batch function.
        executor: where the model runs (one thread: batches run one after another).
        max_batch_size: most rows in one model call; 1 or less turns batching off.
        timeout_s: longest wait of a batch's first request for others.
    """

    def __init__(
        self,
        run: Callable[[Arrays], Arrays],
        executor: Executor,
        max_batch_size: int,
        timeout_s: float,
    ) -> None:
        self._run = run
        self._executor = executor
        self._max = max_batch_size
        self._timeout = timeout_s
        self._queue: collections.deque[_Pending] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def submit(self, inputs: Arrays) -> Arrays:
        """Runs ``inputs`` (alone or in a batch) and returns its outputs."""
        loop = asyncio.get_running_loop()
        rows = _rows(inputs)
        if self._max <= 1 or rows < 1 or rows >= self._max:
            return await loop.run_in_executor(self._executor, run_batch, self._run, inputs)
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._loop())
        pending = _Pending(inputs, rows, loop.create_future())
        self._queue.append(pending)
        assert self._wake is not None
        self._wake.set()
        return await pending.future

    async def close(self) -> None:
        """Stops the batching task (queued requests are still answered first)."""
        while self._queue or self._running:  # a batch being run still answers its requests
            await asyncio.sleep(0.001)
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            first = self._queue.popleft()
            batch, rows, key = [first], first.rows, _key(first.inputs)
            deadline = loop.time() + self._timeout
            while rows < self._max:
                if not self._queue:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), remaining)
                    except asyncio.TimeoutError:  # not the builtin before Python 3.11
                        break
                    continue
                candidate = self._queue[0]
                if _key(candidate.inputs) != key or rows + candidate.rows > self._max:
                    break
                batch.append(self._queue.popleft())
                rows += candidate.rows
            self._running = True
            try:
                await self._execute(batch)
            finally:
                self._running = False

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        names = list(batch[0].inputs)
        merged = (
            batch[0].inputs
            if len(batch) == 1
            else {n: np.concatenate([p.inputs[n] for p in batch]) for n in names}
        )
        try:
            outputs = await loop.run_in_executor(self._executor, run_batch, self._run, merged)
        except Exception as error:  # every request of the batch learns why
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(error)
            return
        total = sum(p.rows for p in batch)
        start = 0
        for p in batch:
            if p.future.done():  # the client went away
                start += p.rows
                continue
            if len(batch) == 1:
                p.future.set_result(outputs)
            elif all(a.ndim and a.shape[0] == total for a in outputs.values()):
                p.future.set_result({n: a[start : start + p.rows] for n, a in outputs.items()})
            else:  # an output without a batch axis: answer each request on its own
                p.future.set_result(
                    await loop.run_in_executor(self._executor, run_batch, self._run, p.inputs)
                )
            start += p.rows
