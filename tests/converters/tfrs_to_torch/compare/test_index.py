"""Index answers (BruteForce / Streaming) compared by the engine: ids identical, ties, scores."""

from __future__ import annotations

import numpy as np

from converters.tfrs_to_torch.compare import (
    IDENTICAL_IDS,
    TOP_K_AGREEMENT,
    Tolerance,
    as_identifiers,
    compare_index,
    index_rows,
)

_TOL = Tolerance(atol=1e-3, rtol=0.0, reason="test")


def test_identical_answers_pass_and_bytes_equal_str() -> None:
    c = compare_index([[3.0, 2.0]], [[b"a", b"b"]], [[3.0, 2.0]], [["a", "b"]], _TOL)
    assert c.identical.tolist() == [True] and c.mismatched_ids == 0 and c.k == 2
    assert all(r.passed for r in index_rows("index", c, _TOL, IDENTICAL_IDS, ties_aside=False))


def test_differing_ids_fail() -> None:
    c = compare_index([[3.0, 2.0]], [[1, 2]], [[3.0, 1.0]], [[1, 7]], _TOL)
    assert c.mismatched_ids == 1 and c.identical.tolist() == [False]
    assert c.agreeing.tolist() == [False]  # 7 scores 1.0, not tied with TF's K-th score (2.0)
    # Had torchrs scored 7 at 2.0 (a tie with rank K, cut at K in either list), it would agree.
    tie = compare_index([[3.0, 2.0]], [[1, 2]], [[3.0, 2.0]], [[1, 7]], _TOL)
    assert tie.agreeing.tolist() == [True] and tie.identical.tolist() == [False]
    rows = index_rows("index", c, _TOL, TOP_K_AGREEMENT, ties_aside=True)
    assert rows[-1].check == "top-2 ids: fraction of 1 queries agreeing (ties aside)"
    assert not rows[-1].passed and rows[-1].torchrs == 0.0


def test_a_reordered_tie_is_not_identical_but_agrees() -> None:
    scores = [[3.0, 2.0, 2.0]]
    c = compare_index(scores, [["a", "b", "c"]], scores, [["a", "c", "b"]], _TOL)
    assert c.identical.tolist() == [False] and c.agreeing.tolist() == [True]
    # The converter requires identical ids; parity validate allows ties.
    strict = index_rows("i", c, _TOL, IDENTICAL_IDS, ties_aside=False)[-1]
    lenient = index_rows("i", c, _TOL, TOP_K_AGREEMENT, ties_aside=True)[-1]
    assert not strict.passed and lenient.passed


def test_a_nan_score_on_one_side_fails_the_scores() -> None:
    c = compare_index([[3.0, 2.0]], [[1, 2]], [[3.0, np.nan]], [[1, 2]], _TOL)
    assert c.scores.nonfinite_mismatch == 1
    rows = index_rows("index", c, _TOL, IDENTICAL_IDS, ties_aside=False)
    assert rows[-1].passed and not rows[0].passed  # ids agree, scores do not


def test_identifiers_normalised() -> None:
    assert as_identifiers(np.array([b"x", b"\xff"], object)).tolist() == ["x", "\udcff"]
    assert as_identifiers(np.array([5], np.int32)).tolist() == [5]
