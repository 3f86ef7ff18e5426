"""The retrieval task's math, step by step, in the order TFRS 0.7.7 applies it.

``tfrs.tasks.Retrieval`` turns query and candidate embeddings into a loss in this order: scores
(``q @ c.T``; max over heads for 3-D queries), temperature, log-Q correction, accidental-hit removal,
``score_mask``, hard-negative mining, then categorical cross-entropy from logits with SUM reduction.
Each step is a function here so tests and the parity harness can call them one by one.

The labels are ``eye(num_queries, num_candidates)``. The default path never materialises them: the positive
of row ``i`` is column ``i``, so the loss is a cross-entropy against ``arange(num_queries)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from torchrs.functional import gemm
from torchrs.functional.losses import softmax_cross_entropy_with_logits
from torchrs.functional.top_k import stable_top_k

#: ``tfrs.layers.loss.MIN_FLOAT``: added to the logits of accidental hits and masked scores. It is float32's
#: lowest value / 100, so that a sum of a few of them does not overflow to -inf.
MIN_FLOAT = float(np.finfo(np.float32).min / 100.0)
#: ``tfrs.layers.loss.MAX_FLOAT``: added to the positive's logit so that top-k always keeps it.
MAX_FLOAT = float(np.finfo(np.float32).max / 100.0)
#: ``SamplingProbablityCorrection`` clips probabilities to [1e-6, 1] before taking the log.
SAMPLING_PROBABILITY_FLOOR = 1e-6

IdsLike = Tensor | np.ndarray | Sequence


def as_id_tensor(
    ids: IdsLike, *, name: str = "candidate_ids", device: torch.device | None = None
) -> Tensor:
    """Turns identifiers (integer tensor, or an array / list of ``str`` / ``bytes``) into a 1-D integer tensor.

    Only equality between identifiers matters to the retrieval math, so strings are replaced by codes that are
    equal exactly when the strings are equal (``str`` is compared through its UTF-8 bytes, as TF does).

    >>> as_id_tensor(["a", "b", "a"]).tolist()
    [0, 1, 0]
    """
    if isinstance(ids, Tensor):
        out = ids
    else:
        array = np.asarray(ids)
        if array.dtype.kind in "USO":
            flat = [
                x.encode("utf-8") if isinstance(x, str) else bytes(x) for x in array.reshape(-1)
            ]
            _, codes = np.unique(np.array(flat, dtype=object), return_inverse=True)
            out = torch.from_numpy(codes.reshape(array.shape).astype(np.int64))
        else:
            out = torch.as_tensor(array)
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() != 1:
        raise ValueError(
            f"`{name}` must be 1-D, one identifier per candidate (got shape {tuple(out.shape)})."
        )
    return out.to(device) if device is not None else out


def check_embeddings(query_embeddings: Tensor, candidate_embeddings: Tensor) -> None:
    """Raises a ValueError naming the problem when the embeddings cannot be scored against each other."""
    if candidate_embeddings.dim() != 2:
        raise ValueError(
            "`candidate_embeddings` must be 2-D (num_candidates, dim) "
            f"(got shape {tuple(candidate_embeddings.shape)})."
        )
    if query_embeddings.dim() not in (2, 3):
        raise ValueError(
            "`query_embeddings` must be 2-D (num_queries, dim) or 3-D (num_queries, num_heads, dim) "
            f"(got shape {tuple(query_embeddings.shape)})."
        )
    if query_embeddings.shape[-1] != candidate_embeddings.shape[-1]:
        raise ValueError(
            "Query and candidate embeddings must have the same last dimension (got query_embeddings "
            f"{tuple(query_embeddings.shape)} and candidate_embeddings {tuple(candidate_embeddings.shape)})."
        )


def check_sample_weight(sample_weight: Tensor, num_queries: int) -> None:
    """Raises a ValueError unless ``sample_weight`` is a scalar or holds one weight per query."""
    if sample_weight.dim() > 0 and sample_weight.numel() != num_queries:
        raise ValueError(
            f"`sample_weight` must hold one weight per query ({num_queries}) "
            f"(got shape {tuple(sample_weight.shape)})."
        )


def check_sampling_probability(candidate_sampling_probability: Tensor, num_candidates: int) -> None:
    """Raises a ValueError unless the probabilities have shape ``(num_candidates,)``."""
    if candidate_sampling_probability.shape != (num_candidates,):
        raise ValueError(
            "`candidate_sampling_probability` must have shape (num_candidates,) = "
            f"({num_candidates},) (got {tuple(candidate_sampling_probability.shape)})."
        )


def retrieval_scores(query_embeddings: Tensor, candidate_embeddings: Tensor) -> Tensor:
    """Scores every query against every candidate: ``q @ c.T``, or max over heads for 3-D queries.

    Args:
        query_embeddings: ``(Q, D)`` or ``(Q, H, D)`` for multi-head queries.
        candidate_embeddings: ``(C, D)``.

    Returns:
        ``(Q, C)`` scores.

    >>> retrieval_scores(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
    tensor([[2., 0.]])
    """
    check_embeddings(query_embeddings, candidate_embeddings)
    if query_embeddings.dim() == 3:
        per_head = torch.einsum("qne,ce->qnc", query_embeddings, candidate_embeddings)  # (Q, H, C)
        return per_head.amax(dim=1)  # (Q, C)
    return query_embeddings @ candidate_embeddings.T  # (Q, C)


def eye_labels(num_queries: int, num_candidates: int, *, like: Tensor) -> Tensor:
    """The retrieval labels ``eye(num_queries, num_candidates)`` in ``like``'s dtype and device."""
    return torch.eye(num_queries, num_candidates, dtype=like.dtype, device=like.device)


def sampling_probability_correction(
    logits: Tensor, candidate_sampling_probability: Tensor
) -> Tensor:
    """Log-Q correction: ``logits - log(clip(p, 1e-6, 1))``, as ``SamplingProbablityCorrection``.

    >>> sampling_probability_correction(torch.zeros(1, 2), torch.tensor([0.5, 0.0]))
    tensor([[ 0.6931, 13.8155]])
    """
    p = torch.as_tensor(candidate_sampling_probability, dtype=logits.dtype, device=logits.device)
    return logits - torch.log(p.clamp(SAMPLING_PROBABILITY_FLOOR, 1.0))


def accidental_hits(labels: Tensor | None, candidate_ids: Tensor, num_queries: int) -> Tensor:
    """``(Q, C)`` mask of in-batch negatives that share the positive's identifier (the positive excluded).

    ``labels=None`` stands for the implicit ``eye`` labels. Like TFRS, the positive of each row is the argmax of
    its labels, so a row without a positive (more queries than candidates) uses column 0.
    """
    num_candidates = candidate_ids.shape[0]
    if labels is None:
        rows = torch.arange(num_queries, device=candidate_ids.device)
        # argmax of an all-zero row (a query beyond the last candidate) is column 0, as in TF.
        positive = torch.where(rows < num_candidates, rows, torch.zeros_like(rows))
        is_label = torch.zeros(
            num_queries, num_candidates, dtype=torch.bool, device=candidate_ids.device
        )
        diag = rows[rows < num_candidates]
        is_label[diag, diag] = True
    else:
        positive = labels.argmax(dim=1)
        is_label = labels.bool()
    duplicate = candidate_ids[positive].unsqueeze(1) == candidate_ids.unsqueeze(0)  # (Q, C)
    return duplicate & ~is_label


def remove_accidental_hits(labels: Tensor, logits: Tensor, candidate_ids: IdsLike) -> Tensor:
    """Pushes the logits of accidental hits down by ``MIN_FLOAT``, as ``RemoveAccidentalHits``.

    Args:
        labels: ``(Q, C)`` one-hot labels.
        logits: ``(Q, C)`` logits.
        candidate_ids: ``(C,)`` candidate identifiers (integers, or strings / bytes).

    Returns:
        ``(Q, C)`` logits with ``MIN_FLOAT`` added where a negative has the positive's identifier.
    """
    ids = as_id_tensor(candidate_ids, device=logits.device)
    if ids.shape[0] != logits.shape[1]:
        raise ValueError(
            f"`candidate_ids` must hold one identifier per candidate: got {ids.shape[0]} identifiers for "
            f"{logits.shape[1]} candidates."
        )
    hits = accidental_hits(labels, ids, logits.shape[0])
    return logits + hits.to(logits.dtype) * MIN_FLOAT


def hard_negative_mining(
    logits: Tensor, labels: Tensor, num_hard_negatives: int
) -> tuple[Tensor, Tensor]:
    """Keeps the positive and the ``num_hard_negatives`` highest-scoring negatives of each row.

    As ``HardNegativeMining``: the top ``min(num_hard_negatives + 1, C)`` columns of
    ``logits + labels * MAX_FLOAT`` are gathered from ``logits`` and ``labels``.

    Returns:
        ``(logits, labels)``, each ``(Q, min(num_hard_negatives + 1, C))``.

    >>> hard_negative_mining(torch.tensor([[1.0, 5.0, 3.0]]), torch.tensor([[1.0, 0.0, 0.0]]), 1)
    (tensor([[1., 5.]]), tensor([[1., 0.]]))
    """
    if num_hard_negatives < 0:
        raise ValueError(f"`num_hard_negatives` must be >= 0 (got {num_hard_negatives}).")
    num_sampled = min(num_hard_negatives + 1, logits.shape[1])
    # TF's top_k keeps the lower column among equal values; masked and accidental-hit logits tie at MIN_FLOAT,
    # so the tie order decides which columns (and so which gradients) survive.
    _, columns = stable_top_k(logits + labels * MAX_FLOAT, num_sampled)  # (Q, k)
    return logits.gather(1, columns), labels.gather(1, columns)


def retrieval_logits(
    query_embeddings: Tensor,
    candidate_embeddings: Tensor,
    *,
    temperature: float | None = None,
    candidate_sampling_probability: Tensor | None = None,
    candidate_ids: IdsLike | None = None,
    remove_accidental_hits: bool = False,
    score_mask: Tensor | None = None,
    num_hard_negatives: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Scores and labels exactly as ``tfrs.tasks.Retrieval.call`` hands them to its loss.

    Returns:
        ``(scores, labels)``. ``labels`` is ``None`` when it is still ``eye(Q, C)`` (no hard-negative
        mining), which lets the loss use integer targets instead of a ``(Q, C)`` one-hot matrix.
    """
    scores = retrieval_scores(query_embeddings, candidate_embeddings)  # (Q, C)
    num_queries, num_candidates = scores.shape
    if temperature is not None:
        scores = scores / temperature
    if candidate_sampling_probability is not None:
        p = torch.as_tensor(candidate_sampling_probability, device=scores.device)
        check_sampling_probability(p, num_candidates)
        scores = sampling_probability_correction(scores, p)
    if remove_accidental_hits:
        if candidate_ids is None:
            raise ValueError(
                "When accidental hit removal is enabled, candidate ids must be supplied: pass "
                "`candidate_ids` (one identifier per candidate) or set remove_accidental_hits=False."
            )
        ids = as_id_tensor(candidate_ids, device=scores.device)
        if ids.shape[0] != num_candidates:
            raise ValueError(
                f"`candidate_ids` must hold one identifier per candidate: got {ids.shape[0]} identifiers "
                f"for {num_candidates} candidates."
            )
        scores = scores + accidental_hits(None, ids, num_queries).to(scores.dtype) * MIN_FLOAT
    if score_mask is not None:
        mask = torch.as_tensor(score_mask, device=scores.device)
        if mask.shape != scores.shape:
            raise ValueError(
                f"`score_mask` must have shape (num_queries, num_candidates) = {tuple(scores.shape)} "
                f"(got {tuple(mask.shape)})."
            )
        scores = torch.where(mask.bool(), scores, torch.full_like(scores, MIN_FLOAT))
    if num_hard_negatives is None:
        return scores, None
    labels = eye_labels(num_queries, num_candidates, like=scores)
    return hard_negative_mining(scores, labels, num_hard_negatives)


def retrieval_loss(
    scores: Tensor,
    labels: Tensor | None = None,
    sample_weight: Tensor | None = None,
    loss: Callable[..., Tensor] | None = None,
) -> Tensor:
    """The retrieval loss: by default categorical cross-entropy from logits, summed over the batch.

    TFRS's default is ``CategoricalCrossentropy(from_logits=True, reduction=SUM)``: Σ_i w_i · CE_i, *not* the
    mean. ``labels=None`` means ``eye(Q, C)``.

    Args:
        scores: ``(Q, C)`` logits from :func:`retrieval_logits`.
        labels: ``(Q, K)`` labels, or ``None`` for the implicit identity.
        sample_weight: optional ``(Q,)`` weights.
        loss: optional Keras-style loss ``loss(y_true, y_pred, sample_weight=None)``; it receives dense labels.

    Returns:
        The scalar loss.

    >>> retrieval_loss(torch.zeros(2, 2))  # two rows of log(2)
    tensor(1.3863)
    """
    num_queries, num_candidates = scores.shape
    if sample_weight is not None:
        sample_weight = torch.as_tensor(sample_weight, dtype=scores.dtype, device=scores.device)
        check_sample_weight(sample_weight, num_queries)
    if loss is not None:
        dense = (
            labels if labels is not None else eye_labels(num_queries, num_candidates, like=scores)
        )
        return loss(dense, scores, sample_weight=sample_weight)
    if labels is None and num_queries <= num_candidates:
        target = torch.arange(num_queries, device=scores.device)
        per_query = F.cross_entropy(scores, target, reduction="none")  # (Q,)
    else:
        dense = (
            labels if labels is not None else eye_labels(num_queries, num_candidates, like=scores)
        )
        per_query = softmax_cross_entropy_with_logits(dense, scores)  # (Q,), TF's gradient rule
    if sample_weight is not None:
        per_query = per_query * sample_weight.reshape(
            per_query.shape if sample_weight.dim() else ()
        )
    return per_query.sum()


#: Rows of the score matrix handled at once by :func:`in_batch_softmax_loss`: a (128, C) float32 block is 4 MB
#: for the tutorials' C = 8192. Measured on 2 cores (Q = C = 8192, D = 32, forward + backward): Intel Xeon,
#: 64 rows 108 ms, 128 rows 110 ms, 256 rows 141 ms, 1024 rows 210 ms, the unfused path 376 ms; AMD EPYC (Zen 3),
#: best of 5 interleaved, 64 rows 272 ms, 128 rows 222 ms, 256 rows 238 ms, 1024 rows 219 ms (torch's softmax
#: kernel; max / subtract / exp / sum / divide as five ops 247 ms at 128 rows, logsumexp + a second exp 267 ms).
FUSED_ROW_CHUNK = 128


class _InBatchSoftmaxLoss(torch.autograd.Function):
    """Σ_i w_i · CE(softmax(q_i · C^T / T + b), i), with its gradient computed in the same pass.

    The loss is the end of the graph for ``q`` and ``c`` (nothing else reads the scores), so the gradients
    w.r.t. both embeddings are accumulated block by block in the forward pass and merely scaled in the
    backward pass: three matmuls in total and no (Q, C) matrix ever held in memory. The matmuls go through
    :mod:`torchrs.functional.gemm` (BLAS or oneDNN, whichever is faster for the shape on this machine) and the
    score block lives in a scratch buffer reused across chunks and steps.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        query: Tensor,
        candidate: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        temperature: float | None,
        chunk: int,
    ) -> Tensor:
        num_queries = query.shape[0]
        want_dq, want_dc = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dq = torch.empty_like(query) if want_dq else None
        dc = torch.zeros_like(candidate) if want_dc else None
        total = torch.zeros((), dtype=torch.float64, device=query.device)
        num_candidates = candidate.shape[0]
        # Two (chunk, C) scratch blocks, scores and softmax, for every chunk and every step: nothing below keeps
        # a view of them.
        block_size = min(chunk, num_queries) * num_candidates
        scratch = gemm.workspace(2 * block_size, like=query)
        for start in range(0, num_queries, chunk):
            stop = min(start + chunk, num_queries)
            rows = torch.arange(stop - start, device=query.device)
            shape = (stop - start, num_candidates)
            block = gemm.scores(
                query[start:stop], candidate, out=scratch[: shape[0] * shape[1]].view(shape)
            )  # (m, C)
            if temperature is not None:
                block.div_(temperature)
            if bias is not None:
                block.sub_(bias)
            # torch's softmax kernel: exp(x - max) * (1 / Σ) row by row while the row is in cache, one pass
            # over the block where max, subtract, exp, sum and divide as separate ops made five (64 blocks of
            # 128 x 8192: 45 against 71 ms on the AMD EPYC). It is also the gradient's softmax, TF's up to
            # the last bit of 1 / Σ. The loss -log p(positive) = logsumexp - positive, exactly where p is a
            # normal float; below that (a positive over 87 under the row's max) the row is redone with
            # logsumexp from the scores.
            probs = torch.ops.aten._softmax.out(
                block,
                1,
                False,
                out=scratch[block_size : block_size + shape[0] * shape[1]].view(shape),
            )  # (m, C)
            positive_probs = probs[rows, rows + start]  # (m,)
            per_row = torch.log(positive_probs).neg_()  # (m,)
            underflow = positive_probs < torch.finfo(probs.dtype).tiny  # (m,)
            if bool(underflow.any()):
                redo = underflow.nonzero().squeeze(1)  # (u,)
                per_row[redo] = torch.logsumexp(block[redo], dim=1) - block[redo, redo + start]
            w = None if weight is None else weight[start:stop]
            total += (per_row * w).sum() if w is not None else per_row.sum()
            if want_dq or want_dc:
                grad = probs  # (m, C), the softmax; the scores' block is not read again
                grad[rows, rows + start] -= 1.0
                if w is not None:
                    grad.mul_(w.unsqueeze(1))
                if temperature is not None:
                    grad.div_(temperature)
                if want_dq:
                    gemm.matmul(grad, candidate, out=dq[start:stop])  # type: ignore[index]
                if want_dc:
                    gemm.addmm_t_(dc, grad, query[start:stop])  # type: ignore[arg-type]
        ctx.save_for_backward(*(t for t in (dq, dc) if t is not None))
        ctx.has = (want_dq, want_dc)
        return total.to(query.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        saved = list(ctx.saved_tensors)
        dq = saved.pop(0) * grad_output if ctx.has[0] else None
        dc = saved.pop(0) * grad_output if ctx.has[1] else None
        return dq, dc, None, None, None, None


def in_batch_softmax_loss(
    query_embeddings: Tensor,
    candidate_embeddings: Tensor,
    *,
    sample_weight: Tensor | None = None,
    temperature: float | None = None,
    candidate_sampling_probability: Tensor | None = None,
    chunk: int = FUSED_ROW_CHUNK,
) -> Tensor:
    """TFRS's default retrieval loss, fused: same value as ``retrieval_loss(*retrieval_logits(...))``.

    Covers 2-D queries with temperature, log-Q correction and sample weights (the options that keep the labels
    ``eye(Q, C)``); ``Retrieval`` falls back to the step-by-step path for the others.

    Args:
        query_embeddings: ``(Q, D)``.
        candidate_embeddings: ``(C, D)``, ``C >= Q``.
        sample_weight: optional ``(Q,)`` weights.
        temperature: optional divisor of the scores.
        candidate_sampling_probability: optional ``(C,)`` probabilities for the log-Q correction.
        chunk: rows scored at once.

    Returns:
        The scalar loss (SUM over queries).

    >>> in_batch_softmax_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    tensor(1.3863)
    """
    check_embeddings(query_embeddings, candidate_embeddings)
    if query_embeddings.dim() != 2:
        raise ValueError(
            f"The fused loss needs 2-D query embeddings (got shape {tuple(query_embeddings.shape)})."
        )
    num_queries, num_candidates = query_embeddings.shape[0], candidate_embeddings.shape[0]
    if num_queries > num_candidates:
        raise ValueError(
            f"The fused loss needs num_queries <= num_candidates (got {num_queries} > {num_candidates})."
        )
    bias = None
    if candidate_sampling_probability is not None:
        p = torch.as_tensor(
            candidate_sampling_probability,
            dtype=query_embeddings.dtype,
            device=query_embeddings.device,
        )
        check_sampling_probability(p, num_candidates)
        bias = torch.log(p.clamp(SAMPLING_PROBABILITY_FLOOR, 1.0))
    weight = None
    if sample_weight is not None:
        weight = torch.as_tensor(
            sample_weight, dtype=query_embeddings.dtype, device=query_embeddings.device
        )
        check_sample_weight(weight, num_queries)
        weight = weight.reshape(-1) if weight.dim() else weight.expand(num_queries)
    return _InBatchSoftmaxLoss.apply(
        query_embeddings, candidate_embeddings, weight, bias, temperature, chunk
    )


@dataclass(frozen=True)
class RetrievalTaskOutput:
    """What one call of ``tfrs.tasks.Retrieval`` computes.

    Attributes:
        loss: the scalar loss.
        scores: ``(Q, K)`` logits exactly as handed to the loss, or ``None`` when the loss ran fused (then no
            score matrix was ever built).
        labels: ``(Q, K)`` labels after hard-negative mining, or ``None`` for the implicit ``eye(Q, C)``.
    """

    loss: Tensor
    scores: Tensor | None
    labels: Tensor | None


def fuses(
    query_embeddings: Tensor,
    candidate_embeddings: Tensor,
    *,
    loss: Callable[..., Tensor] | None = None,
    remove_accidental_hits: bool = False,
    score_mask: Tensor | None = None,
    num_hard_negatives: int | None = None,
    return_scores: bool = False,
) -> bool:
    """Whether :func:`retrieval_task_loss` takes the fused path for these arguments.

    The fused kernel gives the result of the step-by-step path whenever the labels stay ``eye(Q, C)`` with the
    default loss and nobody asks for the score matrix: 2-D queries, ``Q <= C``, no custom loss, no accidental-hit
    removal, no score mask, no hard-negative mining. Temperature, log-Q correction and sample weights are
    covered. Pure (it only reads shapes): it never raises; invalid inputs are reported by whichever path runs.

    >>> fuses(torch.zeros(4, 8), torch.zeros(6, 8)), fuses(torch.zeros(4, 8), torch.zeros(6, 8), return_scores=True)
    (True, False)
    """
    return (
        loss is None
        and num_hard_negatives is None
        and not remove_accidental_hits
        and score_mask is None
        and not return_scores
        and query_embeddings.dim() == 2
        and candidate_embeddings.dim() == 2
        and query_embeddings.shape[0] <= candidate_embeddings.shape[0]
    )


def retrieval_task_loss(
    query_embeddings: Tensor,
    candidate_embeddings: Tensor,
    *,
    sample_weight: Tensor | None = None,
    candidate_sampling_probability: Tensor | None = None,
    candidate_ids: IdsLike | None = None,
    score_mask: Tensor | None = None,
    temperature: float | None = None,
    num_hard_negatives: int | None = None,
    remove_accidental_hits: bool = False,
    loss: Callable[..., Tensor] | None = None,
    return_scores: bool = False,
) -> RetrievalTaskOutput:
    """The loss of ``tfrs.tasks.Retrieval``: fused when that gives the same result, step by step otherwise.

    This is the only place where the choice is made (:func:`fuses`): the fused path is
    :func:`in_batch_softmax_loss`, the step-by-step path :func:`retrieval_logits` then :func:`retrieval_loss`.

    Args:
        query_embeddings: ``(Q, D)`` or ``(Q, H, D)``.
        candidate_embeddings: ``(C, D)``.
        sample_weight: optional ``(Q,)`` weights.
        candidate_sampling_probability: optional ``(C,)`` probabilities for the log-Q correction.
        candidate_ids: ``(C,)`` identifiers, needed by ``remove_accidental_hits``.
        score_mask: optional ``(Q, C)`` boolean mask (False: excluded from the loss).
        temperature: optional divisor of the scores.
        num_hard_negatives: keep only this many hardest negatives per row when given.
        remove_accidental_hits: push down negatives that share the positive's identifier.
        loss: optional Keras-style loss ``loss(y_true, y_pred, sample_weight=None)``.
        return_scores: the caller needs the score matrix (e.g. to update batch metrics).

    Returns:
        The loss, with the scores and labels when they were computed.

    >>> out = retrieval_task_loss(torch.zeros(2, 4), torch.zeros(2, 4))
    >>> out.loss, out.scores is None
    (tensor(1.3863), True)
    """
    if fuses(
        query_embeddings,
        candidate_embeddings,
        loss=loss,
        remove_accidental_hits=remove_accidental_hits,
        score_mask=score_mask,
        num_hard_negatives=num_hard_negatives,
        return_scores=return_scores,
    ):
        fused = in_batch_softmax_loss(
            query_embeddings,
            candidate_embeddings,
            sample_weight=sample_weight,
            temperature=temperature,
            candidate_sampling_probability=candidate_sampling_probability,
        )
        return RetrievalTaskOutput(fused, None, None)
    scores, labels = retrieval_logits(
        query_embeddings,
        candidate_embeddings,
        temperature=temperature,
        candidate_sampling_probability=candidate_sampling_probability,
        candidate_ids=candidate_ids,
        remove_accidental_hits=remove_accidental_hits,
        score_mask=score_mask,
        num_hard_negatives=num_hard_negatives,
    )
    value = retrieval_loss(scores, labels, sample_weight=sample_weight, loss=loss)
    return RetrievalTaskOutput(value, scores, labels)
