"""Tests for torchrs.layers.blocks.MLP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.torchrs.layers._tf_copy import (
    assert_runs_match,
    copy_keras_weights,
    randomize_tf_weights,
    tf_run,
    torch_run,
)
from torchrs.layers.blocks import MLP

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics

WEIGHTS = {
    "_sublayers.0.weight": [[1.0, -1.0], [2.0, 0.0]],
    "_sublayers.0.bias": [0.0, -1.0],
    "_sublayers.1.weight": [[1.0, 1.0]],
    "_sublayers.1.bias": [0.5],
}


def _mlp(**kwargs) -> MLP:
    layer = MLP([2, 1], **kwargs)
    layer.load_state_dict({k: torch.tensor(v) for k, v in WEIGHTS.items()})
    return layer


def test_hand_values_relu_hidden_linear_output():
    # x = [1, 3]. Layer 0 (torch [out, in]): [1 - 3 + 0, 2 + 0 - 1] = [-2, 1]; relu -> [0, 1].
    # Layer 1: 0 + 1 + 0.5 = 1.5, no final activation.
    out = _mlp()(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.5]]), rtol=0, atol=0)


def test_hand_values_final_activation():
    # As above, then sigmoid(1.5) = 1 / (1 + e^-1.5) = 0.8175744762.
    out = _mlp(final_activation="sigmoid")(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.8175744762]]))


def test_hand_values_other_hidden_activation():
    # tanh([-2, 1]) = [-0.9640275801, 0.7615941560]; sum + 0.5 = 0.2975665759.
    out = _mlp(activation="tanh")(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.2975665759]]))


def test_no_hidden_activation():
    # activation=None: [-2, 1] passes unchanged; -2 + 1 + 0.5 = -0.5.
    out = _mlp(activation=None)(torch.tensor([[1.0, 3.0]]))
    torch.testing.assert_close(out, torch.tensor([[-0.5]]), rtol=0, atol=0)


def test_single_layer_uses_final_activation_only():
    layer = MLP([1], activation="sigmoid", input_dim=2)
    layer.load_state_dict(
        {
            "_sublayers.0.weight": torch.tensor([[1.0, -1.0]]),
            "_sublayers.0.bias": torch.tensor([0.0]),
        }
    )
    # 2 - 5 = -3, no activation (the hidden one is not applied to the last layer).
    torch.testing.assert_close(layer(torch.tensor([[2.0, 5.0]])), torch.tensor([[-3.0]]))


def test_state_dict_names_and_lazy_build():
    layer = MLP([4, 3, 1])
    assert sorted(layer.state_dict()) == [
        f"_sublayers.{i}.{p}" for i in range(3) for p in ("bias", "weight")
    ]
    assert not layer.built
    assert layer(torch.randn(5, 6)).shape == (5, 1)
    assert [tuple(p.shape) for p in layer.parameters()] == [
        (4, 6),
        (4,),
        (3, 4),
        (3,),
        (1, 3),
        (1,),
    ]


def test_use_bias_false():
    assert sorted(MLP([3, 2], use_bias=False, input_dim=4).state_dict()) == [
        "_sublayers.0.weight",
        "_sublayers.1.weight",
    ]


def test_default_init_is_keras_glorot_uniform_and_zero_bias():
    # Dense default: GlorotUniform on the Keras kernel [in=200, out=100]: limit sqrt(6 / 300).
    layer = MLP([100], input_dim=200)
    weight = layer._sublayers[0].weight.detach()
    limit = math.sqrt(6 / 300)
    assert weight.abs().max() <= limit
    # Uniform std = limit / sqrt(3) = 0.08165; 20_000 samples: SE ~ 3e-4, bound 3e-3.
    assert abs(weight.std().item() - limit / math.sqrt(3)) < 3e-3
    assert torch.count_nonzero(layer._sublayers[0].bias) == 0


def test_rank_3_input():
    assert MLP([2], input_dim=4)(torch.randn(2, 3, 4)).shape == (2, 3, 2)


def test_regularization_loss_is_zero():
    assert MLP([2], input_dim=3).regularization_loss().item() == 0.0


# ------------------------------------------------------------------------------------------ errors


def test_rank_1_input_is_rejected():
    with pytest.raises(ValueError, match=r"MLP expects `x` of rank >= 2.*\(3,\)"):
        MLP([2])(torch.ones(3))


def test_input_width_differs_from_built_width():
    with pytest.raises(ValueError, match=r"last dimension 3 .* got input of shape \(2, 4\)"):
        MLP([2], input_dim=3)(torch.ones(2, 4))


@pytest.mark.parametrize("bad", [[], 8, "64"])
def test_units_must_be_a_non_empty_list(bad):
    with pytest.raises(ValueError, match=r"`units` must be a non-empty list of layer sizes"):
        MLP(bad)


def test_units_must_be_positive():
    with pytest.raises(ValueError, match=r"`units\[1\]` must be a positive int, got units\[1\]=0"):
        MLP([4, 0])


def test_units_must_be_ints():
    with pytest.raises(TypeError, match=r"`units\[0\]` must be a positive int, got 4.0"):
        MLP([4.0])


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"Unknown activation function 'rleu'"):
        MLP([2, 1], activation="rleu")


def test_unknown_final_activation():
    with pytest.raises(ValueError, match=r"Unknown activation function 'sigmod'"):
        MLP([2, 1], final_activation="sigmod")


def test_non_callable_activation():
    with pytest.raises(TypeError, match=r"Could not interpret activation identifier 3"):
        MLP([2], activation=3)


# ------------------------------------------------------------------------- TensorFlow reference

CONFIGS = {
    "relu_linear": {"units": [8, 4, 1]},
    "tanh_sigmoid": {"units": [16, 5], "activation": "tanh", "final_activation": "sigmoid"},
    "no_bias_selu_softmax": {
        "units": [6, 3],
        "use_bias": False,
        "activation": "selu",
        "final_activation": "softmax",
    },
    "single_swish": {"units": [3], "final_activation": "swish"},
}


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("seed", "batch_size", "input_dim"), [(0, 1, 2), (1, 10, 13), (2, 64, 40)])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_tfrs_outputs_and_gradients(tf, tfrs, config, seed, batch_size, input_dim, dtype):
    # Tolerances (see _tf_copy.py): float64 1e-12; float32 1e-6 relative + 16 ulps of the largest
    # value (different summation orders). TFRS' MLP builds its Dense layers with the global floatx,
    # so float64 is set globally for the duration of the construction.
    kwargs = CONFIGS[config]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, input_dim)).astype(dtype)
    cotangent = rng.standard_normal((batch_size, kwargs["units"][-1])).astype(dtype)
    previous = tf.keras.backend.floatx()
    tf.keras.backend.set_floatx(dtype)
    try:
        tf_layer = tfrs.layers.blocks.MLP(**kwargs)
        tf_layer(tf.constant(x))
    finally:
        tf.keras.backend.set_floatx(previous)
    randomize_tf_weights(tf_layer, seed)
    layer = MLP(**kwargs).to(getattr(torch, dtype))
    assert copy_keras_weights(tf_layer, layer) == len(tf_layer.weights)

    def call(module, inputs):
        return module(inputs[0])

    expected = tf_run(tf, tf_layer, call, [x], cotangent, layer)
    assert expected.output.dtype == np.dtype(dtype)
    assert_runs_match(torch_run(layer, call, [x], cotangent), expected)
