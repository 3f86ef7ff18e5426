"""Keras's classification metric math (``tf_keras/src/utils/metrics_utils.py``), as pure functions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["in_top_k", "threshold_confusion"]


def in_top_k(predictions: Tensor, targets: Tensor, k: int) -> Tensor:
    """``tf.math.in_top_k``: is ``predictions[i, targets[i]]`` among the ``k`` largest of row ``i``?

    Ties count as hits (a hit when fewer than ``k`` scores are *strictly* greater), and a row with any non-finite
    score is a miss, as TF's kernel says "cannot say".

    Args:
        predictions: ``(N, C)`` scores.
        targets: ``(N,)`` class indices.
        k: how many top scores count.

    Returns:
        ``(N,)`` float32 0/1 matches.

    >>> in_top_k(torch.tensor([[0.1, 0.9, 0.8], [0.5, 0.5, 0.1]]), torch.tensor([2, 1]), 1)
    tensor([0., 1.])
    """
    target_scores = predictions.gather(1, targets.long().reshape(-1, 1))  # (N, 1)
    higher = (predictions > target_scores).sum(dim=1)  # (N,)
    finite = torch.isfinite(predictions).all(dim=1)  # (N,)
    return ((higher < k) & finite).to(torch.float32)


def threshold_confusion(
    y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None, thresholds: Sequence[float]
) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted ``(tp, fp, fn)`` at each threshold: a prediction is positive when ``> threshold``, a label when
    nonzero (Keras's ``update_confusion_matrix_variables`` without ``top_k`` / ``multi_label``).

    Args:
        y_true: labels, any shape.
        y_pred: predictions of the same shape.
        sample_weight: ``None`` or weights already broadcast to ``y_pred``'s shape.
        thresholds: the decision thresholds.

    Returns:
        Three float64 tensors of shape ``(T,)``.

    >>> tp, fp, fn = threshold_confusion(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.7, 0.6, 0.2]), None, [0.5])
    >>> tp.tolist(), fp.tolist(), fn.tolist()
    ([1.0], [1.0], [1.0])
    """
    preds = y_pred.reshape(1, -1)  # (1, N)
    positive = (y_true.reshape(1, -1) != 0).to(torch.float64)  # (1, N)
    cut = torch.tensor(list(thresholds), dtype=y_pred.dtype, device=y_pred.device).reshape(
        -1, 1
    )  # (T, 1)
    predicted = (preds > cut).to(torch.float64)  # (T, N)
    weights = (
        torch.ones_like(positive)
        if sample_weight is None
        else sample_weight.reshape(1, -1).to(torch.float64)
    )  # (1, N)
    tp = (predicted * positive * weights).sum(dim=1)  # (T,)
    fp = (predicted * (1.0 - positive) * weights).sum(dim=1)  # (T,)
    fn = ((1.0 - predicted) * positive * weights).sum(dim=1)  # (T,)
    return tp, fp, fn
