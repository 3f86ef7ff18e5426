"""Exact top-k retrieval math with TensorFlow's tie rule, fast on large corpora.

``tf.math.top_k`` documents its tie rule: *"If two elements are equal, the lower-index element appears
first."* ``torch.topk`` promises no order among equal values (and which of several equal values at the k-th
place it keeps), so identifiers would disagree with TFRS whenever scores tie, e.g. for duplicated candidate
embeddings. Every function here returns results ordered by **(score descending, index ascending)** — TF's
order — and keeps the lower indices when equal scores straddle the k-th place. NaN scores rank above every
number, as in both frameworks.

:func:`top_k_dot` is the brute-force search behind ``BruteForce``: it never builds the full
``(num_queries, num_candidates)`` score matrix. It walks over blocks of queries and candidates, scores one
block with a matmul (:func:`torchrs.functional.gemm.scores`: BLAS into a scratch buffer reused across calls,
or oneDNN where it measured faster for the block's shape), and merges the block's best scores into a running
top-k. A block is only searched for rows whose best score beats the row's current k-th score (a single
max-reduction decides), which after the first few blocks skips most of the selection work. The result is the
exact stable top k of the scores it computes. When the blocks run on BLAS, those equal the full matrix
``queries @ candidates.T`` bit for bit whenever one block covers the corpus (up to 2048 candidates for
k <= 32 by default), and in every case measured with blocks of at least 64 x 64 (the block splitter never
leaves a short tail); BLAS does not promise shape-independent rounding, so tiny hand-picked ``chunk_size``
values can move a score by an ulp. On oneDNN a score differs from BLAS's by at most the rounding bound of a
``D``-term float32 dot product (see :mod:`torchrs.functional.gemm`).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from torchrs.functional import gemm

#: Block sizes of :func:`top_k_dot`, chosen by measurement on 2 CPU cores (1M x 64 candidates, 1024 queries):
#: up to this k, small blocks whose selection is mostly skipped win (k=10: 0.67 s; k=20: 0.86 s; one full
#: matmul + ``torch.topk``: 2.3 s); above it nearly every block improves some row and wide blocks win.
PRUNED_MAX_K = 32
#: Candidates per block for k <= PRUNED_MAX_K: 1024 x 2048 float32 scores (8 MiB) stay in cache.
SMALL_K_CHUNK_SIZE = 2048
#: Queries per block for k <= PRUNED_MAX_K.
SMALL_K_QUERY_CHUNK_SIZE = 1024
#: Candidates per block for k > PRUNED_MAX_K (k=100: 2.0 s against 2.3 s for the full matrix, in 64 MiB
#: rather than 4 GiB).
LARGE_K_CHUNK_SIZE = 131072
#: Queries per block for k > PRUNED_MAX_K.
LARGE_K_QUERY_CHUNK_SIZE = 128
#: Widths up to this many columns are ordered by a full stable sort instead of ``torch.topk``.
_SMALL_WIDTH = 64
#: ``tfrs.layers.factorized_top_k._exclude`` subtracts 1e5 from the score of every excluded candidate, so an
#: excluded candidate falls below every other one unless scores exceed 1e5 in magnitude (as in TFRS).
EXCLUSION_PENALTY = 1.0e5


def _check_k(k: int, width: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"`k` must be an int (got {k!r} of type {type(k).__name__}).")
    if k < 0 or k > width:
        raise ValueError(f"`k` must be between 0 and the number of {what} ({width}); got k={k}.")


def stable_top_k(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest entries of each row, in ``tf.math.top_k``'s order.

    Ordered by score descending, then index ascending; among equal scores at the k-th place the lower
    indices are kept. Gradients flow to ``scores`` through the returned values.

    Args:
        scores: ``(..., N)`` tensor; the top k is taken over the last dimension.
        k: how many entries to keep, ``0 <= k <= N``.

    Returns:
        ``(values, indices)``, both ``(..., k)``; indices are int64 positions along the last dimension.

    >>> values, indices = stable_top_k(torch.tensor([[1.0, 3.0, 2.0, 3.0]]), 3)
    >>> values.tolist(), indices.tolist()
    ([[3.0, 3.0, 2.0]], [[1, 3, 2]])
    """
    if scores.dim() == 0:
        raise ValueError("`scores` must have at least one dimension (got a scalar).")
    width = scores.shape[-1]
    _check_k(k, width, "columns of `scores`")
    flat = scores.detach().reshape(-1, width)  # (R, N)
    indices = _stable_top_k_indices(flat, k).reshape(*scores.shape[:-1], k)  # (..., k)
    return scores.gather(-1, indices), indices


def _stable_top_k_indices(scores: Tensor, k: int) -> Tensor:
    """Indices of :func:`stable_top_k` for a 2-D, already detached ``(R, N)`` tensor."""
    rows, width = scores.shape
    if k == 0 or rows == 0:
        return torch.zeros(rows, k, dtype=torch.long, device=scores.device)
    if width <= max(_SMALL_WIDTH, k + 1):
        # A stable descending sort keeps equal values in index order: exactly TF's order.
        return torch.sort(scores, dim=-1, descending=True, stable=True).indices[:, :k]
    # One extra value tells whether equal scores straddle the k-th place (then torch.topk's choice among
    # them is arbitrary and the row is redone below).
    values, indices = torch.topk(scores, k + 1, dim=-1)  # (R, k + 1)
    straddles = values[:, k - 1] == values[:, k]  # (R,)
    indices = indices[:, :k].contiguous()  # (R, k)
    if bool(straddles.any()):
        tied_rows = straddles.nonzero().squeeze(1)  # (T,)
        sub = scores[tied_rows]  # (T, N)
        kth = values[tied_rows, k - 1 : k]  # (T, 1)
        above = (sub > kth) | torch.isnan(sub)  # (T, N); NaN ranks first, as in torch.topk and TF
        equal = sub == kth  # (T, N)
        needed = k - above.sum(dim=1, keepdim=True)  # (T, 1)
        chosen = above | (equal & (equal.cumsum(dim=1) <= needed))  # (T, N), exactly k per row
        indices[tied_rows] = chosen.nonzero()[:, 1].view(-1, k)
    # Order the k kept entries by (value descending, index ascending). torch.topk's sorted output already is
    # in that order wherever the kept values are distinct numbers; only rows holding equal values (or NaN, or a
    # straddle's re-chosen indices) are re-sorted: for FactorizedTopK's top-100 of 128 x 1682 scores 2.4 ->
    # 1.6 ms (AMD EPYC, 2 threads).
    kept = values[:, :k]  # (R, k)
    unordered = straddles | torch.isnan(kept).any(dim=1)  # (R,)
    if k > 1:
        unordered |= (kept[:, 1:] == kept[:, :-1]).any(dim=1)
    if not bool(unordered.any()):
        return indices
    redo = unordered.nonzero().squeeze(1)  # (U,)
    sub = indices[redo].sort(dim=-1).values  # (U, k)
    order = scores[redo].gather(1, sub).sort(dim=-1, descending=True, stable=True).indices  # (U, k)
    indices[redo] = sub.gather(1, order)
    return indices


def select_top_k(scores: Tensor, keys: Tensor, k: int) -> Tensor:
    """Columns of the k best entries of each row, ranked by score descending, then ``keys`` ascending.

    The merge step of :func:`merge_top_k` and of ``Streaming``: ``keys`` are the candidates' global
    positions, so equal scores resolve to the lower position, as TF's ``top_k`` on the whole corpus would.

    Args:
        scores: ``(R, M)`` scores.
        keys: ``(R, M)`` tie-breakers (smaller wins), e.g. candidate indices.
        k: how many columns to keep, ``0 <= k <= M``.

    Returns:
        ``(R, k)`` int64 column positions into ``scores``.

    >>> select_top_k(torch.tensor([[2.0, 5.0, 5.0]]), torch.tensor([[7, 9, 4]]), 2).tolist()
    [[2, 1]]
    """
    if scores.dim() != 2 or scores.shape != keys.shape:
        raise ValueError(
            "`scores` and `keys` must be 2-D tensors of the same shape "
            f"(got {tuple(scores.shape)} and {tuple(keys.shape)})."
        )
    _check_k(k, scores.shape[1], "columns of `scores`")
    by_key = keys.sort(dim=-1, stable=True).indices  # (R, M)
    ranked = _stable_top_k_indices(scores.detach().gather(1, by_key), k)  # (R, k)
    return by_key.gather(1, ranked)


def merge_top_k(
    scores_a: Tensor, indices_a: Tensor, scores_b: Tensor, indices_b: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """Merges two top-k lists over disjoint candidates into one, with TF's tie rule.

    Args:
        scores_a: ``(R, Ka)`` scores of the first list.
        indices_a: ``(R, Ka)`` candidate indices of the first list.
        scores_b: ``(R, Kb)`` scores of the second list.
        indices_b: ``(R, Kb)`` candidate indices of the second list.
        k: entries to keep, at most ``Ka + Kb``.

    Returns:
        ``(scores, indices)``, both ``(R, k)``, ordered by score descending, then index ascending.

    >>> s, i = merge_top_k(torch.tensor([[4.0, 1.0]]), torch.tensor([[3, 0]]),
    ...                    torch.tensor([[4.0, 2.0]]), torch.tensor([[1, 5]]), 3)
    >>> s.tolist(), i.tolist()
    ([[4.0, 4.0, 2.0]], [[1, 3, 5]])
    """
    scores = torch.cat([scores_a, scores_b], dim=1)  # (R, Ka + Kb)
    indices = torch.cat([indices_a, indices_b], dim=1)  # (R, Ka + Kb)
    columns = select_top_k(scores, indices, k)  # (R, k)
    return scores.gather(1, columns), indices.gather(1, columns)


def exclude_top_k(scores: Tensor, excluded: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """TFRS's ``_exclude``: the top k of retrieved candidates after pushing excluded ones down.

    Excluded entries lose :data:`EXCLUSION_PENALTY` (they are not removed: with fewer than k others left
    they still come back), the top ``min(k, M)`` of the adjusted scores is taken with TF's tie rule, and
    the *original* scores are returned with the chosen columns.

    Args:
        scores: ``(B, M)`` retrieved scores, best first.
        excluded: ``(B, M)`` bool, True where the retrieved identifier is in the row's exclusions.
        k: how many to keep; capped at M as in TFRS.

    Returns:
        ``(scores, columns)``: ``(B, min(k, M))`` original scores and their columns in ``scores``.

    >>> s, cols = exclude_top_k(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[True, False, False]]), 2)
    >>> s.tolist(), cols.tolist()
    ([[2.0, 1.0]], [[1, 2]])
    """
    if scores.dim() != 2 or excluded.shape != scores.shape:
        raise ValueError(
            "`scores` and `excluded` must be 2-D and of the same shape "
            f"(got {tuple(scores.shape)} and {tuple(excluded.shape)})."
        )
    adjusted = scores.detach() - excluded.to(scores.dtype) * EXCLUSION_PENALTY  # (B, M)
    columns = _stable_top_k_indices(adjusted, min(k, scores.shape[1]))  # (B, k)
    return scores.gather(1, columns), columns


class _GatheredDot(torch.autograd.Function):
    """``values[b, j] = queries[b] · candidates[indices[b, j]]``, returning values computed elsewhere.

    :func:`top_k_dot` selects under ``no_grad`` (keeping the matmul's exact values); this reattaches them
    to the graph with the gradient of a dot product.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        queries: Tensor,
        candidates: Tensor,
        indices: Tensor,
        values: Tensor,
    ) -> Tensor:
        ctx.save_for_backward(queries, candidates, indices)
        return values.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        queries, candidates, indices = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_queries = grad_candidates = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_queries = torch.einsum("bk,bkd->bd", grad, candidates[indices])  # (B, D)
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            per_entry = grad.unsqueeze(-1) * queries.unsqueeze(1)  # (B, k, D)
            grad_candidates = torch.zeros_like(candidates).index_add_(
                0, indices.reshape(-1), per_entry.reshape(-1, candidates.shape[1])
            )
        return grad_queries, grad_candidates, None, None


def top_k_dot(
    queries: Tensor,
    candidates: Tensor,
    k: int,
    chunk_size: int | None = None,
    query_chunk_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Top-k dot-product scores of every query against every candidate, without the full score matrix.

    Equal to ``stable_top_k(queries @ candidates.T, k)``, indices and values (bit for bit with the default
    block sizes in every case measured; see the module docstring). Gradients flow to ``queries`` and
    ``candidates`` when they require them.

    Args:
        queries: ``(B, D)`` query embeddings.
        candidates: ``(N, D)`` candidate embeddings.
        k: number of results per query, ``0 <= k <= N``.
        chunk_size: candidates scored per block (raised to k when smaller); by default
            :data:`SMALL_K_CHUNK_SIZE` or :data:`LARGE_K_CHUNK_SIZE` depending on k.
        query_chunk_size: queries scored per block; by default :data:`SMALL_K_QUERY_CHUNK_SIZE` or
            :data:`LARGE_K_QUERY_CHUNK_SIZE` depending on k.

    Returns:
        ``(scores, indices)``, both ``(B, k)``: scores descending, ties by lower candidate index; indices
        are int64 rows of ``candidates``.

    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> c = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    >>> scores, indices = top_k_dot(q, c, k=2)
    >>> scores.tolist(), indices.tolist()
    ([[2.0, 1.0], [3.0, 1.0]], [[1, 0], [2, 0]])
    """
    if queries.dim() != 2 or candidates.dim() != 2:
        raise ValueError(
            "`queries` and `candidates` must be 2-D, (num_queries, dim) and (num_candidates, dim) "
            f"(got {tuple(queries.shape)} and {tuple(candidates.shape)})."
        )
    if queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"`queries` of shape {tuple(queries.shape)} and `candidates` of shape "
            f"{tuple(candidates.shape)} have different embedding dimensions "
            f"({queries.shape[1]} != {candidates.shape[1]})."
        )
    if queries.dtype != candidates.dtype:
        raise TypeError(
            f"`queries` ({queries.dtype}) and `candidates` ({candidates.dtype}) must have the same dtype; "
            "cast one of them."
        )
    _check_k(k, candidates.shape[0], "candidates")
    small_k = k <= PRUNED_MAX_K
    if chunk_size is None:
        chunk_size = SMALL_K_CHUNK_SIZE if small_k else LARGE_K_CHUNK_SIZE
    if query_chunk_size is None:
        query_chunk_size = SMALL_K_QUERY_CHUNK_SIZE if small_k else LARGE_K_QUERY_CHUNK_SIZE
    if chunk_size < 1 or query_chunk_size < 1:
        raise ValueError(
            f"`chunk_size` and `query_chunk_size` must be positive (got {chunk_size} and {query_chunk_size})."
        )
    num_queries, num_candidates = queries.shape[0], candidates.shape[0]
    if k == 0:
        empty = queries.new_zeros(num_queries, 0)  # (B, 0)
        return empty, torch.zeros(num_queries, 0, dtype=torch.long, device=queries.device)
    query_spans = _spans(num_queries, query_chunk_size)
    candidate_spans = _spans(num_candidates, max(chunk_size, k))
    with torch.no_grad():
        values = queries.new_empty(num_queries, k)  # (B, k)
        indices = torch.empty(num_queries, k, dtype=torch.long, device=queries.device)  # (B, k)
        longest_query = max(stop - start for start, stop in query_spans)
        longest_block = max(stop - start for start, stop in candidate_spans)
        buffer = gemm.workspace(longest_query * longest_block, like=queries)
        for start, stop in query_spans:
            values[start:stop], indices[start:stop] = _block_top_k(
                queries[start:stop].detach(), candidates.detach(), k, candidate_spans, buffer
            )
    if torch.is_grad_enabled() and (queries.requires_grad or candidates.requires_grad):
        values = _GatheredDot.apply(queries, candidates, indices, values)
    return values, indices


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    """Splits ``range(total)`` into ``max(1, total // size)`` near-equal spans, each at least ``size`` long.

    No short trailing block: BLAS picks its kernel by shape, and a matmul against a handful of rows can
    round differently from the same rows inside a large matmul.
    """
    count = max(1, total // size)
    base, extra = divmod(total, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return list(itertools.pairwise(bounds))


def _block_top_k(
    queries: Tensor, candidates: Tensor, k: int, spans: list[tuple[int, int]], buffer: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`top_k_dot` for one block of queries; each candidate span holds at least k candidates."""
    num_queries = queries.shape[0]
    values = indices = queries.new_empty(0)
    for start, stop in spans:
        view = buffer[: num_queries * (stop - start)].view(num_queries, stop - start)
        scores = gemm.scores(queries, candidates[start:stop], out=view)  # (Q, C)
        if start == 0:
            indices = _stable_top_k_indices(scores, k)  # (Q, k)
            values = scores.gather(1, indices)  # (Q, k)
            continue
        # Only a score strictly above the row's k-th best can enter: an equal one has a higher index and
        # loses the tie. `~(max <= kth)` is also True for NaN, which ranks first.
        improves = ~(scores.amax(dim=1) <= values[:, k - 1])  # (Q,)
        if not bool(improves.any()):
            continue
        rows = improves.nonzero().squeeze(1)  # (R,)
        every_row = rows.shape[0] == num_queries
        sub = scores if every_row else scores[rows]  # (R, C)
        sub_indices = _stable_top_k_indices(sub, k)  # (R, k)
        # Both lists are ordered by (value desc, index asc) and every kept index is below `start`, so a
        # stable sort of the joined values keeps equal values in index order: TF's tie rule.
        joined_values = torch.cat(
            [values if every_row else values[rows], sub.gather(1, sub_indices)], dim=1
        )  # (R, 2k)
        joined_indices = torch.cat(
            [indices if every_row else indices[rows], sub_indices + start], dim=1
        )  # (R, 2k)
        order = torch.sort(joined_values, dim=1, descending=True, stable=True).indices[
            :, :k
        ]  # (R, k)
        if every_row:
            values, indices = joined_values.gather(1, order), joined_indices.gather(1, order)
        else:
            values[rows] = joined_values.gather(1, order)
            indices[rows] = joined_indices.gather(1, order)
    return values, indices
