"""Helpers shared by the benchmark suites: devices, and the pedantic timing that records throughput."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import torch

# Three timed rounds after one warm-up round: enough to see the spread, small enough for the 15-minute budget.
ROUNDS = 3
WARMUP_ROUNDS = 1


def cuda_available() -> bool:
    """True when a CUDA device can run the torchrs cases."""
    return torch.cuda.is_available()


def torch_devices() -> list[str]:
    """The torch devices the training cases run on: the CPU, plus ``cuda`` when present."""
    return ["cpu", "cuda"] if cuda_available() else ["cpu"]


def device_name(device: str) -> str:
    """A human description of a torch device."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def synchronize(device: str) -> None:
    """Waits for queued GPU work, so that a timed round covers it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_case(
    benchmark: Any,
    fn: Callable[[], Any],
    *,
    framework: str,
    work: float,
    unit: str,
    device: str = "cpu",
    rounds: int = ROUNDS,
    warmup_rounds: int = WARMUP_ROUNDS,
    **extra: Any,
) -> Any:
    """Times ``fn`` in pedantic mode and records its throughput.

    Args:
        benchmark: the pytest-benchmark fixture.
        fn: one round of work (e.g. N training steps), synchronous when it returns.
        framework: the column this case belongs to (``tfrs``, ``torchrs``, ``faiss``, ...).
        work: how many examples / queries one call of ``fn`` processes.
        unit: ``"examples/s"`` or ``"queries/s"``.
        device: where the work ran.
        rounds: timed rounds.
        warmup_rounds: untimed rounds first (graph tracing, allocator warm-up).
        **extra: more figures to record (recall, sizes, ...).

    Returns:
        What the last call of ``fn`` returned.
    """
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    # The best round is the least disturbed by other processes on a shared machine; the median is kept too.
    best, median = benchmark.stats.stats.min, benchmark.stats.stats.median
    benchmark.extra_info.update(
        framework=framework,
        unit=unit,
        work_per_round=work,
        throughput=work / best,
        throughput_median=work / median,
        device=device,
        device_name=device_name(device),
        # Other work on the machine slows every figure: the 1-minute load average when the case ended.
        load_average=os.getloadavg()[0],
        **extra,
    )
    return result
