"""A model's outputs in both frameworks, flattened the same way and compared output by output."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from converters.tfrs_to_torch.compare.arrays import (
    ArrayComparison,
    compare_arrays,
    count_mismatches,
)
from converters.tfrs_to_torch.compare.rows import Check, array_rows
from converters.tfrs_to_torch.compare.tolerance import Tolerance


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor, a TF tensor or anything array-like as NumPy (TF strings as an object array).

    >>> import torch
    >>> to_numpy(torch.tensor([1.0, 2.0])).tolist()
    [1.0, 2.0]
    """
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.asarray(value)
    return array.astype(object) if array.dtype.kind in "OS" else array


def flatten_outputs(value: Any, path: str = "") -> dict[str, np.ndarray]:
    """Nested outputs (dicts by sorted key, lists, tuples) as ``{path: array}``; a single array is ``"output"``.

    >>> one = np.zeros(2)
    >>> sorted(flatten_outputs({"b": one, "a": (one, one)}))
    ['a/0', 'a/1', 'b']
    """
    if isinstance(value, Mapping):
        out: dict[str, np.ndarray] = {}
        for key in sorted(value):
            out.update(flatten_outputs(value[key], f"{path}/{key}" if path else str(key)))
        return out
    if isinstance(value, list | tuple):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten_outputs(item, f"{path}/{i}" if path else str(i)))
        return out
    return {path or "output": to_numpy(value)}


@dataclass(frozen=True)
class OutputComparison:
    """One output of both frameworks.

    Attributes:
        name: the output's path.
        shapes: TF's and torchrs's shapes.
        floats: the element-wise comparison of a float output (None for identifiers / ints / strings,
            or when the shapes differ).
        mismatched: positions differing, for outputs compared exactly (all when the shapes differ).
    """

    name: str
    shapes: tuple[tuple[int, ...], tuple[int, ...]]
    floats: ArrayComparison | None
    mismatched: int

    @property
    def passed(self) -> bool:
        if self.floats is not None:
            return self.floats.passed
        return self.mismatched == 0 and self.shapes[0] == self.shapes[1]

    @property
    def excess(self) -> float:
        """0 when the output passes; else how far it is off (``inf`` for a NaN on one side only or
        other shapes, the excess over tolerance of a float, the count of differing identifiers)."""
        if self.shapes[0] != self.shapes[1]:
            return math.inf
        if self.floats is None:
            return float(self.mismatched)
        if self.floats.nonfinite_mismatch:
            return math.inf
        return max(0.0, self.floats.max_excess)

    @property
    def max_abs(self) -> float:
        """``max |torchrs - TF|`` of a float output, NaN where a NaN / infinity is on one side only."""
        if self.floats is None:
            return float(self.mismatched)
        return math.nan if self.floats.nonfinite_mismatch else self.floats.max_abs[0]

    def rows(
        self, part: str, tol: Tolerance, what: str | None = None, *, compact: bool = False
    ) -> list[Check]:
        """The report rows of this output: :func:`array_rows` for floats (only the count of values
        within tolerance when ``compact``), one exact row otherwise."""
        label = what or self.name
        if self.floats is not None:
            rows = array_rows(part, label, self.floats, tol)
            return rows[2:] if compact else rows
        shape = "x".join(str(d) for d in self.shapes[0])
        size = float(np.prod(self.shapes[0])) if self.shapes[0] == self.shapes[1] else math.nan
        return [
            Check(
                part,
                f"{label} ({shape}): values identical",
                size,
                size - self.mismatched,
                float(self.mismatched),
                "exact",
                self.passed,
                "identifiers, integers and strings are compared exactly",
            )
        ]


def compare_output(name: str, ref: Any, got: Any, tol: Tolerance) -> OutputComparison:
    """Compares one output: floats under ``tol``, anything else exactly.

    >>> tol = Tolerance(1e-6, 1e-5, "")
    >>> compare_output("ids", np.array([1, 2]), np.array([1, 3]), tol).excess
    1.0
    >>> compare_output("x", np.array([1.0]), np.array([1.0 + 1e-7]), tol).passed
    True
    """
    ref, got = to_numpy(ref), to_numpy(got)
    shapes = (tuple(ref.shape), tuple(got.shape))
    if shapes[0] != shapes[1]:
        return OutputComparison(name, shapes, None, max(ref.size, got.size))
    if ref.dtype.kind in "fc":
        return OutputComparison(name, shapes, compare_arrays(ref, got, tol), 0)
    return OutputComparison(name, shapes, None, count_mismatches(ref, got))


def compare_outputs(expected: Any, got: Any, tol: Tolerance) -> list[OutputComparison]:
    """Every output of two nested structures (:func:`flatten_outputs`), TF's being the reference.

    Raises:
        ValueError: the two structures hold other outputs.
    """
    ref, out = flatten_outputs(expected), flatten_outputs(got)
    if len(ref) != len(out):
        raise ValueError(f"TF returns {len(ref)} outputs ({sorted(ref)}), torchrs {len(out)}")
    if set(ref) != set(out):  # e.g. a dict on one side, a list on the other: compare in order
        return [
            compare_output(name, r, o, tol)
            for (name, r), o in zip(ref.items(), out.values(), strict=True)
        ]
    return [compare_output(name, ref[name], out[name], tol) for name in ref]
