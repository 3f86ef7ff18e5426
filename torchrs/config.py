"""CPU threads: how many torch uses, and how its OpenMP threads wait.

torch sizes its thread pool by the machine's cores. A process may use fewer: a CPU affinity mask
(``taskset``, a batch scheduler), or a container's CPU quota (cgroup v2 ``cpu.max``, v1
``cpu.cfs_quota_us``), which throttles the process once its threads together exceed the quota. Two
OpenMP threads under a one-CPU quota, or sharing their cores with other work, wait at every barrier
for a thread that is not running; with the default wait policy each waiting thread also spins on its
core for a while, taking the time the late thread needs. TensorFlow degrades gently there; torch
collapses (measured in ``benchmarks/test_load.py``).

So ``import torchrs``, when it comes before ``import torch``, asks OpenMP to yield rather than spin
(``OMP_WAIT_POLICY=PASSIVE``, ``KMP_BLOCKTIME=0`` for Intel's runtime); OpenMP reads these once, when
torch loads it, so they cannot be changed later, and a setting already in the environment is kept.
Where torch is imported first, export ``OMP_WAIT_POLICY=PASSIVE`` yourself. And it caps torch's thread
count at the CPUs the process may use (:func:`apply_cpu_limit`); :func:`configure_threads` sets it
explicitly.

Measured on the 2-core AMD EPYC of the README with other work on the machine (load average ~20, so
contaminated): basic-ranking training 5,166 ex/s with the default policy, 27,479 ex/s with
``OMP_WAIT_POLICY=PASSIVE`` (and, under one extra busy process, 4,719 against 27,129).

The knob, ``TORCHRS_NUM_THREADS``: a number fixes torch's thread count; ``keep`` leaves torch's
threads and OpenMP's wait policy alone (torch's defaults); unset, torchrs derives the count
(:func:`available_cpus`) and leaves ``OMP_NUM_THREADS`` / ``torch.set_num_threads`` chosen by the user
alone.

This module imports torch only inside :func:`configure_threads`.

>>> from torchrs.config import available_cpus
>>> available_cpus() >= 1
True
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "THREADS_ENV",
    "ThreadSettings",
    "apply_cpu_limit",
    "available_cpus",
    "cgroup_cpu_limit",
    "configure_threads",
    "machine_record",
    "machine_summary",
    "set_wait_policy",
]

# The user's knob: a thread count, or "keep" for torch's own defaults.
THREADS_ENV = "TORCHRS_NUM_THREADS"
KEEP = "keep"
# Where cgroup v2 (unified) and v1 (cpu controller) mount their files on Linux.
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Environment variables that change a figure: the CPU code path (numerics and speed), OpenMP's threads,
# and how glibc hands torch's CPU memory back (see the README's Speed section).
RECORDED_ENV = (
    "MKL_CBWR",
    "ATEN_CPU_CAPABILITY",
    "TF_ENABLE_ONEDNN_OPTS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    THREADS_ENV,
    "OMP_WAIT_POLICY",
    "KMP_BLOCKTIME",
    "GOMP_SPINCOUNT",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "THP_MEM_ALLOC_ENABLE",
    "LD_PRELOAD",
)
# The CPU flags that pick BLAS / oneDNN / ATen kernels.
VECTOR_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
)
# OpenMP's wait policy: yield the core at a barrier instead of spinning (GNU libgomp and Intel's
# runtime read OMP_WAIT_POLICY; Intel's spins KMP_BLOCKTIME ms first, 0 = sleep at once).
WAIT_POLICY = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


class ThreadConfigError(ValueError):
    """``TORCHRS_NUM_THREADS`` holds something other than a positive integer or ``keep``."""


@dataclass(frozen=True)
class ThreadSettings:
    """What :func:`configure_threads` decided.

    Attributes:
        num_threads: torch's intra-op thread count after the call.
        available_cpus: CPUs the process may use (affinity and cgroup quota).
        source: why ``num_threads``: ``"argument"``, ``"TORCHRS_NUM_THREADS"``, ``"OMP_NUM_THREADS"``
            (left alone), ``"keep"``, or ``"available cpus"``.
        wait_policy: ``OMP_WAIT_POLICY`` as OpenMP read it at start-up (``None``: the runtime's default).
    """

    num_threads: int
    available_cpus: int
    source: str
    wait_policy: str | None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _v2_limit(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")  # "max 100000" or "150000 100000"
    if text is None:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max" or not period:
        return math.inf
    return int(quota) / int(period)


def _v1_limit(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None:
        return None
    if int(quota) <= 0:  # -1: no quota
        return math.inf
    return int(quota) / int(period)


def cgroup_cpu_limit(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The CPU quota of this process's cgroup and its ancestors, in CPUs (``None`` when unlimited).

    cgroup v2: ``cpu.max`` (``"QUOTA PERIOD"`` or ``"max PERIOD"``) in the process's group and each
    parent up to the root; the tightest applies. cgroup v1: ``cpu.cfs_quota_us / cpu.cfs_period_us``
    of the ``cpu`` controller's group. Inside a container the group's own path is often not visible
    (the namespace shows ``/``); the files at the mount's root are then the container's.

    Args:
        cgroup_root: where cgroups are mounted (tests pass a directory of fake files).
        proc_self_cgroup: the process's ``/proc/self/cgroup``.

    Returns:
        The quota in CPUs (may be fractional, e.g. 1.5), or ``None`` when no quota applies or no
        cgroup files are readable.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "cpu.max").write_text("150000 100000\\n")
    >>> _ = (root / "cgroup").write_text("0::/\\n")
    >>> cgroup_cpu_limit(root, root / "cgroup")
    1.5
    """
    lines = (_read(proc_self_cgroup) or "").splitlines()
    limits: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # v2: walk from the group to the root
            directory = cgroup_root / relative
            while True:
                limit = _v2_limit(directory)
                if limit is not None:
                    limits.append(limit)
                if directory == cgroup_root or cgroup_root not in directory.parents:
                    break
                directory = directory.parent
        elif "cpu" in controllers.split(","):
            for base in (
                cgroup_root / controllers,
                cgroup_root / "cpu",
                cgroup_root / "cpu,cpuacct",
            ):
                limit = _v1_limit(base / relative)
                if limit is None:
                    limit = _v1_limit(base)  # the namespace's root
                if limit is not None:
                    limits.append(limit)
                    break
    if not lines:  # no /proc: the mount's root alone
        for limit in (_v2_limit(cgroup_root), _v1_limit(cgroup_root)):
            if limit is not None:
                limits.append(limit)
    finite = [limit for limit in limits if math.isfinite(limit)]
    return min(finite) if finite else None


def available_cpus(
    cgroup_root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    affinity: set[int] | None = None,
) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup's quota (rounded up).

    A quota of 1.5 CPUs allows 2 threads to run part of the time; rounding up keeps both busy
    between throttles, rounding down would leave half a CPU idle. Never less than 1.

    Args:
        cgroup_root: see :func:`cgroup_cpu_limit`.
        proc_self_cgroup: see :func:`cgroup_cpu_limit`.
        affinity: the CPU set (default: ``os.sched_getaffinity(0)``, or ``os.cpu_count()`` where the
            platform has no affinity call).

    Returns:
        A positive number of CPUs.

    >>> available_cpus(affinity={0, 1, 2, 3}, cgroup_root=Path("/nonexistent"),
    ...                proc_self_cgroup=Path("/nonexistent"))
    4
    """
    if affinity is None:
        if hasattr(os, "sched_getaffinity"):
            affinity = os.sched_getaffinity(0)
        else:
            affinity = set(range(os.cpu_count() or 1))
    cpus = max(1, len(affinity))
    limit = cgroup_cpu_limit(cgroup_root, proc_self_cgroup)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return cpus


def _requested() -> str | None:
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if value.lower() == KEEP:
        return KEEP
    if not value.isdigit() or int(value) < 1:
        raise ThreadConfigError(
            f"{THREADS_ENV} must be a positive integer or 'keep' (got {value!r}); "
            f"unset it to let torchrs use the CPUs this process may use"
        )
    return value


def set_wait_policy() -> bool:
    """Asks OpenMP to yield at barriers (``OMP_WAIT_POLICY=PASSIVE``), if it is not loaded yet.

    Only effective before torch is imported: OpenMP reads the variables when torch loads it.
    Variables already in the environment are kept, and ``TORCHRS_NUM_THREADS=keep`` sets none.

    Returns:
        True when the policy will take effect (torch not imported yet, not opted out).
    """
    if "torch" in sys.modules or _requested() == KEEP:
        return False
    for name, value in WAIT_POLICY.items():
        os.environ.setdefault(name, value)
    return True


def configure_threads(num_threads: int | None = None) -> ThreadSettings:
    """Sets torch's intra-op threads to the CPUs this process may use.

    Precedence: the argument; ``TORCHRS_NUM_THREADS`` (a number, or ``keep`` for torch's default);
    ``OMP_NUM_THREADS`` when set (torch already honours it; left alone); otherwise
    :func:`available_cpus`.

    Args:
        num_threads: a thread count that overrides everything else.

    Returns:
        The settings now in effect.

    Raises:
        ThreadConfigError: ``num_threads`` or ``TORCHRS_NUM_THREADS`` is not a positive integer.

    >>> settings = configure_threads()
    >>> settings.num_threads >= 1
    True
    """
    import torch

    cpus = available_cpus()
    requested = _requested()
    if num_threads is not None:
        if num_threads < 1:
            raise ThreadConfigError(f"num_threads must be >= 1 (got {num_threads})")
        torch.set_num_threads(num_threads)
        source = "argument"
    elif requested == KEEP:
        source = KEEP
    elif requested is not None:
        torch.set_num_threads(int(requested))
        source = THREADS_ENV
    elif os.environ.get("OMP_NUM_THREADS"):
        source = "OMP_NUM_THREADS"
    else:
        torch.set_num_threads(cpus)
        source = "available cpus"
    return ThreadSettings(
        num_threads=torch.get_num_threads(),
        available_cpus=cpus,
        source=source,
        wait_policy=os.environ.get("OMP_WAIT_POLICY"),
    )


def apply_cpu_limit() -> None:
    """What ``import torchrs`` does about threads: honours ``TORCHRS_NUM_THREADS``, caps at the quota.

    torch (GNU OpenMP) already starts one thread per CPU of the affinity mask; only a cgroup quota
    below that, or an explicit ``TORCHRS_NUM_THREADS``, needs torch imported and its count changed.
    A count the user set lower (``OMP_NUM_THREADS``, ``torch.set_num_threads``) is kept.
    """
    requested = _requested()
    if requested == KEEP:
        return
    if requested is not None:
        configure_threads()
        return
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = available_cpus(affinity=affinity)
    if affinity is not None and cpus >= len(affinity):
        return  # nothing to cap: torch's default already fits
    import torch

    if torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    text = _read(cpuinfo) or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return model, [flag for flag in VECTOR_FLAGS if flag in flags]


def machine_record() -> dict[str, Any]:
    """Where a figure came from: CPU model and vector flags, BLAS / oneDNN, threads, settings, load.

    Benchmarks and parity reports store this next to their figures, so that two figures from
    different CPUs, code paths or loads are never compared unknowingly.

    Returns:
        A JSON-safe dict: ``cpu_model``, ``cpu_flags``, ``available_cpus``, ``torch_threads``,
        ``torch_interop_threads``, ``aten_cpu_capability``, ``blas`` (torch's BLAS and oneDNN
        builds), ``environment`` (the :data:`RECORDED_ENV` variables that are set),
        ``load_average`` (1, 5, 15 minutes; other work on the machine slows every figure).

    >>> record = machine_record()
    >>> sorted(record)[:3]
    ['aten_cpu_capability', 'available_cpus', 'blas']
    """
    import torch

    model, flags = _cpu_model()
    config = torch.__config__.show()
    blas = [f"BLAS {match}" for match in re.findall(r"BLAS_INFO=(\w+)", config)]
    blas += [f"MKL {v}" for v in re.findall(r"Math Kernel Library Version ([\w.]+)", config)[:1]]
    blas += [f"oneDNN {v}" for v in re.findall(r"MKL-DNN (v[\d.]+)", config)[:1]]
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "available_cpus": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "mkldnn_enabled": bool(
            torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
        ),
        "environment": {k: os.environ[k] for k in RECORDED_ENV if k in os.environ},
        "load_average": load,
    }


def machine_summary(record: Mapping[str, Any]) -> str:
    """One line of :func:`machine_record` for a report.

    >>> machine_summary({"cpu_model": "AMD EPYC", "cpu_flags": ["avx2"], "available_cpus": 2,
    ...     "torch_threads": 2, "aten_cpu_capability": "AVX2", "blas": ["BLAS_INFO=mkl"],
    ...     "environment": {}, "load_average": [0.5, 0.4, 0.3]})
    'AMD EPYC (avx2), 2 CPUs usable, torch 2 threads, ATen AVX2, BLAS_INFO=mkl, default environment, load average 0.5 / 0.4 / 0.3'
    """
    env: dict[str, str] = record.get("environment") or {}
    settings = ", ".join(f"{k}={v}" for k, v in env.items()) or "default environment"
    flags = ", ".join(record.get("cpu_flags") or [])
    load = " / ".join(str(x) for x in record.get("load_average") or [])
    blas = "; ".join(record.get("blas") or [])
    return (
        f"{record.get('cpu_model')} ({flags}), {record.get('available_cpus')} CPUs usable, "
        f"torch {record.get('torch_threads')} threads, ATen {record.get('aten_cpu_capability')}, "
        f"{blas}, {settings}, load average {load}"
    )
