"""Hostile inputs, class 3 (training side): ``Model.fit`` stops at the first non-finite loss.

Keras's ``TerminateOnNaN`` behaviour, on by default: the error names the epoch and the batch, and
the model keeps the weights of the last finite step (the check runs before the optimizer step).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import torchrs as trs
from torchrs.losses import MeanSquaredError
from torchrs.models import NonFiniteLossError

GOOD = [
    {"x": torch.tensor([[1.0], [2.0]]), "y": torch.tensor([[2.0], [4.0]])},
    {"x": torch.tensor([[1.0]]), "y": torch.tensor([[3.0]])},
]
NAN = {"x": torch.tensor([[float("nan")]]), "y": torch.tensor([[1.0]])}
INF = {"x": torch.tensor([[1.0]]), "y": torch.tensor([[float("inf")]])}


class Scaler(trs.Model):
    """predictions = a * x; MSE."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.0))
        self.task = trs.tasks.Ranking(loss=MeanSquaredError())

    def compute_loss(self, inputs, training: bool = False):  # type: ignore[no-untyped-def]
        return self.task(inputs["y"], self.a * inputs["x"])


class Epochs:
    """The same batches every epoch, except ``bad`` at (epoch, step) -- a corrupted record."""

    def __init__(self, bad: dict, epoch: int, step: int) -> None:
        self.bad, self.at, self.seen = bad, (epoch, step), 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch, self.seen = self.seen, self.seen + 1
        for step, batch in enumerate(GOOD):
            yield self.bad if (epoch, step) == self.at else batch


def _compiled() -> Scaler:
    model = Scaler()
    model.compile(optimizer=lambda params: torch.optim.SGD(params, lr=0.05))
    return model


@pytest.mark.parametrize("bad, shown", [(NAN, "nan"), (INF, "inf")])
def test_stops_naming_epoch_and_batch_with_last_finite_weights(bad: dict, shown: str) -> None:
    model = _compiled()
    with pytest.raises(NonFiniteLossError, match=rf"loss is {shown} at epoch 2/3, batch 2") as info:
        model.fit(Epochs(bad, epoch=1, step=1), epochs=3, verbose=0)
    assert (info.value.epoch, info.value.step) == (1, 1)
    # The same three finite steps (epoch 1, then epoch 2's first batch) on a fresh model.
    reference = _compiled()
    reference.fit([GOOD[0], GOOD[1], GOOD[0]], epochs=1, verbose=0)
    assert math.isfinite(model.a.item())
    assert model.a.item() == pytest.approx(reference.a.item(), rel=1e-6)


def test_can_be_turned_off() -> None:
    model = _compiled()
    history = model.fit(Epochs(NAN, epoch=0, step=0), epochs=2, verbose=0, terminate_on_nan=False)
    assert math.isnan(history.history["loss"][0]) and math.isnan(model.a.item())


def test_a_bare_train_step_is_unchanged() -> None:
    model = _compiled()
    logs = model.train_step(NAN)  # outside fit: the caller's loop decides
    assert math.isnan(logs["loss"])
