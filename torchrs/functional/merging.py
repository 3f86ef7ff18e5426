"""Keras merge arithmetic: element-wise merges, ``batch_dot`` and ``l2_normalize`` as Keras computes them."""

from __future__ import annotations

import torch

__all__ = ["L2_NORMALIZE_EPSILON", "MERGE_MODES", "batch_dot", "l2_normalize", "merge"]

#: ``tf.linalg.l2_normalize``'s default epsilon (``Dot(normalize=True)``): sum of squares floor.
L2_NORMALIZE_EPSILON = 1e-12


def _expand_to_same_rank(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Keras ``_Merge``: lower-rank inputs get axes inserted at 1 until all ranks are equal."""
    rank = max(x.dim() for x in inputs)
    out = []
    for x in inputs:
        while x.dim() < rank:
            x = x.unsqueeze(1)
        out.append(x)
    return out


#: Keras merge layers computed element-wise (``tf.keras.layers.Add`` ...), by class name.
MERGE_MODES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def merge(inputs: list[torch.Tensor], mode: str) -> torch.Tensor:
    """An element-wise Keras merge (``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``,
    ``Minimum``), folded left to right as Keras folds it, inputs broadcast like Keras.

    Args:
        inputs: at least one tensor (``Subtract``: exactly two).
        mode: one of :data:`MERGE_MODES`.

    Returns:
        The merged tensor.

    >>> merge([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 5.0]])], "Average").tolist()
    [[2.0, 3.5]]
    """
    if mode not in MERGE_MODES:
        raise ValueError(f"mode must be one of {MERGE_MODES}; got {mode!r}.")
    if not isinstance(inputs, list | tuple) or not inputs:
        raise ValueError(f"A {mode} layer takes a non-empty list of tensors; got {type(inputs)}.")
    tensors = _expand_to_same_rank([torch.as_tensor(x) for x in inputs])
    if mode == "Subtract":
        if len(tensors) != 2:
            raise ValueError(f"A Subtract layer takes exactly 2 inputs; got {len(tensors)}.")
        return tensors[0] - tensors[1]
    out = tensors[0]
    for x in tensors[1:]:
        if mode in ("Add", "Average"):
            out = out + x
        elif mode == "Multiply":
            out = out * x
        elif mode == "Maximum":
            out = torch.maximum(out, x)
        else:
            out = torch.minimum(out, x)
    return out / len(tensors) if mode == "Average" else out


def l2_normalize(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``tf.linalg.l2_normalize``: ``x * rsqrt(max(sum(x ** 2), 1e-12))``."""
    square_sum = torch.sum(x * x, dim=dim, keepdim=True)
    return x * torch.rsqrt(torch.clamp(square_sum, min=L2_NORMALIZE_EPSILON))


def batch_dot(x: torch.Tensor, y: torch.Tensor, axes: tuple[int, int]) -> torch.Tensor:
    """``tf.keras.backend.batch_dot``: per-example dot products over ``axes`` (batch axis 0 kept).

    The output shape is ``x.shape`` without its batch and ``axes[0]`` dimensions followed by
    ``y.shape`` without its batch and ``axes[1]`` dimensions; two rank-2 inputs give ``(B, 1)``.

    Args:
        x: ``(B, ...)`` tensor.
        y: ``(B, ...)`` tensor.
        axes: the contracted axis of ``x`` and of ``y`` (negative values count from the end).

    Returns:
        The batched dot product.

    >>> batch_dot(torch.ones(2, 3), torch.ones(2, 3), (1, 1)).tolist()
    [[3.0], [3.0]]
    >>> batch_dot(torch.ones(2, 4, 3), torch.ones(2, 5, 3), (2, 2)).shape
    torch.Size([2, 4, 5])
    """
    a0 = axes[0] % x.dim()
    a1 = axes[1] % y.dim()
    if a0 == 0 or a1 == 0:
        raise ValueError(f"Cannot perform batch_dot over axis 0 (axes={axes}).")
    if x.shape[a0] != y.shape[a1]:
        raise ValueError(
            f"batch_dot: x.shape[{a0}] != y.shape[{a1}] ({x.shape[a0]} != {y.shape[a1]}) for "
            f"shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )
    x_rank, y_rank = x.dim(), y.dim()
    if x_rank == 2:
        x, a0 = x.unsqueeze(1), a0 + 1
    if y_rank == 2:
        y = y.unsqueeze(2)
    x = x.movedim(a0, -1)  # (B, ..., d)
    y = y.movedim(a1, 1)  # (B, d, ...)
    x_mid, y_trail = x.shape[1:-1], y.shape[2:]
    result = torch.bmm(
        x.reshape(x.shape[0], -1, x.shape[-1]), y.reshape(y.shape[0], y.shape[1], -1)
    )
    result = result.reshape(x.shape[0], *x_mid, *y_trail)
    if x_rank == 2:
        result = result.squeeze(1)
    elif y_rank == 2:
        result = result.squeeze(-1)
    return result
