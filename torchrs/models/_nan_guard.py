"""``Model.fit`` stops at the first non-finite loss (Keras's ``TerminateOnNaN``, on by default).

Keras's callback looks at the loss after the step, when the weights are already NaN. Here the
training step checks the loss *before* the backward pass and the optimizer step, so the model keeps
the weights of the last finite step, and the error names the epoch and the batch.

>>> import torch
>>> guard = FitPosition(epochs=3)
>>> guard.epoch, guard.step = 1, 4
>>> check_finite_loss(guard, torch.tensor(float("nan")))
Traceback (most recent call last):
    ...
torchrs.models._nan_guard.NonFiniteLossError: Model.fit stopped: the loss is nan at epoch 2/3, batch 5 (1-based). The weights are those of the last finite step. Lower the learning rate, check the batch for NaN / inf features, or pass fit(..., terminate_on_nan=False) to train on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``epoch`` / ``step`` are 0-based."""

    def __init__(self, message: str, epoch: int, step: int, value: float) -> None:
        super().__init__(message)
        self.epoch, self.step, self.value = epoch, step, value


@dataclass
class FitPosition:
    """Where ``fit`` is (0-based), for the error message; mutated by the training loop."""

    epochs: int
    epoch: int = 0
    step: int = 0


def check_finite_loss(position: FitPosition | None, total_loss: Tensor) -> None:
    """Raises :class:`NonFiniteLossError` when ``total_loss`` is NaN / inf (all ranks agree under DDP).

    Args:
        position: the running fit's position; ``None`` (a bare ``train_step`` call, or
            ``terminate_on_nan=False``) disables the check.
        total_loss: the scalar loss about to be back-propagated.
    """
    if position is None:
        return
    bad = (~torch.isfinite(total_loss.detach())).any().to(torch.float32).reshape(1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(bad)  # one rank's NaN stops every rank at the same step
    if not bool(bad.item()):
        return
    value = float(total_loss.detach().float().reshape(-1)[0])
    raise NonFiniteLossError(
        f"Model.fit stopped: the loss is {value} at epoch {position.epoch + 1}/{position.epochs}, "
        f"batch {position.step + 1} (1-based). The weights are those of the last finite step. "
        "Lower the learning rate, check the batch for NaN / inf features, or pass "
        "fit(..., terminate_on_nan=False) to train on.",
        position.epoch,
        position.step,
        value,
    )
