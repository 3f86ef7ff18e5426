"""Keras pooling layers TFRS tutorials use: ``tf.keras.layers.GlobalAveragePooling1D`` (mask-aware)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GlobalAveragePooling1D"]

#: Keras's two layouts of a ``(batch, steps, features)`` sequence.
DATA_FORMATS = ("channels_last", "channels_first")


class GlobalAveragePooling1D(nn.Module):
    """``tf.keras.layers.GlobalAveragePooling1D``: the mean over the steps axis, skipping masked steps.

    With a ``mask`` (``(B, T)`` bool, e.g. from ``Embedding(mask_zero=True)``) the result is
    ``sum(x * mask) / sum(mask)`` over the steps, as Keras computes it: a row whose steps are all
    masked is 0 / 0 = NaN in both frameworks.

    Args:
        data_format: ``"channels_last"`` (``(B, T, F)``, the default) or ``"channels_first"`` (``(B, F, T)``).
        keepdims: keep the steps axis with length 1.

    >>> pool = GlobalAveragePooling1D()
    >>> x = torch.tensor([[[1.0], [3.0], [8.0]]])
    >>> pool(x).tolist(), pool(x, mask=torch.tensor([[True, True, False]])).tolist()
    ([[4.0]], [[2.0]])
    """

    def __init__(self, data_format: str = "channels_last", keepdims: bool = False) -> None:
        super().__init__()
        if data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {DATA_FORMATS}; got {data_format!r}.")
        self.data_format = data_format
        self.keepdims = keepdims

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if inputs.dim() != 3:
            raise ValueError(
                f"GlobalAveragePooling1D expects inputs of shape (batch, steps, features) or, "
                f"channels_first, (batch, features, steps); got {tuple(inputs.shape)}."
            )
        steps_axis = 1 if self.data_format == "channels_last" else 2
        if mask is None:
            return inputs.mean(dim=steps_axis, keepdim=self.keepdims)
        weights = mask.to(inputs.dtype).unsqueeze(
            2 if steps_axis == 1 else 1
        )  # (B, T, 1) / (B, 1, T)
        total = (inputs * weights).sum(dim=steps_axis, keepdim=self.keepdims)
        return total / weights.sum(dim=steps_axis, keepdim=self.keepdims)
