"""Keras classification metrics TFRS models pass to their tasks: ``TopKCategoricalAccuracy``, ``Precision``,
``Recall`` (``tf.keras.metrics``, Keras 2), on torchmetrics states summed across processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from torchrs.functional.classification_metrics import in_top_k, threshold_confusion
from torchrs.functional.losses import squeeze_or_expand_dimensions
from torchrs.metrics.keras_metric import KerasMetric, MeanMetricWrapper, resolve_dtype

__all__ = ["Precision", "Recall", "TopKCategoricalAccuracy"]

#: Keras ``TopKCategoricalAccuracy(k=5)``.
TOP_K_CATEGORICAL_ACCURACY_K = 5
#: Keras ``Precision`` / ``Recall`` threshold when ``thresholds=None`` (and no ``top_k``).
DEFAULT_THRESHOLD = 0.5


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target is among the ``k`` highest predictions, as
    ``tf.keras.metrics.TopKCategoricalAccuracy`` (``tf.math.in_top_k``: ties are hits).

    Args:
        k: how many top predictions count.
        name: metric name (default ``"top_k_categorical_accuracy"``).
        dtype: the result's dtype (Keras's ``dtype``; float32 by default).
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = TopKCategoricalAccuracy(k=1)
    >>> m.update_state(torch.tensor([[0, 0, 1], [0, 1, 0]]), torch.tensor([[0.1, 0.9, 0.8], [0.05, 0.95, 0.0]]))
    >>> m.result()
    tensor(0.5000)
    """

    def __init__(
        self,
        k: int = TOP_K_CATEGORICAL_ACCURACY_K,
        name: str = "top_k_categorical_accuracy",
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive integer (got {k!r}).")
        super().__init__(self._matches, name=name, dtype=dtype, **kwargs)
        self.k = k

    def _matches(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        if y_pred.dim() < 2:
            raise ValueError(
                "TopKCategoricalAccuracy expects (batch, num_classes) predictions and one-hot labels, got "
                f"predictions of shape {tuple(y_pred.shape)}."
            )
        targets = y_true.argmax(dim=-1).reshape(-1)  # (N,)
        matches = in_top_k(y_pred.reshape(-1, y_pred.shape[-1]), targets, self.k)  # (N,)
        return matches.reshape(y_true.shape[:-1]) if y_true.dim() > 2 else matches


class _ThresholdMetric(KerasMetric):
    """Base of ``Precision`` / ``Recall``: weighted ``tp`` / ``fp`` / ``fn`` at each threshold."""

    true_positives: Tensor  # (T,)
    false_positives: Tensor
    false_negatives: Tensor

    def __init__(
        self,
        thresholds: float | Sequence[float] | None,
        top_k: int | None,
        class_id: int | None,
        name: str,
        dtype: Any,
        **kwargs: Any,
    ) -> None:
        who = type(self).__name__
        if top_k is not None:
            raise ValueError(
                f"{who}(top_k={top_k!r}) is not supported; leave top_k=None (the Keras default)."
            )
        values = [DEFAULT_THRESHOLD] if thresholds is None else _to_list(thresholds)
        if not values or any(not 0.0 <= float(t) <= 1.0 for t in values):
            raise ValueError(
                f"{who}: every threshold must be in [0, 1] (got thresholds={thresholds!r}), as in Keras."
            )
        super().__init__(name=name, **kwargs)
        self.thresholds = [float(t) for t in values]
        self.class_id = class_id
        self._dtype = resolve_dtype(dtype, who)
        for state in ("true_positives", "false_positives", "false_negatives"):
            self.add_state(
                state,
                default=torch.zeros(len(self.thresholds), dtype=torch.float64),
                dist_reduce_fx="sum",
            )

    def update(  # type: ignore[override]
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None
    ) -> None:
        """Accumulates the weighted confusion counts of a batch (labels are positive when nonzero)."""
        y_pred = torch.as_tensor(y_pred, device=self.device).to(self._dtype)
        y_true = torch.as_tensor(y_true, device=self.device).to(self._dtype)
        y_pred, y_true = squeeze_or_expand_dimensions(y_pred, y_true)
        if y_pred.shape != y_true.shape:
            raise ValueError(
                f"{type(self).__name__} expects labels and predictions of the same shape, got labels "
                f"{tuple(y_true.shape)} and predictions {tuple(y_pred.shape)}."
            )
        weight = None
        if sample_weight is not None:
            weight = torch.as_tensor(sample_weight, device=self.device).to(self._dtype)
            if weight.dim() > 0 and weight.dim() == y_pred.dim() - 1:
                weight = weight.unsqueeze(-1)
            weight = torch.broadcast_to(weight, y_pred.shape)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
            weight = None if weight is None else weight[..., self.class_id]
        tp, fp, fn = threshold_confusion(y_true, y_pred, weight, self.thresholds)
        self.true_positives += tp.to(self.device)
        self.false_positives += fp.to(self.device)
        self.false_negatives += fn.to(self.device)

    def _result(self, numerator: Tensor, denominator: Tensor) -> Tensor:
        ratio = torch.where(
            denominator == 0, torch.zeros_like(numerator), numerator / denominator
        )  # divide_no_nan
        ratio = ratio.to(self._dtype)
        return ratio[0] if len(self.thresholds) == 1 else ratio


class Precision(_ThresholdMetric):
    """``tp / (tp + fp)`` at each threshold, as ``tf.keras.metrics.Precision`` (0 before any positive).

    Args:
        thresholds: a threshold in [0, 1] or a list of them (a list gives one value each); default 0.5.
        top_k: only ``None``.
        class_id: compute the metric for this class (last axis) only.
        name: metric name (default ``"precision"``).
        dtype: the result's dtype (float32 by default).
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = Precision()
    >>> m.update_state(torch.tensor([0.0, 1.0, 1.0, 1.0]), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    >>> m.result()
    tensor(0.6667)
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(thresholds, top_k, class_id, name or "precision", dtype, **kwargs)

    def compute(self) -> Tensor:
        return self._result(self.true_positives, self.true_positives + self.false_positives)


class Recall(_ThresholdMetric):
    """``tp / (tp + fn)`` at each threshold, as ``tf.keras.metrics.Recall`` (0 before any positive label).

    Args:
        thresholds: a threshold in [0, 1] or a list of them (a list gives one value each); default 0.5.
        top_k: only ``None``.
        class_id: compute the metric for this class (last axis) only.
        name: metric name (default ``"recall"``).
        dtype: the result's dtype (float32 by default).
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = Recall()
    >>> m.update_state(torch.tensor([0.0, 1.0, 1.0, 1.0]), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    >>> m.result()
    tensor(0.6667)
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] | None = None,
        top_k: int | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(thresholds, top_k, class_id, name or "recall", dtype, **kwargs)

    def compute(self) -> Tensor:
        return self._result(self.true_positives, self.true_positives + self.false_negatives)


def _to_list(thresholds: float | Sequence[float]) -> list[float]:
    if isinstance(thresholds, (int, float)):
        return [float(thresholds)]
    return [float(t) for t in thresholds]
