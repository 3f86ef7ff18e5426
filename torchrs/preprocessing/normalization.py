"""``tf.keras.layers.Normalization`` (Keras 2) for PyTorch: feature-wise standardisation.

Forward: ``(x - mean) / max(sqrt(variance), 1e-7)`` (``invert=True``: ``mean + x * max(...)``),
in the layer's float dtype, with the statistics broadcast over the axes *not* in ``axis``.
``adapt`` computes per-batch moments and merges them with Keras's running formula, so the learned
statistics depend on the batch size exactly as in Keras.

Inputs are tensors, NumPy arrays or (nested) lists of numbers; outputs are float tensors on the
input tensor's device (or the layer's device for non-tensor inputs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn

from torchrs.preprocessing._index_lookup import (
    _IGNORED_KERAS_KWARGS,
    DEFAULT_ADAPT_BATCH_SIZE,
    _dtype_name,
    parse_dtype,
)

__all__ = ["Normalization", "adapt_batches", "as_float_tensor", "batch_moments", "merge_moments"]

# ``tf.keras.backend.epsilon()``: the floor of the standard deviation in the denominator.
EPSILON = 1e-7


# --------------------------------------------------------------------------------------------
# Pure functions.
# --------------------------------------------------------------------------------------------


def _float32_mean(total: torch.Tensor, count: int, dtype: torch.dtype) -> torch.Tensor:
    """``reduce_mean`` as TensorFlow computes it: the sum in ``dtype`` (inf on overflow) / count."""
    return total.to(dtype) / torch.tensor(float(count), dtype=dtype)


def batch_moments(
    batch: torch.Tensor, reduce_axes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``tf.nn.moments`` of one batch over ``reduce_axes``, in the batch's float dtype.

    As TensorFlow: ``mean = sum(x) / n``, then ``variance = sum((x - mean)^2) / n`` with each
    squared difference rounded in the batch dtype. The sums are accumulated in float64 and rounded
    once (TensorFlow accumulates in float32 in its own order, so results agree to a few ulps).

    Args:
        batch: float tensor of any shape.
        reduce_axes: axes to reduce (the others are kept).

    Returns:
        ``(mean, variance, count)``: mean and variance with the kept axes' shape, and the number
        of reduced elements per statistic.

    >>> m, v, n = batch_moments(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), [0])
    >>> m.tolist(), v.tolist(), n
    ([2.0, 4.0], [1.0, 4.0], 2)
    """
    axes = list(reduce_axes)
    count = math.prod(batch.shape[d] for d in axes)
    if not axes:
        return batch.clone(), torch.zeros_like(batch), 1
    dtype = batch.dtype
    mean = _float32_mean(batch.double().sum(dim=axes), count, dtype)
    keep_shape = [1 if d in axes else size for d, size in enumerate(batch.shape)]
    diff = batch - mean.reshape(keep_shape)  # (...) in the batch dtype
    variance = _float32_mean((diff * diff).double().sum(dim=axes), count, dtype)
    return mean, variance, count


def merge_moments(
    mean: torch.Tensor,
    variance: torch.Tensor,
    count: int,
    batch_mean: torch.Tensor,
    batch_variance: torch.Tensor,
    batch_count: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Keras ``Normalization.update_state``: merge running and batch statistics.

    Weighted means, and the "lack-of-fit" variance: each part's variance plus its squared
    distance to the merged mean, weighted by its share of the count. Computed in the dtype of
    ``mean`` with the same operations as Keras (so an ``inf`` in the data gives a NaN variance,
    as in Keras).

    Args:
        mean: running mean.
        variance: running variance.
        count: elements behind the running statistics.
        batch_mean: mean of the new batch.
        batch_variance: variance of the new batch.
        batch_count: elements in the new batch.

    Returns:
        ``(mean, variance, count)`` after the merge.

    >>> m, v, n = merge_moments(torch.tensor([0.0]), torch.tensor([1.0]), 0, torch.tensor([2.0]), torch.tensor([4.0]), 3)
    >>> m.tolist(), v.tolist(), n
    ([2.0], [4.0], 3)
    """
    dtype = mean.dtype
    total = count + batch_count
    batch_weight = torch.tensor(float(batch_count), dtype=dtype) / torch.tensor(
        float(total), dtype=dtype
    )
    existing_weight = 1.0 - batch_weight
    total_mean = mean * existing_weight + batch_mean * batch_weight
    old_shift = mean - total_mean
    new_shift = batch_mean - total_mean
    total_variance = (variance + old_shift * old_shift) * existing_weight + (
        batch_variance + new_shift * new_shift
    ) * batch_weight
    return total_mean, total_variance, total


def as_float_tensor(data: Any, dtype: torch.dtype, layer: str) -> torch.Tensor:
    """Numbers (tensor, NumPy array, nested lists, TF tensor) as a ``dtype`` tensor.

    Floating inputs are cast to ``dtype`` (Keras casts inputs to the layer's compute dtype);
    integer and bool inputs too. Tensors keep their device.

    Raises:
        TypeError: for strings, complex numbers or rows of different lengths.
    """
    if not isinstance(data, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(data, "numpy"):
        data = data.numpy()  # a TensorFlow eager tensor
    if isinstance(data, torch.Tensor):
        if data.dtype.is_complex:
            raise TypeError(f"{layer} expects real numbers; got a tensor of dtype {data.dtype}.")
        return data.to(dtype)
    try:
        array = np.asarray(data)
    except ValueError:
        raise TypeError(
            f"{layer} could not read the inputs as a rectangular array of numbers (rows of "
            "different lengths?). Pad them to equal length first."
        ) from None
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{layer} expects numbers; got an array of Python objects that are not numbers "
                "(or rows of different lengths)."
            ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{layer} expects numbers; got {type(data).__name__} with NumPy dtype {array.dtype}."
        )
    array = np.ascontiguousarray(array)
    if (
        not array.flags.writeable
    ):  # torch warns on read-only memory (e.g. a Ratings column); copy instead
        array = array.copy()
    return torch.from_numpy(array).to(dtype)


def adapt_batches(
    data: Any, batch_size: int | None, steps: int | None, layer: str
) -> Iterator[Any]:
    """Cut ``adapt`` data into batches like the Keras ``DataHandler``.

    Array-like data (tensor, NumPy array, list, TF tensor) is sliced along its first axis into
    batches of ``batch_size`` (default 32) rows, in order; any other iterable (a generator, a
    ``DataLoader``, a ``tf.data.Dataset``) is taken to yield batches already.

    Args:
        data: the data.
        batch_size: rows per batch for array-like data; must be None for iterables.
        steps: maximum number of batches, or None for all.
        layer: layer name for error messages.

    Returns:
        An iterator over batches.

    Raises:
        ValueError: empty data, a bad ``batch_size``/``steps``, or ``batch_size`` with an iterable.
        TypeError: data that is neither array-like nor iterable.
    """
    if steps is not None and steps < 1:
        raise ValueError(f"`steps` must be a positive integer or None. Received: steps={steps}")
    if not isinstance(data, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(data, "shape"):
        if hasattr(data, "numpy"):
            data = data.numpy()  # a TensorFlow eager tensor
    batches: Iterable[Any]
    if isinstance(data, (torch.Tensor, np.ndarray, list, tuple, str, bytes, int, float)):
        size = DEFAULT_ADAPT_BATCH_SIZE if batch_size is None else batch_size
        if size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size}")
        if isinstance(data, (str, bytes, int, float)) or (
            isinstance(data, (torch.Tensor, np.ndarray)) and data.ndim == 0
        ):
            raise ValueError(
                f"{layer}.adapt expects a batch axis: pass at least 1-D data (got the scalar "
                f"{data!r})."
            )
        if len(data) == 0:
            raise ValueError(f"{layer}.adapt: expected input data to be non-empty.")
        batches = (data[i : i + size] for i in range(0, len(data), size))
    else:
        if batch_size is not None:
            raise ValueError(
                "Do not specify `batch_size` when `data` is an iterable of batches (it yields "
                f"batches already). Received: batch_size={batch_size}"
            )
        if not isinstance(data, Iterable):
            raise TypeError(
                f"{layer}.adapt expects array-like data or an iterable of batches. Received: "
                f"{type(data).__name__}"
            )
        batches = data
    return iter(batches) if steps is None else islice(batches, steps)


# --------------------------------------------------------------------------------------------
# The layer.
# --------------------------------------------------------------------------------------------


class Normalization(nn.Module):
    """Shifts and scales inputs by a mean and variance per feature (Keras 2 ``Normalization``).

    ``axis`` lists the axes that keep their own statistics (default ``-1``: one mean and variance
    per feature of the last axis); ``axis=None`` uses a single mean and variance. Statistics are
    given (``mean``/``variance``, broadcast to the kept shape) or learned with :meth:`adapt`.
    The layer is built, as in Keras, on its first call or ``adapt`` batch: the input's rank and
    kept sizes are then fixed.

    Args:
        axis: an int, a sequence of ints, or None.
        mean: values to subtract (scalar or array broadcastable to the kept shape), or None.
        variance: variances (same rules); ``mean`` and ``variance`` go together.
        invert: apply the inverse transform ``mean + x * max(sqrt(variance), 1e-7)``.
        **kwargs: Keras layer arguments found in configs: ``name``, ``dtype`` (compute dtype,
            default float32); others such as ``trainable`` are accepted and ignored.

    Learned statistics live in ``state_dict()`` as ``adapt_mean``, ``adapt_variance`` and
    ``count`` (Keras's ``mean``, ``variance`` and ``count`` weights).

    >>> layer = Normalization(axis=None)
    >>> layer.adapt([1.0, 2.0, 3.0])
    >>> layer(torch.tensor([1.0, 2.0, 3.0]))
    tensor([-1.2247,  0.0000,  1.2247])
    >>> Normalization(mean=3.0, variance=2.0)(torch.tensor([[1.0], [2.0], [3.0]])).flatten()
    tensor([-1.4142, -0.7071,  0.0000])
    >>> Normalization(mean=3.0, variance=2.0, invert=True)(torch.tensor([[-1.4142], [0.0]])).flatten()
    tensor([1.0000, 3.0000])
    """

    # Buffers (registered in __init__), declared for type checkers.
    _device_anchor: torch.Tensor
    adapt_mean: torch.Tensor | None
    adapt_variance: torch.Tensor | None
    count: torch.Tensor | None
    _mean_b: torch.Tensor | None
    _variance_b: torch.Tensor | None

    def __init__(
        self,
        axis: int | Sequence[int] | None = -1,
        mean: Any = None,
        variance: Any = None,
        invert: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if axis is None:
            axes: tuple[int, ...] = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axes = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis
        ):
            axes = tuple(int(a) for a in axis)
        else:
            raise TypeError(
                f"`axis` must be an int, a sequence of ints or None. Received: axis={axis!r}"
            )
        if len(set(axes)) != len(axes):
            raise ValueError(f"`axis` must not repeat an axis. Received: axis={axis!r}")
        if isinstance(mean, nn.Parameter) or isinstance(variance, nn.Parameter):
            raise ValueError(
                "Normalization does not support passing a Parameter for `mean`/`variance`; pass "
                "values (a number, a list, an array or a tensor)."
            )
        if (mean is None) != (variance is None):
            raise ValueError(
                "When setting values directly, both `mean` and `variance` must be set. Got mean: "
                f"{mean!r} and variance: {variance!r}"
            )
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        unknown = sorted(set(kwargs) - _IGNORED_KERAS_KWARGS)
        if unknown:
            raise TypeError(f"Normalization got unexpected keyword arguments: {unknown}.")
        self.name = name if name is not None else "normalization"
        self.dtype = parse_dtype(dtype, torch.float32)
        if not self.dtype.is_floating_point:
            raise ValueError(f"Normalization needs a floating `dtype`. Received: dtype={dtype!r}")
        self.axis = axes
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self._ndim: int | None = None
        self._keep_axis: list[int] = []
        self._reduce_axis: list[int] = []
        self._broadcast_shape: list[int] = []
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        # Learned state (Keras weights), created at build for layers without a given mean.
        self.register_buffer("adapt_mean", None)
        self.register_buffer("adapt_variance", None)
        self.register_buffer("count", None)
        # The finalised, broadcastable statistics used by forward.
        self.register_buffer("_mean_b", None, persistent=False)
        self.register_buffer("_variance_b", None, persistent=False)

    # ---- build ------------------------------------------------------------------------------

    @property
    def built(self) -> bool:
        """Whether the input rank (and kept sizes) are fixed."""
        return self._ndim is not None

    @property
    def mean(self) -> torch.Tensor | None:
        """Broadcastable mean used by forward (None before the layer is built)."""
        return self._mean_b

    @property
    def variance(self) -> torch.Tensor | None:
        """Broadcastable variance used by forward (None before the layer is built)."""
        return self._variance_b

    def build(self, input_shape: Sequence[int | None]) -> None:
        """Fix the kept axes and statistics shape from an input shape (None: unknown size).

        Args:
            input_shape: the input shape; ``adapt`` passes None for the batch axis.

        Raises:
            ValueError: an ``axis`` out of range, a kept axis of unknown size, statistics that do
                not broadcast to the kept shape, or loaded statistics of another shape.
        """
        shape = list(input_shape)
        ndim = len(shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(
                f"All `axis` values must be in the range [-ndim, ndim). Found ndim: `{ndim}`, "
                f"axis: {self.axis}"
            )
        keep = sorted(a if a >= 0 else a + ndim for a in self.axis)
        for d in keep:
            if shape[d] is None:
                raise ValueError(
                    f"All `axis` values to be kept must have known shape. Got axis: {self.axis}, "
                    f"input shape: {shape}, with unknown axis at index: {d}. The batch axis "
                    "cannot keep its own statistics in `adapt`; choose other axes."
                )
        self._keep_axis = keep
        self._reduce_axis = [d for d in range(ndim) if d not in keep]
        self._broadcast_shape = [int(shape[d]) if d in keep else 1 for d in range(ndim)]  # type: ignore[arg-type]
        stats_shape = tuple(int(shape[d]) for d in keep)  # type: ignore[arg-type]
        device = self._device_anchor.device
        if self.input_mean is None:
            if self.adapt_mean is None:
                self.adapt_mean = torch.zeros(stats_shape, dtype=self.dtype, device=device)
                self.adapt_variance = torch.ones(stats_shape, dtype=self.dtype, device=device)
                self.count = torch.zeros((), dtype=torch.int64, device=device)
            elif tuple(self.adapt_mean.shape) != stats_shape:
                raise ValueError(
                    f"The loaded statistics have shape {tuple(self.adapt_mean.shape)} but inputs of "
                    f"shape {shape} with axis={self.axis} need {stats_shape}."
                )
            self._ndim = ndim
            self.finalize_state()
            return
        self._ndim = ndim
        self._mean_b = self._given(self.input_mean, "mean", stats_shape, device)
        self._variance_b = self._given(self.input_variance, "variance", stats_shape, device)

    def _given(
        self, value: Any, what: str, stats_shape: tuple[int, ...], device: Any
    ) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        try:
            # Keras: ``value * np.ones(shape)`` in float64, then a cast to the compute dtype.
            full = np.asarray(value, dtype=np.float64) * np.ones(stats_shape)
            full = full.reshape(self._broadcast_shape)
        except ValueError:
            raise ValueError(
                f"`{what}` of shape {np.shape(value)} does not broadcast to the kept shape "
                f"{stats_shape} (input axes {self._keep_axis} with axis={self.axis}). Pass one "
                "value per kept position, or a scalar."
            ) from None
        return torch.from_numpy(full).to(device=device, dtype=self.dtype)

    # ---- adapt ------------------------------------------------------------------------------

    def reset_state(self) -> None:
        """Reset learned statistics to mean 0, variance 1, count 0 (a no-op before build)."""
        if self.input_mean is not None or self.adapt_mean is None:
            return
        self.adapt_mean = torch.zeros_like(self.adapt_mean)
        self.adapt_variance = torch.ones_like(self.adapt_mean)
        self.count = torch.zeros((), dtype=torch.int64, device=self.adapt_mean.device)

    def update_state(self, data: Any) -> None:
        """Merge the moments of one batch into the running statistics (one ``adapt`` step).

        Args:
            data: a batch (first axis = samples).

        Raises:
            ValueError: the layer has a given ``mean``/``variance``, or a bad batch shape.
        """
        self._check_adaptable()
        batch = as_float_tensor(data, self.dtype, "Normalization")
        if not self.built:
            self.build([None, *batch.shape[1:]])
        if batch.dim() != self._ndim:
            raise ValueError(
                f"Normalization was built for inputs of rank {self._ndim}; got a batch of shape "
                f"{tuple(batch.shape)}."
            )
        for d in self._keep_axis:
            if batch.shape[d] != self._broadcast_shape[d]:
                raise ValueError(
                    f"Normalization keeps axis {d} of size {self._broadcast_shape[d]}; got a batch "
                    f"of shape {tuple(batch.shape)}."
                )
        mean, variance, count = batch_moments(batch, self._reduce_axis)
        running_mean, running_variance, running_count = self._running_state()
        device = running_mean.device
        new_mean, new_variance, total = merge_moments(
            running_mean,
            running_variance,
            int(running_count),
            mean.to(device),
            variance.to(device),
            count,
        )
        self.adapt_mean = new_mean
        self.adapt_variance = new_variance
        self.count = torch.tensor(total, dtype=torch.int64, device=device)

    def _running_state(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, variance, count = self.adapt_mean, self.adapt_variance, self.count
        if mean is None or variance is None or count is None:
            raise RuntimeError("Normalization has no running statistics before it is built.")
        return mean, variance, count

    def finalize_state(self) -> None:
        """Make the running statistics the ones forward uses (end of ``adapt``)."""
        if self.input_mean is not None or not self.built or self.adapt_mean is None:
            return
        mean, variance, _ = self._running_state()
        self._mean_b = mean.reshape(self._broadcast_shape).to(self.dtype)
        self._variance_b = variance.reshape(self._broadcast_shape).to(self.dtype)

    def _check_adaptable(self) -> None:
        if self.input_mean is not None:
            raise ValueError(
                "Cannot `adapt` a Normalization layer that is initialized with static `mean` and "
                f"`variance`, you passed mean {self.input_mean!r} and variance "
                f"{self.input_variance!r}. Create the layer without them to adapt it."
            )

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the mean and variance of ``data``, batch by batch as Keras does.

        Args:
            data: array-like data (tensor, NumPy array, list) cut along its first axis into
                batches of ``batch_size`` rows, or an iterable that yields batches.
            batch_size: rows per batch for array-like data (default 32, as Keras); the merged
                statistics depend on it at the float32 rounding level.
            steps: maximum number of batches, or None for all.

        Raises:
            ValueError: empty data, a static ``mean``/``variance``, an ``axis`` that keeps the
                batch axis, or inconsistent batch shapes.
        """
        self._check_adaptable()
        batches = adapt_batches(data, batch_size, steps, "Normalization")
        self.reset_state()
        seen = False
        for batch in batches:
            self.update_state(batch)
            seen = True
        if not seen:
            raise ValueError("Normalization.adapt: expected input data to be non-empty.")
        self.finalize_state()

    # ---- forward ----------------------------------------------------------------------------

    def forward(self, inputs: Any) -> torch.Tensor:
        """Normalize (or, with ``invert``, de-normalize) ``inputs``.

        Args:
            inputs: numbers of any shape compatible with the built statistics (tensor, NumPy
                array or nested lists); cast to the layer's dtype.

        Returns:
            A float tensor of the broadcast shape (the input's shape in the usual case).

        Raises:
            ValueError: inputs whose shape does not broadcast with the statistics.
        """
        x = as_float_tensor(inputs, self.dtype, "Normalization")
        if not isinstance(inputs, torch.Tensor):
            x = x.to(self._device_anchor.device)
        if not self.built:
            self.build(list(x.shape))
        mean = self._mean_b.to(x.device)  # type: ignore[union-attr]
        variance = self._variance_b.to(x.device)  # type: ignore[union-attr]
        try:
            torch.broadcast_shapes(x.shape, mean.shape)
        except RuntimeError:
            raise ValueError(
                f"Normalization inputs of shape {tuple(x.shape)} do not broadcast with the "
                f"statistics of shape {tuple(mean.shape)} (axis={self.axis})."
            ) from None
        floor = torch.tensor(EPSILON, dtype=self.dtype, device=x.device)
        scale = torch.maximum(torch.sqrt(variance), floor)  # NaN propagates, as tf.maximum
        if self.invert:
            return mean + x * scale
        return (x - mean) / scale

    # ---- serialisation ----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """Keras ``Normalization`` config (``mean``/``variance`` are the constructor values).

        Returns:
            A dict that :meth:`from_config` turns back into an equivalent layer.
        """

        def listify(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            if isinstance(value, np.ndarray):
                return value.tolist()
            return value

        return {
            "name": self.name,
            "trainable": True,
            "dtype": _dtype_name(self.dtype),
            "axis": self.axis,
            "invert": self.invert,
            "mean": listify(self.input_mean),
            "variance": listify(self.input_variance),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Normalization:
        """Build a layer from :meth:`get_config` output or a Keras ``Normalization`` config.

        Args:
            config: the config dict.

        Returns:
            A new layer.
        """
        return cls(**dict(config))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        keys = ("adapt_mean", "adapt_variance", "count")
        expected = keys if self.input_mean is None else ()
        present = {k: state_dict[prefix + k] for k in expected if prefix + k in state_dict}
        if strict:
            if self.adapt_mean is not None:
                missing_keys.extend(prefix + k for k in keys if k not in present)
            for key in state_dict:
                if key.startswith(prefix) and key[len(prefix) :] not in expected:
                    unexpected_keys.append(key)
        if len(present) != len(keys):
            return
        mean, variance, count = (present[k] for k in keys)
        if mean.shape != variance.shape or count.numel() != 1:
            error_msgs.append(
                f"Normalization state: adapt_mean {tuple(mean.shape)}, adapt_variance "
                f"{tuple(variance.shape)} and count {tuple(count.shape)} do not fit together."
            )
            return
        if self.adapt_mean is not None and mean.shape != self.adapt_mean.shape:
            error_msgs.append(
                f"size mismatch for {prefix}adapt_mean: copying a param with shape "
                f"{tuple(mean.shape)}, the shape in current model is "
                f"{tuple(self.adapt_mean.shape)}."
            )
            return
        device = self._device_anchor.device
        self.adapt_mean = mean.detach().to(device=device, dtype=self.dtype).clone()
        self.adapt_variance = variance.detach().to(device=device, dtype=self.dtype).clone()
        self.count = count.detach().to(device=device, dtype=torch.int64).reshape(()).clone()
        self.finalize_state()  # as Keras's ``load_own_variables``

    def extra_repr(self) -> str:
        parts = [f"axis={self.axis}"]
        if self.input_mean is not None:
            parts.append("static mean/variance")
        if self.invert:
            parts.append("invert=True")
        return ", ".join(parts)
