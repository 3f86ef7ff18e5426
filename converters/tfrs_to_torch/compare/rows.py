"""The comparison's result rows: one :class:`Check` per figure, in the converter's ``report.json``
and in ``parity``'s ``report.md`` / ``figures.json`` alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from converters.tfrs_to_torch.compare.arrays import ArrayComparison
from converters.tfrs_to_torch.compare.index import IndexComparison
from converters.tfrs_to_torch.compare.tolerance import Agreement, Tolerance


@dataclass(frozen=True)
class Check:
    """One row of a report: TFRS (reference) value, torchrs value, their difference, the tolerance.

    Attributes:
        scenario: what the row is about: a parity scenario, or the part of a model (a tower, an
            index, a signature) whose outputs are compared.
        check: the figure (``"outputs (8x4): max |difference|"``, ``"top-5 ids: ..."``).
        tfrs, torchrs: the two values; difference: between them (or a count).
        tolerance: the bound, in words; passed: within it; reason: why the bound is what it is.
    """

    scenario: str
    check: str
    tfrs: float
    torchrs: float
    difference: float
    tolerance: str
    passed: bool
    reason: str


def array_rows(part: str, what: str, c: ArrayComparison, tol: Tolerance) -> list[Check]:
    """Three rows: the largest absolute and relative differences, and how many values are within.

    >>> from converters.tfrs_to_torch.compare.arrays import compare_arrays
    >>> tol = Tolerance(0.1, 0.0, "test")
    >>> rows = array_rows("tower", "outputs", compare_arrays([1.0, 2.0], [1.0, 2.5], tol), tol)
    >>> [(r.check, r.passed) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [('outputs (2): max |difference|', False),
     ('outputs (2): max relative difference (|TFRS| > atol)', False),
     ('outputs (2): values within atol 0.1', False)]
    """
    bound = f"{tol.describe()}·|TFRS|" if tol.rtol else tol.describe()
    shape = "x".join(str(d) for d in c.shape)
    diff, ref_abs, got_abs = c.max_abs
    rel, ref_rel, got_rel = c.max_rel
    return [
        Check(
            part,
            f"{what} ({shape}): max |difference|",
            ref_abs,
            got_abs,
            diff,
            bound,
            bool(np.isfinite(diff) and diff <= tol.atol + tol.rtol * abs(ref_abs)) or c.size == 0,
            tol.reason,
        ),
        Check(
            part,
            f"{what} ({shape}): max relative difference (|TFRS| > atol)",
            ref_rel,
            got_rel,
            rel,
            bound,
            bool(np.isnan(rel) or abs(got_rel - ref_rel) <= tol.atol + tol.rtol * abs(ref_rel)),
            tol.reason,
        ),
        Check(
            part,
            f"{what} ({shape}): "
            + (f"values within {bound}" if tol.atol or tol.rtol else "values identical"),
            float(c.size),
            float(c.size - c.outside),
            float(c.outside),
            "all",
            c.outside == 0,
            tol.reason,
        ),
    ]


def index_rows(
    part: str, c: IndexComparison, tol: Tolerance, agreement: Agreement, *, ties_aside: bool
) -> list[Check]:
    """The rows of an index: its top-K scores (:func:`array_rows`) and its identifiers.

    Args:
        part: the index's name.
        c: the comparison.
        tol: of the scores.
        agreement: the least fraction of queries whose identifiers must agree.
        ties_aside: judge the identifiers by :func:`top_k_agreement` (``parity validate``) rather
            than requiring them identical, in order (the converter).
    """
    queries = len(c.identical)
    fraction = float(np.mean(c.agreeing if ties_aside else c.identical)) if queries else 1.0
    what = "agreeing (ties aside)" if ties_aside else "identical"
    return [
        *array_rows(part, f"top-{c.k} scores", c.scores, tol),
        Check(
            part,
            f"top-{c.k} ids: fraction of {queries} queries {what}",
            1.0,
            fraction,
            1.0 - fraction,
            agreement.describe(),
            agreement.allows(fraction),
            agreement.reason,
        ),
    ]
