"""IntegerLookup: Keras 2 index layout, floormod OOV hashing, adapt order, errors, TF parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from torchrs.preprocessing import integer_lookup
from torchrs.preprocessing.integer_lookup import IntegerLookup

VOCAB = [12, 36, 1138, 42]


# --------------------------------------------------------------------------------------------
# Index layout (hand-derived).
# --------------------------------------------------------------------------------------------


def test_default_layout_oov_first():
    # mask_token=None: OOV -> 0, vocab[i] -> i + 1 (12=1, 36=2, 1138=3, 42=4; 1000 is OOV).
    layer = IntegerLookup(vocabulary=VOCAB)
    out = layer(torch.tensor([[12, 1138, 42], [42, 1000, 36]]))
    assert out.dtype == torch.int64
    assert out.tolist() == [[1, 3, 4], [4, 0, 2]]
    assert layer.get_vocabulary() == [-1, *VOCAB]
    assert layer.get_vocabulary(include_special_tokens=False) == VOCAB
    assert layer.vocabulary_size() == 5


def test_mask_layout_and_floormod_oov_buckets():
    # mask 0 -> 0; 3 OOV slots 1..3; vocab 5 -> 4, -3 -> 5, 100 -> 6.
    # OOV x -> 1 + floormod(x, 3): -7 -> 1 + 2 = 3, -8 -> 1 + 1 = 2, 11 -> 3, 12 -> 1, 13 -> 2.
    layer = IntegerLookup(vocabulary=[5, -3, 100], num_oov_indices=3, mask_token=0)
    out = layer(torch.tensor([5, -3, 100, 0, -7, -8, 11, 12, 13]))
    assert out.tolist() == [4, 5, 6, 0, 3, 2, 3, 1, 2]
    assert layer.get_vocabulary() == [0, -1, -1, -1, 5, -3, 100]


def test_keras_docstring_two_oov_slots():
    # 37 % 2 = 1 and 1000 % 2 = 0; vocab shifted by 2.
    layer = IntegerLookup(vocabulary=VOCAB, num_oov_indices=2)
    assert layer([[12, 1138, 42], [37, 1000, 36]]).tolist() == [[2, 4, 5], [1, 0, 3]]


def test_num_oov_zero():
    layer = IntegerLookup(vocabulary=VOCAB, num_oov_indices=0)
    assert layer([12, 42]).tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"num_oov_indices=0.*OOV values \[7, 99\]"):
        layer([12, 99, 7, 7])


def test_input_containers_keep_shape():
    layer = IntegerLookup(vocabulary=VOCAB)
    assert layer(36).shape == () and int(layer(36)) == 2
    assert layer(np.array([[42], [5]], dtype=np.int32)).tolist() == [[4], [0]]
    assert layer((12, 36)).tolist() == [1, 2]
    assert layer(torch.tensor([1138], dtype=torch.int16)).tolist() == [3]
    assert layer([]).shape == (0,)


def test_int32_vocabulary_dtype_wraps_like_tf_cast():
    # 2**32 + 5 cast to int32 is 5 (two's complement truncation), so it finds vocab entry 5.
    layer = IntegerLookup(vocabulary=[5, -3], vocabulary_dtype="int32")
    assert layer(torch.tensor([5, 2**32 + 5, -3])).tolist() == [1, 1, 2]
    inverted = IntegerLookup(vocabulary=[5, -3], vocabulary_dtype="int32", invert=True)
    assert inverted([1, 2, 9]).dtype == torch.int32
    with pytest.raises(ValueError, match="do not fit vocabulary_dtype 'int32'"):
        IntegerLookup(vocabulary=[2**40], vocabulary_dtype="int32")


# --------------------------------------------------------------------------------------------
# adapt.
# --------------------------------------------------------------------------------------------


def test_adapt_keras_docstring_example():
    # Every value once except 42 (twice); ties in descending numeric order.
    layer = IntegerLookup()
    layer.adapt(np.array([[12, 1138, 42], [42, 1000, 36]]))
    assert layer.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    assert layer(torch.tensor([[12, 1138, 42], [42, 1000, 36]])).tolist() == [[5, 2, 1], [1, 3, 4]]


def test_adapt_drops_oov_token_and_caps_with_max_tokens():
    # Counts: -1 x3 (the OOV token, removed), 3/1/2 x2 (tie -> 3, 2, 1), 7 x1.
    # max_tokens=4 minus 1 OOV slot keeps 3 tokens.
    layer = IntegerLookup(max_tokens=4)
    layer.adapt(torch.tensor([3, 3, 1, 1, 2, 2, -1, -1, -1, 7]))
    assert layer.get_vocabulary() == [-1, 3, 2, 1]
    negatives = IntegerLookup(mask_token=0)
    negatives.adapt([[-5, -5, -2], [0, 0, -9]])  # mask dropped; ties -2 > -9
    assert negatives.get_vocabulary() == [0, -1, -5, -2, -9]


def test_adapt_tf_idf_rows_are_documents():
    # Rows [1,1,2], [1,3], [3]: counts 1->3, 3->2, 2->1, so the order is [1, 3, 2];
    # documents containing them: 2, 2 and 1 of 3 -> idf = log(1 + 3/3), log(1 + 3/3), log(1 + 3/2).
    layer = IntegerLookup(output_mode="tf_idf")
    layer.adapt([[1, 1, 2], [1, 3], [3]])
    assert layer.get_vocabulary() == [-1, 1, 3, 2]
    idf = np.log([1 + 3 / 3, 1 + 3 / 3, 1 + 3 / 2]).astype(np.float32)
    expected = np.concatenate([[idf.mean()], idf]).astype(np.float32)
    np.testing.assert_allclose(layer.idf_weights.numpy(), expected, rtol=1e-6)
    # [2, 2, 9]: 2 counted twice, 9 is OOV -> [idf_oov, 0, 0, 2 idf_2].
    np.testing.assert_allclose(
        layer([2, 2, 9]).numpy(), [expected[0], 0, 0, 2 * expected[3]], rtol=1e-6
    )


# --------------------------------------------------------------------------------------------
# invert, output modes, serialisation.
# --------------------------------------------------------------------------------------------


def test_invert_maps_indices_back():
    layer = IntegerLookup(vocabulary=[5, -3, 100], invert=True, mask_token=0)
    # 0 -> mask 0, 1 -> OOV -1, 2.. -> vocab, out of range -> -1.
    assert layer([0, 1, 2, 3, 4, 5, -1]).tolist() == [0, -1, 5, -3, 100, -1, -1]
    plain = IntegerLookup(vocabulary=VOCAB, invert=True)
    forward = IntegerLookup(vocabulary=VOCAB)
    data = torch.tensor([[12, 1138, 42], [42, 1000, 36]])
    assert plain(forward(data)).tolist() == [[12, 1138, 42], [42, -1, 36]]


def test_output_modes():
    data = [[12, 1138, 42, 42], [42, 7, 36, 7]]
    assert IntegerLookup(vocabulary=VOCAB, output_mode="multi_hot")(data).tolist() == [
        [0, 1, 0, 1, 1],
        [1, 0, 1, 0, 1],
    ]
    count = IntegerLookup(vocabulary=VOCAB, output_mode="count")(data)
    assert count.dtype == torch.float32
    assert count.tolist() == [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]
    one_hot = IntegerLookup(vocabulary=VOCAB, output_mode="one_hot")([12, 7])
    assert one_hot.tolist() == [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]]
    # Mask dropped outside "int" mode; OOV slots start at 0: 7 % 2 = 1, 8 % 2 = 0.
    masked = IntegerLookup(
        vocabulary=[5, 6], num_oov_indices=2, output_mode="multi_hot", mask_token=0
    )
    assert masked([[5, 0, 7, 8]]).tolist() == [[1, 1, 1, 0]]
    # tf_idf: OOV weight = mean(1, 2, 3, 4) = 2.5; padded to 7 columns.
    tfidf = IntegerLookup(
        vocabulary=VOCAB,
        output_mode="tf_idf",
        idf_weights=[1.0, 2.0, 3.0, 4.0],
        max_tokens=7,
        pad_to_max_tokens=True,
    )
    assert tfidf([42, 42, 5]).tolist() == [2.5, 0, 0, 0, 8, 0, 0]
    ragged = IntegerLookup(vocabulary=VOCAB, output_mode="count")
    assert ragged([[12], [36, 36, 0], []]).tolist() == [[0, 1, 0, 0, 0], [1, 0, 2, 0, 0], [0] * 5]


def test_vocabulary_file(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("5\n -3\n+7\n")  # parsed like TF's safe_strto64
    layer = IntegerLookup(vocabulary=str(path))
    assert layer.get_vocabulary() == [-1, 5, -3, 7]
    assert layer([5, -3, 7, 8]).tolist() == [1, 2, 3, 0]
    bad = tmp_path / "bad.txt"
    bad.write_text("5\nfive\n")
    with pytest.raises(ValueError, match=r"line 1 .*'five'.* is not an integer"):
        IntegerLookup(vocabulary=str(bad))


def test_config_and_state_dict_round_trip():
    layer = IntegerLookup(vocabulary=np.array([10, 20, 30]), mask_token=0, num_oov_indices=2)
    config = json.loads(json.dumps(layer.get_config()))
    assert config["vocabulary"] == [10, 20, 30] and config["mask_token"] == 0
    assert config["oov_token"] == -1 and config["vocabulary_dtype"] == "int64"
    again = IntegerLookup.from_config(config)
    assert again([10, 0, 99, 30]).tolist() == layer([10, 0, 99, 30]).tolist()

    adapted = IntegerLookup(output_mode="count")
    adapted.adapt([4, 4, 9, -2])
    state = adapted.state_dict()
    assert set(state) == {"tokens"} and state["tokens"].tolist() == [4, 9, -2]
    fresh = IntegerLookup.from_config(adapted.get_config())
    fresh.load_state_dict(state)
    assert fresh.get_vocabulary() == [-1, 4, 9, -2]
    assert torch.equal(fresh([[4, 9, 5]]), adapted([[4, 9, 5]]))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        fresh.load_state_dict({"tokens": state["tokens"], "junk": torch.zeros(1)})


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


def test_errors():
    with pytest.raises(ValueError, match=r"repeated term.*\[12\]"):
        IntegerLookup(vocabulary=[12, 36, 12])
    with pytest.raises(ValueError, match="reserved mask token"):
        IntegerLookup(vocabulary=[12, 0], mask_token=0)
    with pytest.raises(ValueError, match="reserved OOV token"):
        IntegerLookup(vocabulary=[12, -1], invert=True)
    assert IntegerLookup(vocabulary=[12, -1])([-1]).tolist() == [2]  # allowed without invert
    with pytest.raises(ValueError, match="Unknown value for `output_mode`"):
        IntegerLookup(output_mode="ints")
    with pytest.raises(ValueError, match="`sparse=True` is not supported"):
        IntegerLookup(output_mode="count", sparse=True)
    with pytest.raises(ValueError, match=r"`num_oov_indices` must be .*-2"):
        IntegerLookup(num_oov_indices=-2)
    with pytest.raises(ValueError, match=r"`vocabulary_dtype` must be an integer dtype.*'float32'"):
        IntegerLookup(vocabulary_dtype="float32")
    with pytest.raises(TypeError, match="`mask_token` must be an integer"):
        IntegerLookup(mask_token=0.5)
    with pytest.raises(TypeError, match="1-D sequence of integers"):
        IntegerLookup(vocabulary=[1.5, 2.5])
    with pytest.raises(RuntimeError, match="has no vocabulary yet"):
        IntegerLookup()([1])
    with pytest.raises(ValueError, match="expected input data to be non-empty"):
        IntegerLookup().adapt(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="Cannot adapt IntegerLookup layer after setting a static"):
        IntegerLookup(vocabulary=VOCAB).adapt([1])
    layer = IntegerLookup(vocabulary=VOCAB)
    with pytest.raises(TypeError, match=r"torch tensor of dtype torch\.float32"):
        layer(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="NumPy dtype <U1"):
        layer(["a"])
    with pytest.raises(TypeError, match="got the bool True"):
        layer(True)
    with pytest.raises(TypeError, match="ragged input"):
        layer([[1], [2, 3]])


@pytest.mark.parametrize("num_oov", [0, 1, 3])
def test_direct_address_table_agrees_with_binary_search(monkeypatch, num_oov):
    # Ids dense enough for the direct-address table; the same layer built with the table disabled searches the
    # sorted vocabulary instead. Inputs span the table's edges and int64's extremes.
    generator = torch.Generator().manual_seed(num_oov)
    vocab = torch.randperm(200_000, generator=generator)[:50_000] - 100_000
    low, high = int(vocab.min()), int(vocab.max())
    inputs = torch.cat(
        [
            torch.randint(-150_000, 150_000, (100_000,), generator=generator),
            torch.tensor([low - 1, low, high, high + 1, -(2**63), 2**63 - 1]),
        ]
    )
    if num_oov == 0:
        inputs = vocab[torch.randint(0, len(vocab), (100_000,), generator=generator)]
    dense = IntegerLookup(
        vocabulary=vocab, num_oov_indices=num_oov, mask_token=low - 1 if num_oov else None
    )
    monkeypatch.setattr(integer_lookup, "DENSE_TABLE_SLOTS_PER_TOKEN", 0)
    monkeypatch.setattr(integer_lookup, "DENSE_TABLE_MIN_SLOTS", 0)
    searched = IntegerLookup(
        vocabulary=vocab, num_oov_indices=num_oov, mask_token=low - 1 if num_oov else None
    )
    assert dense._dense_slots is not None and searched._dense_slots is None
    torch.testing.assert_close(dense(inputs), searched(inputs), rtol=0, atol=0)
    position = {int(v): i for i, v in enumerate(vocab[:1000])}
    probe = vocab[:1000][torch.randint(0, 1000, (50,), generator=generator)]
    start = num_oov + (1 if num_oov else 0)  # mask slot, then OOV slots
    assert dense(probe).tolist() == [start + position[int(v)] for v in probe]


# --------------------------------------------------------------------------------------------
# Parity with tf.keras.layers.IntegerLookup: identical integers / float32 outputs.
# --------------------------------------------------------------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_oov", [0, 1, 3])
@pytest.mark.parametrize("mask_token", [None, 0])
@pytest.mark.parametrize("spread", [1, 1_000_003], ids=["direct-address", "binary-search"])
def test_int_and_invert_match_keras(tf, seed, num_oov, mask_token, spread):
    rng = np.random.default_rng(seed * 10 + num_oov)
    pool = rng.choice(np.arange(-10_000, 10_000), size=80, replace=False)
    pool = pool[pool != 0] * spread
    vocab, unseen = pool[:50], pool[50:]
    kwargs = {"vocabulary": vocab.tolist(), "num_oov_indices": num_oov, "mask_token": mask_token}
    candidates = np.concatenate([vocab] + ([] if num_oov == 0 else [unseen, [-1, -(2**40)]]))
    if mask_token is not None:
        candidates = np.append(candidates, mask_token)
    data = rng.choice(candidates, size=(6, 8))
    ours = IntegerLookup(**kwargs)(torch.from_numpy(data))
    theirs = tf.keras.layers.IntegerLookup(**kwargs)(tf.constant(data, tf.int64)).numpy()
    np.testing.assert_array_equal(ours.numpy(), theirs)
    assert IntegerLookup(**kwargs).get_vocabulary() == [
        int(t) for t in tf.keras.layers.IntegerLookup(**kwargs).get_vocabulary()
    ]
    indices = rng.integers(-2, len(vocab) + 6, size=(4, 5))
    inv = IntegerLookup(invert=True, **kwargs)(indices)
    tf_inv = tf.keras.layers.IntegerLookup(invert=True, **kwargs)(tf.constant(indices, tf.int64))
    np.testing.assert_array_equal(inv.numpy(), tf_inv.numpy())


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("output_mode", ["one_hot", "multi_hot", "count", "tf_idf"])
def test_output_modes_match_keras(tf, seed, output_mode):
    rng = np.random.default_rng(200 + seed)
    vocab = rng.choice(np.arange(-500, 500), size=25, replace=False)
    vocab = vocab[vocab != 7]
    kwargs = {
        "vocabulary": vocab.tolist(),
        "output_mode": output_mode,
        "mask_token": 7,
        "num_oov_indices": 3,
    }
    if output_mode == "tf_idf":
        kwargs["idf_weights"] = rng.uniform(0.1, 3.0, size=len(vocab)).tolist()
    if seed == 1:
        kwargs.update(max_tokens=40, pad_to_max_tokens=True)
    width = 1 if output_mode == "one_hot" else 10
    data = rng.choice(np.concatenate([vocab, [7, 7, -999, 1234, -3]]), size=(6, width))
    ours = IntegerLookup(**kwargs)(data)
    theirs = tf.keras.layers.IntegerLookup(**kwargs)(tf.constant(data, tf.int64)).numpy()
    np.testing.assert_array_equal(ours.numpy(), theirs)  # float32 count * weight: exact


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapt_with_many_ties_matches_keras(tf, seed):
    rng = np.random.default_rng(seed)
    pool = np.append(rng.choice(np.arange(-300, 300), size=60, replace=False), [-1, 0])
    data = np.repeat(pool, rng.integers(1, 4, size=pool.shape[0]))  # counts 1..3: many ties
    rng.shuffle(data)
    for kwargs in (
        {},
        {"max_tokens": 25, "mask_token": 0},
        {"num_oov_indices": 2, "oov_token": -7},
    ):
        ours = IntegerLookup(**kwargs)
        ours.adapt(data)
        theirs = tf.keras.layers.IntegerLookup(**kwargs)
        theirs.adapt(data)
        assert ours.get_vocabulary() == [int(t) for t in theirs.get_vocabulary()]
        np.testing.assert_array_equal(
            ours(data[:64]).numpy(), theirs(tf.constant(data[:64])).numpy()
        )


@pytest.mark.tf
def test_adapt_tf_idf_matches_keras(tf):
    rng = np.random.default_rng(5)
    data = rng.integers(-6, 6, size=200)
    ours = IntegerLookup(output_mode="tf_idf", mask_token=0)
    ours.adapt(data, batch_size=20)  # 1-D batches: each batch of 20 is a document
    theirs = tf.keras.layers.IntegerLookup(output_mode="tf_idf", mask_token=0)
    theirs.adapt(data, batch_size=20)
    assert ours.get_vocabulary() == [int(t) for t in theirs.get_vocabulary()]
    # Token weights identical (float64 log cast to float32); the OOV weight is a float32 mean
    # summed in a different order (TF reduce_mean vs torch.mean): a few ulps, rtol 1e-6.
    np.testing.assert_array_equal(ours.idf_weights.numpy()[1:], theirs.idf_weights.numpy()[1:])
    np.testing.assert_allclose(ours.idf_weights.numpy(), theirs.idf_weights.numpy(), rtol=1e-6)


@pytest.mark.tf
def test_config_keys_match_keras(tf):
    kwargs = {
        "vocabulary": [3, 4],
        "mask_token": 0,
        "num_oov_indices": 2,
        "output_mode": "multi_hot",
    }
    ours = IntegerLookup(**kwargs).get_config()
    theirs = tf.keras.layers.IntegerLookup(**kwargs).get_config()
    assert set(ours) == set(theirs)
    for key in set(theirs) - {"name", "vocabulary"}:
        assert ours[key] == theirs[key], key
    rebuilt = IntegerLookup.from_config(theirs)
    assert rebuilt.get_vocabulary() == IntegerLookup(**kwargs).get_vocabulary()


@pytest.mark.tf
def test_accepts_tensorflow_tensors(tf):
    layer = IntegerLookup()
    layer.adapt(tf.data.Dataset.from_tensor_slices(np.array([4, 4, 9])).batch(2))
    assert layer.get_vocabulary() == [-1, 4, 9]
    assert layer(tf.constant([[9, 4, 1]])).tolist() == [[2, 1, 0]]
