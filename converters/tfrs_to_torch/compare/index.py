"""An index (``BruteForce`` or ``Streaming``) in both frameworks: top-K scores and identifiers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from converters.tfrs_to_torch.compare.arrays import ArrayComparison, compare_arrays
from converters.tfrs_to_torch.compare.tolerance import Tolerance


def as_identifiers(values: Any) -> np.ndarray:
    """Identifiers as an object array of ``str`` (bytes decoded losslessly) or Python ``int``.

    TF answers string identifiers as bytes, torchrs as ``str``; integer ids come as int32 / int64.

    >>> as_identifiers(np.array([[b"a", b"\\xff"]], dtype=object)).tolist()
    [['a', '\\udcff']]
    >>> as_identifiers(np.array([[3, 4]], dtype=np.int32)).tolist()
    [[3, 4]]
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    elif hasattr(values, "numpy") and not isinstance(values, np.ndarray):
        values = values.numpy()
    array = np.asarray(values)
    if array.dtype == object or array.dtype.kind in "SU":
        return np.vectorize(
            lambda v: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v),
            otypes=[object],
        )(array)
    return array.astype(np.int64).astype(object)


def top_k_agreement(
    tf_ids: np.ndarray,
    tf_scores: np.ndarray,
    torch_ids: np.ndarray,
    torch_scores: np.ndarray,
    tolerance: Tolerance,
) -> np.ndarray:
    """Per query, whether two top-K lists agree, ties aside.

    TFRS's list (the reference) is cut into tie groups: consecutive ranks whose TFRS scores are within
    ``tolerance`` of each other. The lists agree when every group holds the same identifiers in both
    (in any order). The last group may continue past rank K, so there torchrs may return other
    identifiers if their torchrs scores are within tolerance of TFRS's K-th score.

    Args:
        tf_ids: ``(Q, K)`` TFRS identifiers.
        tf_scores: ``(Q, K)`` TFRS scores, descending per row.
        torch_ids: ``(Q, K)`` torchrs identifiers.
        torch_scores: ``(Q, K)`` torchrs scores.
        tolerance: when two scores count as equal.

    Returns:
        ``(Q,)`` bool.

    >>> tol = Tolerance(atol=1e-3, rtol=0.0, reason="")
    >>> tf_ids, tf_s = np.array([["a", "b", "c"]]), np.array([[3.0, 2.0, 2.0]])
    >>> top_k_agreement(tf_ids, tf_s, np.array([["a", "c", "b"]]), tf_s, tol).tolist()  # a tie
    [True]
    >>> top_k_agreement(tf_ids, tf_s, np.array([["b", "a", "c"]]), tf_s, tol).tolist()  # not a tie
    [False]
    """
    tf_ids, torch_ids = np.asarray(tf_ids, object), np.asarray(torch_ids, object)
    tf_scores = np.asarray(tf_scores, np.float64)
    torch_scores = np.asarray(torch_scores, np.float64)
    if tf_ids.shape != torch_ids.shape or tf_ids.ndim != 2:
        return np.zeros(len(tf_ids), dtype=bool)
    out = np.all(tf_ids == torch_ids, axis=1)
    k = tf_ids.shape[1]
    for row in np.flatnonzero(~out):
        scores = tf_scores[row]
        start, agree = 0, True
        while start < k and agree:
            stop = start + 1
            while stop < k and tolerance.allows(scores[stop - 1], scores[stop]):
                stop += 1
            want, got = set(tf_ids[row, start:stop]), set(torch_ids[row, start:stop])
            if stop < k:
                agree = want == got
            else:  # the last group: extra ids must tie with the K-th score
                agree = all(
                    tolerance.allows(scores[k - 1], torch_scores[row, start + i])
                    for i, ident in enumerate(torch_ids[row, start:stop])
                    if ident not in want
                )
            start = stop
        out[row] = agree
    return out


@dataclass(frozen=True)
class IndexComparison:
    """TFRS vs torchrs answers of one index to the same queries.

    Attributes:
        k: how many candidates each query returned.
        scores: the top-K scores compared (:func:`compare_arrays`).
        identical: ``(Q,)`` whether the identifiers are the same, in the same order.
        agreeing: ``(Q,)`` whether they agree, ties within the score tolerance aside.
        mismatched_ids: positions whose identifiers differ (all of them when shapes differ).
    """

    k: int
    scores: ArrayComparison
    identical: np.ndarray
    agreeing: np.ndarray
    mismatched_ids: int


def compare_index(
    tf_scores: Any, tf_ids: Any, torch_scores: Any, torch_ids: Any, tolerance: Tolerance
) -> IndexComparison:
    """Compares two ``(scores, ids)`` answers of an index, TF's being the reference.

    Raises:
        ValueError: the score arrays differ in shape.

    >>> tol = Tolerance(1e-6, 1e-5, "")
    >>> c = compare_index([[2.0, 1.0]], [[b"a", b"b"]], [[2.0, 1.0]], [["a", "b"]], tol)
    >>> c.identical.tolist(), c.mismatched_ids, c.scores.passed
    ([True], 0, True)
    """
    ref_ids, got_ids = as_identifiers(tf_ids), as_identifiers(torch_ids)
    ref_scores = np.asarray(tf_scores, np.float64)
    got_scores = np.asarray(torch_scores, np.float64)
    scores = compare_arrays(ref_scores, got_scores, tolerance)
    if ref_ids.shape == got_ids.shape:
        identical = np.all(ref_ids == got_ids, axis=1)
        mismatched = int(np.sum(ref_ids != got_ids))
    else:
        identical = np.zeros(len(ref_ids), dtype=bool)
        mismatched = max(ref_ids.size, got_ids.size)
    agreeing = top_k_agreement(ref_ids, ref_scores, got_ids, got_scores, tolerance)
    k = int(ref_ids.shape[1]) if ref_ids.ndim == 2 else 0
    return IndexComparison(k, scores, identical, agreeing, mismatched)
