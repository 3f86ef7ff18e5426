"""Recurrent math as Keras runs it: a GRU over masked steps (``tf.keras.backend.rnn``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["masked_gru"]


def masked_gru(
    inputs: torch.Tensor,
    mask: torch.Tensor,
    gru: nn.GRU,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
) -> torch.Tensor:
    """A Keras GRU (``reset_after=True``) over masked steps, as ``tf.keras.backend.rnn`` runs it.

    At a masked step the state is carried over unchanged and the output repeats the previous
    output (zeros with ``zero_output_for_mask``); the result is the last output.

    Args:
        inputs: ``(B, T, in)`` batch-first sequences.
        mask: ``(B, T)`` bool, True where a step is real (``ids != 0`` of ``Embedding(mask_zero)``).
        gru: the ``torch.nn.GRU`` holding the weights (gates r, z, n).
        return_sequences: return every step's output ``(B, T, units)``.
        zero_output_for_mask: output zeros at masked steps (Keras's RNN option).

    Returns:
        ``(B, units)``, or ``(B, T, units)`` with ``return_sequences``.

    >>> gru = nn.GRU(2, 3, batch_first=True)
    >>> x = torch.randn(1, 4, 2)
    >>> full = masked_gru(x, torch.ones(1, 4, dtype=torch.bool), gru)
    >>> torch.allclose(full, gru(x)[0][:, -1], atol=1e-6)
    True
    >>> cut = masked_gru(x, torch.tensor([[True, True, False, False]]), gru)
    >>> torch.allclose(cut, gru(x[:, :2])[0][:, -1], atol=1e-6)
    True
    """
    if mask.shape != inputs.shape[:2]:
        raise ValueError(
            f"mask must have shape (batch, time) = {tuple(inputs.shape[:2])}; got {tuple(mask.shape)}."
        )
    mask = mask.to(torch.bool)
    weight_ih, bias_ih = gru.get_parameter("weight_ih_l0"), gru.get_parameter("bias_ih_l0")
    weight_hh, bias_hh = gru.get_parameter("weight_hh_l0"), gru.get_parameter("bias_hh_l0")
    gates_x = inputs @ weight_ih.T + bias_ih  # (B, T, 3u)
    state = inputs.new_zeros(inputs.shape[0], gru.hidden_size)  # (B, u)
    output = state  # (B, u): Keras starts the "previous output" at zeros
    outputs = []
    for step in range(inputs.shape[1]):
        x_r, x_z, x_n = gates_x[:, step].chunk(3, dim=-1)  # (B, u) each
        h_r, h_z, h_n = (state @ weight_hh.T + bias_hh).chunk(3, dim=-1)  # (B, u) each
        reset = torch.sigmoid(x_r + h_r)
        update = torch.sigmoid(x_z + h_z)
        candidate = torch.tanh(x_n + reset * h_n)
        new_state = update * state + (1 - update) * candidate  # (B, u)
        keep = mask[:, step].unsqueeze(-1)  # (B, 1)
        state = torch.where(keep, new_state, state)
        previous = torch.zeros_like(output) if zero_output_for_mask else output
        output = torch.where(keep, new_state, previous)
        outputs.append(output)
    if return_sequences:
        return torch.stack(outputs, dim=1)  # (B, T, u)
    return output
