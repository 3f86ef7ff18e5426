"""The forward check's sample inputs (no TensorFlow needed): what each kind of input is fed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converters.tfrs_to_torch.readers import Plan
from converters.tfrs_to_torch.verify import SAMPLE_BATCH, SAMPLE_OPEN_AXIS, SAMPLE_SEED, _sample
from torchrs.layers.embedding import Embedding
from torchrs.preprocessing import Normalization


def _plan(samples: dict[str, list[object]] | None = None) -> Plan:
    plan = Plan("tower", {})
    plan.samples.update(samples or {})
    plan.sources["0."] = "layer-0"
    return plan


def test_tokens_first_then_random_picks_shaped_as_the_signature() -> None:
    plan = _plan({"layer-0": [b"a", b"b", b"\x00oov"]})
    rng = np.random.default_rng(SAMPLE_SEED)
    batch = _sample([None], "string", (None, None, "0."), plan, rng)
    assert batch.shape == (SAMPLE_BATCH,) and batch.dtype == object
    assert batch[:3].tolist() == [b"a", b"b", b"\x00oov"]  # every sample at least once, in order
    assert set(batch.tolist()) <= {b"a", b"b", b"\x00oov"}
    # An open time axis gets SAMPLE_OPEN_AXIS steps; a fixed one keeps its length.
    assert _sample([None, None], "string", (None, None, "0."), plan, rng).shape == (8, 4)
    assert SAMPLE_OPEN_AXIS == 4
    assert _sample([2, 10], "string", (None, None, "0."), plan, rng).shape == (2, 10)


def test_floats_drawn_around_normalization_statistics() -> None:
    # x = mean + sqrt(variance) * z with z ~ N(0, 1) from the same seed: (x - 3) / 2 == z.
    layer = Normalization(axis=None, mean=3.0, variance=4.0)
    plan = _plan()
    x = _sample([None, 1], "float32", (None, layer, "0."), plan, np.random.default_rng(0))
    z = np.random.default_rng(0).normal(size=(SAMPLE_BATCH, 1))
    assert x.dtype == np.float32
    np.testing.assert_allclose((x - 3.0) / 2.0, z, atol=1e-6, rtol=0)  # float32 rounding of x


def test_floats_drawn_around_adapted_feature_statistics() -> None:
    layer = Normalization(axis=-1)
    layer.adapt(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))  # means 1 and 20, variances 1 and 100
    x = _sample([None, 2], "float32", (None, layer, "0."), _plan(), np.random.default_rng(0))
    z = np.random.default_rng(0).normal(size=(SAMPLE_BATCH, 2))
    np.testing.assert_allclose((x - [1.0, 20.0]) / [1.0, 10.0], z, atol=1e-5, rtol=0)


def test_plain_floats_are_standard_normal_and_ids_stay_in_the_table() -> None:
    x = _sample([None, 3], "float32", (None, None, None), _plan(), np.random.default_rng(1))
    np.testing.assert_array_equal(
        x, np.random.default_rng(1).normal(size=(SAMPLE_BATCH, 3)).astype("float32")
    )
    ids = _sample([None], "int64", (None, Embedding(5, 2), "0."), _plan(), np.random.default_rng(1))
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 5


@pytest.mark.parametrize("dtype", ["string", "int64"])
def test_no_sample_fits(dtype: str) -> None:
    # A string input without a lookup's tokens, an int input not read by an Embedding: None,
    # and the converter notes that the forward check did not run for that part.
    assert _sample([None], dtype, (None, None, None), _plan(), np.random.default_rng(0)) is None
