"""Tests for torchrs.layers.feature_interaction.MultiLayerDCN."""

from __future__ import annotations

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
from torchrs.initializers import TruncatedNormal
from torchrs.layers.feature_interaction import MultiLayerDCN

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics

X0 = [[0.1, 0.2, 0.3]]


def test_two_layers_hand_values():
    # x0 = [1, 2]. Layer 0: U0 = [[1, 0]], V0 = [[1], [2]], b0 = [0, 1]:
    #   U0 x0 = 1; V0 * 1 + b0 = [1, 3]; x1 = x0 * [1, 3] + x0 = [2, 8].
    # Layer 1: U1 = [[0, 1]], V1 = [[-1], [1]], b1 = [1, 0]:
    #   U1 x1 = 8; V1 * 8 + b1 = [-7, 8]; x2 = x0 * [-7, 8] + x1 = [-5, 24].
    layer = MultiLayerDCN(projection_dim=1, num_layers=2)
    layer.load_state_dict(
        {
            "_dense_u_kernels.0.weight": torch.tensor([[1.0, 0.0]]),
            "_dense_u_kernels.1.weight": torch.tensor([[0.0, 1.0]]),
            "_dense_v_kernels.0.weight": torch.tensor([[1.0], [2.0]]),
            "_dense_v_kernels.0.bias": torch.tensor([0.0, 1.0]),
            "_dense_v_kernels.1.weight": torch.tensor([[-1.0], [1.0]]),
            "_dense_v_kernels.1.bias": torch.tensor([1.0, 0.0]),
        }
    )
    out = layer(torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(out, torch.tensor([[-5.0, 24.0]]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # TFRS multi_layer_dcn_test.py values, ones kernels, sum(x0) = 0.6.
        # p = 3, one layer, no bias: U x0 = [0.6] * 3, V U x0 = 1.8; 1.8 x0 + x0 = 2.8 x0.
        ({"projection_dim": 3, "num_layers": 1, "use_bias": False}, [[0.28, 0.56, 0.84]]),
        # p = 1: V U x0 = 0.6; 1.6 x0.
        ({"projection_dim": 1, "num_layers": 1, "use_bias": False}, [[0.16, 0.32, 0.48]]),
        # p = 1, three layers, ones bias: x1 = x0 (0.6 + 1) + x0 = 2.6 x0 (sum 1.56);
        # x2 = x0 (1.56 + 1) + x1 = 5.16 x0 (sum 3.096); x3 = x0 (3.096 + 1) + x2 = 9.256 x0.
        ({"projection_dim": 1, "bias_initializer": "ones"}, [[0.9256, 1.8512, 2.7768]]),
    ],
)
def test_tfrs_unit_test_values(kwargs, expected):
    layer = MultiLayerDCN(kernel_initializer="ones", **kwargs)
    torch.testing.assert_close(layer(torch.tensor(X0)), torch.tensor(expected))


def test_state_dict_names_and_shapes():
    layer = MultiLayerDCN(projection_dim=2, num_layers=2)
    assert sorted(layer.state_dict()) == [
        "_dense_u_kernels.0.weight",
        "_dense_u_kernels.1.weight",
        "_dense_v_kernels.0.bias",
        "_dense_v_kernels.0.weight",
        "_dense_v_kernels.1.bias",
        "_dense_v_kernels.1.weight",
    ]
    assert not layer.built
    layer(torch.randn(3, 7))
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes["_dense_u_kernels.1.weight"] == (2, 7)  # U: 7 -> 2, stored [out, in]
    assert shapes["_dense_v_kernels.1.weight"] == (7, 2)
    assert shapes["_dense_v_kernels.1.bias"] == (7,)
    assert layer.input_dim == 7


def test_defaults_match_tfrs():
    layer = MultiLayerDCN(input_dim=4)
    assert (layer._projection_dim, layer._num_layers, layer._use_bias) == (1, 3, True)
    assert len(layer._dense_u_kernels) == 3
    for dense_u, dense_v in zip(layer._dense_u_kernels, layer._dense_v_kernels, strict=True):
        assert dense_u.weight.abs().max() <= 0.1  # truncated normal, stddev 0.05, 2 sigma
        assert torch.count_nonzero(dense_v.bias) == 0


def test_no_bias():
    layer = MultiLayerDCN(num_layers=2, use_bias=False, input_dim=3)
    assert not any(name.endswith("bias") for name in layer.state_dict())


def test_zero_layers_returns_x0():
    x0 = torch.randn(2, 3)
    assert torch.equal(MultiLayerDCN(num_layers=0)(x0), x0)


def test_seeded_initializer_gives_every_layer_the_same_kernels_like_keras():
    # Keras clones a seeded initializer per layer and its generator is stateless, so all layers
    # start equal (checked against TF below in test_seeded_initializer_quirk_matches_keras).
    layer = MultiLayerDCN(projection_dim=2, kernel_initializer=TruncatedNormal(seed=1), input_dim=5)
    first = layer._dense_u_kernels[0].weight
    assert all(torch.equal(d.weight, first) for d in layer._dense_u_kernels)


def test_input_dim_differs_from_built_dim():
    layer = MultiLayerDCN(input_dim=3)
    with pytest.raises(ValueError, match=r"built for input_dim=3, got `x0` of shape \(1, 5\)"):
        layer(torch.ones(1, 5))


def test_regularization_loss_hand_values():
    # "l2" on 2 layers of ones kernels, d = 2, p = 1: each U and V has 2 ones -> 4 kernels * 2 = 8;
    # 0.01 * 8 = 0.08. The zero biases add nothing to L1(1.0).
    layer = MultiLayerDCN(
        num_layers=2,
        kernel_initializer="ones",
        kernel_regularizer="l2",
        bias_regularizer={"class_name": "L1", "config": {"l1": 1.0}},
        input_dim=2,
    )
    torch.testing.assert_close(layer.regularization_loss(), torch.tensor(0.08))


# ------------------------------------------------------------------------------------------ errors


def test_rank_1_input_is_rejected():
    with pytest.raises(ValueError, match=r"MultiLayerDCN expects `x0` of rank >= 2.*\(4,\)"):
        MultiLayerDCN()(torch.ones(4))


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_projection_dim(bad):
    with pytest.raises(ValueError, match=r"`projection_dim` must be a positive int"):
        MultiLayerDCN(projection_dim=bad)


def test_none_projection_dim_is_rejected():
    # TFRS would fail later inside Dense(None); torchrs says so at construction.
    with pytest.raises(TypeError, match=r"`projection_dim` must be a positive int, got None"):
        MultiLayerDCN(projection_dim=None)


def test_negative_num_layers():
    with pytest.raises(
        ValueError, match=r"`num_layers` must be a non-negative int, got num_layers=-1"
    ):
        MultiLayerDCN(num_layers=-1)


@pytest.mark.parametrize("bad", [2.0, None, True])
def test_non_int_num_layers(bad):
    with pytest.raises(TypeError, match=r"`num_layers` must be a non-negative int, got"):
        MultiLayerDCN(num_layers=bad)


def test_unknown_initializer():
    with pytest.raises(ValueError, match=r"Unknown initializer 'glorot'"):
        MultiLayerDCN(kernel_initializer="glorot")


# ------------------------------------------------------------------------- TensorFlow reference


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("seed", "batch_size", "input_dim", "projection_dim", "num_layers", "use_bias"),
    [(0, 1, 3, 1, 3, True), (1, 9, 16, 4, 2, False), (2, 32, 48, 12, 4, True)],
)
def test_matches_tfrs_outputs_and_gradients(
    tf, tfrs, seed, batch_size, input_dim, projection_dim, num_layers, use_bias, dtype
):
    # Tolerances (see _tf_copy.py): float64 1e-12; float32 1e-6 relative + 16 ulps of the largest
    # value (different summation orders).
    kwargs = {"projection_dim": projection_dim, "num_layers": num_layers, "use_bias": use_bias}
    rng = np.random.default_rng(seed)
    x0, cotangent = (rng.standard_normal((batch_size, input_dim)).astype(dtype) for _ in "ab")
    tf_layer = tfrs.layers.feature_interaction.MultiLayerDCN(dtype=dtype, **kwargs)
    tf_layer(tf.constant(x0))
    randomize_tf_weights(tf_layer, seed)
    layer = MultiLayerDCN(**kwargs).to(getattr(torch, dtype))
    assert copy_keras_weights(tf_layer, layer) == len(tf_layer.weights)

    def call(module, inputs):
        return module(inputs[0])

    expected = tf_run(tf, tf_layer, call, [x0], cotangent, layer)
    assert_runs_match(torch_run(layer, call, [x0], cotangent), expected)


@pytest.mark.tf
def test_seeded_initializer_quirk_matches_keras(tf, tfrs):
    tf_layer = tfrs.layers.feature_interaction.MultiLayerDCN(
        projection_dim=2, kernel_initializer=tf.keras.initializers.TruncatedNormal(seed=1)
    )
    tf_layer(tf.ones((1, 5)))
    kernels = [d.kernel.numpy() for d in tf_layer._dense_u_kernels]
    assert all(np.array_equal(k, kernels[0]) for k in kernels)


@pytest.mark.tf
def test_regularization_loss_matches_keras_losses(tf, tfrs):
    # A few squared/absolute sums in float32: 1e-6 relative.
    kwargs = {"projection_dim": 2, "num_layers": 2, "kernel_regularizer": "l1_l2"}
    tf_layer = tfrs.layers.feature_interaction.MultiLayerDCN(bias_regularizer="l2", **kwargs)
    tf_layer(tf.ones((2, 6)))
    randomize_tf_weights(tf_layer, 3)
    layer = MultiLayerDCN(bias_regularizer="l2", **kwargs)
    copy_keras_weights(tf_layer, layer)
    expected = float(tf.add_n(tf_layer.losses))
    torch.testing.assert_close(
        layer.regularization_loss(), torch.tensor(expected), rtol=1e-6, atol=0
    )
