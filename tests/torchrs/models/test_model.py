"""models.Model: Keras reporting rules of fit / evaluate, compile, and a plain PyTorch loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchrs as trs
from torchrs.losses import MeanSquaredError
from torchrs.metrics import RootMeanSquaredError


class Scaler(trs.Model):
    """predictions = a * x, one weight; MSE ranking task with an RMSE metric."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.0))
        self.task = trs.tasks.Ranking(loss=MeanSquaredError(), metrics=[RootMeanSquaredError()])

    def compute_loss(self, inputs, training: bool = False):
        return self.task(inputs["y"], self.a * inputs["x"])


BATCHES = [
    {"x": torch.tensor([[1.0], [2.0]]), "y": torch.tensor([[2.0], [4.0]])},
    {"x": torch.tensor([[1.0]]), "y": torch.tensor([[3.0]])},
]


def test_evaluate_reports_last_batch_loss_and_running_metrics() -> None:
    model = Scaler()  # a = 0: batch 1 errors (2, 4) -> MSE 10; batch 2 error 3 -> MSE 9
    logs = model.evaluate(BATCHES, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(9.0)  # last batch, not the mean
    # RMSE over all three examples: sqrt((4 + 16 + 9) / 3)
    assert logs["root_mean_squared_error"] == pytest.approx((29 / 3) ** 0.5, rel=1e-6)
    assert logs["regularization_loss"] == 0.0
    assert logs["total_loss"] == pytest.approx(9.0)
    # evaluate resets metrics first: a second run gives the same value.
    assert model.evaluate(BATCHES, return_dict=True, verbose=0) == logs
    assert list(logs) == ["root_mean_squared_error", "loss", "regularization_loss", "total_loss"]


def test_fit_history_and_sgd_step() -> None:
    model = Scaler()
    model.compile(optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    history = model.fit(BATCHES, epochs=2, verbose=0)
    assert history.epoch == [0, 1]
    assert set(history.history) == {
        "root_mean_squared_error",
        "loss",
        "regularization_loss",
        "total_loss",
    }
    # Step 1 (batch 1, a = 0): dL/da = mean(2 (a x - y) x) = (2(-2)1 + 2(-4)2) / 2 = -10 -> a = 1.
    # Step 2 (batch 2, a = 1): loss (1 - 3)^2 = 4 -> epoch 1 reports the last batch loss 4.
    assert history.history["loss"][0] == pytest.approx(4.0)


def test_plain_pytorch_loop() -> None:
    model = Scaler()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model.compute_loss(BATCHES[0], training=True)
    loss.backward()
    optimizer.step()
    assert model.a.item() == pytest.approx(1.0)


def test_compile_errors() -> None:
    model = Scaler()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(BATCHES, verbose=0)
    with pytest.raises(ValueError, match="Unknown optimizer name 'lion'"):
        model.compile(optimizer="lion")
    with pytest.raises(TypeError, match="Unsupported compile"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="x` is empty"):
        model.compile(optimizer="sgd")
        model.fit([], verbose=0)
    with pytest.raises(ValueError, match="initial_epoch"):
        model.fit(BATCHES, epochs=1, initial_epoch=1, verbose=0)


def test_compute_loss_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError, match="compute_loss"):
        trs.Model().compute_loss({})
