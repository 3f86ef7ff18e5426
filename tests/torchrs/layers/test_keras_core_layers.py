"""Keras core layers torchrs rebuilds (merging, reshaping, pooling): hand-derived values, errors, and tf.keras
itself on random inputs.

Tolerance against tf.keras: these layers are one float32 element-wise op, one reduction over <= 7 values or a
small batched matmul; the two frameworks differ at most by summation order, a few ulp of values of size ~1-10.
1e-6 absolute + 1e-6 relative leaves room for that and nothing else (a wrong axis, a missing mask or a wrong
normalisation moves results by > 1e-2).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.layers import (
    Add,
    Average,
    Concatenate,
    Dot,
    Flatten,
    GlobalAveragePooling1D,
    Maximum,
    Minimum,
    Multiply,
    Reshape,
    Subtract,
)

TOL = 1e-6  # see module docstring
SEEDS = (0, 1, 2)
MERGES = {
    "Add": Add,
    "Subtract": Subtract,
    "Multiply": Multiply,
    "Average": Average,
    "Maximum": Maximum,
    "Minimum": Minimum,
}


def test_merges_by_hand() -> None:
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 4.0]])
    assert Add()([a, b]).tolist() == [[4.0, 2.0]]
    assert Subtract()([a, b]).tolist() == [[-2.0, -6.0]]
    assert Multiply()([a, b]).tolist() == [[3.0, -8.0]]
    assert Average()([a, b]).tolist() == [[2.0, 1.0]]
    assert Maximum()([a, b]).tolist() == [[3.0, 4.0]]
    assert Minimum()([a, b]).tolist() == [[1.0, -2.0]]
    # Keras inserts axes at 1 into lower-rank inputs: (1, 2) + (1, 3, 2) broadcasts over the 3.
    assert Add()([a, torch.ones(1, 3, 2)]).shape == (1, 3, 2)


def test_dot_by_hand() -> None:
    x, y = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    assert Dot(axes=1)([x, y]).tolist() == [[24.0]]  # 3 * 4 + 4 * 3
    assert Dot(axes=1, normalize=True)([x, y]).tolist() == [[pytest.approx(24.0 / 25.0)]]  # cosine


def test_pooling_by_hand() -> None:
    x = torch.tensor([[[1.0, 10.0], [3.0, 20.0], [8.0, 30.0]]])  # (1, 3 steps, 2 features)
    assert GlobalAveragePooling1D()(x).tolist() == [[4.0, 20.0]]
    mask = torch.tensor([[True, False, True]])
    assert GlobalAveragePooling1D()(x, mask=mask).tolist() == [
        [4.5, 20.0]
    ]  # (1 + 8) / 2, (10 + 30) / 2
    assert GlobalAveragePooling1D(keepdims=True)(x).shape == (1, 1, 2)
    assert GlobalAveragePooling1D("channels_first")(x).tolist() == [[5.5, 11.5, 19.0]]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Subtract()([torch.ones(1), torch.ones(1), torch.ones(1)]), "exactly 2 inputs"),
        (lambda: Dot(axes=1)([torch.ones(1, 2)]), "exactly 2 inputs"),
        (
            lambda: Dot(axes=1)([torch.ones(1, 2), torch.ones(1, 3)]),
            r"x.shape\[1\] != y.shape\[1\]",
        ),
        (lambda: GlobalAveragePooling1D("nchw"), "data_format must be one of"),
        (lambda: GlobalAveragePooling1D()(torch.ones(2, 3)), r"got \(2, 3\)"),
        (lambda: Add()([]), "non-empty list"),
    ],
)
def test_bad_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(MERGES))
def test_merges_match_keras(tf, seed: int, name: str) -> None:
    rng = np.random.default_rng(seed)
    count = 2 if name == "Subtract" else 3
    inputs = [rng.normal(size=(4, 5)).astype(np.float32) for _ in range(count)]
    want = getattr(tf.keras.layers, name)()([tf.constant(x) for x in inputs]).numpy()
    got = MERGES[name]()([torch.from_numpy(x) for x in inputs]).numpy()
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("shapes", "axes", "normalize"),
    [
        (((4, 5), (4, 5)), 1, False),
        (((4, 5), (4, 5)), 1, True),
        (((4, 3, 5), (4, 6, 5)), (2, 2), False),
        (((4, 3, 5), (4, 3, 6)), (1, 1), True),
        (((4, 5), (4, 6, 5)), (1, 2), False),
    ],
)
def test_dot_matches_keras(tf, seed: int, shapes, axes, normalize: bool) -> None:
    rng = np.random.default_rng(seed)
    x, y = (rng.normal(size=s).astype(np.float32) for s in shapes)
    want = tf.keras.layers.Dot(axes=axes, normalize=normalize)(
        [tf.constant(x), tf.constant(y)]
    ).numpy()
    got = Dot(axes=axes, normalize=normalize)([torch.from_numpy(x), torch.from_numpy(y)]).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
def test_concatenate_flatten_reshape_match_keras(tf, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = (
        rng.normal(size=(4, 3, 2)).astype(np.float32),
        rng.normal(size=(4, 3, 5)).astype(np.float32),
    )
    for axis in (-1, 2):
        want = tf.keras.layers.Concatenate(axis=axis)([a, b]).numpy()
        np.testing.assert_array_equal(
            Concatenate(axis)([torch.from_numpy(a), torch.from_numpy(b)]).numpy(), want
        )
    np.testing.assert_array_equal(
        Flatten()(torch.from_numpy(b)).numpy(), tf.keras.layers.Flatten()(b).numpy()
    )
    want = tf.keras.layers.Reshape((5, -1))(b).numpy()
    np.testing.assert_array_equal(Reshape((5, -1))(torch.from_numpy(b)).numpy(), want)


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_average_pooling_matches_keras(
    tf, seed: int, data_format: str, keepdims: bool
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 7, 3) if data_format == "channels_last" else (4, 3, 7)).astype(
        np.float32
    )
    mask = rng.random(size=(4, 7)) < 0.6
    mask[:, 0] = True  # Keras divides by the number of real steps: keep at least one per row
    layer = tf.keras.layers.GlobalAveragePooling1D(data_format=data_format, keepdims=keepdims)
    pool = GlobalAveragePooling1D(data_format, keepdims)
    for m in (None, mask):
        want = layer(tf.constant(x), mask=None if m is None else tf.constant(m)).numpy()
        got = pool(torch.from_numpy(x), mask=None if m is None else torch.from_numpy(m)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
