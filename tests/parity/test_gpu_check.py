"""`parity.gpu_check` end to end on the CPU at a reduced scale, torch only (as on the GPU machine)."""

from __future__ import annotations

import json

import pytest
import torch

from parity.gpu_check import Roofline, main, matmul_flops, measure_roofline, measure_throughput
from tests.parity._no_tf import run_without_tf


@pytest.mark.tf
def test_gpu_check_runs_end_to_end_on_cpu_without_tensorflow(records, tmp_path) -> None:
    done = run_without_tf(
        "parity.gpu_check",
        "--records",
        str(records),
        "--device",
        "cpu",
        "--report",
        str(tmp_path),
        "--batch",
        "256",
        "--corpus",
        "4096",
        "--dim",
        "16",
        "--queries",
        "1000",
        "--steps",
        "2",
        "--eval-batches",
        "1",
        "--roofline-size",
        "256",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no_tf: import tensorflow fails" in done.stdout
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["passed"] and set(figures["replay"]) == {
        "basic_retrieval",
        "basic_ranking",
        "dcn",
    }
    assert figures["device"] == "cpu" and figures["roofline"]["flops_per_second"] > 0
    cases = [t["case"] for t in figures["throughput"]]
    assert (
        cases[0].startswith("train")
        and cases[1].startswith("evaluate")
        and "BruteForce" in cases[2]
    )
    for t in figures["throughput"]:
        assert t["examples_per_second"] > 0 and t["batch"] == 256
        # achieved = examples/s x matmul work per example; the ratio is against the measured roofline.
        assert t["achieved_flops_per_second"] == pytest.approx(
            t["examples_per_second"] * t["matmul_flops_per_example"]
        )
        assert t["roofline_ratio"] == pytest.approx(
            t["achieved_flops_per_second"] / figures["roofline"]["flops_per_second"]
        )
    report = (tmp_path / "report.md").read_text()
    assert "Replay parity (basic_retrieval, basic_ranking, dcn" in report and "**PASS**" in report
    assert (tmp_path / "parity" / "report.md").is_file()


def test_matmul_work_of_each_case() -> None:
    # (B, D) @ (D, N): B * N dot products of D multiply-adds.
    assert matmul_flops(8192, 64, 1_000_000) == 2 * 8192 * 64 * 1_000_000


def test_throughput_is_measured_against_the_roofline() -> None:
    device = torch.device("cpu")
    roofline = measure_roofline(device, 64, repeats=2)
    assert roofline.flops_per_second == pytest.approx(matmul_flops(64, 64, 64) / roofline.seconds)
    fixed = Roofline(size=64, seconds=1.0, flops_per_second=1e9, float32_matmul_precision="highest")
    train, evaluate, query = measure_throughput(
        device, fixed, batch=32, corpus=256, dim=8, num_queries=100, steps=1, eval_batches=1
    )
    # In-batch softmax: 3 matmuls of (32, 8) x (8, 32) per step, per example 3 * 2 * 8 * 32.
    assert train.matmul_flops_per_example == 3 * 2 * 8 * 32
    assert evaluate.matmul_flops_per_example == query.matmul_flops_per_example == 2 * 8 * 256
    assert query.roofline_ratio == pytest.approx(query.achieved_flops_per_second / 1e9)


def test_usage_errors_are_one_line(capsys, tmp_path) -> None:
    assert main(["--records", str(tmp_path), "--device", "cpu", "--batch", "0"]) == 2
    assert capsys.readouterr().err.startswith("parity.gpu_check: error: --batch must be a positive")
    assert main(["--records", str(tmp_path), "--device", "cpu"]) == 2
    assert "holds no parity records" in capsys.readouterr().err
