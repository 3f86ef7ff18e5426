"""The forward check's sample inputs (no TensorFlow needed): what each kind of input is fed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converters.tfrs_to_torch.compare import UNKNOWN_TOKEN
from converters.tfrs_to_torch.plan import Plan
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
    # Every sample at least once, in order, then the engine's probes: an unknown token, the empty string.
    assert batch[:5].tolist() == [b"a", b"b", b"\x00oov", UNKNOWN_TOKEN, b""]
    assert set(batch.tolist()) <= {b"a", b"b", b"\x00oov", UNKNOWN_TOKEN, b""}
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


# ------------------------------------------------------------------ re-reading the written tensors


def _written(tmp_path, arrays: dict[str, np.ndarray]):
    from converters.tfrs_to_torch.plan import TensorPlan
    from converters.tfrs_to_torch.writer import write_safetensors

    plan = Plan("weights", {})
    for name, array in arrays.items():
        plan.tensors.append(
            TensorPlan(name, f"src/{name}", array.shape, array.dtype, lambda a=array: a)
        )
    path = tmp_path / "model.safetensors"
    write_safetensors(path, plan.tensors)
    return path, plan


def _corrupt(path, plan: Plan, name: str, flat_index: int) -> None:
    # Flip the low byte of one element, found through the file's own header (safetensors layout).
    import json

    raw = bytearray(path.read_bytes())
    length = int.from_bytes(raw[:8], "little")
    entry = json.loads(raw[8 : 8 + length])[name]
    itemsize = np.dtype(next(t.dtype for t in plan.tensors if t.torch_name == name)).itemsize
    raw[8 + length + entry["data_offsets"][0] + flat_index * itemsize] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.fixture
def small_blocks(monkeypatch):
    # 10 rows per block, so a 95-row table is compared in 10 blocks, the last one partial.
    from converters.tfrs_to_torch import verify

    monkeypatch.setattr(verify, "VERIFY_BLOCK_ROWS", 10)


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "table": rng.normal(size=(95, 3)).astype(np.float32),
        "ids": np.arange(7, dtype=np.int64),
        "scalar": np.asarray(3.5, dtype=np.float64),
        "nan": np.array([np.nan, 1.0], dtype=np.float32),  # NaN == NaN for this check
    }


def test_written_tensors_verify_block_by_block(tmp_path, small_blocks) -> None:
    from converters.tfrs_to_torch.verify import check_tensors

    path, plan = _written(tmp_path, _arrays())
    assert check_tensors(path, plan) == 4


@pytest.mark.parametrize(
    ("name", "flat_index"), [("table", 0), ("table", 94 * 3 + 2), ("ids", 3), ("scalar", 0)]
)
def test_one_flipped_bit_anywhere_is_caught(
    tmp_path, small_blocks, name: str, flat_index: int
) -> None:
    from converters.tfrs_to_torch.errors import ConversionError
    from converters.tfrs_to_torch.verify import check_tensors

    path, plan = _written(tmp_path, _arrays())
    _corrupt(path, plan, name, flat_index)  # the first element, the last of the partial block, ...
    with pytest.raises(
        ConversionError,
        match=rf"Verification failed \(re-reading the written tensors\): {name} differs from src/{name}",
    ):
        check_tensors(path, plan)


def test_missing_or_reshaped_tensor_is_caught(tmp_path) -> None:
    from converters.tfrs_to_torch.errors import ConversionError
    from converters.tfrs_to_torch.plan import TensorPlan
    from converters.tfrs_to_torch.verify import check_tensors

    path, plan = _written(tmp_path, {"a": np.zeros((2, 3), np.float32)})
    extra = TensorPlan("b", "src/b", (1,), np.dtype(np.float32), lambda: np.zeros(1, np.float32))
    with pytest.raises(ConversionError, match="b missing from the written file"):
        check_tensors(path, Plan("weights", {}, tensors=[*plan.tensors, extra]))
    other = TensorPlan(
        "a", "src/a", (3, 2), np.dtype(np.float32), lambda: np.zeros((3, 2), np.float32)
    )
    with pytest.raises(ConversionError, match=r"a was written with shape \(2, 3\)"):
        check_tensors(path, Plan("weights", {}, tensors=[other]))
