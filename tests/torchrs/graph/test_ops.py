"""The allow-listed TF ops of ``torchrs.graph.ops``: hand-derived values, and TF's own kernels.

TF reference tests call ``tf.raw_ops`` on random inputs. Tolerances: integer, boolean, string and
index results must be identical; float results of element-wise ops agree to 1e-6 relative (the
same float32 formula, a different libm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from torchrs.graph import ops
from torchrs.graph.ops import OPS

B = lambda *items: np.array(list(items), dtype=object)  # noqa: E731  (bytes arrays, briefly)


def test_strided_slice_masks_hand_derived() -> None:
    x = torch.arange(24).reshape(2, 3, 4)
    # x[:, 1] -> begin [0, 1], end [0, 2], strides [1, 1], begin/end mask on axis 0, shrink axis 1
    out = ops.strided_slice(x, [0, 1], [0, 2], [1, 1], begin_mask=1, end_mask=1, shrink_axis_mask=2)
    assert out.tolist() == [[4, 5, 6, 7], [16, 17, 18, 19]]
    # x[..., ::-2]: ellipsis then a negative stride
    out = ops.strided_slice(x, [0, -1], [0, -5], [1, -2], ellipsis_mask=1)
    assert out[0, 0].tolist() == [3, 1]
    # tf.shape(x)[0] on a shape vector: shrink to a scalar
    assert ops.strided_slice(torch.tensor([7, 3]), [0], [1], [1], shrink_axis_mask=1).item() == 7


def test_top_k_ties_go_to_the_lower_index() -> None:
    values, indices = ops.top_k(torch.tensor([[1.0, 3.0, 3.0, 2.0]]), 3)
    assert values.tolist() == [[3.0, 3.0, 2.0]] and indices.tolist() == [[1, 2, 3]]
    assert indices.dtype == torch.int32  # TF's TopKV2 index type


def test_string_ngrams_hand_derived() -> None:
    grams, splits = ops.string_ngrams(
        B(b"a", b"b", b"c", b"d"),
        torch.tensor([0, 3, 4]),
        separator=" ",
        ngram_widths=[1, 2],
        left_pad="",
        right_pad="",
        pad_width=0,
        preserve_short_sequences=False,
    )
    # row 0 (a b c): unigrams then bigrams; row 1 (d): one unigram, no bigram
    assert grams.tolist() == [b"a", b"b", b"c", b"a b", b"b c", b"d"]
    assert splits.tolist() == [0, 5, 6]


def test_split_and_ragged_to_dense_hand_derived() -> None:
    indices, values, shape = ops.string_split_v2(B(b"x  y", b"", b"z"), B(b""))
    assert values.tolist() == [b"x", b"y", b"z"] and shape.tolist() == [3, 2]
    assert indices.tolist() == [[0, 0], [0, 1], [2, 0]]
    dense = ops.ragged_tensor_to_tensor(
        torch.tensor([-1, 3]), torch.tensor([5, 6, 7]), torch.tensor(0), torch.tensor([0, 2, 2, 3])
    )
    assert dense.tolist() == [[5, 6, 0], [0, 0, 0], [7, 0, 0]]  # padded to the requested width 3


def test_hash_table_finds_exact_keys() -> None:
    from torchrs.graph import HashTable

    table = HashTable(torch.tensor([10, 3, 7]), torch.tensor([1, 2, 3]))
    assert table.find(torch.tensor([[7, 4], [10, 3]]), torch.tensor(-1)).tolist() == [
        [3, -1],
        [1, 2],
    ]
    strings = HashTable(B(b"a\nb", b"\xff"), torch.tensor([5, 6]))
    assert strings.find(B(b"\xff", "a\nb", b"a"), torch.tensor(0)).tolist() == [6, 5, 0]


def test_bucketize_is_bisect_right() -> None:
    out = ops.bucketize(torch.tensor([0.0, 1.0, 1.5, 3.0]), boundaries=[1.0, 2.0, 3.0])
    assert out.tolist() == [0, 1, 1, 3]  # a value equal to a boundary goes right, as in TF


def test_every_op_is_importable_by_name() -> None:
    """--emit-python imports each op function as ``from module import qualname``."""
    import importlib

    for name, op in OPS.items():
        module = importlib.import_module(op.fn.__module__)
        assert getattr(module, op.fn.__qualname__) is op.fn, name


# ------------------------------------------------------------------------------------------
# Against TF's kernels (tf.raw_ops), on random inputs.
# ------------------------------------------------------------------------------------------


def _np(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return np.asarray(value)


def _random_cases(
    tf: Any, rng: np.random.Generator
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(op, tensor inputs in TF's argument order, attributes)."""
    f = rng.normal(size=(4, 5)).astype(np.float32)
    g = rng.normal(size=(4, 5)).astype(np.float32)
    ints = rng.integers(-9, 9, (4, 5)).astype(np.int32)
    nz = np.where(ints == 0, 3, ints).astype(np.int32)
    return [
        ("FloorDiv", {"x": ints, "y": nz}, {}),
        ("FloorMod", {"x": ints, "y": nz}, {}),
        ("Div", {"x": ints, "y": nz}, {}),
        ("Cast", {"x": f * 3}, {"DstT": "int32"}),
        ("Selu", {"features": f}, {}),
        ("Softplus", {"features": f * 10}, {}),
        ("Softsign", {"features": f}, {}),
        ("LeakyRelu", {"features": f}, {"alpha": 0.3}),
        ("Rsqrt", {"x": np.abs(f) + 0.1}, {}),
        ("SquaredDifference", {"x": f, "y": g}, {}),
        ("Mean", {"input": ints, "axis": np.array([1], np.int32)}, {"keep_dims": True}),
        ("Prod", {"input": f, "axis": np.array([0, 1], np.int32)}, {"keep_dims": False}),
        ("MatrixBandPart", {"input": f, "num_lower": np.int64(1), "num_upper": np.int64(0)}, {}),
        ("Bucketize", {"input": f}, {"boundaries": [-1.0, 0.0, 0.5]}),
        (
            "OneHot",
            {
                "indices": np.array([0, 3, -1, 2], np.int32),
                "depth": np.int32(3),
                "on_value": np.float32(5),
                "off_value": np.float32(-1),
            },
            {"axis": -1},
        ),
        ("Cumsum", {"x": ints, "axis": np.int32(1)}, {"exclusive": True, "reverse": True}),
        ("Tile", {"input": ints, "multiples": np.array([2, 1], np.int32)}, {}),
        (
            "SplitV",
            {"value": f, "size_splits": np.array([2, -1], np.int32), "axis": np.int32(1)},
            {"num_split": 2},
        ),
        (
            "StridedSlice",
            {
                "input": f,
                "begin": np.array([1, 0], np.int32),
                "end": np.array([3, 5], np.int32),
                "strides": np.array([1, 2], np.int32),
            },
            {"begin_mask": 2, "shrink_axis_mask": 0},
        ),
    ]


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
def test_ops_match_tf_raw_ops(tf: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, inputs, attrs in _random_cases(tf, rng):
        tf_attrs = {k: (tf.as_dtype(v) if k == "DstT" else v) for k, v in attrs.items()}
        expected = getattr(tf.raw_ops, name)(**inputs, **tf_attrs)
        args = [torch.from_numpy(np.asarray(v)) for v in inputs.values()]
        got = OPS[name].fn(*args, **{k: v for k, v in attrs.items() if k in OPS[name].attrs})
        if isinstance(expected, (list, tuple)):
            pairs = list(zip(expected, got, strict=True))
        else:
            pairs = [(expected, got)]
        for ref, value in pairs:
            ref_np, value_np = ref.numpy(), _np(value)
            assert ref_np.shape == value_np.shape, name
            if ref_np.dtype.kind == "f":
                np.testing.assert_allclose(value_np, ref_np, rtol=1e-6, atol=1e-7, err_msg=name)
            else:
                assert np.array_equal(value_np, ref_np), name


@pytest.mark.tf
def test_text_ops_match_tf(tf: Any) -> None:
    texts = np.array(
        [b"The  Quick, brown fox!", b"", b"a-b c", "\u00c9t\u00e9 \xe0".encode()], dtype=object
    )
    lower = ops.string_lower(texts)
    assert lower.tolist() == tf.raw_ops.StringLower(input=texts).numpy().tolist()
    pattern = r"""[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']"""
    stripped = ops.static_regex_replace(lower, pattern=pattern, rewrite="", replace_global=True)
    ref = tf.raw_ops.StaticRegexReplace(
        input=lower, pattern=pattern, rewrite="", replace_global=True
    )
    assert stripped.tolist() == ref.numpy().tolist()
    indices, values, shape = ops.string_split_v2(stripped, B(b""))
    ref_i, ref_v, ref_s = tf.raw_ops.StringSplitV2(input=stripped, sep="")
    assert indices.tolist() == ref_i.numpy().tolist() and values.tolist() == ref_v.numpy().tolist()
    assert shape.tolist() == ref_s.numpy().tolist()
    splits = np.array([0, 2, 2, 5], np.int64)
    tokens = B(b"a", b"b", b"c", b"d", b"e")
    for widths, pad, preserve in [
        ([1, 2], 0, False),
        ([3], 0, True),
        ([2, 3], -1, False),
        ([2], 1, False),
    ]:
        got = ops.string_ngrams(
            tokens,
            torch.from_numpy(splits),
            separator="_",
            ngram_widths=widths,
            left_pad="<",
            right_pad=">",
            pad_width=pad,
            preserve_short_sequences=preserve,
        )
        ref = tf.raw_ops.StringNGrams(
            data=tokens,
            data_splits=splits,
            separator="_",
            ngram_widths=widths,
            left_pad="<",
            right_pad=">",
            pad_width=pad,
            preserve_short_sequences=preserve,
        )
        assert got[0].tolist() == ref[0].numpy().tolist(), (widths, pad, preserve)
        assert got[1].tolist() == ref[1].numpy().tolist()
