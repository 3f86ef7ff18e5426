"""Ranking metrics: tensorflow-ranking's ``NDCGMetric``, ``MRRMetric``, ``MeanAveragePrecisionMetric``, plus the
Keras ``AUC`` and ``BinaryAccuracy`` that ``tfrs.experimental.models.Ranking`` reports.

The tfr metrics (``tfr.keras.metrics.*``, used by the TFRS listwise-ranking tutorial) compute one value and one
weight per list and keep their weighted running mean, like tfr's Keras ``Mean`` underneath; see
:mod:`torchrs.functional.ranking_metrics` for the exact math (padding with label -1, per-list weights, tie rule).
All states are torchmetrics states summed across processes (``dist_reduce_fx="sum"``).

``tensorflow-ranking`` is not a dependency: these follow its definitions (tfr 0.5.x), and the tests compare them
with tensorflow-ranking 0.5.5 itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from torchrs.functional.losses import squeeze_or_expand_dimensions
from torchrs.functional.ranking_metrics import (
    DEFAULT_AUC_THRESHOLDS,
    auc_from_confusion,
    binary_matches,
    confusion_counts,
    default_gain_fn,
    default_rank_discount_fn,
    per_list_mean_average_precision,
    per_list_mrr,
    per_list_ndcg,
)
from torchrs.metrics.keras_metric import KerasMetric, Mean, MeanMetricWrapper

__all__ = [
    "AUC",
    "BinaryAccuracy",
    "MAPMetric",
    "MRRMetric",
    "MeanAveragePrecisionMetric",
    "NDCGMetric",
]

#: Keras ``BinaryAccuracy(threshold=0.5)``.
BINARY_ACCURACY_THRESHOLD = 0.5
#: Keras AUC ``summation_method`` values supported for the ROC curve.
SUMMATION_METHODS = ("interpolation", "minoring", "majoring")


def _check_float32(dtype: Any, who: str) -> None:
    if dtype not in (None, "float32", torch.float32):
        raise ValueError(
            f"{who}: only dtype=None / 'float32' (the Keras default) is supported, got {dtype!r}."
        )


def _check_topn(topn: int | None, who: str) -> None:
    if topn is not None and (isinstance(topn, bool) or not isinstance(topn, int) or topn < 1):
        raise ValueError(f"{who}: `topn` must be None or a positive int, got {topn!r}.")


def _check_not_ragged(ragged: bool, who: str) -> None:
    if ragged:
        raise ValueError(
            f"{who}(ragged=True) is not supported: torch has no ragged tensors. Pad the lists to one length "
            "with label -1 (tfr's padding label); padded items are ignored."
        )


class _RankingMetric(Mean):
    """Base of the tfr metrics: a weighted :class:`~torchrs.metrics.Mean` of per-list values."""

    _per_list: Callable[..., tuple[Tensor, Tensor]]

    def __init__(
        self, name: str, topn: int | None, dtype: Any, ragged: bool, **kwargs: Any
    ) -> None:
        who = type(self).__name__
        _check_topn(topn, who)
        _check_float32(dtype, who)
        _check_not_ragged(ragged, who)
        super().__init__(name=name, **kwargs)
        self._topn = topn

    def _compute_per_list(
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def update(  # type: ignore[override]
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None
    ) -> None:
        """Accumulates the per-list values of a batch of lists.

        Args:
            y_true: ``(B, L)`` graded relevance; ``-1`` marks padding.
            y_pred: ``(B, L)`` scores.
            sample_weight: optional scalar, per-list ``(B, 1)`` or per-item ``(B, L)`` weights.
        """
        y_pred = torch.as_tensor(y_pred, device=self.device).to(torch.float32)
        y_true = torch.as_tensor(y_true, device=self.device).to(torch.float32)
        values, weights = self._compute_per_list(y_true, y_pred, sample_weight)  # (B, 1), (B, 1)
        super().update(values, sample_weight=weights)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "topn": self._topn}


class NDCGMetric(_RankingMetric):
    """Normalized discounted cumulative gain, as ``tfr.keras.metrics.NDCGMetric``.

    ``NDCG = DCG(y, s) / DCG(y, y)`` with ``DCG = Σ_i gain(y_i) · discount(rank(s_i))``, over the top ``topn``,
    with gain ``2^y - 1`` and discount ``1 / log2(1 + rank)`` by default.

    Args:
        name: metric name (default ``"ndcg_metric"``, the Keras snake case of the class name).
        topn: cutoff; ``None`` = the whole list.
        gain_fn: label -> gain, on tensors.
        rank_discount_fn: 1-based rank (float tensor) -> discount.
        dtype: only ``None`` / float32.
        ragged: only ``False`` (pad lists with label -1).
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = NDCGMetric()
    >>> m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    >>> round(m.result().item(), 6)
    0.693426
    """

    def __init__(
        self,
        name: str | None = None,
        topn: int | None = None,
        gain_fn: Callable[[Tensor], Tensor] | None = None,
        rank_discount_fn: Callable[[Tensor], Tensor] | None = None,
        dtype: Any = None,
        ragged: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name or "ndcg_metric", topn, dtype, ragged, **kwargs)
        self._gain_fn = gain_fn or default_gain_fn
        self._rank_discount_fn = rank_discount_fn or default_rank_discount_fn

    def _compute_per_list(
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return per_list_ndcg(
            y_true, y_pred, sample_weight, self._topn, self._gain_fn, self._rank_discount_fn
        )


class MRRMetric(_RankingMetric):
    """Mean reciprocal rank, as ``tfr.keras.metrics.MRRMetric``: ``max_i rel_i / rank(s_i)``, ``rel = y >= 1``.

    Args:
        name: metric name (default ``"mrr_metric"``).
        topn: cutoff; ``None`` = the whole list.
        dtype: only ``None`` / float32.
        ragged: only ``False``.
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = MRRMetric()
    >>> m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    >>> m.result()
    tensor(0.5000)
    """

    def __init__(
        self,
        name: str | None = None,
        topn: int | None = None,
        dtype: Any = None,
        ragged: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name or "mrr_metric", topn, dtype, ragged, **kwargs)

    def _compute_per_list(
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return per_list_mrr(y_true, y_pred, sample_weight, self._topn)


class MeanAveragePrecisionMetric(_RankingMetric):
    """Mean average precision, as ``tfr.keras.metrics.MeanAveragePrecisionMetric`` (alias ``MAPMetric``).

    ``AP = Σ_{k <= topn} P@k · rel(k) / Σ_i rel_i`` with ``rel = y >= 1``.

    Args:
        name: metric name (default ``"mean_average_precision_metric"``).
        topn: cutoff; ``None`` = the whole list.
        dtype: only ``None`` / float32.
        ragged: only ``False``.
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = MeanAveragePrecisionMetric(topn=2)
    >>> m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    >>> m.result()
    tensor(0.2500)
    """

    def __init__(
        self,
        name: str | None = None,
        topn: int | None = None,
        dtype: Any = None,
        ragged: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name or "mean_average_precision_metric", topn, dtype, ragged, **kwargs)

    def _compute_per_list(
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return per_list_mean_average_precision(y_true, y_pred, sample_weight, self._topn)


#: Short name, as in ``tfr.keras.metrics.RankingMetricKey.MAP``.
MAPMetric = MeanAveragePrecisionMetric


class AUC(KerasMetric):
    """Area under the ROC curve, as ``tf.keras.metrics.AUC()`` (Keras 2): ``num_thresholds`` evenly spaced
    thresholds, weighted confusion counts, then a Riemann sum (trapezoids with ``"interpolation"``).

    It approximates the exact AUC to within the threshold spacing, exactly as Keras does; the default
    ``tfrs.experimental.models.Ranking`` task reports it as ``"auc"``. Only the ROC curve of a single label is
    supported (``curve="ROC"``, ``thresholds=None``, ``multi_label=False``, ``label_weights=None``).

    Args:
        num_thresholds: number of thresholds (> 1).
        curve: only ``"ROC"``.
        summation_method: ``"interpolation"`` (trapezoids), ``"minoring"`` or ``"majoring"``.
        name: metric name (default ``"auc"``).
        dtype: only ``None`` / float32.
        thresholds: only ``None``.
        multi_label: only ``False``.
        num_labels: only ``None``.
        label_weights: only ``None``.
        from_logits: apply a sigmoid to the predictions first.
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = AUC()
    >>> m.update_state(torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0.1, 0.4, 0.35, 0.8]))
    >>> m.result()
    tensor(0.7500)
    """

    true_positives: Tensor  # (T,) states, summed across processes
    false_positives: Tensor
    true_negatives: Tensor
    false_negatives: Tensor

    def __init__(
        self,
        num_thresholds: int = DEFAULT_AUC_THRESHOLDS,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Any = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(num_thresholds, bool)
            or not isinstance(num_thresholds, int)
            or num_thresholds <= 1
        ):
            raise ValueError(
                f"`num_thresholds` must be an integer > 1, got num_thresholds={num_thresholds!r}."
            )
        if str(curve).upper() != "ROC":
            raise ValueError(
                f"AUC(curve={curve!r}) is not supported: only curve='ROC' (the Keras default) is."
            )
        if str(summation_method).lower() not in SUMMATION_METHODS:
            raise ValueError(
                f"Invalid `summation_method` {summation_method!r}: expected one of {SUMMATION_METHODS}."
            )
        unsupported = {
            "thresholds": thresholds,
            "multi_label": multi_label or None,
            "num_labels": num_labels,
            "label_weights": label_weights,
        }
        given = sorted(key for key, value in unsupported.items() if value is not None)
        if given:
            raise ValueError(
                f"AUC arguments {given} are not supported; leave them at their Keras defaults."
            )
        _check_float32(dtype, "AUC")
        super().__init__(name=name or "auc", **kwargs)
        self.num_thresholds = num_thresholds
        self.summation_method = str(summation_method).lower()
        self._from_logits = from_logits
        for state in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_state(
                state,
                default=torch.zeros(num_thresholds, dtype=torch.float64),
                dist_reduce_fx="sum",
            )

    def update(  # type: ignore[override]
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None
    ) -> None:
        """Accumulates the weighted confusion counts of a batch (labels are positive when nonzero)."""
        y_pred = torch.as_tensor(y_pred, device=self.device).to(torch.float32)
        y_true = torch.as_tensor(y_true, device=self.device).to(torch.float32)
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred)
        weight = None
        if sample_weight is None:
            y_pred, y_true = squeeze_or_expand_dimensions(y_pred, y_true)
        else:
            weight = torch.as_tensor(sample_weight, device=self.device).to(torch.float32)
            y_pred, y_true = squeeze_or_expand_dimensions(y_pred, y_true)
            weight = _align_to(weight, y_pred)
        if y_pred.shape != y_true.shape:
            raise ValueError(
                f"AUC expects labels and predictions of the same shape, got labels {tuple(y_true.shape)} "
                f"and predictions {tuple(y_pred.shape)}."
            )
        tp, fp, tn, fn = confusion_counts(y_true, y_pred, weight, self.num_thresholds)
        self.true_positives += tp.to(self.device)
        self.false_positives += fp.to(self.device)
        self.true_negatives += tn.to(self.device)
        self.false_negatives += fn.to(self.device)

    def compute(self) -> Tensor:
        auc = auc_from_confusion(
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
            self.summation_method,
        )
        return auc.to(torch.float32)


def _align_to(weight: Tensor, values: Tensor) -> Tensor:
    """Keras's weight alignment before broadcasting: drop or add one trailing dimension, then broadcast."""
    if weight.dim() > 0:
        if weight.dim() - values.dim() == 1 and weight.shape[-1] == 1:
            weight = weight.squeeze(-1)
        elif values.dim() - weight.dim() == 1:
            weight = weight.unsqueeze(-1)
    try:
        return torch.broadcast_to(weight, values.shape)
    except RuntimeError as err:
        raise ValueError(
            f"`sample_weight` of shape {tuple(weight.shape)} cannot be broadcast to predictions of shape "
            f"{tuple(values.shape)}; pass one weight per example."
        ) from err


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``(y_pred > threshold) == y_true``, as ``tf.keras.metrics.BinaryAccuracy``.

    Args:
        name: metric name (default ``"binary_accuracy"``).
        dtype: the result's dtype (float32 by default).
        threshold: decision threshold on the predictions.
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = BinaryAccuracy()
    >>> m.update_state(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.9, 0.6, 0.5, 0.1]))
    >>> m.result()
    tensor(0.5000)
    """

    def __init__(
        self,
        name: str = "binary_accuracy",
        dtype: Any = None,
        threshold: float = BINARY_ACCURACY_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        super().__init__(self._matches, name=name, dtype=dtype, **kwargs)
        self.threshold = float(threshold)

    def _matches(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return binary_matches(y_true, y_pred, self.threshold)
