"""Layers cast their inputs to the layer's dtype as Keras does (``Dense.call``'s cast, the base layer's autocast),
instead of raising on a float64 array."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchrs as trs
from torchrs.layers.feature_interaction import Cross


def test_dense_takes_float64_int_and_numpy_inputs() -> None:
    dense = trs.layers.Dense(2, kernel_initializer="ones")
    out = dense(np.array([[1.0, 2.0, 3.0]], dtype=np.float64))
    assert out.dtype == torch.float32
    assert out.tolist() == [[6.0, 6.0]]
    assert dense(torch.tensor([[1, 2, 3]])).tolist() == [[6.0, 6.0]]  # ints too, as Keras's Dense


def test_cross_takes_float64_inputs() -> None:
    layer = Cross(input_dim=3)
    x = torch.randn(4, 3, dtype=torch.float64)
    out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, layer(x.float()))


# Tolerance 1e-6: one float32 matmul of 3 terms on identical float32 inputs (the cast happens first on both sides).
@pytest.mark.tf
def test_dense_float64_input_matches_keras(tf) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))  # float64, as NumPy makes it
    keras_dense = tf.keras.layers.Dense(2, activation="relu")
    expected = keras_dense(x).numpy()
    assert expected.dtype == np.float32
    dense = trs.layers.Dense(2, activation="relu", input_dim=3)
    with torch.no_grad():
        dense.weight.copy_(torch.from_numpy(keras_dense.kernel.numpy().T))
        dense.bias.copy_(torch.from_numpy(keras_dense.bias.numpy()))
    got = dense(x)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
