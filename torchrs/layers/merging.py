"""Keras merge layers (``tf.keras.layers.Add`` ... ``Concatenate``, ``Dot``) on lists of tensors."""

from __future__ import annotations

import torch
from torch import nn

from torchrs.functional.merging import MERGE_MODES, batch_dot, l2_normalize, merge

__all__ = [
    "Add",
    "Average",
    "Concatenate",
    "Dot",
    "Maximum",
    "Merge",
    "Minimum",
    "Multiply",
    "Subtract",
]


class Merge(nn.Module):
    """An element-wise Keras merge by class name (``"Add"``, ``"Subtract"``, ``"Multiply"``, ``"Average"``,
    ``"Maximum"``, ``"Minimum"``); :class:`Add` and its siblings fix the name.

    >>> Merge("Add")([torch.ones(1, 2), torch.ones(1, 2)]).tolist()
    [[2.0, 2.0]]
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in MERGE_MODES:
            raise ValueError(f"mode must be one of {MERGE_MODES}; got {mode!r}.")
        self.mode = mode

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return merge(inputs, self.mode)

    def extra_repr(self) -> str:
        return repr(self.mode)


class Add(Merge):
    """``tf.keras.layers.Add()``: the sum of the inputs.

    >>> Add()([torch.tensor([1.0]), torch.tensor([2.0])]).tolist()
    [3.0]
    """

    def __init__(self) -> None:
        super().__init__("Add")


class Subtract(Merge):
    """``tf.keras.layers.Subtract()``: the first input minus the second."""

    def __init__(self) -> None:
        super().__init__("Subtract")


class Multiply(Merge):
    """``tf.keras.layers.Multiply()``: the element-wise product of the inputs."""

    def __init__(self) -> None:
        super().__init__("Multiply")


class Average(Merge):
    """``tf.keras.layers.Average()``: the element-wise mean of the inputs."""

    def __init__(self) -> None:
        super().__init__("Average")


class Maximum(Merge):
    """``tf.keras.layers.Maximum()``: the element-wise maximum of the inputs."""

    def __init__(self) -> None:
        super().__init__("Maximum")


class Minimum(Merge):
    """``tf.keras.layers.Minimum()``: the element-wise minimum of the inputs."""

    def __init__(self) -> None:
        super().__init__("Minimum")


class Concatenate(nn.Module):
    """``tf.keras.layers.Concatenate(axis=-1)`` on a list of tensors.

    >>> Concatenate()([torch.ones(1, 2), torch.zeros(1, 1)]).tolist()
    [[1.0, 1.0, 0.0]]
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(inputs), dim=self.axis)


class Dot(nn.Module):
    """``tf.keras.layers.Dot(axes, normalize)``: batched dot product of two tensors.

    >>> Dot(axes=1)([torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 4.0]])]).tolist()
    [[25.0]]
    >>> Dot(axes=1, normalize=True)([torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 4.0]])])
    tensor([[1.]])
    """

    def __init__(self, axes: int | tuple[int, int] | list[int], normalize: bool = False) -> None:
        super().__init__()
        self.axes = axes if isinstance(axes, int) else (int(axes[0]), int(axes[1]))
        self.normalize = normalize

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != 2:
            raise ValueError(f"A Dot layer takes exactly 2 inputs; got {len(inputs)}.")
        x, y = inputs
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        axes = (axes[0] % x.dim(), axes[1] % y.dim())
        if self.normalize:
            x, y = l2_normalize(x, axes[0]), l2_normalize(y, axes[1])
        return batch_dot(x, y, axes)
