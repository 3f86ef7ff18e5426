"""Tests for torchrs.layers.feature_interaction.Cross (and the old path torchrs.layers.dcn)."""

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
from torchrs.layers import dcn as old_dcn
from torchrs.layers.feature_interaction import Cross
from torchrs.layers.feature_interaction.dcn import cross
from torchrs.regularizers import L1

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics

X0 = [[0.1, 0.2, 0.3]]
X = [[0.4, 0.5, 0.6]]


def _set(layer: Cross, **params: list) -> Cross:
    """Loads hand-written torch-layout ([out, in]) weights."""
    layer.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    return layer


# ---------------------------------------------------------------------------------- hand values


def test_full_rank_hand_values():
    # W = [[1, 2], [0, -1]] (torch [out, in]), b = [0.5, -0.5], x0 = [1, 2], x = [3, 1]:
    # W x + b = [1*3 + 2*1 + 0.5, 0*3 - 1*1 - 0.5] = [5.5, -1.5]
    # x0 * (W x + b) + x = [5.5 + 3, -3 + 1] = [8.5, -2.0]
    layer = _set(
        Cross(), **{"_dense.weight": [[1.0, 2.0], [0.0, -1.0]], "_dense.bias": [0.5, -0.5]}
    )
    out = layer(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[8.5, -2.0]]), rtol=0, atol=0)


def test_diag_scale_hand_values():
    # As above plus diag_scale * x = 2 * [3, 1]: prod = [11.5, 0.5]; x0 * prod + x = [14.5, 2.0].
    layer = _set(
        Cross(diag_scale=2.0),
        **{"_dense.weight": [[1.0, 2.0], [0.0, -1.0]], "_dense.bias": [0.5, -0.5]},
    )
    out = layer(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[14.5, 2.0]]), rtol=0, atol=0)


def test_preactivation_hand_values():
    # relu(W x + b) = relu([5.5, -1.5]) = [5.5, 0]; x0 * [5.5, 0] + x = [8.5, 1.0].
    layer = _set(
        Cross(preactivation="relu"),
        **{"_dense.weight": [[1.0, 2.0], [0.0, -1.0]], "_dense.bias": [0.5, -0.5]},
    )
    out = layer(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[8.5, 1.0]]), rtol=0, atol=0)


def test_low_rank_hand_values():
    # U = [[1, -1]] ([p=1, in=2]), V = [[2], [3]] ([out=2, p=1]), b = [1, 0], x = [3, 1], x0 = [1, 2]:
    # U x = 3 - 1 = 2; V (U x) + b = [4 + 1, 6 + 0] = [5, 6]; x0 * [5, 6] + x = [8, 13].
    layer = _set(
        Cross(projection_dim=1),
        **{
            "_dense_u.weight": [[1.0, -1.0]],
            "_dense_v.weight": [[2.0], [3.0]],
            "_dense_v.bias": [1.0, 0.0],
        },
    )
    out = layer(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]]))
    torch.testing.assert_close(out, torch.tensor([[8.0, 13.0]]), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "one_input", "expected"),
    [
        # TFRS dcn_test.py values. Ones kernel: W x = sum(x) = 1.5 for every row.
        # x0 * 1.5 + x = [0.15 + 0.4, 0.3 + 0.5, 0.45 + 0.6].
        ({"kernel_initializer": "ones"}, False, [[0.55, 0.8, 1.05]]),
        # Low rank with ones: U x = 1.5, V (U x) = [1.5, 1.5, 1.5]; same as full rank.
        ({"projection_dim": 1, "kernel_initializer": "ones"}, False, [[0.55, 0.8, 1.05]]),
        # x = x0: W x0 = 0.6; x0 * 0.6 + x0 = 1.6 * x0.
        ({"kernel_initializer": "ones"}, True, [[0.16, 0.32, 0.48]]),
        # Ones bias: prod = 2.5; x0 * 2.5 + x = [0.65, 1.0, 1.35].
        ({"kernel_initializer": "ones", "bias_initializer": "ones"}, False, [[0.65, 1.0, 1.35]]),
        # diag_scale 1: prod = 1.5 + x = [1.9, 2.0, 2.1]; x0 * prod + x = [0.59, 0.9, 1.23].
        ({"kernel_initializer": "ones", "diag_scale": 1.0}, False, [[0.59, 0.9, 1.23]]),
        # A preactivation that zeroes everything leaves x.
        ({"preactivation": torch.zeros_like}, False, X),
    ],
)
def test_tfrs_unit_test_values(kwargs, one_input, expected):
    layer = Cross(**kwargs)
    out = layer(torch.tensor(X0)) if one_input else layer(torch.tensor(X0), torch.tensor(X))
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_cross_function_skips_zero_diag_scale():
    # diag_scale=0 must not even add 0 * x (0 * inf would give nan): TFRS tests `if diag_scale:`.
    x = torch.tensor([[float("inf")]])
    out = cross(torch.tensor([[0.0]]), x, torch.tensor([[1.0]]), 0.0)
    assert out.item() == float("inf")


# ---------------------------------------------------------------------------- state and building


def test_state_dict_names_full_rank_before_and_after_build():
    layer = Cross()
    assert sorted(layer.state_dict()) == ["_dense.bias", "_dense.weight"]
    assert not layer.built and layer.input_dim is None
    layer(torch.randn(4, 5))
    assert layer.built and layer.input_dim == 5
    assert layer._dense.weight.shape == (5, 5) and layer._dense.bias.shape == (5,)


def test_state_dict_names_low_rank_and_shapes():
    layer = Cross(projection_dim=2, input_dim=6)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    # torch weights are [out, in]: U maps 6 -> 2, V maps 2 -> 6.
    assert shapes == {"_dense_u.weight": (2, 6), "_dense_v.weight": (6, 2), "_dense_v.bias": (6,)}


def test_use_bias_false_has_no_bias():
    assert sorted(Cross(use_bias=False, input_dim=3).state_dict()) == ["_dense.weight"]
    assert sorted(Cross(projection_dim=1, use_bias=False).state_dict()) == [
        "_dense_u.weight",
        "_dense_v.weight",
    ]


def test_load_state_dict_builds_an_unbuilt_layer():
    source = Cross(projection_dim=2, input_dim=4)
    target = Cross(projection_dim=2)
    target.load_state_dict(source.state_dict())
    assert target.built and target.input_dim == 4
    x = torch.randn(3, 4)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_default_initialization_is_keras_truncated_normal_and_zero_bias():
    # Keras 2 TruncatedNormal(stddev=0.05): every value within 2 * 0.05 of 0; bias zeros.
    layer = Cross(input_dim=300)
    weight = layer._dense.weight.detach()
    assert weight.abs().max() <= 0.1
    # Truncated std = 0.05 * 0.8796 = 0.04398; 90_000 samples give an SE of 1e-4, bound 2e-3.
    assert abs(weight.std().item() - 0.05 * 0.87962566) < 2e-3
    assert torch.count_nonzero(layer._dense.bias) == 0


def test_seeded_initializer_is_deterministic():
    a = Cross(kernel_initializer=TruncatedNormal(seed=3), input_dim=8)
    b = Cross(kernel_initializer=TruncatedNormal(seed=3), input_dim=8)
    torch.testing.assert_close(a._dense.weight, b._dense.weight, rtol=0, atol=0)
    c = Cross(kernel_initializer=TruncatedNormal(seed=4), input_dim=8)
    assert not torch.equal(a._dense.weight, c._dense.weight)


def test_double_before_build_gives_float64_weights():
    layer = Cross(projection_dim=2).double()
    out = layer(torch.randn(2, 5, dtype=torch.float64))
    assert out.dtype == torch.float64 and layer._dense_u.weight.dtype == torch.float64


def test_rank_3_inputs_are_accepted_like_keras_dense():
    layer = Cross(input_dim=4)
    x0 = torch.randn(2, 3, 4)
    out = layer(x0)
    expected = x0 * (x0 @ layer._dense.weight.T + layer._dense.bias) + x0
    torch.testing.assert_close(out, expected)


def test_gradients_flow_to_all_parameters():
    layer = Cross(projection_dim=2, diag_scale=0.5, input_dim=4)
    layer(torch.randn(3, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_old_module_path_reexports_cross():
    assert old_dcn.Cross is Cross


# ----------------------------------------------------------------------------------- regularizers


def test_regularization_loss_hand_values():
    # kernel "l2" = 0.01 * sum(W^2) = 0.01 * (1 + 4 + 0 + 1) = 0.06;
    # bias L1(0.5) = 0.5 * (|0.5| + |-0.5|) = 0.5; total 0.56.
    layer = _set(
        Cross(kernel_regularizer="l2", bias_regularizer=L1(0.5)),
        **{"_dense.weight": [[1.0, 2.0], [0.0, -1.0]], "_dense.bias": [0.5, -0.5]},
    )
    torch.testing.assert_close(layer.regularization_loss(), torch.tensor(0.56))


def test_regularization_loss_counts_u_and_v_in_low_rank():
    # "l1" = 0.01 * (sum|U| + sum|V|) = 0.01 * (2 + 5) = 0.07 (no bias regularizer).
    layer = _set(
        Cross(projection_dim=1, kernel_regularizer="l1"),
        **{
            "_dense_u.weight": [[1.0, -1.0]],
            "_dense_v.weight": [[2.0], [-3.0]],
            "_dense_v.bias": [1.0, 0.0],
        },
    )
    torch.testing.assert_close(layer.regularization_loss(), torch.tensor(0.07))


def test_regularization_loss_is_zero_without_regularizers_or_weights():
    assert Cross().regularization_loss().item() == 0.0
    assert Cross(kernel_regularizer="l2").regularization_loss().item() == 0.0  # not built yet
    assert Cross(input_dim=3).regularization_loss().item() == 0.0


# ------------------------------------------------------------------------------------------ errors


def test_rank_1_x0_is_rejected():
    with pytest.raises(ValueError, match=r"`x0` of rank >= 2 .* got shape \(3,\)"):
        Cross()(torch.ones(3))


def test_rank_1_x_is_rejected():
    with pytest.raises(ValueError, match=r"`x` of rank >= 2 .* got shape \(3,\)"):
        Cross()(torch.ones(1, 3), torch.ones(3))


def test_non_tensor_input_is_rejected():
    with pytest.raises(TypeError, match=r"`x0` to be a torch.Tensor, got list"):
        Cross()([[1.0, 2.0]])


def test_x0_x_dimension_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"dimension mismatch.*\(12, 5\).*\(12, 7\)"):
        Cross()(torch.ones(12, 5), torch.ones(12, 7))


def test_input_dim_differs_from_built_dim():
    layer = Cross(input_dim=3)
    with pytest.raises(ValueError, match=r"built for input_dim=3, got `x0` of shape \(2, 4\)"):
        layer(torch.ones(2, 4))


@pytest.mark.parametrize("bad", [0, -2])
def test_non_positive_projection_dim(bad):
    with pytest.raises(ValueError, match=rf"`projection_dim` must be a positive int.*{bad}"):
        Cross(projection_dim=bad)


@pytest.mark.parametrize("bad", [2.5, "4", True])
def test_non_int_projection_dim(bad):
    with pytest.raises(TypeError, match=r"`projection_dim` must be a positive int or None"):
        Cross(projection_dim=bad)


def test_negative_diag_scale():
    with pytest.raises(ValueError, match=r"`diag_scale` should be non-negative. Got .* = -1.0"):
        Cross(diag_scale=-1.0)


def test_non_numeric_diag_scale():
    with pytest.raises(TypeError, match=r"`diag_scale` must be a non-negative float, got None"):
        Cross(diag_scale=None)


def test_bad_input_dim():
    with pytest.raises(ValueError, match=r"`input_dim` must be a positive int, got input_dim=0"):
        Cross(input_dim=0)


def test_unknown_preactivation():
    with pytest.raises(ValueError, match=r"Unknown activation function 'relux'"):
        Cross(preactivation="relux")


def test_unknown_kernel_initializer():
    with pytest.raises(ValueError, match=r"Unknown initializer 'truncated_norm'"):
        Cross(kernel_initializer="truncated_norm")


def test_unknown_regularizer():
    with pytest.raises(ValueError, match=r"Unknown regularizer 'l3'"):
        Cross(kernel_regularizer="l3")


# ------------------------------------------------------------------------- TensorFlow reference

CONFIGS = {
    "full_rank": {},
    "low_rank": {"projection_dim": 2},
    "diag_scale": {"diag_scale": 0.5},
    "no_bias": {"use_bias": False},
    "preactivation_relu": {"preactivation": "relu"},
    "low_rank_diag_swish_no_bias": {
        "projection_dim": 3,
        "diag_scale": 1.0,
        "preactivation": "swish",
        "use_bias": False,
    },
}
# (seed, batch_size, input_dim): a single row, odd sizes, and a wider layer.
CASES = [(0, 1, 3), (1, 7, 16), (2, 32, 64)]


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("seed", "batch_size", "input_dim"), CASES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_matches_tfrs_outputs_and_gradients(tf, tfrs, config, seed, batch_size, input_dim, dtype):
    # Tolerances (see _tf_copy.py): float64 1e-12; float32 1e-6 relative + 16 ulps of the largest
    # value (different summation orders; measured worst 7 ulps, ~4e-6 absolute on gradients ~30).
    kwargs = CONFIGS[config]
    rng = np.random.default_rng(seed)
    x0, x, cotangent = (rng.standard_normal((batch_size, input_dim)).astype(dtype) for _ in "abc")
    tf_layer = tfrs.layers.feature_interaction.Cross(dtype=dtype, **kwargs)
    tf_layer(tf.constant(x0), tf.constant(x))
    randomize_tf_weights(tf_layer, seed)

    layer = Cross(**kwargs).to(getattr(torch, dtype))
    assert copy_keras_weights(tf_layer, layer) == len(tf_layer.weights)

    def call(module, inputs):
        return module(*inputs)

    expected = tf_run(tf, tf_layer, call, [x0, x], cotangent, layer)
    assert_runs_match(torch_run(layer, call, [x0, x], cotangent), expected)


@pytest.mark.tf
def test_matches_tfrs_single_input(tf, tfrs):
    rng = np.random.default_rng(5)
    x0, cotangent = (rng.standard_normal((4, 6)).astype("float64") for _ in "ab")
    tf_layer = tfrs.layers.feature_interaction.Cross(projection_dim=2, dtype="float64")
    tf_layer(tf.constant(x0))
    randomize_tf_weights(tf_layer, 5)
    layer = Cross(projection_dim=2).double()
    copy_keras_weights(tf_layer, layer)

    def call(module, inputs):
        return module(inputs[0])

    expected = tf_run(tf, tf_layer, call, [x0], cotangent, layer)
    assert_runs_match(torch_run(layer, call, [x0], cotangent), expected)


@pytest.mark.tf
@pytest.mark.parametrize("projection_dim", [None, 2])
def test_regularization_loss_matches_keras_losses(tf, tfrs, projection_dim):
    # Keras sums one loss per regularized weight; compared in float32 at 1e-6 relative (a handful of
    # squared sums, no long reductions).
    tf_layer = tfrs.layers.feature_interaction.Cross(
        projection_dim=projection_dim, kernel_regularizer="l2", bias_regularizer="l1_l2"
    )
    tf_layer(tf.ones((2, 5)))
    randomize_tf_weights(tf_layer, 7)
    layer = Cross(projection_dim=projection_dim, kernel_regularizer="l2", bias_regularizer="l1_l2")
    copy_keras_weights(tf_layer, layer)
    expected = float(tf.add_n(tf_layer.losses))
    assert len(tf_layer.losses) == (2 if projection_dim is None else 3)
    torch.testing.assert_close(
        layer.regularization_loss(), torch.tensor(expected), rtol=1e-6, atol=0
    )


@pytest.mark.tf
def test_built_from_keras_get_config(tf, tfrs):
    # The Keras config (serialised initializers, regularizers, preactivation name) builds the twin.
    tf_layer = tfrs.layers.feature_interaction.Cross(
        projection_dim=2,
        diag_scale=0.25,
        preactivation="swish",
        kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.1),
        kernel_regularizer=tf.keras.regularizers.L2(0.5),
    )
    config = tf_layer.get_config()
    arguments = [
        "projection_dim",
        "diag_scale",
        "use_bias",
        "preactivation",
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
    ]
    layer = Cross(**{k: config[k] for k in arguments}, input_dim=4)
    assert layer._dense_u.kernel_initializer.get_config() == {
        "mean": 0.0,
        "stddev": 0.1,
        "seed": None,
    }
    assert layer._dense_v.kernel_regularizer.l2 == 0.5
    assert layer._diag_scale == 0.25 and layer._dense_u.weight.shape == (2, 4)
