"""Listwise ranking-loss math of tensorflow-ranking (``tfr.keras.losses``), as used by the TFRS listwise tutorial.

Inputs are lists: labels and scores of shape ``(B, L)``; a label ``< 0`` marks a padded item (tfr's convention).
The functions return what the Keras loss's ``call`` returns (before ``sample_weight`` and the reduction), and
the weight normalisation tfr applies in ``__call__``; :mod:`torchrs.losses.listwise` then reduces them with the
Keras reduction (``SUM_OVER_BATCH_SIZE`` by default).

Sources (published definitions, tfr 0.5.x): ``tensorflow_ranking/python/losses_impl.py`` (``_PairwiseLoss``,
``PairwiseHingeLoss``, ``_ListwiseLoss``, ``ListMLELoss``) and ``python/keras/losses.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from torchrs.functional.ranking_metrics import is_label_valid

__all__ = [
    "PADDING_LOGIT",
    "check_lists",
    "list_mle_loss",
    "listwise_weights",
    "pairwise_hinge_loss",
    "pairwise_weights",
]

#: tfr ``losses_impl._EPSILON = 1e-10``: ListMLE gives padded items the logit ``log(1e-10)`` (~0 probability).
PADDING_LOGIT = math.log(1e-10)
#: tfr ListMLE sorts padded items last by giving them the score ``min(labels) - 1e-6``.
PADDING_SCORE_OFFSET = 1e-6
#: tfr ``PairwiseHingeLoss``: ``relu(1 - (s_i - s_j))``, a margin of 1.
HINGE_MARGIN = 1.0


def check_lists(y_true: Tensor, y_pred: Tensor, who: str) -> tuple[Tensor, Tensor]:
    """Converts to float tensors and checks both are ``(batch_size, list_size)`` of one shape.

    Returns:
        ``(y_true, y_pred)`` in the predictions' floating dtype.
    """
    y_pred = torch.as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = torch.as_tensor(y_true, device=y_pred.device).to(y_pred.dtype)
    if y_pred.dim() != 2:
        raise ValueError(
            f"{who} expects scores of shape (batch_size, list_size), got shape {tuple(y_pred.shape)}. "
            "Squeeze a trailing size-1 dimension (e.g. `scores.squeeze(-1)`) or add a batch dimension."
        )
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{who} expects labels and scores of the same shape, got labels {tuple(y_true.shape)} and "
            f"scores {tuple(y_pred.shape)}."
        )
    return y_true, y_pred


def _broadcast_weights(labels: Tensor, sample_weight: Tensor | float, who: str) -> Tensor:
    """``ones_like(labels) * weights`` for a scalar, per-list ``(B, 1)`` or per-item ``(B, L)`` weight."""
    weight = torch.as_tensor(sample_weight, dtype=labels.dtype, device=labels.device)
    ok = weight.dim() == 0 or (
        weight.dim() == 2
        and weight.shape[0] == labels.shape[0]
        and weight.shape[1] in (1, labels.shape[1])
    )
    if not ok:
        raise ValueError(
            f"{who}: `sample_weight` must be a scalar, per-list (batch_size, 1) or per-item (batch_size, "
            f"list_size) = {tuple(labels.shape)}, got shape {tuple(weight.shape)}."
        )
    return torch.ones_like(labels) * weight  # (B, L)


def pairwise_weights(labels: Tensor, sample_weight: Tensor | None = None) -> Tensor:
    """tfr ``_PairwiseLoss`` weight normalisation: item ``i``'s weight applies to its pairs ``(i, j)``.

    Returns:
        ``(B, L)``: ``sample_weight`` (default 1) broadcast to the items, 0 on padded items.

    >>> pairwise_weights(torch.tensor([[1.0, -1.0]]), torch.tensor([[2.0]]))
    tensor([[2., 0.]])
    """
    weights = _broadcast_weights(
        labels, 1.0 if sample_weight is None else sample_weight, "pairwise loss"
    )
    return torch.where(is_label_valid(labels), weights, torch.zeros_like(weights))  # (B, L)


def pairwise_hinge_loss(labels: Tensor, logits: Tensor) -> Tensor:
    """Per-item pairwise hinge loss ``Σ_j I[y_i > y_j] · relu(1 - (s_i - s_j))`` over valid pairs.

    What ``tfr.keras.losses.PairwiseHingeLoss.call`` returns: the ``(B, L, L)`` pair losses weighted by the
    pair indicator (no gradient through it), summed over ``j``.

    Args:
        labels: ``(B, L)`` graded relevance, ``< 0`` for padding.
        logits: ``(B, L)`` scores.

    Returns:
        ``(B, L)`` per-item losses.

    >>> pairwise_hinge_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    tensor([[1.2000, 0.0000]])
    """
    valid = is_label_valid(labels)  # (B, L)
    valid_pairs = valid.unsqueeze(2) & valid.unsqueeze(1)  # (B, L, L)
    pair_labels = (
        (labels.unsqueeze(2) - labels.unsqueeze(1)) > 0
    ) & valid_pairs  # (B, L, L) y_i > y_j
    pair_logits = logits.unsqueeze(2) - logits.unsqueeze(1)  # (B, L, L) s_i - s_j
    pair_losses = torch.relu(HINGE_MARGIN - pair_logits)  # (B, L, L)
    return (pair_losses * pair_labels.to(logits.dtype)).sum(dim=2)  # (B, L)


def listwise_weights(labels: Tensor, sample_weight: Tensor | None = None) -> Tensor | None:
    """tfr ``_ListwiseLoss`` weight normalisation: one weight per list, ``Σ w·y / Σ y`` over valid items.

    A per-list weight ``w`` stays ``w``, except that a list whose labels sum to 0 gets weight 0 (tfr's
    ``divide_no_nan``). ``None`` stays ``None`` (weight 1 everywhere).

    Returns:
        ``(B, 1)`` weights, or ``None``.

    >>> listwise_weights(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[2.0, 4.0], [5.0, 5.0]]))
    tensor([[3.5000],
            [0.0000]])
    """
    if sample_weight is None:
        return None
    weights = _broadcast_weights(labels, sample_weight, "listwise loss")  # (B, L)
    labels = torch.where(is_label_valid(labels), labels, torch.zeros_like(labels))  # (B, L)
    numerator = (weights * labels).sum(dim=1, keepdim=True)  # (B, 1)
    denominator = labels.sum(dim=1, keepdim=True)  # (B, 1)
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)  # (B, 1)


def list_mle_loss(
    labels: Tensor,
    logits: Tensor,
    generator: torch.Generator | None = None,
    shuffle_values: Tensor | None = None,
) -> Tensor:
    """ListMLE: the negative Plackett-Luce log-likelihood of the items sorted by descending label.

    ``loss = Σ_i [log Σ_{k >= i} exp(s_(k)) - s_(i)]`` where ``(i)`` is the i-th item by label. As in tfr,
    padded items get the logit ``log(1e-10)`` and sort last (they still add ``log(count)`` terms and a
    ~1e-10 share to the sums, exactly as tfr computes them).

    Ties: tfr sorts with ``shuffle_ties=True``, so items of equal label are put in a random order on every
    call: it draws ``u = tf.random.uniform((B, L))``, visits the items in ``argsort(u)`` order and sorts that
    sequence stably by descending label. Here too, with ``u`` drawn from ``generator`` (torch's global
    generator by default, so ``torch.manual_seed`` makes it reproducible), or taken from ``shuffle_values``
    to replay a given draw (e.g. TF's own, to reproduce a tfr value exactly). Without ties among the valid
    labels the result does not depend on the draw.

    Args:
        labels: ``(B, L)`` graded relevance, ``< 0`` for padding.
        logits: ``(B, L)`` scores (already divided by the temperature).
        generator: optional random generator for tie-breaking.
        shuffle_values: optional ``(B, L)`` values in ``[0, 1)`` that order the ties (tfr's uniform draw);
            when given, ``generator`` is not used.

    Returns:
        ``(B, 1)`` per-list negative log-likelihoods.

    >>> # labels order the items (0, 1): -log(e^0.6 / (e^0.6 + e^0.8)) - log(1) = 0.798139
    >>> list_mle_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    tensor([[0.7981]])
    """
    mask = is_label_valid(labels)  # (B, L)
    labels = torch.where(mask, labels, torch.zeros_like(labels))  # (B, L)
    logits = torch.where(mask, logits, torch.full_like(logits, PADDING_LOGIT))  # (B, L)
    if labels.shape[1] == 0:
        return logits.new_zeros(labels.shape[0], 1)
    floor = labels.min(dim=1, keepdim=True).values - PADDING_SCORE_OFFSET  # (B, 1)
    scores = torch.where(mask, labels, floor.expand_as(labels))  # (B, L)
    # Random tie-breaking as tfr's sort_by_scores(shuffle_ties=True): shuffle, then a stable descending sort.
    if shuffle_values is None:
        noise = torch.rand(labels.shape, generator=generator, device=labels.device)  # (B, L)
    else:
        noise = torch.as_tensor(shuffle_values, device=labels.device)  # (B, L)
        if noise.shape != labels.shape:
            raise ValueError(
                f"list_mle_loss: `shuffle_values` must have the labels' shape {tuple(labels.shape)}, got "
                f"{tuple(noise.shape)}."
            )
    shuffle = torch.sort(noise, dim=1, stable=True).indices  # (B, L)
    order = torch.sort(scores.gather(1, shuffle), dim=1, descending=True, stable=True).indices
    order = shuffle.gather(1, order)  # (B, L) items by descending label
    sorted_logits = logits.gather(1, order)  # (B, L)
    sorted_logits = sorted_logits - sorted_logits.max(dim=1, keepdim=True).values  # (B, L)
    tail_sums = torch.exp(sorted_logits).flip(1).cumsum(dim=1).flip(1)  # (B, L) Σ_{k >= i} exp(s_k)
    terms = torch.log(tail_sums) - sorted_logits  # (B, L)
    return terms.sum(dim=1, keepdim=True)  # (B, 1)
