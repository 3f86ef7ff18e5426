"""Keras-style metrics on torchmetrics: ``update_state`` / ``result`` / ``reset_states`` and a Keras ``name``.

Every state is a torchmetrics state with ``dist_reduce_fx="sum"``, so metrics sync across DDP ranks for free.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torchmetrics
from torch import Tensor

from torchrs.functional.losses import (
    mean_absolute_error,
    mean_squared_error,
    squeeze_or_expand_dimensions,
)

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def resolve_dtype(dtype: Any, who: str = "metric") -> torch.dtype:
    """Keras's metric ``dtype`` argument as a torch dtype: ``None`` is float32 (Keras's ``floatx``).

    >>> resolve_dtype("float64")
    torch.float64
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    name = getattr(dtype, "name", dtype)  # a tf.DType or numpy dtype has a name
    if isinstance(name, str) and name in _DTYPES:
        return _DTYPES[name]
    raise ValueError(
        f"{who}: `dtype` must be None or a floating dtype ({sorted(_DTYPES)} or a torch dtype), got {dtype!r}."
    )


class quiet_compute(warnings.catch_warnings):
    """Silences torchmetrics' warning about ``compute`` before ``update`` (Keras reports 0 without a word)."""

    def __enter__(self) -> None:  # type: ignore[override]
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*compute.*called before the.*update.*")


class KerasMetric(torchmetrics.Metric):
    """A torchmetrics ``Metric`` that also answers to the Keras metric API.

    Args:
        name: the Keras name under which ``Model.fit`` / ``evaluate`` report the metric.
    """

    full_state_update = False

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Keras alias of ``update``."""
        self.update(*args, **kwargs)

    def result(self) -> Tensor:
        """Keras alias of ``compute``; like Keras, a metric never updated quietly reports 0."""
        with quiet_compute():
            return self.compute()

    def reset_states(self) -> None:
        """Keras alias of ``reset``."""
        self.reset()


def _align_weights(values: Tensor, sample_weight: Tensor) -> tuple[Tensor, Tensor]:
    """Keras's weight alignment in ``Reduce.update_state``: squeeze/expand one dim, then broadcast or reduce."""
    if sample_weight.dim() > 0:
        rank_diff = sample_weight.dim() - values.dim()
        if rank_diff == 1 and sample_weight.shape[-1] == 1:
            sample_weight = sample_weight.squeeze(-1)
        elif rank_diff == -1:
            sample_weight = sample_weight.unsqueeze(-1)
    try:
        sample_weight = torch.broadcast_to(sample_weight, values.shape)
    except RuntimeError:
        # Keras reduces the values to the weights' rank when the weights cannot be broadcast.
        dims = list(range(sample_weight.dim(), values.dim()))
        values = values.mean(dim=dims) if dims else values
        try:
            sample_weight = torch.broadcast_to(sample_weight, values.shape)
        except RuntimeError as err:
            raise ValueError(
                f"`sample_weight` of shape {tuple(sample_weight.shape)} cannot be broadcast to values of "
                f"shape {tuple(values.shape)}; pass one weight per example."
            ) from err
    return values, sample_weight


class Mean(KerasMetric):
    """Weighted running mean: ``Σ w·v / Σ w``, as ``tf.keras.metrics.Mean``.

    Args:
        name: the Keras name under which the metric is reported.
        dtype: the dtype values are cast to and the result is given in (Keras's ``dtype``; float32 by default).
        **kwargs: torchmetrics ``Metric`` options.

    >>> m = Mean()
    >>> m.update_state(torch.tensor([1.0, 3.0]), sample_weight=torch.tensor([1.0, 3.0]))
    >>> m.result()
    tensor(2.5000)
    >>> Mean(name="loss", dtype="float64").name
    'loss'
    """

    total: Tensor
    count: Tensor

    def __init__(self, name: str = "mean", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self._dtype = resolve_dtype(dtype, type(self).__name__)
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, values: Tensor, sample_weight: Tensor | None = None) -> None:
        values = torch.as_tensor(values, device=self.device).to(self._dtype)
        if sample_weight is None:
            self.total += values.sum().to(torch.float64)
            self.count += values.numel()
            return
        weight = torch.as_tensor(sample_weight, device=self.device).to(self._dtype)
        values, weight = _align_weights(values, weight)
        self.total += (values * weight).sum().to(torch.float64)
        self.count += weight.sum().to(torch.float64)

    def compute(self) -> Tensor:
        # Keras's divide_no_nan: 0 before any update.
        if self.count == 0:
            return torch.tensor(0.0, dtype=self._dtype, device=self.device)
        return (self.total / self.count).to(self._dtype)


class MeanMetricWrapper(Mean):
    """Running weighted mean of a per-example function ``fn(y_true, y_pred)``, as Keras's wrapper.

    Keras aligns shapes first (a ``(B,)`` label against a ``(B, 1)`` prediction squeezes the prediction), then
    ``fn`` reduces the last axis. Note the Keras 2 quirk this reproduces: with ``(B,)`` labels the function
    reduces the whole batch to one value, so the metric becomes a mean of batch means.
    """

    def __init__(
        self, fn: Callable[[Tensor, Tensor], Tensor], name: str, dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, dtype=dtype, **kwargs)
        self._fn = fn

    def update(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:  # type: ignore[override]
        y_pred = torch.as_tensor(y_pred, device=self.device).to(self._dtype)
        y_true = torch.as_tensor(y_true, device=self.device).to(self._dtype)
        y_pred, y_true = squeeze_or_expand_dimensions(y_pred, y_true)
        super().update(self._fn(y_true, y_pred), sample_weight)


class MeanSquaredError(MeanMetricWrapper):
    """``tf.keras.metrics.MeanSquaredError``."""

    def __init__(self, name: str = "mean_squared_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(mean_squared_error, name=name, dtype=dtype, **kwargs)


class MeanAbsoluteError(MeanMetricWrapper):
    """``tf.keras.metrics.MeanAbsoluteError``."""

    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None, **kwargs: Any) -> None:
        super().__init__(mean_absolute_error, name=name, dtype=dtype, **kwargs)


class RootMeanSquaredError(Mean):
    """``sqrt(Σ w·(y_pred - y_true)² / Σ w)`` over every element, as ``tf.keras.metrics.RootMeanSquaredError``.

    >>> m = RootMeanSquaredError()
    >>> m.update_state(torch.tensor([1.0, 2.0]), torch.tensor([[3.0], [2.0]]))
    >>> m.result()
    tensor(1.4142)
    """

    def __init__(
        self, name: str = "root_mean_squared_error", dtype: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(name=name, dtype=dtype, **kwargs)

    def update(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> None:  # type: ignore[override]
        y_pred = torch.as_tensor(y_pred, device=self.device).to(self._dtype)
        y_true = torch.as_tensor(y_true, device=self.device).to(self._dtype)
        y_pred, y_true = squeeze_or_expand_dimensions(y_pred, y_true)
        super().update((y_pred - y_true).square(), sample_weight)

    def compute(self) -> Tensor:
        return super().compute().sqrt()


def metric_names(metric: torchmetrics.Metric) -> list[str]:
    """The names under which a metric is reported (several for ``FactorizedTopK``)."""
    names = getattr(metric, "metric_names", None)
    if callable(names):
        return list(names())
    name = getattr(metric, "name", None)
    if name:
        return [name]
    # A plain torchmetrics metric: Keras-style snake case of its class name.
    cls = type(metric).__name__
    return ["".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(cls))]


def metric_results(metric: torchmetrics.Metric) -> dict[str, Tensor]:
    """``{name: value}`` for a metric, in the order Keras reports them."""
    value = metric.compute()
    names = metric_names(metric)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) != len(names):
        raise ValueError(
            f"Metric {type(metric).__name__} returned {len(values)} values for names {names}."
        )
    return dict(zip(names, values, strict=True))


def update_metric(
    metric: torchmetrics.Metric, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None
) -> None:
    """Updates a Keras-style metric (``y_true, y_pred`` order) or a plain torchmetrics one (``preds, target``)."""
    if isinstance(metric, KerasMetric):
        metric.update(y_true, y_pred, sample_weight=sample_weight)
        return
    if sample_weight is not None:
        raise ValueError(
            f"{type(metric).__name__} is a plain torchmetrics metric and takes no `sample_weight`; use a "
            "torchrs.metrics Keras-style metric (e.g. RootMeanSquaredError) for weighted metrics."
        )
    metric.update(y_pred, y_true)
