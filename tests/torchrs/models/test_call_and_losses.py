"""models.Model: Keras's ``call`` / ``compute_loss`` split, ``add_loss`` / ``losses``, ``compile()``'s default
RMSprop and ``jit_compile``, against a TFRS model written the way TFRS's ranking tutorial writes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import torchrs as trs
from torchrs.losses import MeanSquaredError
from torchrs.metrics import RootMeanSquaredError

#: TFRS / torchrs agreement after 2 epochs of 4 RMSprop steps: both run the same float32 operations (Keras's
#: RMSprop rule; Dense, relu, MSE, the L2 penalty and the activity loss), up to the order of a few roundings in
#: the reductions, so the measured differences are ~1e-7; 1e-5 leaves room for other BLAS kernels.
TOLERANCE = 1e-5
ACTIVITY = 0.1  # the activity-loss factor: large enough that regularization_loss moves the weights
L2_FACTOR = 0.01


class TorchRanker(trs.Model):
    """The TFRS ranking-tutorial pattern: ``call`` predicts, ``compute_loss`` calls ``self(features)``."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = trs.layers.Dense(4, activation="relu", kernel_regularizer="l2", input_dim=3)
        self.out = trs.layers.Dense(1, input_dim=4)
        self.task = trs.tasks.Ranking(loss=MeanSquaredError(), metrics=[RootMeanSquaredError()])

    def call(self, features: dict[str, Any]) -> torch.Tensor:
        hidden = self.hidden(features["x"])
        self.add_loss(
            ACTIVITY * torch.mean(torch.square(hidden))
        )  # an activity loss, as Keras layers add
        return self.out(hidden)

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        return self.task(features["y"], self(features))


def _batches(seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "x": rng.normal(size=(6, 3)).astype(np.float32),
            "y": rng.uniform(1, 5, size=(6, 1)).astype(np.float32),
        }
        for _ in range(4)
    ]


def _torch_batches(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    return [{k: torch.from_numpy(v) for k, v in b.items()} for b in _batches(seed)]


# ------------------------------------------------------------------------------------------------ unit tests


def test_call_runs_call_and_fit_drives_compute_loss() -> None:
    model = TorchRanker()
    batch = _torch_batches()[0]
    predictions = model(batch)  # call, not compute_loss
    assert predictions.shape == (6, 1)
    loss = model.compute_loss(batch)
    assert loss.shape == ()
    model.compile(optimizer="sgd")
    history = model.fit(_torch_batches(), epochs=1, verbose=0)
    assert set(history.history) == {
        "root_mean_squared_error",
        "loss",
        "regularization_loss",
        "total_loss",
    }


def test_add_loss_tensors_last_until_the_next_outer_call() -> None:
    model = TorchRanker()
    batch = _torch_batches()[0]
    model(batch)
    model(batch)  # Keras clears the losses at each outermost call: still one activity loss
    hidden = model.hidden(batch["x"])
    activity = ACTIVITY * torch.mean(torch.square(hidden))
    penalty = L2_FACTOR * model.hidden.weight.square().sum()
    losses = model.losses
    assert len(losses) == 3  # the activity loss, then one weight penalty per regularized layer
    torch.testing.assert_close(losses[0], activity)
    torch.testing.assert_close(model.regularization_loss(), activity + penalty + 0.0)
    # A zero-argument callable stays and is evaluated on each read.
    model.add_loss(lambda: 2.0 * model.out.bias.sum() + 1.0)
    torch.testing.assert_close(model.regularization_loss(), activity + penalty + 1.0)


def test_add_loss_tensor_outside_call_raises() -> None:
    model = TorchRanker()
    with pytest.raises(ValueError, match="zero-argument `lambda`"):
        model.add_loss(torch.tensor(1.0))


def test_model_without_call_keeps_returning_the_loss() -> None:
    class LossOnly(trs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(3.0))

        def compute_loss(self, inputs: Any, training: bool = False) -> torch.Tensor:
            return self.w * inputs

    model = LossOnly()
    assert model(torch.tensor(2.0), training=True).item() == 6.0
    assert model.losses == []


def test_compile_defaults_to_keras_rmsprop() -> None:
    model = TorchRanker()
    model.compile()
    model.fit(_torch_batches()[:1], verbose=0)
    assert isinstance(model.optimizer, trs.optim.RMSprop)
    assert model.optimizer.param_groups[0]["lr"] == 0.001
    for name in ("adadelta", "adamax", "adamw", "ftrl", "nadam", "RMSprop"):
        model.compile(optimizer=name)
        model.fit(_torch_batches()[:1], verbose=0)
        assert type(model.optimizer).__name__.lower() == name.lower()
    with pytest.raises(TypeError, match="`jit_compile` must be a bool"):
        model.compile(jit_compile="yes")


@pytest.mark.slow
def test_jit_compile_runs_through_torch_compile() -> None:
    # The compiled compute_loss gives the eager trajectory (same float32 operations; inductor may fuse
    # element-wise ops, so allow a few ulps over 8 steps).
    torch._dynamo.reset()
    results = []
    for jit in (False, True):
        torch.manual_seed(0)
        model = TorchRanker()
        model.compile(optimizer=lambda p: trs.optim.Adam(p, learning_rate=0.01), jit_compile=jit)
        history = model.fit(_torch_batches(), epochs=2, verbose=0)
        results.append((history.history, model.hidden.weight.detach().clone()))
        if jit:
            assert model._loss_function() is model._compiled_compute_loss
            assert model._compiled_compute_loss is not None
            graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            # Dynamo captured graphs and did not recompile step after step: measured 2 graphs (the loss around the
            # eager metric update); compiling the torchmetrics updates too recompiled at each step (5 by step 8).
            assert 0 < graphs < 4
    (eager_hist, eager_w), (jit_hist, jit_w) = results
    torch.testing.assert_close(jit_w, eager_w, rtol=1e-5, atol=1e-6)
    assert jit_hist["total_loss"] == pytest.approx(eager_hist["total_loss"], rel=1e-5)


# --------------------------------------------------------------------------------------------- TFRS reference


def _tfrs_model(tf, tfrs):
    class TFRanker(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = tf.keras.layers.Dense(4, activation="relu", kernel_regularizer="l2")
            self.out = tf.keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()],
            )

        def call(self, features):
            hidden = self.hidden(features["x"])
            self.add_loss(ACTIVITY * tf.reduce_mean(tf.square(hidden)))
            return self.out(hidden)

        def compute_loss(self, features, training=False):
            return self.task(features["y"], self(features))

    return TFRanker()


@pytest.mark.tf
def test_matches_tfrs_call_compute_loss_add_loss_and_default_rmsprop(tf, tfrs) -> None:
    batches = _batches()
    tf.keras.utils.set_random_seed(1)
    keras_model = _tfrs_model(tf, tfrs)
    keras_model(batches[0])  # build
    keras_model.compile()  # Keras's default: RMSprop
    model = TorchRanker()
    with torch.no_grad():
        model.hidden.weight.copy_(torch.from_numpy(keras_model.hidden.kernel.numpy().T))
        model.hidden.bias.copy_(torch.from_numpy(keras_model.hidden.bias.numpy()))
        model.out.weight.copy_(torch.from_numpy(keras_model.out.kernel.numpy().T))
        model.out.bias.copy_(torch.from_numpy(keras_model.out.bias.numpy()))
    model.compile()

    dataset = tf.data.Dataset.from_tensor_slices(
        {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    ).batch(6)
    expected = keras_model.fit(dataset, epochs=2, verbose=0).history
    got = model.fit(_torch_batches(), epochs=2, verbose=0).history
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert got[name] == pytest.approx(values, rel=TOLERANCE, abs=TOLERANCE), name
    assert expected["regularization_loss"][-1] > 0.01  # both penalties count, visibly
    np.testing.assert_allclose(
        model.hidden.weight.detach().numpy().T, keras_model.hidden.kernel.numpy(), atol=TOLERANCE
    )
    expected_eval = keras_model.evaluate(dataset, return_dict=True, verbose=0)
    got_eval = model.evaluate(_torch_batches(), return_dict=True, verbose=0)
    for name, value in expected_eval.items():
        assert got_eval[name] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), name
