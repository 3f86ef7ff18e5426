"""The comparison engine on hand-made arrays (no TensorFlow): what agrees, what fails, and the bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from converters.tfrs_to_torch.compare import (
    CONVERTER_TOLERANCE,
    VALIDATE_TOLERANCE,
    Tolerance,
    compare_arrays,
    compare_output,
    compare_outputs,
)

_TOL = Tolerance(atol=1e-6, rtol=1e-5, reason="test")


def test_nan_on_one_side_fails_under_any_tolerance() -> None:
    wide = Tolerance(atol=1e9, rtol=1e9, reason="test")
    for ref, got in (([1.0, np.nan], [1.0, 2.0]), ([1.0, 2.0], [1.0, np.nan])):
        c = compare_arrays(np.array(ref), np.array(got), wide)
        assert not c.passed and c.outside == 1 and c.nonfinite_mismatch == 1
        assert c.max_abs[0] == math.inf and c.max_excess == math.inf


def test_nan_on_both_sides_in_the_same_place_agrees() -> None:
    # An average over an all-masked sequence is 0 / 0 in Keras and torchrs alike.
    exact = Tolerance(atol=0.0, rtol=0.0, reason="test")
    c = compare_arrays(np.array([np.nan, 1.0, np.inf]), np.array([np.nan, 1.0, np.inf]), exact)
    assert c.passed and c.nonfinite_mismatch == 0 and c.max_abs[0] == 0.0 and c.max_excess <= 0


def test_nan_in_another_place_fails_and_opposite_infinities_fail() -> None:
    c = compare_arrays(np.array([np.nan, 1.0]), np.array([1.0, np.nan]), _TOL)
    assert c.outside == 2 and c.nonfinite_mismatch == 2
    c = compare_arrays(np.array([np.inf]), np.array([-np.inf]), _TOL)
    assert not c.passed and c.nonfinite_mismatch == 1


@pytest.mark.parametrize(
    ("ref", "delta", "passes"),
    [
        # bound = atol + rtol * |ref| = 1e-6 + 1e-5 * 100 = 1.001e-3
        (100.0, 1.0009e-3, True),
        (100.0, 1.0011e-3, False),
        # near zero only atol counts: 1e-6 + 1e-5 * 1e-3 = 1.01e-6
        (1e-3, 1.0e-6, True),
        (1e-3, 1.02e-6, False),
        # exactly zero: the bound is atol itself
        (0.0, 0.999e-6, True),
        (0.0, 1.001e-6, False),
    ],
)
def test_tolerance_bound_edges(ref: float, delta: float, passes: bool) -> None:
    c = compare_arrays(np.array([ref]), np.array([ref + delta]), _TOL)
    assert c.passed is passes
    assert (c.max_excess <= 0) is passes
    # The relative reference is TF's value (the reference), not torchrs's: the bound is not symmetric.
    assert c.max_abs[1] == ref


def test_the_reference_is_tf_relative_bound_uses_its_magnitude() -> None:
    tol = Tolerance(atol=0.0, rtol=0.1, reason="test")
    assert compare_arrays(np.array([10.0]), np.array([11.0]), tol).passed  # 1 <= 0.1 * 10
    assert not compare_arrays(np.array([11.0]), np.array([9.8]), tol).passed  # 1.2 > 1.1


def test_max_relative_difference_ignores_values_below_atol() -> None:
    tol = Tolerance(atol=1e-3, rtol=0.0, reason="test")
    c = compare_arrays(np.array([1e-4, 2.0]), np.array([3e-4, 2.001]), tol)
    assert c.max_rel == pytest.approx((5e-4, 2.0, 2.001))  # 1e-4 is judged by atol alone


def test_other_shapes_raise_and_empty_arrays_pass() -> None:
    with pytest.raises(ValueError, match=r"shapes differ: TF \(2,\), torchrs \(3,\)"):
        compare_arrays(np.zeros(2), np.zeros(3), _TOL)
    assert compare_arrays(np.zeros((0, 4)), np.zeros((0, 4)), _TOL).passed


def test_identifiers_must_be_identical() -> None:
    ok = compare_output("ids", np.array([[1, 2]]), np.array([[1, 2]]), _TOL)
    bad = compare_output("ids", np.array([[1, 2]]), np.array([[2, 1]]), _TOL)
    assert ok.passed and ok.excess == 0.0
    assert not bad.passed and bad.mismatched == 2 and bad.excess == 2.0
    strings = compare_output("s", np.array([b"a"], object), np.array([b"b"], object), _TOL)
    assert not strings.passed
    shape = compare_output("x", np.zeros(2), np.zeros(3), _TOL)
    assert not shape.passed and shape.excess == math.inf


def test_outputs_flattened_the_same_way_on_both_sides() -> None:
    tf_side = {"b": np.ones(2), "a": (np.zeros(1), np.array([3.0]))}
    torch_side = {"a": [np.zeros(1), np.array([3.0 + 1e-4])], "b": np.ones(2)}
    found = {c.name: c.passed for c in compare_outputs(tf_side, torch_side, _TOL)}
    assert found == {"a/0": True, "a/1": False, "b": True}
    with pytest.raises(ValueError, match="TF returns 3 outputs"):
        compare_outputs(tf_side, {"b": np.ones(2)}, _TOL)


def test_rows_say_what_failed_and_why() -> None:
    c = compare_output("outputs", np.array([1.0, 2.0]), np.array([1.0, 2.5]), _TOL)
    rows = c.rows("tower", _TOL)
    assert [r.check for r in rows] == [
        "outputs (2): max |difference|",
        "outputs (2): max relative difference (|TFRS| > atol)",
        "outputs (2): values within atol 1e-06 + rtol 1e-05·|TFRS|",
    ]
    assert not any(r.passed for r in rows) and rows[0].difference == 0.5
    assert all(r.scenario == "tower" and r.reason == "test" for r in rows)
    assert len(c.rows("tower", _TOL, compact=True)) == 1


def test_the_two_named_tolerances() -> None:
    # One record, two instances: the converter's tight floor, validate's wider one for big batches.
    assert (CONVERTER_TOLERANCE.atol, CONVERTER_TOLERANCE.rtol) == (1e-6, 1e-5)
    assert (VALIDATE_TOLERANCE.atol, VALIDATE_TOLERANCE.rtol) == (1e-5, 1e-5)
    assert CONVERTER_TOLERANCE.reason and VALIDATE_TOLERANCE.reason
    with pytest.raises(AttributeError):
        CONVERTER_TOLERANCE.atol = 1.0  # type: ignore[misc]  # frozen
