"""functional.top_k: TF's tie rule, the blocked brute-force search, merging and exclusions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.functional.top_k import (
    EXCLUSION_PENALTY,
    PRUNED_MAX_K,
    _spans,
    exclude_top_k,
    merge_top_k,
    select_top_k,
    stable_top_k,
    top_k_dot,
)


def _reference(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """TF's documented order by brute force: a stable descending sort keeps equal values in index order."""
    values, indices = torch.sort(scores, dim=-1, descending=True, stable=True)
    return values[..., :k], indices[..., :k]


# ----------------------------------------------------------------------------- stable_top_k


def test_stable_top_k_hand_derived_ties() -> None:
    # Row [1, 3, 2, 3, 3]: the three 3s come first in index order (1, 3, 4), then the 2 at index 2.
    # k=2 keeps the two lowest-indexed 3s (1, 3), not 4.
    values, indices = stable_top_k(torch.tensor([[1.0, 3.0, 2.0, 3.0, 3.0]]), 4)
    assert values.tolist() == [[3.0, 3.0, 3.0, 2.0]]
    assert indices.tolist() == [[1, 3, 4, 2]]
    assert stable_top_k(torch.tensor([[1.0, 3.0, 2.0, 3.0, 3.0]]), 2)[1].tolist() == [[1, 3]]


def test_stable_top_k_wide_row_with_ties_at_the_kth_place() -> None:
    # 100 columns (the torch.topk path, not the small-width sort). 3.0 at 10, 20, 30; 2.0 at 5, 50, 70, 90;
    # zeros elsewhere. k=5 takes the three 3s, then the two lowest-indexed 2s: 5 and 50.
    row = torch.zeros(1, 100)
    row[0, [10, 20, 30]] = 3.0
    row[0, [5, 50, 70, 90]] = 2.0
    values, indices = stable_top_k(row, 5)
    assert indices.tolist() == [[10, 20, 30, 5, 50]]
    assert values.tolist() == [[3.0, 3.0, 3.0, 2.0, 2.0]]


def test_stable_top_k_nan_ranks_first() -> None:
    # TF's top_k of [1, nan, 3, 2] with k=2 returns [nan, 3] at [1, 2] (checked against TF 2.21).
    values, indices = stable_top_k(torch.tensor([[1.0, float("nan"), 3.0, 2.0]]), 2)
    assert indices.tolist() == [[1, 2]]
    assert torch.isnan(values[0, 0]) and values[0, 1] == 3.0
    row = torch.arange(100.0).flip(0).unsqueeze(0)  # wide path: 99, 98, ...
    row[0, 50] = float("nan")
    assert stable_top_k(row, 3)[1].tolist() == [[50, 0, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("width", [5, 64, 65, 300])
def test_stable_top_k_matches_stable_sort(seed: int, width: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    tied = torch.randint(0, 4, (50, width), generator=generator).float()  # many ties everywhere
    spread = torch.randn(50, width, generator=generator)
    for scores in (tied, spread):
        for k in {0, 1, 3, min(10, width), width}:
            values, indices = stable_top_k(scores, k)
            expected_values, expected_indices = _reference(scores, k)
            assert torch.equal(indices, expected_indices)
            assert torch.equal(values, expected_values)


def test_stable_top_k_leading_dims_and_gradient() -> None:
    scores = torch.tensor([[[1.0, 2.0], [4.0, 3.0]]], requires_grad=True)  # (1, 2, 2)
    values, indices = stable_top_k(scores, 1)
    assert indices.tolist() == [[[1], [0]]]
    values.sum().backward()
    assert scores.grad is not None and scores.grad.tolist() == [[[0.0, 1.0], [1.0, 0.0]]]


def test_stable_top_k_errors() -> None:
    with pytest.raises(ValueError, match="at least one dimension"):
        stable_top_k(torch.tensor(1.0), 1)
    with pytest.raises(
        ValueError, match=r"between 0 and the number of columns of `scores` \(3\); got k=4"
    ):
        stable_top_k(torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="got k=-1"):
        stable_top_k(torch.zeros(2, 3), -1)
    with pytest.raises(TypeError, match=r"`k` must be an int \(got 2.0"):
        stable_top_k(torch.zeros(2, 3), 2.0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- select / merge / exclude


def test_select_top_k_breaks_ties_by_key() -> None:
    # Scores [2, 5, 5] with keys [7, 9, 4]: the two 5s tie, key 4 (column 2) beats key 9 (column 1).
    assert select_top_k(torch.tensor([[2.0, 5.0, 5.0]]), torch.tensor([[7, 9, 4]]), 3).tolist() == [
        [2, 1, 0]
    ]


def test_merge_top_k_hand_derived() -> None:
    # a = {3: 4.0, 0: 1.0}, b = {1: 4.0, 5: 2.0}: 4.0 twice (index 1 before 3), then 2.0 (index 5).
    scores, indices = merge_top_k(
        torch.tensor([[4.0, 1.0]]),
        torch.tensor([[3, 0]]),
        torch.tensor([[4.0, 2.0]]),
        torch.tensor([[1, 5]]),
        3,
    )
    assert scores.tolist() == [[4.0, 4.0, 2.0]]
    assert indices.tolist() == [[1, 3, 5]]


def test_select_and_merge_errors() -> None:
    with pytest.raises(ValueError, match=r"same shape \(got \(1, 3\) and \(1, 2\)\)"):
        select_top_k(torch.zeros(1, 3), torch.zeros(1, 2, dtype=torch.long), 1)
    with pytest.raises(ValueError, match=r"got k=5"):
        merge_top_k(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), 5)


def test_exclude_top_k_hand_derived() -> None:
    # Retrieved scores [3, 2, 1]; the first is excluded: 3 - 1e5 falls last, so k=2 keeps columns 1, 2
    # with their original scores.
    scores, columns = exclude_top_k(
        torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[True, False, False]]), 2
    )
    assert columns.tolist() == [[1, 2]]
    assert scores.tolist() == [[2.0, 1.0]]
    # k larger than the retrieved width is capped (TFRS: tf.minimum(k, tf.shape(scores)[1])), and the
    # excluded candidate comes back last with its original score.
    scores, columns = exclude_top_k(torch.tensor([[3.0, 2.0]]), torch.tensor([[True, False]]), 5)
    assert columns.tolist() == [[1, 0]]
    assert scores.tolist() == [[2.0, 3.0]]


def test_exclude_top_k_penalty_is_tfrs_constant() -> None:
    assert EXCLUSION_PENALTY == 1.0e5
    # A score above the penalty still outranks a non-excluded one once penalised: 2e5 - 1e5 = 1e5 > 5.
    _, columns = exclude_top_k(torch.tensor([[2.0e5, 5.0]]), torch.tensor([[True, False]]), 1)
    assert columns.tolist() == [[0]]


def test_exclude_top_k_errors() -> None:
    with pytest.raises(ValueError, match=r"same shape \(got \(1, 3\) and \(1, 2\)\)"):
        exclude_top_k(torch.zeros(1, 3), torch.zeros(1, 2, dtype=torch.bool), 1)


# ----------------------------------------------------------------------------- top_k_dot


def test_top_k_dot_hand_derived() -> None:
    # q0 = (1, 0) scores the candidates (1,1), (2,0), (0,3) as 1, 2, 0; q1 = (0, 1) as 1, 0, 3.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    scores, indices = top_k_dot(q, c, 2)
    assert scores.tolist() == [[2.0, 1.0], [3.0, 1.0]]
    assert indices.tolist() == [[1, 0], [2, 0]]


def test_spans_have_no_short_tail() -> None:
    # 10 split by 4: two spans (10 // 4), sizes 5 and 5, never a tail of 2.
    assert _spans(10, 4) == [(0, 5), (5, 10)]
    assert _spans(3, 4) == [(0, 3)]
    assert _spans(0, 4) == [(0, 0)]
    assert all(4 <= b - a < 8 for a, b in _spans(1001, 4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_dot_exact_arithmetic_any_chunking(seed: int) -> None:
    # Small-integer embeddings: every dot product is exact in float32 whatever the summation order, so
    # the blocked search must equal the full matrix bit for bit for any block shape, and the many ties
    # (duplicate rows, coarse values) across block boundaries must resolve to the lower index.
    generator = torch.Generator().manual_seed(seed)
    q = torch.randint(-3, 4, (37, 6), generator=generator).float()
    c = torch.randint(-3, 4, (1000, 6), generator=generator).float()
    c[500:600] = c[:100]  # exact duplicates far apart
    full = q @ c.T
    for k in (1, 7, 40):
        expected = _reference(full, k)
        for chunk_size, query_chunk_size in ((1, 64), (3, 5), (64, 64), (333, 1024), (None, None)):
            scores, indices = top_k_dot(
                q, c, k, chunk_size=chunk_size, query_chunk_size=query_chunk_size
            )
            assert torch.equal(indices, expected[1]), (k, chunk_size, query_chunk_size)
            assert torch.equal(scores, expected[0])


def _assert_float32_top_k(
    q: torch.Tensor, c: torch.Tensor, k: int, scores: torch.Tensor, indices: torch.Tensor
) -> None:
    """A float32 top k is right when it is the exact top k up to float32's dot-product rounding.

    The exact scores are taken in float64 (exact enough: 53 bits against float32's 24). Any float32
    summation order of a length-d dot product is within gamma_d * sum|q_j c_j| of the exact value,
    gamma_d = d * u / (1 - d * u), u = 2^-24 (Higham, Accuracy and Stability, 3.1); BLAS kernels pick
    the order by CPU (AVX2 / AVX-512 blocking, MKL_CBWR), so no order may be assumed. Hence: each
    returned score is within that bound of its candidate's exact score, and the i-th returned
    candidate's exact score is within twice the row's largest bound of the exact i-th best score
    (so candidates may swap places only where their exact scores are that close).
    """
    q64, c64 = q.double(), c.double()
    exact = q64 @ c64.T  # (Q, C)
    u = 2.0**-24
    d = q.shape[1]
    bound = (d * u / (1 - d * u)) * (q64.abs() @ c64.abs().T)  # (Q, C)
    picked_exact = exact.gather(1, indices)
    picked_bound = bound.gather(1, indices)
    assert torch.all((scores.double() - picked_exact).abs() <= picked_bound)
    best_exact = torch.sort(exact, dim=1, descending=True).values[:, :k]  # (Q, k)
    slack = 2 * bound.max(dim=1, keepdim=True).values
    assert torch.all((picked_exact - best_exact).abs() <= slack)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])  # descending
    assert all(len(set(row)) == k for row in indices.tolist())  # no candidate twice


@pytest.mark.numerics
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("num_queries", "num_candidates", "dim"), [(1, 5000, 33), (150, 3000, 16), (70, 300, 64)]
)
def test_top_k_dot_equals_full_matrix(
    seed: int, num_queries: int, num_candidates: int, dim: int
) -> None:
    # Random floats: the blocked search returns the float32 top k of the full matrix. Not bit for bit:
    # a block's matmul may sum in another order than the full one (MKL and oneDNN choose kernels by
    # shape and CPU: AVX2 / AVX-512, MKL_CBWR), so scores agree within float32's dot-product rounding
    # bound and indices may swap only between candidates whose exact scores lie within it
    # (_assert_float32_top_k). Exact equality, ties included, is test_top_k_dot_exact_arithmetic_any_chunking.
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(num_queries, dim, generator=generator)
    c = torch.randn(num_candidates, dim, generator=generator)
    largest_k = PRUNED_MAX_K + 8
    expected_scores, _ = _reference(q @ c.T, largest_k)
    for k in (1, 10, largest_k):
        for chunk_size in (None, 64, 1000):
            scores, indices = top_k_dot(q, c, k, chunk_size=chunk_size, query_chunk_size=64)
            _assert_float32_top_k(q, c, k, scores, indices)
            # Against the full float32 matrix too: within the bound's doubled slack of its scores.
            slack = 2 * (dim * 2.0**-24) * (q.abs() @ c.abs().T).max(dim=1, keepdim=True).values
            assert torch.all((scores - expected_scores[:, :k]).abs() <= slack)


def test_top_k_dot_gradients_match_full_matrix() -> None:
    # d(sum of top-k scores)/dq = sum of the selected candidates; the same through autograd on the full
    # matrix. Candidates receive the matching query rows.
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    c = torch.randn(300, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    scores, indices = top_k_dot(q, c, 3, chunk_size=64)
    assert scores.requires_grad
    (scores * weights).sum().backward()
    q_ref, c_ref = q.detach().clone().requires_grad_(), c.detach().clone().requires_grad_()
    ((q_ref @ c_ref.T).gather(1, indices) * weights).sum().backward()
    assert q.grad is not None and c.grad is not None
    torch.testing.assert_close(q.grad, q_ref.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c.grad, c_ref.grad, rtol=1e-12, atol=1e-12)
    small_q, small_c = q[:2].detach().requires_grad_(), c[:40].detach().requires_grad_()
    torch.autograd.gradcheck(lambda a, b: top_k_dot(a, b, 3, chunk_size=8)[0], (small_q, small_c))


def test_top_k_dot_without_grad() -> None:
    q = torch.randn(3, 4, requires_grad=True)
    with torch.no_grad():
        scores, _ = top_k_dot(q, torch.randn(10, 4), 2)
    assert not scores.requires_grad
    scores, _ = top_k_dot(q.detach(), torch.randn(10, 4), 2)
    assert not scores.requires_grad


def test_top_k_dot_empty_queries_k_zero_and_float64() -> None:
    scores, indices = top_k_dot(torch.zeros(0, 3), torch.randn(300, 3), 2, chunk_size=64)
    assert scores.shape == (0, 2) and indices.shape == (0, 2)
    scores, indices = top_k_dot(torch.zeros(4, 3), torch.randn(300, 3), 0, chunk_size=64)
    assert scores.shape == (4, 0) and indices.shape == (4, 0) and indices.dtype == torch.int64
    c = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    scores, indices = top_k_dot(torch.tensor([[1.0, 1.0]], dtype=torch.float64), c, 2)
    assert scores.dtype == torch.float64 and indices.tolist() == [[0, 1]]


def test_top_k_dot_errors() -> None:
    with pytest.raises(ValueError, match=r"must be 2-D.*\(got \(3,\) and \(5, 3\)\)"):
        top_k_dot(torch.zeros(3), torch.zeros(5, 3), 1)
    with pytest.raises(
        ValueError, match=r"`queries` of shape \(2, 4\) and `candidates` of shape \(5, 3\)"
    ):
        top_k_dot(torch.zeros(2, 4), torch.zeros(5, 3), 1)
    with pytest.raises(ValueError, match=r"number of candidates \(5\); got k=6"):
        top_k_dot(torch.zeros(2, 3), torch.zeros(5, 3), 6)
    with pytest.raises(
        TypeError, match=r"\(torch.float64\) and `candidates` \(torch.float32\) must have the same"
    ):
        top_k_dot(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(5, 3), 1)
    with pytest.raises(ValueError, match=r"must be positive \(got 0 and 4\)"):
        top_k_dot(torch.zeros(2, 3), torch.zeros(5, 3), 1, chunk_size=0, query_chunk_size=4)


def test_numpy_tie_rule_agrees() -> None:
    # Cross-check of the reference itself: NumPy's stable argsort of the negated scores gives the same order.
    scores = torch.tensor([[0.0, 2.0, 2.0, 1.0, 2.0]])
    expected = np.argsort(-scores.numpy(), kind="stable")[:, :3]
    assert stable_top_k(scores, 3)[1].numpy().tolist() == expected.tolist()
