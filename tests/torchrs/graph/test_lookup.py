"""String-key lookups of translated tables: the same position as TF's bytes comparison, whatever
the input form (NumPy ``<U``, ``object`` arrays of ``str`` / ``bytes``, lists) and batch size."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from torchrs.graph import HashTable
from torchrs.graph.lookup import MISS, VECTOR_MIN, StringIndex, _VectorIndex

#: Characters the random tokens are drawn from: ASCII, 2-, 3- and 4-byte UTF-8, a NUL (inside a
#: token; NumPy drops trailing ones), and two surrogate escapes (a str standing for bytes 0xff / 0x80).
ALPHABET = ["a", "b", "Z", " ", "é", "ü", "日", "🙂", "\x00", "\udcff", "\udc80"]


def _reference(keys: list[bytes], tokens: list[Any]) -> np.ndarray:
    """The old path, which is TF's rule: each token as UTF-8 bytes (surrogateescape), then a dict."""
    index: dict[bytes, int] = {}
    for position, key in enumerate(keys):
        index.setdefault(key, position)
    return np.array(
        [
            index.get(
                t if isinstance(t, bytes) else str(t).encode("utf-8", "surrogateescape"), MISS
            )
            for t in tokens
        ],
        dtype=np.int64,
    )


def _random_tokens(rng: np.random.Generator, n: int, max_len: int = 9) -> list[str]:
    return ["".join(rng.choice(ALPHABET, rng.integers(0, max_len))) for _ in range(n)]


def test_hand_derived_positions() -> None:
    keys = [b"user 1", "é".encode(), b"\xff\xfe", b"", b"a\x00"]
    index = StringIndex(keys)
    # "é" is the key b"\xc3\xa9"; "\udcff\udcfe" stands for b"\xff\xfe" (not UTF-8: only as bytes);
    # "" is the empty key; "a" is not "a\x00"; "user 2" is unknown.
    tokens = ["é", "\udcff\udcfe", "", "a", "user 2", "user 1"]
    expected = [1, 2, 3, MISS, MISS, 0]
    assert index.find(np.array(tokens)).tolist() == expected
    assert index.find(np.array(tokens * VECTOR_MIN)).tolist() == expected * VECTOR_MIN
    assert index.find(tokens).tolist() == expected  # a list of str
    assert index.find(np.array([b"\xff\xfe", b"a\x00", b"user 1"], dtype=object)).tolist() == [
        2,
        4,
        0,
    ]
    assert index.find("é").tolist() == 1  # a scalar keeps its shape


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [1, VECTOR_MIN - 1, VECTOR_MIN, 700])
def test_every_input_form_matches_the_bytes_rule(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    keys = list(
        dict.fromkeys(t.encode("utf-8", "surrogateescape") for t in _random_tokens(rng, 300))
    )
    keys += [k for k in (b"\xff", b"\xc3", b"") if k not in keys]  # not UTF-8, and empty
    index = StringIndex(keys)
    known = [keys[i].decode("utf-8", "surrogateescape") for i in rng.integers(0, len(keys), n)]
    # Random ones (most unknown, some wider than every key) and one no key can be.
    tokens = np.array(known + _random_tokens(rng, n - 1, max_len=14) + ["~ no key"])
    rng.shuffle(tokens)
    listed = tokens.tolist()  # NumPy has dropped trailing NULs: the reference sees what we see
    expected = _reference(keys, listed)
    assert (expected >= 0).any() and (expected == MISS).any()
    assert np.array_equal(index.find(tokens), expected)
    assert np.array_equal(index.find(tokens.reshape(2, n)), expected.reshape(2, n))
    assert np.array_equal(index.find(tokens[::2]), expected[::2])  # not contiguous
    assert np.array_equal(index.find(np.array(listed, dtype=object)), expected)
    as_bytes = [t.encode("utf-8", "surrogateescape") for t in listed]
    assert np.array_equal(index.find(np.array(as_bytes, dtype=object)), expected)
    mixed = [b if i % 2 else t for i, (t, b) in enumerate(zip(listed, as_bytes, strict=True))]
    assert np.array_equal(index.find(np.array(mixed, dtype=object)), expected)


def test_a_hash_collision_is_never_a_match() -> None:
    # Position 1 alone tells these keys apart, so only it is hashed; every query below hashes like
    # a key but differs elsewhere, and must miss.
    keys = [b"xa", b"xb", b"xc"]
    vector = _VectorIndex.build([k.decode() for k in keys], [0, 1, 2])
    assert vector is not None and vector.columns.tolist() == [1]
    index = StringIndex(keys)
    queries = np.array(["ya", "xb", "xbz", "b", "xc"] * VECTOR_MIN)
    assert index.find(queries).tolist() == [MISS, 1, MISS, MISS, 2] * VECTOR_MIN


def test_a_lone_surrogate_is_refused_as_before() -> None:
    index = StringIndex([b"a"])
    with pytest.raises(UnicodeEncodeError):  # TF cannot take it either: it is no UTF-8 text
        index.find(np.array(["\ud800"] * VECTOR_MIN))


def test_hash_table_values_and_default() -> None:
    table = HashTable(np.array([b"a", b"b", "é".encode()], dtype=object), torch.tensor([5, 6, 7]))
    tokens = np.array(["é", "zz", "a", ""] * VECTOR_MIN)
    out = table.find(tokens, torch.tensor(-3))
    assert out.dtype == torch.int64 and out.tolist() == [7, -3, 5, -3] * VECTOR_MIN
    assert table.find(tokens, torch.tensor(9)).tolist()[:4] == [7, 9, 5, 9]  # a new default
    table.values.add_(10)  # values changed in place: seen
    assert table.find(tokens[:4], torch.tensor(0)).tolist() == [17, 0, 15, 0]


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_a_tf_static_hash_table(tf: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tokens = [t.encode("utf-8", "surrogateescape") for t in _random_tokens(rng, 500)]
    keys = list(dict.fromkeys([*tokens, b"\xff\xfe", b"\x80"]))  # TF refuses duplicate keys
    values = rng.permutation(len(keys)).astype(np.int64) + 1
    tf_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(np.array(keys, dtype=object)), tf.constant(values)
        ),
        default_value=-7,
    )
    table = HashTable(np.array(keys, dtype=object), torch.from_numpy(values))
    known = [keys[i].decode("utf-8", "surrogateescape") for i in rng.integers(0, len(keys), 600)]
    tokens = np.array(known + _random_tokens(rng, 600, max_len=12))
    as_bytes = [t.encode("utf-8", "surrogateescape") for t in tokens.tolist()]
    expected = tf_table.lookup(tf.constant(np.array(as_bytes, dtype=object))).numpy()
    assert (expected == -7).any() and (expected > 0).any()
    for batch in (tokens, np.array(as_bytes, dtype=object), tokens[:3]):
        got = table.find(batch, torch.tensor(-7)).numpy()
        assert np.array_equal(got, expected[: len(got)])
