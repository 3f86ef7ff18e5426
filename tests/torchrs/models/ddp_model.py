"""The model and data shared by test_ddp.py and its torchrun workers."""

from __future__ import annotations

import torch
from torch import nn

import torchrs as trs
from torchrs.layers.dense import KerasDense
from torchrs.losses import MeanSquaredError
from torchrs.metrics import RootMeanSquaredError


class Regressor(trs.Model):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = trs.layers.Embedding(20, 4)
        self.dense = KerasDense(1, input_dim=4)
        self.task = trs.tasks.Ranking(loss=MeanSquaredError(), metrics=[RootMeanSquaredError()])

    def compute_loss(self, inputs, training: bool = False) -> torch.Tensor:
        return self.task(inputs["y"], self.dense(self.embedding(inputs["x"])))


class CallRegressor(Regressor):
    """The same model written as TFRS's ranking tutorial: ``call`` predicts, ``compute_loss`` calls ``self``;
    ``call`` adds an activity loss (a batch mean, so the mean over two equal halves is the global one)."""

    def call(self, inputs) -> torch.Tensor:
        hidden = self.embedding(inputs["x"])
        self.add_loss(0.1 * torch.mean(torch.square(hidden)))
        return self.dense(hidden)

    def compute_loss(self, inputs, training: bool = False) -> torch.Tensor:
        return self.task(inputs["y"], self(inputs))


def make_model(with_call: bool = False) -> Regressor:
    torch.manual_seed(3)
    model = CallRegressor() if with_call else Regressor()
    model.compile(optimizer=lambda params: trs.optim.Adagrad(params, learning_rate=0.5))
    return model


def global_batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    return [
        {"x": torch.randint(0, 20, (8,), generator=g), "y": torch.rand(8, 1, generator=g) * 4 + 1}
        for _ in range(6)
    ]


def module_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point and "task" not in k
    }
