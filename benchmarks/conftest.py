"""Shared fixtures of the benchmark suites: TensorFlow with Keras 2, the machine record, throughput helpers.

Run with ``python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json``
(``make bench``), then ``python benchmarks/render.py`` for the Markdown table and the chart.

Every case is parametrised by framework (``tfrs``, ``torchrs``, ``faiss``, ...) inside one pytest-benchmark
group, so the pair runs back to back in the same process and lands side by side in the table. Each case
records its throughput in ``benchmark.extra_info`` (``framework``, ``unit``, ``throughput``), which
``render.py`` turns into ratios.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# TFRS 0.7.7 needs Keras 2: this must be set before TensorFlow is imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before torch loads OpenMP: its threads yield at barriers instead of spinning (torchrs.config).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import pytest
import torch

# `benchmarks._common` is imported by the suites; the repository root may not be on sys.path under plain `pytest`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import cuda_available


@pytest.fixture(scope="session")
def tf() -> Any:
    """The ``tensorflow`` module, with ``tf.keras`` being Keras 2 (tf-keras)."""
    from parity._tf import import_tf

    return import_tf()[0]


@pytest.fixture(scope="session")
def tfrs() -> Any:
    """The ``tensorflow_recommenders`` module."""
    from parity._tf import import_tf

    return import_tf()[1]


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    """Adds the library versions, thread counts and accelerator to the JSON's ``machine_info``."""
    import numpy

    from torchrs.config import machine_record

    # CPU model and vector flags, BLAS / oneDNN, threads, numerics / allocator settings, load average.
    machine_info["torchrs_machine"] = machine_record()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["torch"] = torch.__version__
    machine_info["numpy"] = numpy.__version__
    machine_info["cuda"] = torch.cuda.get_device_name(0) if cuda_available() else None
    for module in ("tensorflow", "tensorflow_recommenders", "tf_keras", "faiss"):
        try:
            imported = __import__(module)
            machine_info[module] = getattr(imported, "__version__", "unknown")
        except ImportError:
            machine_info[module] = None
    try:
        with open("/proc/meminfo") as handle:
            machine_info["memory_kib"] = int(handle.readline().split()[1])
    except OSError:
        machine_info["memory_kib"] = None


# Runs inside .venv-kerasrs (Keras 3), never in this interpreter: not a module for pytest to import.
collect_ignore = ["kerasrs_worker.py"]
