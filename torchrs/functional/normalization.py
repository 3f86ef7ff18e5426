"""Layer normalization as Keras 2 computes it (``tf.keras.layers.LayerNormalization``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["layer_normalization"]


def layer_normalization(
    inputs: torch.Tensor,
    axis: Sequence[int],
    epsilon: float,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(x - mean) / sqrt(variance + epsilon) * gamma + beta`` over ``axis``, as Keras's ``LayerNormalization``.

    The statistics are the mean and the *biased* variance (``tf.nn.moments``) over the normalized axes;
    ``gamma`` / ``beta`` have the shape of those axes and broadcast along the others.

    Args:
        inputs: any float tensor.
        axis: the normalized axes (negative allowed), as Keras's ``axis``.
        epsilon: added to the variance (Keras's default is ``1e-3``).
        gamma: scale, shaped as the normalized axes (None: 1).
        beta: offset, shaped as the normalized axes (None: 0).

    Returns:
        A tensor shaped as ``inputs``.

    >>> x = torch.tensor([[1.0, 3.0]])  # mean 2, variance 1
    >>> layer_normalization(x, [-1], epsilon=0.0).tolist()
    [[-1.0, 1.0]]
    >>> layer_normalization(x, [-1], 0.0, gamma=torch.tensor([2.0, 2.0]), beta=torch.tensor([0.5, 0.5])).tolist()
    [[-1.5, 2.5]]
    """
    dims = sorted(d % inputs.dim() for d in axis)
    mean = inputs.mean(dim=dims, keepdim=True)
    centered = inputs - mean
    variance = (centered * centered).mean(dim=dims, keepdim=True)
    outputs = centered * torch.rsqrt(variance + epsilon)
    broadcast = [inputs.shape[d] if d in dims else 1 for d in range(inputs.dim())]
    if gamma is not None:
        outputs = outputs * gamma.reshape(broadcast)
    if beta is not None:
        outputs = outputs + beta.reshape(broadcast)
    return outputs
