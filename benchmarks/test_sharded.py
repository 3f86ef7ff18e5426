"""DDP vs TorchRec-sharded tables at 2 ranks: peak memory per rank and examples/s (``sharded_memory.py``).

User 100k x 64 + item 1M x 64 tables (269 MiB), where DDP's per-rank replicas (tables, dense gradients, buckets,
accumulators) dominate. The script launches torchrun twice (2 gloo ranks each); one round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks._common import run_case
from torchrs.distributed import torchrec_available

SCRIPT = Path(__file__).with_name("sharded_memory.py")
REPO = SCRIPT.parent.parent


@pytest.mark.skipif(not torchrec_available(), reason="TorchRec is not installed (`make torchrec`)")
def test_ddp_vs_sharded_memory_per_rank(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "sharded tables: 2 ranks, 100k + 1M x 64"
    output = tmp_path / "sharded.json"
    args = [sys.executable, str(SCRIPT), "--json", str(output)]

    def run() -> None:
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    run_case(
        benchmark, run, framework="ddp+sharded", work=1, unit="runs/s", rounds=1, warmup_rounds=0
    )
    figures = json.loads(output.read_text())
    for mode, values in figures["modes"].items():
        benchmark.extra_info[f"{mode}_peak_mib_per_rank"] = values[
            "peak_above_baseline_mib_per_rank"
        ]
        benchmark.extra_info[f"{mode}_examples_per_second"] = values["examples_per_second_global"]
    benchmark.extra_info["tables_mib"] = figures["tables_mib"]
