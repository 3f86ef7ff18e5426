"""``python -m parity.sharded``: the sharded basic retrieval model follows unsharded torchrs step by step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from parity.sharded import TOLERANCE, compare, main
from torchrs.distributed import torchrec_available


def test_compare_flags_a_weight_or_a_loss_off_by_more_than_the_tolerance() -> None:
    weights = {"t.weight": torch.zeros(3, 2)}
    assert compare([2.0, 1.0], [2.0, 1.0], weights, {"t.weight": torch.zeros(3, 2)})["passed"]
    off = torch.zeros(3, 2)
    off[2, 1] = 3 * TOLERANCE
    figures = compare([2.0, 1.0], [2.0, 1.0], weights, {"t.weight": off})
    assert not figures["passed"]
    assert figures["max_weight_abs_difference"] == pytest.approx(3 * TOLERANCE)
    assert not compare([2.0, 1.0], [2.0, 1.0 + 1e-5], weights, weights)["passed"]
    assert compare([1.0], [1.0], weights, {})["missing_weights"] == ["t.weight"]


@pytest.mark.slow
@pytest.mark.skipif(
    not torchrec_available(), reason="TorchRec is not installed (optional: `make torchrec`)"
)
def test_sharded_row_wise_run_matches_unsharded(tmp_path: Path) -> None:
    # One torchrun launch (2 gloo ranks), ~10 steps of the tutorial on 1% of the synthetic MovieLens.
    code = main(["--scale", "0.01", "--epochs", "1", "--report", str(tmp_path)])
    figures = json.loads((tmp_path / "report.json").read_text())
    assert code == 0, figures
    assert figures["steps"] >= 5
    assert figures["max_loss_relative_difference"] <= TOLERANCE
    assert figures["max_weight_abs_difference"] <= TOLERANCE
    assert set(figures["weight_abs_difference"]) >= {"user_model.1.weight", "movie_model.1.weight"}
    assert "PASSED" in (tmp_path / "report.md").read_text()
