"""Keras recurrent layers TFRS tutorials use: ``tf.keras.layers.GRU``."""

from __future__ import annotations

import torch
from torch import nn

from torchrs.functional.recurrent import masked_gru

__all__ = ["GRU"]


class GRU(nn.Module):
    """A converted Keras ``GRU`` (``reset_after=True``, tanh / sigmoid): ``torch.nn.GRU`` underneath.

    Inputs are batch first ``(B, T, in)``; the output is the last state ``(B, units)``, or every
    state ``(B, T, units)`` with ``return_sequences=True``, as in Keras. With a ``mask``
    (``(B, T)`` bool, from an ``Embedding(mask_zero=True)``) masked steps are skipped as Keras
    skips them (see :func:`torchrs.functional.recurrent.masked_gru`).

    >>> gru = GRU(4, input_dim=3)
    >>> gru(torch.zeros(2, 5, 3)).shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        units: int,
        input_dim: int,
        return_sequences: bool = False,
        zero_output_for_mask: bool = False,
    ) -> None:
        super().__init__()
        self.units = units
        self.return_sequences = return_sequences
        self.zero_output_for_mask = zero_output_for_mask
        self.gru = nn.GRU(input_dim, units, batch_first=True)

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if inputs.dim() != 3:
            raise ValueError(
                f"GRU expects inputs of shape (batch, time, features); got {tuple(inputs.shape)}."
            )
        if mask is not None:
            return masked_gru(
                inputs, mask, self.gru, self.return_sequences, self.zero_output_for_mask
            )
        outputs, _ = self.gru(inputs)  # (B, T, units)
        return outputs if self.return_sequences else outputs[:, -1]  # (B, units)
