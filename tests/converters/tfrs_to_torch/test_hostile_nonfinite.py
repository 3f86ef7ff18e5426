"""Hostile inputs, class 3 (converter side): NaN / inf in the source weights are findings.

They fail the conversion by default (nothing written), ``--allow-nonfinite`` converts anyway and
lists them in ``report.json``; a TF-vs-torch comparison with a NaN on one side never passes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from converters.tfrs_to_torch.safety.nonfinite import max_abs_difference, verification_failures

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def diverged(tf, tmp_path_factory) -> Path:
    """A Keras SavedModel tower whose embedding row 3 is NaN and whose Dense kernel holds +-inf."""
    root = tmp_path_factory.mktemp("diverged")
    tower = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.int64),
            tf.keras.layers.IntegerLookup(vocabulary=list(range(10, 20))),
            tf.keras.layers.Embedding(11, 4),
            tf.keras.layers.Dense(2),
        ]
    )
    table = tower.layers[1].get_weights()[0]
    table[3] = np.nan
    tower.layers[1].set_weights([table])
    kernel, bias = tower.layers[2].get_weights()
    kernel[0, 0], kernel[1, 1] = np.inf, -np.inf
    tower.layers[2].set_weights([kernel, bias])
    tower.save(str(root / "tower"), save_format="tf")
    return root / "tower"


class TestNonFiniteWeights:
    def test_refused_by_default(self, diverged, run_cli, tree, tmp_path) -> None:
        run = run_cli(diverged, "--out", tmp_path / "out")
        run.one_error("non-finite weights", "4 NaN", "1 +inf, 1 -inf", "--allow-nonfinite")
        assert tree.nothing_left(tmp_path / "out")

    def test_allowed_and_reported(self, diverged, run_cli, tmp_path) -> None:
        run = run_cli(diverged, "--out", tmp_path / "out", "--allow-nonfinite", "--no-verify")
        assert run.code == 0, run.err
        safety = json.loads((tmp_path / "out" / "report.json").read_text())["safety"]
        found = {f["tensor"]: (f["nan"], f["posinf"], f["neginf"]) for f in safety["nonfinite"]}
        assert found == {"1.weight": (4, 0, 0), "2.weight": (0, 1, 1)}
        assert safety["allow_nonfinite"] is True


class TestComparisons:
    def test_nan_on_one_side_never_passes(self) -> None:
        assert math.isnan(max_abs_difference(np.array([1.0, np.nan]), np.array([1.0, 1.0])))
        assert math.isnan(max_abs_difference(np.array([1.0, 1.0]), np.array([np.nan, 1.0])))
        assert max_abs_difference(np.array([np.inf]), np.array([1.0])) == math.inf
        assert verification_failures({"t": math.nan}, 1e-5, False, []) == {
            "t": pytest.approx(math.nan, nan_ok=True)
        }

    def test_same_nan_on_both_sides_is_agreement(self) -> None:
        # Keras and torchrs both give 0 / 0 for an average over an all-masked sequence.
        assert max_abs_difference(
            np.array([np.nan, 2.0]), np.array([np.nan, 2.0 + 1e-7])
        ) == pytest.approx(1e-7)
        assert max_abs_difference(np.array([-np.inf]), np.array([-np.inf])) == 0.0

    def test_allowed_nonfinite_marks_the_part_unverified(self) -> None:
        notes: list[str] = []
        bad = verification_failures(
            {"idx/scores": math.nan, "idx/ids_mismatch": 3.0}, 1e-5, True, notes
        )
        assert bad == {} and len(notes) == 2 and all("not verified" in n for n in notes)


def test_counts_add_up_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-finite values are counted block by block (bounded memory): values on both sides of a
    block edge and in a (4, 5) array's later rows are all found."""
    from converters.tfrs_to_torch.safety import nonfinite

    monkeypatch.setattr(nonfinite, "BLOCK_ELEMENTS", 3)
    array = np.zeros((4, 5), dtype=np.float32)
    array[0, 2], array[0, 3] = np.nan, np.inf  # either side of the first block edge
    array[3, 4], array[2, 0] = -np.inf, np.nan  # the last block, a middle one
    assert nonfinite.count_nonfinite(array) == (2, 1, 1)
    assert nonfinite.count_nonfinite(np.ones((4, 5), dtype=np.float32)) == (0, 0, 0)
