"""Tests for the Keras 2 building blocks: torchrs.initializers, .regularizers, .activations, layers.Dense."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrs import activations, initializers
from torchrs.activations import get_activation
from torchrs.initializers import (
    Constant,
    GlorotUniform,
    HeNormal,
    Identity,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
    get_initializer,
)
from torchrs.layers.dense import Dense as KerasDense
from torchrs.regularizers import L1, L1L2, L2, get_regularizer

# Statistical tests draw N = 1_000_000 samples. For a distribution with standard deviation s:
# the sample mean has a standard error of s / 1000 and the sample std one of about s / 1414.
# Bounds below are 5-10 standard errors wide: a correct sampler fails with probability < 1e-6, a
# wrong scale (e.g. forgetting the 0.8796 truncation factor, a 12% change) fails every time.
N_SHAPE = (1000, 1000)
TRUNC_STD_FACTOR = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def _check_moments(sample: torch.Tensor, mean: float, std: float) -> None:
    assert abs(sample.mean().item() - mean) < 5 * std / 1000
    assert abs(sample.std().item() / std - 1) < 0.005  # 7 standard errors


# --------------------------------------------------------------------------------- initializers


def test_truncated_normal_keras_2_semantics():
    # Keras 2 TruncatedNormal(mean=0, stddev=0.05): N(0, 0.05^2) re-drawn outside +-2 stddev, so the
    # samples' std is 0.05 * 0.8796 = 0.04398 and every |value| <= 0.1.
    w = TruncatedNormal()(N_SHAPE)
    assert w.dtype == torch.float32 and w.shape == N_SHAPE
    assert w.abs().max().item() <= 0.1
    # The truncation is at 2 stddev, not tighter: ~0.1% of samples lie in [0.099, 0.1].
    assert w.abs().max().item() > 0.099
    _check_moments(w, 0.0, 0.05 * TRUNC_STD_FACTOR)


def test_truncated_normal_with_mean_and_stddev():
    w = TruncatedNormal(mean=1.0, stddev=0.2)(N_SHAPE)
    assert w.min().item() >= 0.6 and w.max().item() <= 1.4
    _check_moments(w, 1.0, 0.2 * TRUNC_STD_FACTOR)


def test_random_uniform_default_range():
    # Keras 2 RandomUniform(): U[-0.05, 0.05), std 0.1 / sqrt(12).
    w = RandomUniform()(N_SHAPE)
    assert w.min().item() >= -0.05 and w.max().item() < 0.05
    assert w.min().item() < -0.0499 and w.max().item() > 0.0499
    _check_moments(w, 0.0, 0.1 / math.sqrt(12))


def test_random_normal_default():
    _check_moments(RandomNormal()(N_SHAPE), 0.0, 0.05)


def test_glorot_uniform_limit_uses_keras_fans():
    # Keras kernel shape (in=400, out=2500): limit = sqrt(6 / (400 + 2500)), std = limit / sqrt(3).
    w = GlorotUniform()((400, 2500))
    limit = math.sqrt(6 / 2900)
    assert w.abs().max().item() <= limit and w.abs().max().item() > 0.999 * limit
    _check_moments(w, 0.0, limit / math.sqrt(3))


def test_variance_scaling_truncated_std_is_after_truncation():
    # HeNormal = VarianceScaling(2, fan_in, truncated_normal): std after truncation sqrt(2 / 400);
    # the bound is 2 * sqrt(2 / 400) / 0.8796.
    w = HeNormal()((400, 2500))
    std = math.sqrt(2 / 400)
    assert w.abs().max().item() <= 2 * std / TRUNC_STD_FACTOR
    _check_moments(w, 0.0, std)


@pytest.mark.parametrize(("mode", "fan"), [("fan_in", 400), ("fan_out", 2500), ("fan_avg", 1450)])
def test_variance_scaling_modes(mode, fan):
    w = VarianceScaling(scale=3.0, mode=mode, distribution="untruncated_normal")((400, 2500))
    _check_moments(w, 0.0, math.sqrt(3.0 / fan))


def test_variance_scaling_uniform_and_normal_alias():
    w = VarianceScaling(scale=0.5, mode="fan_in", distribution="uniform")((1000, 1000))
    limit = math.sqrt(3 * 0.5 / 1000)
    assert w.abs().max().item() <= limit
    assert VarianceScaling(distribution="normal").distribution == "truncated_normal"


def test_compute_fans_matches_keras():
    assert initializers._compute_fans(()) == (1, 1)
    assert initializers._compute_fans((7,)) == (7, 7)
    assert initializers._compute_fans((3, 5)) == (3, 5)
    # Convolution kernel (h, w, in, out): receptive field 2 * 3 = 6.
    assert initializers._compute_fans((2, 3, 4, 5)) == (24, 30)


def test_constant_initializers_exact():
    assert torch.equal(Zeros()((2, 3)), torch.zeros(2, 3))
    assert torch.equal(Ones()((2,)), torch.ones(2))
    assert torch.equal(Constant(2.5)((2, 2)), torch.full((2, 2), 2.5))
    assert torch.equal(Identity(gain=2.0)((2, 3)), 2.0 * torch.eye(2, 3))


@pytest.mark.parametrize("shape", [(6, 3), (3, 6), (2, 3, 4)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    w = Orthogonal(gain=1.5, seed=0)(shape, dtype=torch.float64)
    flat = w.reshape(-1, shape[-1])  # (rows, cols)
    small = min(flat.shape)
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    torch.testing.assert_close(gram, 2.25 * torch.eye(small, dtype=torch.float64))


def test_seed_makes_initializers_deterministic():
    for cls in (TruncatedNormal, RandomUniform, RandomNormal, GlorotUniform, HeNormal, Orthogonal):
        first = cls(seed=42)((5, 4))
        assert torch.equal(first, cls(seed=42)((5, 4))), cls.__name__  # same instance or not
        initializer = cls(seed=42)
        assert torch.equal(initializer((5, 4)), initializer((5, 4))), cls.__name__
        assert not torch.equal(first, cls(seed=43)((5, 4))), cls.__name__


def test_unseeded_initializer_follows_torch_manual_seed():
    torch.manual_seed(123)
    a, b = TruncatedNormal()((4, 4)), TruncatedNormal()((4, 4))
    torch.manual_seed(123)
    assert torch.equal(a, TruncatedNormal()((4, 4)))
    assert not torch.equal(a, b)


def test_float64_and_integer_dtypes():
    assert TruncatedNormal()((3,), dtype=torch.float64).dtype == torch.float64
    with pytest.raises(TypeError, match=r"TruncatedNormal only generates floating point.*int64"):
        TruncatedNormal()((3,), dtype=torch.int64)


def test_initializer_argument_errors():
    with pytest.raises(ValueError, match=r"`scale` must be a positive float, got scale=0"):
        VarianceScaling(scale=0)
    with pytest.raises(ValueError, match=r"Invalid `mode` 'fan'"):
        VarianceScaling(mode="fan")
    with pytest.raises(ValueError, match=r"Invalid `distribution` 'gamma'"):
        VarianceScaling(distribution="gamma")
    with pytest.raises(TypeError, match=r"`seed` must be an int or None, got '1'"):
        TruncatedNormal(seed="1")
    with pytest.raises(TypeError, match=r"Constant `value` must be a Python scalar"):
        Constant([1.0, 2.0])
    with pytest.raises(ValueError, match=r"Identity initializer only makes 2-D.*\(2, 2, 2\)"):
        Identity()((2, 2, 2))
    with pytest.raises(ValueError, match=r"Orthogonal initializer needs a shape of rank >= 2"):
        Orthogonal()((4,))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("truncated_normal", TruncatedNormal),
        ("TruncatedNormal", TruncatedNormal),
        ("glorot_uniform", GlorotUniform),
        ("GlorotUniformV2", GlorotUniform),
        ("uniform", RandomUniform),
        ("random_uniform", RandomUniform),
        ("normal", RandomNormal),
        ("zeros", Zeros),
        ("zero", Zeros),
        ("one", Ones),
        ("he_normal", HeNormal),
        ("variance_scaling", VarianceScaling),
        ("orthogonal", Orthogonal),
        ("identity", Identity),
    ],
)
def test_get_initializer_names(name, cls):
    assert type(get_initializer(name)) is cls


def test_get_initializer_configs_instances_and_callables():
    legacy = {"class_name": "TruncatedNormal", "config": {"mean": 0.0, "stddev": 0.1, "seed": 3}}
    assert get_initializer(legacy).get_config() == {"mean": 0.0, "stddev": 0.1, "seed": 3}
    modern = {
        "module": "keras.initializers",
        "class_name": "Zeros",
        "config": {},
        "registered_name": None,
    }
    assert type(get_initializer(modern)) is Zeros
    instance = RandomUniform(-1.0, 1.0)
    assert get_initializer(instance) is instance
    assert type(get_initializer(GlorotUniform)) is GlorotUniform
    assert get_initializer(None) is None

    def fn(shape, dtype=None):
        return torch.full(tuple(shape), 7.0, dtype=dtype)

    assert get_initializer(fn) is fn
    dense = KerasDense(2, kernel_initializer=fn, input_dim=3)
    assert torch.equal(dense.weight, torch.full((2, 3), 7.0))


def test_get_initializer_errors():
    with pytest.raises(ValueError, match=r"Unknown initializer 'glorot'.*glorot_uniform"):
        get_initializer("glorot")
    with pytest.raises(ValueError, match=r"Unknown initializer 'Nope'"):
        get_initializer({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match=r"must have a 'class_name' key.*\['config'\]"):
        get_initializer({"config": {}})
    with pytest.raises(TypeError, match=r"Could not interpret initializer identifier 3"):
        get_initializer(3)


# --------------------------------------------------------------------------------- regularizers


def test_regularizer_hand_values():
    w = torch.tensor([[1.0, -2.0], [0.0, 3.0]])  # sum |w| = 6, sum w^2 = 14
    torch.testing.assert_close(L1()(w), torch.tensor(0.06))  # 0.01 * 6
    torch.testing.assert_close(L2()(w), torch.tensor(0.14))  # 0.01 * 14
    torch.testing.assert_close(L2(0.5)(w), torch.tensor(7.0))  # 0.5 * 14
    torch.testing.assert_close(L1L2(l1=0.1, l2=1.0)(w), torch.tensor(14.6))  # 0.6 + 14
    assert L1L2()(w).item() == 0.0  # the class defaults are 0 and 0


def test_get_regularizer():
    assert type(get_regularizer("l2")) is L2 and get_regularizer("l2").l2 == 0.01
    assert type(get_regularizer("L1")) is L1 and get_regularizer("L1").l1 == 0.01
    # Keras special case: the "l1_l2" string means 0.01 and 0.01, unlike L1L2()'s 0 and 0.
    assert get_regularizer("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert get_regularizer("L1L2").get_config() == {"l1": 0.0, "l2": 0.0}
    config = {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.25}}
    assert get_regularizer(config).l2 == 0.25
    assert get_regularizer(None) is None

    def fn(w):
        return w.sum()

    assert get_regularizer(fn) is fn


def test_regularizer_errors():
    with pytest.raises(ValueError, match=r"Unknown regularizer 'orthogonal_regularizer'"):
        get_regularizer("orthogonal_regularizer")
    with pytest.raises(ValueError, match=r"`l2`=nan is not a valid regularization penalty"):
        L2(float("nan"))
    with pytest.raises(ValueError, match=r"`l1`='0.1' is not a valid regularization penalty"):
        L1L2(l1="0.1")
    with pytest.raises(TypeError, match=r"Could not interpret regularizer identifier 0.5"):
        get_regularizer(0.5)


# ---------------------------------------------------------------------------------- activations


def test_activation_hand_values():
    x = torch.tensor([-3.0, -1.0, 0.0, 2.0, 7.0])
    # Keras 2 hard_sigmoid: clip(0.2 x + 0.5, 0, 1) -> [0, 0.3, 0.5, 0.9, 1].
    torch.testing.assert_close(
        get_activation("hard_sigmoid")(x), torch.tensor([0.0, 0.3, 0.5, 0.9, 1.0])
    )
    # tf.nn.leaky_relu slope 0.2 (not torch's 0.01): [-0.6, -0.2, 0, 2, 7].
    torch.testing.assert_close(
        get_activation("leaky_relu")(x), torch.tensor([-0.6, -0.2, 0.0, 2.0, 7.0])
    )
    # relu6 clips at 6; softsign x / (1 + |x|).
    torch.testing.assert_close(get_activation("relu6")(x), torch.tensor([0.0, 0.0, 0.0, 2.0, 6.0]))
    torch.testing.assert_close(
        get_activation("softsign")(x), torch.tensor([-0.75, -0.5, 0.0, 2 / 3, 7 / 8])
    )
    assert get_activation(None)(x) is x and get_activation("linear")(x) is x
    assert get_activation(torch.tanh) is torch.tanh


def test_softplus_gradient_is_sigmoid_everywhere():
    # TF's SoftplusGrad is sigmoid(x) even where the forward returns x itself (x > 13.9 in float32).
    x = torch.tensor([-20.0, 0.0, 15.0], dtype=torch.float64, requires_grad=True)
    activations.softplus(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.sigmoid(x.detach()))


def test_selu_gradient_at_zero_is_tf_linear_branch():
    # TF SeluGrad uses `features < 0` for the exponential branch, so d selu / dx (0) = scale.
    x = torch.tensor([0.0, -1.0, 100.0], dtype=torch.float64, requires_grad=True)
    y = activations.selu(x)
    y.sum().backward()
    # d/dx at -1: scale * alpha * e^-1; at 100: scale (and no nan from the unused exp branch).
    expected = [
        activations.SELU_SCALE,
        activations.SELU_SCALE * activations.SELU_ALPHA * math.exp(-1.0),
        activations.SELU_SCALE,
    ]
    torch.testing.assert_close(x.grad, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(y.detach(), torch.selu(x.detach()))


def test_activation_errors():
    with pytest.raises(ValueError, match=r"Unknown activation function 'relu7'.*relu6"):
        get_activation("relu7")
    with pytest.raises(TypeError, match=r"Could not interpret activation identifier 1.5"):
        get_activation(1.5)


# --------------------------------------------------------------------------------------- Dense


def test_dense_weight_is_transposed_keras_kernel():
    # The initializer sees the Keras shape (in=3, out=2); weight is its transpose.
    def kernel(shape, dtype=None):
        return torch.arange(6, dtype=dtype).reshape(tuple(shape))

    dense = KerasDense(2, kernel_initializer=kernel, input_dim=3)
    assert torch.equal(dense.weight, torch.arange(6.0).reshape(3, 2).T)
    # x @ kernel: [1, 1, 1] @ [[0, 1], [2, 3], [4, 5]] = [6, 9].
    torch.testing.assert_close(dense(torch.ones(1, 3)), torch.tensor([[6.0, 9.0]]))


def test_dense_lazy_state_dict_and_load():
    dense = KerasDense(4, activation="relu")
    assert list(dense.state_dict()) == ["weight", "bias"] and not dense.built
    assert dense.in_features is None and dense.out_features == 4
    dense.load_state_dict({"weight": torch.ones(4, 3), "bias": torch.zeros(4)})
    assert dense.built and (dense.in_features, dense.out_features) == (3, 4)


def test_dense_strict_load_reports_missing_keys():
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "bias"'):
        KerasDense(4).load_state_dict({"weight": torch.ones(4, 3)})


def test_dense_none_initializer_falls_back_to_glorot_uniform_like_keras_add_weight():
    # Keras add_weight(initializer=None) uses glorot_uniform; for a bias of shape (400,) the fans are
    # (400, 400): limit sqrt(6 / 800) = 0.0866, std limit / sqrt(3) = 0.05.
    bias = KerasDense(400, bias_initializer=None, input_dim=2).bias.detach()
    assert bias.abs().max() <= math.sqrt(6 / 800)
    assert abs(bias.std().item() - 0.05) < 0.01  # 400 samples: SE 0.0018, 5.5 SE


def test_dense_errors():
    with pytest.raises(ValueError, match=r"`units` must be a positive int, got units=0"):
        KerasDense(0)
    with pytest.raises(ValueError, match=r"already built with weight shape \(2, 3\).*\(2, 4\)"):
        KerasDense(2, input_dim=3).build(4, 2)
    with pytest.raises(ValueError, match=r"last dimension 3 .* got input of shape \(1, 5\)"):
        KerasDense(2, input_dim=3)(torch.ones(1, 5))
    with pytest.raises(RuntimeError, match=r"must be built by its owner"):
        KerasDense(None)(torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"cannot be built from `input_dim` alone"):
        KerasDense(None, input_dim=3)


# ------------------------------------------------------------------------- TensorFlow reference

# (Keras class name or alias, config, support is bounded)
KERAS_INITIALIZERS = [
    ("truncated_normal", {}, True),
    ("glorot_uniform", {}, True),
    ("uniform", {}, True),
    ("random_normal", {}, False),
    ("glorot_normal", {}, True),
    ("he_normal", {}, True),
    ("he_uniform", {}, True),
    ("lecun_normal", {}, True),
    ("lecun_uniform", {}, True),
    (
        "VarianceScaling",
        {"scale": 0.5, "mode": "fan_out", "distribution": "untruncated_normal"},
        False,
    ),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}, True),
    ("TruncatedNormal", {"mean": 0.3, "stddev": 0.2}, True),
    ("RandomUniform", {"minval": -1.0, "maxval": 3.0}, True),
]


@pytest.mark.tf
@pytest.mark.parametrize(("name", "config", "bounded"), KERAS_INITIALIZERS)
def test_initializer_distribution_matches_keras(tf, name, config, bounded):
    # Same distribution, different generators: compare summaries of 1e6 draws from each, on a Keras
    # kernel shape with distinct fans (500, 2000). Tolerances, in units of the Keras sample std s:
    # quantiles 1%..99% within 0.03 s (>5 standard errors of a difference of two sample quantiles);
    # std within 1%; means within 5 standard errors; bounded supports' min/max within 1e-3 s.
    keras_init = tf.keras.initializers.get({"class_name": name, "config": dict(config)})
    serialised = tf.keras.initializers.serialize(keras_init)
    torch_init = get_initializer(serialised)  # the Keras config itself builds the torch twin
    shape = (500, 2000)
    expected = keras_init(shape).numpy().ravel()
    actual = torch_init(shape).numpy().ravel()
    s = expected.std()
    quantiles = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
    np.testing.assert_allclose(
        np.quantile(actual, quantiles), np.quantile(expected, quantiles), rtol=0, atol=0.03 * s
    )
    assert abs(actual.std() / s - 1) < 0.01
    assert abs(actual.mean() - expected.mean()) < 2 * 5 * s / 1000
    if bounded:
        assert abs(actual.min() - expected.min()) < 1e-3 * s
        assert abs(actual.max() - expected.max()) < 1e-3 * s


@pytest.mark.tf
@pytest.mark.parametrize(
    ("name", "config"),
    [("Zeros", {}), ("Ones", {}), ("Constant", {"value": -1.5}), ("Identity", {"gain": 3.0})],
)
def test_deterministic_initializers_equal_keras(tf, name, config):
    keras_init = tf.keras.initializers.get({"class_name": name, "config": config})
    torch_init = get_initializer(tf.keras.initializers.serialize(keras_init))
    np.testing.assert_array_equal(torch_init((3, 4)).numpy(), keras_init((3, 4)).numpy())


@pytest.mark.tf
@pytest.mark.parametrize("identifier", ["l1", "l2", "l1_l2", "L1L2"])
def test_regularizers_match_keras(tf, identifier):
    # One reduction of 1000 float32 terms; 1e-6 relative.
    w = np.random.default_rng(0).standard_normal((40, 25)).astype("float32")
    expected = float(tf.keras.regularizers.get(identifier)(tf.constant(w)))
    actual = get_regularizer(identifier)(torch.from_numpy(w)).item()
    assert actual == pytest.approx(expected, rel=1e-6, abs=0)


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(activations._ACTIVATIONS))
def test_activations_match_keras(tf, name, dtype):
    # Values and gradients on [-8, 8] plus wide random values. Elementwise libm differences only:
    # float32 within 1e-6 relative + 1e-6 absolute (measured worst: 2.4e-6 absolute on values ~100,
    # i.e. 2 ulps), float64 within 1e-12 relative + 1e-12 absolute.
    rng = np.random.default_rng(0)
    values = np.concatenate([np.linspace(-8, 8, 801), rng.standard_normal(199) * 30])
    if name == "exponential":
        values = np.clip(values, -60, 60)  # keep exp finite in float32
    x = values.astype(dtype).reshape(10, 100)
    cotangent = rng.standard_normal(x.shape).astype(dtype)
    tx = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tx)
        expected = tf.keras.activations.get(name)(tx)
        loss = tf.reduce_sum(expected * cotangent)
    expected_grad = tape.gradient(loss, tx).numpy()
    px = torch.tensor(x, requires_grad=True)
    actual = get_activation(name)(px)
    (actual * torch.from_numpy(cotangent)).sum().backward()
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(actual.detach().numpy(), expected.numpy(), rtol=tol, atol=tol)
    # mish's float32 gradient tanh(sp) + x sech^2(sp) sigmoid(x) cancels for x in [-3, -1]; same graph
    # (float64 agrees to 1e-12) but rounding shows: measured 3.5e-6 relative, allowed 1e-5.
    grad_tol = 1e-5 if (name, dtype) == ("mish", "float32") else tol
    np.testing.assert_allclose(px.grad.numpy(), expected_grad, rtol=grad_tol, atol=tol)


def test_former_module_still_exports_every_name() -> None:
    # `torchrs.layers._keras_init` was the home of all of these; old imports must keep resolving to the same
    # objects, not to copies (an isinstance check against a copy would silently fail).
    import torchrs as trs
    from torchrs.layers import _keras_init

    assert _keras_init.KerasDense is trs.layers.Dense is trs.layers.dense.Dense
    assert _keras_init.TruncatedNormal is trs.initializers.TruncatedNormal
    assert _keras_init.L2 is trs.regularizers.L2
    assert _keras_init.get_activation is trs.activations.get is trs.activations.get_activation
    assert trs.initializers.get is trs.initializers.get_initializer
    assert trs.regularizers.get is trs.regularizers.get_regularizer
    for name in _keras_init.__all__:
        assert getattr(_keras_init, name) is not None
