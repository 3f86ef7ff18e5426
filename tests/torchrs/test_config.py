"""torchrs.config: the CPUs a process may use (affinity, cgroup quotas) and torch's threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchrs.config import (
    THREADS_ENV,
    ThreadConfigError,
    available_cpus,
    cgroup_cpu_limit,
    configure_threads,
)


def _fake_v2(tmp_path: Path, group: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup v2 mount at tmp_path/cg with `files` ({relative path: cpu.max text}) and the process in `group`."""
    root = tmp_path / "cg"
    for relative, text in files.items():
        directory = root / relative
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(text + "\n")
    root.mkdir(exist_ok=True)
    proc = tmp_path / "proc_cgroup"
    proc.write_text(f"0::{group}\n")
    return root, proc


def test_v2_quota_of_the_group(tmp_path: Path) -> None:
    # 150000 us of CPU time per 100000 us period = 1.5 CPUs.
    root, proc = _fake_v2(tmp_path, "/job", {"job": "150000 100000"})
    assert cgroup_cpu_limit(root, proc) == 1.5
    # 1.5 CPUs round up to 2 threads; 8 CPUs in the affinity mask do not matter.
    assert available_cpus(root, proc, affinity=set(range(8))) == 2


def test_v2_tightest_ancestor_applies(tmp_path: Path) -> None:
    # The group is unlimited, its parent allows 1 CPU, the root allows 4: the parent's 1 applies.
    root, proc = _fake_v2(
        tmp_path,
        "/a/b",
        {"": "400000 100000", "a": "100000 100000", "a/b": "max 100000"},
    )
    assert cgroup_cpu_limit(root, proc) == 1.0
    assert available_cpus(root, proc, affinity={0, 1, 2, 3}) == 1


def test_v2_unlimited_and_missing(tmp_path: Path) -> None:
    root, proc = _fake_v2(tmp_path, "/", {"": "max 100000"})
    assert cgroup_cpu_limit(root, proc) is None
    assert available_cpus(root, proc, affinity={0, 1, 2}) == 3
    assert cgroup_cpu_limit(tmp_path / "nowhere", tmp_path / "nothing") is None


def test_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    group = root / "cpu,cpuacct" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text("50000\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_limit(root, proc) == 0.5
    # Half a CPU still runs one thread.
    assert available_cpus(root, proc, affinity={0, 1}) == 1
    (group / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert cgroup_cpu_limit(root, proc) is None


def test_affinity_below_quota(tmp_path: Path) -> None:
    root, proc = _fake_v2(tmp_path, "/", {"": "800000 100000"})
    assert available_cpus(root, proc, affinity={3}) == 1


def test_this_process() -> None:
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_configure_threads_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv(THREADS_ENV, "1")
        settings = configure_threads()
        assert (settings.num_threads, settings.source) == (1, THREADS_ENV)
        assert configure_threads(2).num_threads == 2  # the argument wins
        monkeypatch.setenv(THREADS_ENV, "keep")
        assert configure_threads().source == "keep"
        monkeypatch.delenv(THREADS_ENV)
        settings = configure_threads()
        assert settings.source == "available cpus"
        assert settings.num_threads == available_cpus()
        monkeypatch.setenv(THREADS_ENV, "two")
        with pytest.raises(
            ThreadConfigError, match=r"TORCHRS_NUM_THREADS must be a positive.*'two'"
        ):
            configure_threads()
        monkeypatch.delenv(THREADS_ENV)
        with pytest.raises(ThreadConfigError, match=r"num_threads must be >= 1 \(got 0\)"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def _run(code: str, **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", THREADS_ENV)
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_import_sets_the_wait_policy_only_before_torch() -> None:
    show = "import os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('KMP_BLOCKTIME'))"
    assert _run("import torchrs; " + show) == "PASSIVE 0"
    assert _run("import torch, torchrs; " + show) == "None None"  # too late: OpenMP is loaded
    assert (
        _run("import torchrs; " + show, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE 0"
    )  # the user's kept
    assert _run("import torchrs; " + show, **{THREADS_ENV: "keep"}) == "None None"


def test_import_applies_torchrs_num_threads() -> None:
    code = "import torchrs, torch; print(torch.get_num_threads())"
    assert _run(code, **{THREADS_ENV: "1"}) == "1"
