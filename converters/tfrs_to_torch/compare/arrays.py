"""TF vs torchrs on one array of outputs: the element-wise comparison every front end uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from converters.tfrs_to_torch.compare.tolerance import Tolerance

_NAN3 = (math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class ArrayComparison:
    """TFRS vs torchrs on one array of outputs.

    Attributes:
        shape: of both arrays.
        max_abs: ``max |torchrs - TFRS|`` and the TFRS / torchrs values where it occurs (``inf``
            where one side is NaN or infinite and the other is not).
        max_rel: ``max |torchrs - TFRS| / |TFRS|`` over values with ``|TFRS| > atol`` (smaller ones
            are judged by ``atol`` alone) and the values where it occurs (NaN when there are none).
        outside: how many values break ``atol + rtol * |TFRS|``.
        nonfinite_mismatch: how many positions hold a NaN or an infinity on one side only (or
            different infinities); NaN on both sides at the same position agrees, as does the same
            infinity (an average over an all-masked sequence is 0 / 0 in Keras and torchrs alike).
        max_excess: ``max(|torchrs - TFRS| - (atol + rtol * |TFRS|))``: <= 0 when every value is
            within tolerance, ``inf`` with a non-finite mismatch.
    """

    shape: tuple[int, ...]
    max_abs: tuple[float, float, float]
    max_rel: tuple[float, float, float]
    outside: int
    nonfinite_mismatch: int = 0
    max_excess: float = 0.0

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def passed(self) -> bool:
        return self.outside == 0


def differences(ref: Any, got: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ref, got, |got - ref|)`` as float64, where equal non-finite values differ by 0 and a
    non-finite value on one side only differs by ``inf``.

    Raises:
        ValueError: the shapes differ.
    """
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: TF {ref.shape}, torchrs {got.shape}")
    with np.errstate(invalid="ignore"):
        same = (ref == got) | (np.isnan(ref) & np.isnan(got))
        diff = np.where(same, 0.0, np.abs(got - ref))
    return ref, got, np.where(np.isnan(diff), np.inf, diff)


def compare_arrays(ref: Any, got: Any, tolerance: Tolerance) -> ArrayComparison:
    """Element-wise comparison of ``got`` (torchrs) with ``ref`` (TFRS) under ``tolerance``.

    Raises:
        ValueError: the shapes differ (two different models).

    >>> c = compare_arrays(np.array([1.0, 100.0]), np.array([1.5, 101.0]), Tolerance(0.1, 0.0, ""))
    >>> c.max_abs, c.max_rel, c.outside
    ((1.0, 100.0, 101.0), (0.5, 1.0, 1.5), 2)
    >>> compare_arrays([np.nan, 1.0], [np.nan, 1.0], Tolerance(0.0, 0.0, "")).passed  # NaN on both sides
    True
    >>> compare_arrays([np.nan, 1.0], [0.0, 1.0], Tolerance(1.0, 1.0, "")).nonfinite_mismatch
    1
    """
    ref, got, diff = differences(ref, got)
    if ref.size == 0:
        return ArrayComparison(ref.shape, (0.0, math.nan, math.nan), _NAN3, 0, 0, 0.0)
    finite_ref, finite_got = np.isfinite(ref), np.isfinite(got)
    mismatch = int(np.sum(np.isinf(diff) & ~(finite_ref & finite_got)))
    with np.errstate(invalid="ignore"):
        excess = diff - np.where(finite_ref, tolerance.bound(np.where(finite_ref, ref, 0.0)), 0.0)
    excess = np.where(diff == 0.0, np.minimum(excess, 0.0), excess)
    outside = int(np.sum(excess > 0))
    worst = np.unravel_index(int(np.argmax(diff)), ref.shape)
    max_abs = (float(diff[worst]), float(ref[worst]), float(got[worst]))
    judged = finite_ref & (np.abs(np.where(finite_ref, ref, 0.0)) > tolerance.atol)
    max_rel = _NAN3
    if np.any(judged):
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(judged, diff / np.where(judged, np.abs(ref), 1.0), -1.0)
        at = np.unravel_index(int(np.argmax(rel)), ref.shape)
        max_rel = (float(rel[at]), float(ref[at]), float(got[at]))
    return ArrayComparison(ref.shape, max_abs, max_rel, outside, mismatch, float(np.max(excess)))


def count_mismatches(ref: Any, got: Any) -> int:
    """Positions where two arrays of identifiers (ints, strings, bytes) differ; all when shapes differ.

    >>> count_mismatches(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [4, 3]]))
    2
    """
    ref, got = np.asarray(ref, object), np.asarray(got, object)
    if ref.shape != got.shape:
        return max(ref.size, got.size)
    return int(np.sum(ref != got))
