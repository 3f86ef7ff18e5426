"""``tf.keras.layers.LayerNormalization`` (Keras 2 semantics: epsilon 1e-3, statistics over ``axis``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from torchrs.functional.normalization import layer_normalization

__all__ = ["LayerNormalization"]

#: Keras's default ``epsilon`` of ``LayerNormalization`` (torch's ``nn.LayerNorm`` uses 1e-5).
KERAS_EPSILON = 1e-3


class LayerNormalization(nn.Module):
    """``tf.keras.layers.LayerNormalization``: normalizes each example over ``axis``, then scales and shifts.

    ``y = (x - mean) / sqrt(variance + epsilon) * gamma + beta``, with the mean and biased variance taken over
    ``axis`` (the last axis by default). ``weight`` is Keras's ``gamma`` (initialised to ones) and ``bias`` its
    ``beta`` (zeros), both shaped as the normalized axes. Unlike ``torch.nn.LayerNorm``, the default epsilon is
    Keras's ``1e-3`` and ``axis`` may name any axes.

    Args:
        axis: the axis or axes to normalize (Keras's ``axis``, default ``-1``).
        epsilon: added to the variance (default ``1e-3``, as Keras).
        center: learn ``beta`` (``bias``).
        scale: learn ``gamma`` (``weight``).
        input_dim: sizes of the normalized axes (an int for one axis); without it, the parameters are built on
            the first call, as Keras builds them.

    >>> layer = LayerNormalization(input_dim=2)
    >>> y = layer(torch.tensor([[1.0, 3.0]]))  # mean 2, variance 1: (x - 2) / sqrt(1 + 1e-3)
    >>> [round(v, 4) for v in y[0].tolist()]
    [-0.9995, 0.9995]
    """

    def __init__(
        self,
        axis: int | Sequence[int] = -1,
        epsilon: float = KERAS_EPSILON,
        center: bool = True,
        scale: bool = True,
        input_dim: int | Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.axis = [int(axis)] if isinstance(axis, int) else [int(a) for a in axis]
        if not self.axis or len(set(self.axis)) != len(self.axis):
            raise ValueError(f"axis must name one or more distinct axes; got {axis!r}.")
        if epsilon < 0:
            raise ValueError(f"epsilon must be >= 0; got {epsilon!r}.")
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.weight: torch.Tensor | None = UninitializedParameter() if scale else None
        self.bias: torch.Tensor | None = UninitializedParameter() if center else None
        if input_dim is not None:
            self.build([input_dim] if isinstance(input_dim, int) else list(input_dim))

    def build(self, param_shape: Sequence[int]) -> None:
        """Creates ``weight`` (ones) and ``bias`` (zeros) of shape ``param_shape`` (Keras's initializers)."""
        if len(param_shape) != len(self.axis):
            raise ValueError(
                f"input_dim gives {len(param_shape)} sizes for {len(self.axis)} normalized axes {self.axis}."
            )
        shape = tuple(int(d) for d in param_shape)
        if self.weight is not None:
            self.weight = nn.Parameter(torch.ones(shape))
        if self.bias is not None:
            self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if any(not -inputs.dim() <= a < inputs.dim() for a in self.axis):
            raise ValueError(
                f"axis {self.axis} is out of range for inputs of shape {tuple(inputs.shape)}."
            )
        if isinstance(self.weight, UninitializedParameter) or isinstance(
            self.bias, UninitializedParameter
        ):
            self.build([inputs.shape[a] for a in self.axis])
            self.to(inputs.device)
        return layer_normalization(inputs, self.axis, self.epsilon, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, epsilon={self.epsilon}, center={self.center}, scale={self.scale}"
