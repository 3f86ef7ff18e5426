"""Concurrent requests share model calls, and each gets exactly its own rows back."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from torchrs.serve.batching import Batcher


def _doubler(calls: list[int]):
    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert torch.is_inference_mode_enabled()
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2, "ids": inputs["x"].astype(str)}

    return run


def test_concurrent_requests_are_batched_and_split() -> None:
    calls: list[int] = []

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(_doubler(calls), ThreadPoolExecutor(1), max_batch_size=8, timeout_s=0.5)
        requests = [np.arange(i, i + 2, dtype=np.float32)[:, None] for i in range(0, 8, 2)]
        answers = await asyncio.gather(*(batcher.submit({"x": r}) for r in requests))
        await batcher.close()
        return answers

    answers = asyncio.run(main())
    assert calls == [8]  # four requests of 2 rows: one model call within the 0.5 s window
    for i, answer in enumerate(answers):
        expected = np.arange(2 * i, 2 * i + 2, dtype=np.float32)[:, None]
        np.testing.assert_array_equal(answer["y"], expected * 2)
        assert answer["ids"].tolist() == expected.astype(str).tolist()


def test_limits_incompatible_shapes_and_batching_off() -> None:
    calls: list[int] = []

    async def main(max_batch_size: int) -> None:
        batcher = Batcher(_doubler(calls), ThreadPoolExecutor(1), max_batch_size, timeout_s=0.2)
        requests = [
            np.ones((3, 1), np.float32),
            np.ones((3, 1), np.float32),
            np.ones((2, 4), np.float32),
        ]
        answers = await asyncio.gather(*(batcher.submit({"x": r}) for r in requests))
        for request, answer in zip(requests, answers, strict=True):
            np.testing.assert_array_equal(answer["y"], request * 2)
        await batcher.close()

    asyncio.run(main(4))
    assert sorted(calls) == [2, 3, 3]  # 3 + 3 > 4 rows; (2, 4) cannot join a (., 1) batch
    calls.clear()
    asyncio.run(main(1))
    assert sorted(calls) == [2, 3, 3]  # batching off: one call per request


def test_close_lets_the_running_batch_answer() -> None:
    """A version swapped out mid-batch still answers the requests of that batch."""

    def slow(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.3)
        return {"y": inputs["x"] + 1}

    async def main() -> dict[str, np.ndarray]:
        batcher = Batcher(slow, ThreadPoolExecutor(1), max_batch_size=8, timeout_s=0.01)
        pending = asyncio.ensure_future(batcher.submit({"x": np.zeros((2, 1), np.float32)}))
        await asyncio.sleep(0.1)  # the batch is running now
        await batcher.close()
        return await asyncio.wait_for(pending, 5)

    np.testing.assert_array_equal(asyncio.run(main())["y"], np.ones((2, 1), np.float32))
