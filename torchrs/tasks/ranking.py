"""A ranking task, as ``tfrs.tasks.Ranking``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
import torchmetrics
from torch import Tensor, nn

from torchrs.losses import BinaryCrossentropy
from torchrs.metrics.keras_metric import KerasMetric
from torchrs.tasks.base import Task


class Ranking(Task):
    """A ranking task: a pointwise loss on predictions against labels, plus metrics.

    Args:
        loss: a Keras-style loss ``loss(y_true, y_pred, sample_weight=None)``; defaults to
            ``torchrs.losses.BinaryCrossentropy()`` (reduction sum over batch size: Σ w·l / B).
        metrics: metrics updated with ``(labels, predictions, sample_weight)``.
        prediction_metrics: metrics updated with the predictions.
        label_metrics: metrics updated with the labels.
        loss_metrics: metrics updated with the loss.
        name: optional task name.

    >>> import torch
    >>> from torchrs.losses import MeanSquaredError
    >>> Ranking(loss=MeanSquaredError())(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.0]]))
    tensor(0.5000)
    """

    def __init__(
        self,
        loss: Callable[..., Tensor] | None = None,
        metrics: Sequence[torchmetrics.Metric] | None = None,
        prediction_metrics: Sequence[torchmetrics.Metric] | None = None,
        label_metrics: Sequence[torchmetrics.Metric] | None = None,
        loss_metrics: Sequence[torchmetrics.Metric] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self._loss = loss if loss is not None else BinaryCrossentropy()
        self._ranking_metrics = nn.ModuleList(metrics or [])
        self._prediction_metrics = nn.ModuleList(prediction_metrics or [])
        self._label_metrics = nn.ModuleList(label_metrics or [])
        self._loss_metrics = nn.ModuleList(loss_metrics or [])
        self.name = name or "ranking"

    def forward(
        self,
        labels: Tensor,
        predictions: Tensor,
        sample_weight: Tensor | None = None,
        training: bool = False,
        compute_metrics: bool = True,
    ) -> Tensor:
        """Computes the task loss and updates the metrics.

        Args:
            labels: labels, e.g. ``(B,)`` or ``(B, 1)`` ratings.
            predictions: predictions of a compatible shape (Keras's alignment rules apply).
            sample_weight: optional per-example weights.
            training: whether this is a training step (kept for TFRS compatibility).
            compute_metrics: whether to update the metrics.

        Returns:
            The scalar loss.
        """
        labels = torch.as_tensor(labels, device=predictions.device)
        loss = self._loss(labels, predictions, sample_weight=sample_weight)
        if compute_metrics:
            self._update_metrics(labels, predictions, loss, sample_weight)
        return loss

    # Metric updates run eagerly under torch.compile (Model.compile(jit_compile=True)): torchmetrics keeps Python
    # counters that would make dynamo recompile at every step.
    @torch.compiler.disable
    @torch.no_grad()
    def _update_metrics(
        self, labels: Tensor, predictions: Tensor, loss: Tensor, sample_weight: Tensor | None
    ) -> None:
        preds = predictions.detach()
        for metric in _metrics(self._ranking_metrics):
            if isinstance(metric, KerasMetric):
                metric.update(labels, preds, sample_weight=sample_weight)
            else:
                _require_unweighted(metric, sample_weight)
                metric.update(
                    preds.reshape(labels.shape) if preds.numel() == labels.numel() else preds,
                    labels,
                )
        for metric in _metrics(self._prediction_metrics):
            _update_single(metric, preds, sample_weight)
        for metric in _metrics(self._label_metrics):
            _update_single(metric, labels, sample_weight)
        for metric in _metrics(self._loss_metrics):
            metric.update(loss.detach())


def _metrics(modules: nn.ModuleList) -> list[torchmetrics.Metric]:
    return [cast(torchmetrics.Metric, metric) for metric in modules]


def _update_single(
    metric: torchmetrics.Metric, values: Tensor, sample_weight: Tensor | None
) -> None:
    if isinstance(metric, KerasMetric):
        metric.update(values, sample_weight=sample_weight)
    else:
        _require_unweighted(metric, sample_weight)
        metric.update(values)


def _require_unweighted(metric: torchmetrics.Metric, sample_weight: Tensor | None) -> None:
    if sample_weight is not None:
        raise ValueError(
            f"{type(metric).__name__} is a plain torchmetrics metric and takes no `sample_weight`; use a "
            "torchrs.metrics Keras-style metric (e.g. RootMeanSquaredError) for weighted metrics."
        )
