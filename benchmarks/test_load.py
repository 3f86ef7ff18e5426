"""Training under a bounded background CPU load, beside the quiet figure, TFRS and torchrs in one run.

Each case (basic retrieval, basic ranking, DCN; the models of ``test_training.py``) is timed quietly
first (best of ``QUIET_ROUNDS`` rounds after a warm-up), then with ``LOAD_PROCESSES`` busy processes
on the same cores (``benchmarks/_load.py``; they stop by themselves). The benchmark row is the loaded
figure; ``quiet_throughput`` is recorded beside it, and ``render.py`` sets the two ratios
torchrs / TFRS side by side. Target: the ratio under load >= 0.8 x the quiet ratio.

What makes the difference: OpenMP threads that spin at barriers (GNU libgomp's default) take the
cycles of the thread they wait for once the cores are shared; torchrs asks OpenMP to yield
(``OMP_WAIT_POLICY=PASSIVE``, set by ``import torchrs`` / this suite's conftest before torch loads;
see ``torchrs.config``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks._load import background_load
from benchmarks.test_training import (
    BATCH_SIZE,
    STEPS,
    basic_ranking_steps,
    basic_retrieval_steps,
    dcn_steps,
    ratings,  # noqa: F401  (the fixture)
    time_training,
)
from torchrs.config import available_cpus

# Half the usable CPUs busy with other work: one busy process on the 2-core benchmark machine.
LOAD_PROCESSES = max(1, available_cpus() // 2)
# Quiet rounds measured just before the loaded ones, best kept (as run_case does).
QUIET_ROUNDS = 2
# Load processes live at most this multiple of the quiet rounds' time (plus a margin): bounded even if
# the loaded rounds are far slower.
LOAD_LIFETIME_FACTOR = 20.0

CASES: dict[str, Callable[[pytest.FixtureRequest, Any, str], Callable[[], float]]] = {
    "basic retrieval": basic_retrieval_steps,
    "basic ranking": basic_ranking_steps,
    "DCN": dcn_steps,
}


def _quiet_throughput(steps: Callable[[], float]) -> tuple[float, float]:
    steps()  # warm-up: graph tracing, optimizer state
    times = []
    for _ in range(QUIET_ROUNDS):
        start = time.perf_counter()
        steps()
        times.append(time.perf_counter() - start)
    return STEPS * BATCH_SIZE / min(times), min(times)


@pytest.mark.parametrize("framework", ["tfrs", "torchrs-cpu"])
@pytest.mark.parametrize("case", list(CASES))
def test_training_under_load(
    benchmark: Any,
    request: pytest.FixtureRequest,
    ratings: Any,  # noqa: F811  (the fixture imported above)
    case: str,
    framework: str,
) -> None:
    benchmark.group = f"train under load: {case} ({LOAD_PROCESSES} busy process on the same cores)"
    steps = CASES[case](request, ratings, framework)
    quiet, round_s = _quiet_throughput(steps)
    lifetime = (
        LOAD_LIFETIME_FACTOR * 5 * round_s + 10
    )  # warm-up + 3 timed rounds, 20x slower at most
    with background_load(LOAD_PROCESSES, lifetime):
        time_training(
            benchmark,
            steps,
            framework,
            quiet_throughput=quiet,
            background_load=f"{LOAD_PROCESSES} busy process(es)",
        )
