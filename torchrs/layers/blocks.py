"""Convenience blocks for building models, as ``tfrs.layers.blocks``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from torchrs.activations import ActivationLike, get_activation
from torchrs.layers._checks import check_input, check_positive_int
from torchrs.layers.dense import Dense, regularization_loss

__all__ = ["MLP"]


class MLP(nn.Module):
    """Sequential multi-layer perceptron (MLP) block, as ``tfrs.layers.blocks.MLP``.

    A stack of Keras-style Dense layers (``glorot_uniform`` kernels, zero biases, the Keras Dense
    defaults): ``activation`` after every layer but the last, ``final_activation`` after the last.
    Weights are created on the first call (or now, with ``input_dim``). Parameter names
    ``_sublayers.{i}.weight`` / ``_sublayers.{i}.bias`` follow the TFRS attribute ``_sublayers``;
    the weights are the transposes of the Keras kernels.

    Args:
        units: Sequential list of layer sizes.
        use_bias: Whether to include a bias term.
        activation: Keras activation identifier (or callable) used on all but the last layer.
        final_activation: Keras activation identifier (or callable) used on the last layer.
        input_dim: (torchrs only) build the weights now for inputs with this last dimension.
        name: (torchrs only) Keras layer name, kept for reference.

    >>> mlp = MLP([4, 1], final_activation="sigmoid", input_dim=3)
    >>> mlp(torch.zeros(2, 3)).tolist()  # zero input, zero biases: sigmoid(0)
    [[0.5], [0.5]]
    >>> [tuple(p.shape) for p in mlp.parameters()]
    [(4, 3), (4,), (1, 4), (1,)]
    """

    def __init__(
        self,
        units: Sequence[int],
        use_bias: bool = True,
        activation: ActivationLike = "relu",
        final_activation: ActivationLike = None,
        *,
        input_dim: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(units, (str, bytes)) or not isinstance(units, Sequence) or len(units) == 0:
            raise ValueError(
                f"`units` must be a non-empty list of layer sizes such as [64, 32, 1], got {units!r}."
            )
        for i, num_units in enumerate(units):
            check_positive_int(num_units, f"units[{i}]")
        check_positive_int(input_dim, "input_dim", allow_none=True)
        get_activation(activation)  # validated even when unused (a single layer), to fail early
        self.name = name
        self._sublayers = nn.ModuleList(
            Dense(num_units, activation=activation, use_bias=use_bias) for num_units in units[:-1]
        )
        self._sublayers.append(Dense(units[-1], activation=final_activation, use_bias=use_bias))
        if input_dim is not None:
            self.build(input_dim)

    @property
    def built(self) -> bool:
        """Whether every layer's weights exist."""
        return all(cast(Dense, layer).built for layer in self._sublayers)

    def build(self, input_dim: int) -> None:
        """Creates the weights for inputs whose last dimension is ``input_dim``."""
        check_positive_int(input_dim, "input_dim")
        in_features = input_dim
        for module in self._sublayers:
            layer = cast(Dense, module)
            units = cast(int, layer.units)  # MLP layers always have their size
            layer.build(in_features, units)
            in_features = units

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Performs the forward computation of the block: ``(..., in) -> (..., units[-1])``."""
        check_input(x, "x", "MLP")
        for layer in self._sublayers:
            x = layer(x)  # (B, units[i])
        return x

    def regularization_loss(self) -> torch.Tensor:
        """Always 0: TFRS' MLP takes no regularizers (kept for a uniform ``Model`` loss sum)."""
        return regularization_loss(self)
