"""Keras reshaping layers: ``tf.keras.layers.Flatten`` and ``Reshape``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Flatten", "Reshape"]


class Flatten(nn.Module):
    """``tf.keras.layers.Flatten()`` (channels last): ``(B, ...) -> (B, prod(...))``; ``(B,) -> (B, 1)``.

    >>> Flatten()(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 12])
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 1:
            return inputs.unsqueeze(1)  # (B, 1)
        return inputs.reshape(inputs.shape[0], -1)  # (B, N)


class Reshape(nn.Module):
    """``tf.keras.layers.Reshape(target_shape)``: the batch axis is kept, ``-1`` is inferred.

    >>> Reshape((3, -1))(torch.zeros(2, 12)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, target_shape: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.target_shape = tuple(int(d) for d in target_shape)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.reshape(inputs.shape[0], *self.target_shape)
