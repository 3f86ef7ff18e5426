"""NaN and infinity in the source weights are findings, and a comparison involving NaN never passes.

The writer reads each source tensor once; :func:`watch_nonfinite` wraps every planned tensor's
loader so that read also counts its NaN / +inf / -inf values (no second pass over a large table).
After writing, :func:`raise_on_nonfinite` fails the conversion unless ``--allow-nonfinite``;
either way the findings go to ``report.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError

# Findings listed in the error message (all of them go to report.json).
MAX_LISTED = 5
# Elements checked per pass: np.isfinite's boolean temporary stays at 4 MiB, not a quarter of a
# float32 table's size (measured: 1.04 -> 1.25 copies of a 488 MiB table without blocks).
BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class NonFinite:
    """Counts of non-finite values in one converted tensor."""

    tensor: str
    source: str
    nan: int
    posinf: int
    neginf: int

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def count_nonfinite(array: np.ndarray) -> tuple[int, int, int]:
    """``(nan, +inf, -inf)`` counts of a float array (zeros for other dtypes).

    >>> count_nonfinite(np.array([1.0, np.nan, np.inf, -np.inf, np.nan]))
    (2, 1, 1)
    """
    if array.dtype.kind not in "fc" or array.size == 0:
        return 0, 0, 0
    flat = array.reshape(-1)
    nan = posinf = neginf = 0
    for start in range(0, flat.size, BLOCK_ELEMENTS):
        block = flat[start : start + BLOCK_ELEMENTS]
        if bool(np.isfinite(block).all()):
            continue
        nan += int(np.isnan(block).sum())
        posinf += int(np.isposinf(block).sum())
        neginf += int(np.isneginf(block).sum())
    return nan, posinf, neginf


def watch_nonfinite(plan: Any, findings: dict[str, NonFinite]) -> None:
    """Makes every planned tensor record its non-finite counts in ``findings`` when first loaded."""

    def wrap(tensor: Any, load: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
        def checked() -> np.ndarray:
            array = load()
            if tensor.torch_name not in findings:
                nan, posinf, neginf = count_nonfinite(np.asarray(array))
                if nan or posinf or neginf:
                    findings[tensor.torch_name] = NonFinite(
                        tensor.torch_name, tensor.source, nan, posinf, neginf
                    )
            return array

        return checked

    for tensor in plan.tensors:
        tensor.load = wrap(tensor, tensor.load)


def raise_on_nonfinite(findings: Mapping[str, NonFinite], allow: bool) -> None:
    """Fails on non-finite source values unless ``allow`` (``--allow-nonfinite``).

    Raises:
        ConversionError: listing the tensors and their counts.
    """
    if not findings or allow:
        return
    listed = "; ".join(
        f"{f.source}: {f.nan} NaN, {f.posinf} +inf, {f.neginf} -inf"
        for f in list(findings.values())[:MAX_LISTED]
    )
    more = f" (and {len(findings) - MAX_LISTED} more)" if len(findings) > MAX_LISTED else ""
    raise ConversionError(
        f"The source model holds non-finite weights: {listed}{more}. Training diverged or the "
        "export is corrupted; convert an earlier checkpoint, or pass --allow-nonfinite to convert "
        "it anyway (they are listed in report.json)."
    )


def verification_failures(
    diffs: Mapping[str, float],
    tolerance: float,
    nonfinite_allowed: bool,
    notes: list[str],
) -> dict[str, float]:
    """The parts whose TF-vs-torch difference fails: above tolerance, or NaN / infinite.

    A NaN difference never passes; when the user allowed non-finite source weights, a part whose
    difference is NaN is recorded as not verified (a note) rather than failed.

    >>> verification_failures({"a": 0.0, "b": float("nan"), "c/ids_mismatch": 1.0}, 1e-5, False, [])
    {'b': nan, 'c/ids_mismatch': 1.0}
    """
    bad: dict[str, float] = {}
    for part, value in diffs.items():
        limit = 0.0 if part.endswith("ids_mismatch") else tolerance
        if value <= limit:
            continue
        sibling = diffs.get(part[: -len("ids_mismatch")] + "scores", 0.0)
        if nonfinite_allowed and (math.isnan(value) or math.isnan(sibling)):
            notes.append(f"forward check of {part} not verified: non-finite outputs (NaN weights)")
            continue
        bad[part] = value
    return bad


def max_abs_difference(expected: Any, got: Any) -> float:
    """``max |expected - got|`` where a NaN never compares as close.

    Where both sides hold NaN at the same position (an average over an all-masked sequence gives
    0 / 0 in Keras and in torchrs alike), or the same infinity, the two agree there; a NaN or an
    infinity on one side only makes the result NaN / inf, which fails any tolerance.

    >>> max_abs_difference(np.array([1.0, np.nan]), np.array([1.5, np.nan]))
    0.5
    >>> max_abs_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    nan
    """
    e, g = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    e, g = np.broadcast_arrays(e, g)
    nan_e, nan_g = np.isnan(e), np.isnan(g)
    if not np.array_equal(nan_e, nan_g):
        return math.nan
    with np.errstate(invalid="ignore"):
        diff = np.where(nan_e | (e == g), 0.0, np.abs(e - g))
    return float(diff.max()) if diff.size else 0.0
