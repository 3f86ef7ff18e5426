"""Normalization: Keras's formula, epsilon, batch merging in adapt, state, errors, parity with TF."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from torchrs.preprocessing.normalization import (
    EPSILON,
    Normalization,
    adapt_batches,
    batch_moments,
    merge_moments,
)

# --------------------------------------------------------------------------------------------
# Hand-derived values.
# --------------------------------------------------------------------------------------------


def test_adapt_single_statistic():
    # [1, 2, 3]: mean 2, population variance ((1-2)^2 + 0 + (3-2)^2) / 3 = 2/3.
    layer = Normalization(axis=None)
    layer.adapt([1.0, 2.0, 3.0])
    assert layer.mean.item() == 2.0
    assert layer.variance.item() == pytest.approx(2 / 3, rel=1e-7)
    out = layer(torch.tensor([1.0, 2.0, 4.0]))
    expected = torch.tensor([-1.0, 0.0, 2.0]) / torch.sqrt(torch.tensor(2 / 3))
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=0)


def test_batches_are_merged_with_the_lack_of_fit_formula():
    # batch_size=2 on [1, 2, 3, 4]: batches have mean 1.5 and 3.5, variance 0.25 each.
    # Merge: mean = 1.5/2 + 3.5/2 = 2.5; variance = (0.25 + 1^2)/2 + (0.25 + 1^2)/2 = 1.25,
    # the population variance of 1..4. All values are exact in float32.
    layer = Normalization(axis=None)
    layer.adapt(np.array([1.0, 2.0, 3.0, 4.0]), batch_size=2)
    assert layer.mean.item() == 2.5 and layer.variance.item() == 1.25
    assert int(layer.count) == 4
    mean, var, count = merge_moments(
        torch.tensor([1.5]), torch.tensor([0.25]), 2, torch.tensor([3.5]), torch.tensor([0.25]), 2
    )
    assert (mean.item(), var.item(), count) == (2.5, 1.25, 4)


def test_per_feature_statistics_keep_the_axis():
    data = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    layer = Normalization()  # axis=-1: one mean/variance per column
    layer.adapt(data)
    assert layer.mean.shape == (1, 2)
    assert layer.mean.tolist() == [[2.0, 20.0]] and layer.variance.tolist() == [[1.0, 100.0]]
    assert layer(data).tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    assert layer.adapt_mean.shape == (2,)
    # axis=(1, 2) on 3-D data keeps a (3, 2) grid of statistics.
    cube = torch.arange(24.0).reshape(4, 3, 2)
    grid = Normalization(axis=(1, 2))
    grid.adapt(cube)
    assert grid.mean.shape == (1, 3, 2)
    torch.testing.assert_close(grid.mean[0], cube.mean(0))


def test_given_mean_and_variance_broadcast_and_epsilon():
    layer = Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 0.0, -1.0])
    out = layer(torch.tensor([[3.0, 2.5, 3.0]]))
    # (3-1)/sqrt(4) = 1; variance 0 -> divide by epsilon 1e-7 -> 0.5 / 1e-7 (float32);
    # a negative variance has a NaN square root and max(NaN, eps) stays NaN, as tf.maximum.
    assert out[0, 0].item() == 1.0
    assert out[0, 1].item() == (torch.tensor(0.5) / torch.tensor(EPSILON)).item()
    assert math.isnan(out[0, 2].item())
    # A scalar mean/variance is broadcast to the kept axis.
    scalar = Normalization(mean=3.0, variance=2.0)
    assert scalar(torch.tensor([[1.0, 5.0]]))[0].tolist() == pytest.approx([-(2**0.5), 2**0.5])
    # Inputs of another rank broadcast with the built statistics, as in Keras.
    assert layer(torch.tensor([3.0, 2.0, 3.0])).shape == (1, 3)


def test_invert_undoes_the_normalization():
    layer = Normalization(mean=[5.0, -1.0], variance=[4.0, 0.25], invert=True)
    assert layer(torch.tensor([[1.0, 2.0]])).tolist() == [[7.0, 0.0]]  # 5 + 1*2, -1 + 2*0.5
    assert layer(np.array([[1, 2]], dtype=np.int64)).dtype == torch.float32


def test_nan_and_inf_propagate_like_keras():
    layer = Normalization(axis=None)
    layer.adapt([1.0, 2.0, float("inf")])
    # Keras: mean inf, then (inf - inf)^2 = NaN in the variance.
    assert layer.mean.item() == float("inf") and math.isnan(layer.variance.item())
    static = Normalization(mean=0.0, variance=1.0)
    out = static(torch.tensor([[float("nan"), float("inf")]]))
    assert math.isnan(out[0, 0].item()) and out[0, 1].item() == float("inf")


def test_batch_moments_and_float64_inputs():
    mean, var, count = batch_moments(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), [0, 1])
    assert (mean.item(), var.item(), count) == (3.0, 3.5, 4)  # mean 3, var (4+1+0+9)/4
    # Inputs are cast to the layer dtype before the math (Keras autocasts to float32).
    x64 = np.array([[0.1]], dtype=np.float64)
    out = Normalization(mean=0.0, variance=1.0)(x64)
    assert out.dtype == torch.float32 and out.item() == torch.tensor(0.1).item()
    double = Normalization(mean=0.0, variance=1.0, dtype="float64")(x64)
    assert double.dtype == torch.float64 and double.item() == 0.1


def test_adapt_batches_and_iterables():
    # A generator of batches: each batch is merged in turn (same as batch_size=2 above).
    layer = Normalization(axis=None)
    layer.adapt(iter([np.array([1.0, 2.0]), np.array([3.0, 4.0])]))
    assert layer.mean.item() == 2.5 and layer.variance.item() == 1.25
    layer.adapt(np.array([1.0, 2.0, 3.0, 4.0]), batch_size=3, steps=1)  # [1, 2, 3] only
    assert layer.mean.item() == 2.0
    assert [len(b) for b in adapt_batches(list(range(70)), None, None, "x")] == [32, 32, 6]


def test_state_dict_round_trip_into_an_unbuilt_layer():
    layer = Normalization()
    layer.adapt(torch.tensor([[1.0, 10.0], [3.0, 30.0], [8.0, 0.0]]))
    state = layer.state_dict()
    assert set(state) == {"adapt_mean", "adapt_variance", "count"}
    fresh = Normalization()
    fresh.load_state_dict(state)
    x = torch.tensor([[2.0, 5.0]])
    assert torch.equal(fresh(x), layer(x))
    wrong = Normalization()
    wrong.load_state_dict({k: v[:1] if v.dim() else v for k, v in state.items()})
    with pytest.raises(ValueError, match=r"loaded statistics have shape \(1,\).*need \(2,\)"):
        wrong(x)
    built = Normalization()
    built.adapt(torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match=r"size mismatch for adapt_mean"):
        built.load_state_dict(state)
    assert Normalization(mean=1.0, variance=1.0).state_dict() == {}


def test_config_round_trip():
    layer = Normalization(axis=(1, 2), mean=np.array([1.0, 2.0]), variance=[3.0, 4.0], invert=True)
    config = layer.get_config()
    json.dumps(config)
    assert config == {
        "name": "normalization",
        "trainable": True,
        "dtype": "float32",
        "axis": (1, 2),
        "invert": True,
        "mean": [1.0, 2.0],
        "variance": [3.0, 4.0],
    }
    clone = Normalization.from_config(config)
    x = torch.randn(2, 3, 2)
    assert torch.equal(
        clone(x), Normalization(**{k: config[k] for k in ("axis", "mean", "variance", "invert")})(x)
    )


def test_errors():
    with pytest.raises(ValueError, match=r"both `mean` and `variance` must be set"):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match=r"must not repeat an axis"):
        Normalization(axis=(1, 1))
    with pytest.raises(TypeError, match=r"`axis` must be an int"):
        Normalization(axis="last")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"floating `dtype`"):
        Normalization(dtype="int64")
    with pytest.raises(ValueError, match=r"range \[-ndim, ndim\).*ndim: `2`, axis: \(5,\)"):
        Normalization(axis=5)(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"unknown axis at index: 0"):
        Normalization(axis=0).adapt(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"unknown axis at index: 0"):
        Normalization().adapt(np.ones(4))  # 1-D data: axis -1 is the batch axis
    with pytest.raises(ValueError, match=r"Cannot `adapt` a Normalization layer.*mean 1.0"):
        Normalization(mean=1.0, variance=1.0).adapt(np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"expected input data to be non-empty"):
        Normalization().adapt(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"expected input data to be non-empty"):
        Normalization().adapt(iter([]))
    with pytest.raises(ValueError, match=r"`mean` of shape \(3,\) does not broadcast.*\(2,\)"):
        Normalization(mean=[1.0, 2.0, 3.0], variance=1.0)(torch.ones(1, 2))
    layer = Normalization(mean=[1.0, 2.0], variance=1.0)
    layer(torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"shape \(1, 3\) do not broadcast.*\(1, 2\)"):
        layer(torch.ones(1, 3))
    with pytest.raises(TypeError, match=r"expects numbers.*dtype <U1"):
        layer(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match=r"rows of different lengths"):
        layer([[1.0], [1.0, 2.0]])
    adapted = Normalization()
    adapted.adapt(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"keeps axis 1 of size 2; got a batch of shape \(1, 3\)"):
        adapted.update_state(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"`batch_size` when `data` is an iterable"):
        adapted.adapt(iter([np.ones((1, 2))]), batch_size=4)
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer"):
        adapted.adapt(np.ones((1, 2)), steps=0)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments: \['bogus'\]"):
        Normalization(bogus=True)


# --------------------------------------------------------------------------------------------
# Parity with tf.keras.layers.Normalization.
# --------------------------------------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.numerics
def test_forward_with_given_statistics_matches_keras_within_ulps(tf, seed):
    # The same float32 operations in the same order (subtract, sqrt, max, divide; inverted: multiply,
    # add), each correctly rounded in IEEE arithmetic, yet TF's Eigen kernels may vectorise the
    # division as a reciprocal times x, or contract x * std + mean into one FMA, depending on the CPU:
    # an AMD Zen 5 (AVX-512) differs from torch by 1 ulp in a few entries. So: NaN and +-inf exactly
    # where Keras has them; finite values within 2 ulps of the result (a reciprocal-multiply's error),
    # and, inverted, also of the product x * std that an FMA does not round.
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=5) * 100
    variance = rng.exponential(size=5) * 10
    variance[:3] = [0.0, -1.0, 1e-20]  # epsilon floor, NaN, and a denormal-ish variance
    x = rng.normal(size=(7, 5)).astype(np.float32) * 1e3
    x[0, :3] = [np.nan, np.inf, -np.inf]
    with np.errstate(invalid="ignore"):  # variance -1: NaN, as in Keras
        std = np.maximum(np.sqrt(variance), 1e-7).astype(np.float32)  # the std's floor, EPSILON
    for invert in (False, True):
        kwargs = {"mean": mean.tolist(), "variance": variance.tolist(), "invert": invert}
        ours = Normalization(**kwargs)(torch.from_numpy(x)).numpy()
        theirs = tf.keras.layers.Normalization(**kwargs)(x).numpy()
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(theirs))
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(theirs))
        finite = np.isfinite(theirs)
        scale = np.abs(theirs)
        if invert:
            with np.errstate(invalid="ignore"):
                scale = np.maximum(scale, np.abs(x * std))
        bound = 2 * np.spacing(scale[finite])
        assert np.all(np.abs(ours[finite] - theirs[finite]) <= bound), (invert, ours, theirs)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("axis", "batch_size"), [(-1, None), ((1, 2), 50), (None, 7), (1, 32)])
def test_adapt_matches_keras(tf, seed, axis, batch_size):
    rng = np.random.default_rng(seed)
    n = [100, 1000, 77][seed]
    scale = rng.uniform(0.1, 1000, size=3)
    offset = rng.uniform(-1e4, 1e4, size=3)
    data = (rng.normal(size=(n, 4, 3)) * scale + offset).astype(np.float32)
    ours = Normalization(axis=axis)
    ours.adapt(data, batch_size=batch_size)
    theirs = tf.keras.layers.Normalization(axis=axis)
    theirs.adapt(data, batch_size=batch_size)
    # TF sums each batch in float32 in its own (threaded, vectorised) order; torchrs sums exactly
    # and rounds once, so batch means differ by a few float32 ulps (measured: 6.2e-7 relative,
    # about 5 ulps; rtol 1e-6 allows 8). A variance inherits that error through the merge term
    # (batch_mean - total_mean)^2: |d var| <= 2 |batch_mean - total_mean| |d mean|, bounded here
    # by 8 eps32 |mean| std (measured worst: 0.017 against a bound of 0.38 on a variance of 1653
    # with mean 1e4), plus 1e-5 relative for the per-batch float32 sums.
    mean, var = theirs.mean.numpy(), theirs.variance.numpy()
    np.testing.assert_allclose(ours.mean.numpy(), mean, rtol=1e-6, atol=0)
    eps32 = np.finfo(np.float32).eps
    bound = 1e-5 * var + 8 * eps32 * np.abs(mean) * np.sqrt(var)
    assert np.all(np.abs(ours.variance.numpy() - var) <= bound)
    assert int(ours.count) == int(theirs.count.numpy())
    # Outputs: x - mean cancels when x is near the mean, so compare in units of the std.
    x = data[:9]
    std = np.sqrt(theirs.variance.numpy())
    diff = np.abs(ours(torch.from_numpy(x)).numpy() - theirs(x).numpy())
    assert np.max(diff * std / (np.abs(theirs.mean.numpy()) + std)) < 1e-5


@pytest.mark.tf
def test_adapt_with_inf_and_nan_matches_keras(tf):
    data = np.array([[1.0, 2.0], [np.inf, 3.0], [4.0, np.nan]], dtype=np.float32)
    ours = Normalization()
    ours.adapt(data)
    theirs = tf.keras.layers.Normalization()
    theirs.adapt(data)
    np.testing.assert_array_equal(ours.mean.numpy(), theirs.mean.numpy())
    np.testing.assert_array_equal(ours.variance.numpy(), theirs.variance.numpy())


@pytest.mark.tf
def test_config_keys_match_keras(tf):
    kwargs = {"axis": (1,), "mean": [1.0, 2.0], "variance": [3.0, 4.0], "invert": True}
    theirs = tf.keras.layers.Normalization(**kwargs).get_config()
    ours = Normalization(**kwargs).get_config()
    assert set(ours) == set(theirs)
    for key in ("axis", "mean", "variance", "invert", "dtype"):
        assert ours[key] == theirs[key]
    Normalization.from_config(theirs)
