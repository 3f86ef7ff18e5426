"""StringLookup: Keras 2 index layout, adapt order, output modes, errors, and parity with TF."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from torchrs.preprocessing._farmhash import fingerprint64, fingerprint64_many, hash_bucket_fast
from torchrs.preprocessing.string_lookup import StringLookup

VOCAB = ["a", "b", "c", "d"]


# --------------------------------------------------------------------------------------------
# Index layout (hand-derived).
# --------------------------------------------------------------------------------------------


def test_default_layout_oov_first():
    # mask_token=None: OOV -> 0, vocab[i] -> i + 1 ("a"=1, "b"=2, "c"=3, "d"=4, "z" is OOV).
    layer = StringLookup(vocabulary=VOCAB)
    out = layer([["a", "c", "d"], ["d", "z", "b"]])
    assert out.dtype == torch.int64
    assert out.tolist() == [[1, 3, 4], [4, 0, 2]]
    assert layer.vocabulary_size() == 5
    assert layer.get_vocabulary() == ["[UNK]", "a", "b", "c", "d"]
    assert layer.get_vocabulary(include_special_tokens=False) == VOCAB


def test_mask_layout_mask_zero_oov_one():
    # mask "" -> 0, OOV -> 1, vocab from 2: "a"=2 ... "d"=5.
    layer = StringLookup(vocabulary=VOCAB, mask_token="")
    assert layer(["", "a", "q", "d"]).tolist() == [0, 2, 1, 5]
    assert layer.get_vocabulary() == ["", "[UNK]", "a", "b", "c", "d"]


def test_num_oov_zero_vocab_starts_at_zero():
    layer = StringLookup(vocabulary=VOCAB, num_oov_indices=0)
    assert layer(["a", "d"]).tolist() == [0, 3]
    with pytest.raises(ValueError, match=r"num_oov_indices=0.*OOV values \['zz'\]"):
        layer(["a", "zz"])


def test_multiple_oov_hashes_with_farmhash():
    # Keras docstring example: with 2 OOV slots "m" -> 0 and "z" -> 1, vocab shifted by 2.
    layer = StringLookup(vocabulary=VOCAB, num_oov_indices=2)
    assert layer([["a", "c", "d"], ["m", "z", "b"]]).tolist() == [[2, 4, 5], [0, 1, 3]]
    # The slot is Fingerprint64(utf8) % 3, shifted by 1 when a mask takes index 0.
    masked = StringLookup(vocabulary=VOCAB, num_oov_indices=3, mask_token="")
    oov = ["m", "z", "é", ""]
    expected = [0 if t == "" else 1 + fingerprint64(t.encode()) % 3 for t in oov]
    assert masked(oov).tolist() == expected


def test_str_and_utf8_bytes_are_the_same_token():
    layer = StringLookup(vocabulary=["é", b"x"])
    assert layer(["é", b"\xc3\xa9", "x", b"x"]).tolist() == [1, 1, 2, 2]
    assert layer(np.array([b"\xc3\xa9", b"x"], dtype=object)).tolist() == [1, 2]


def test_input_containers_and_shapes():
    layer = StringLookup(vocabulary=VOCAB)
    assert layer("b").shape == () and int(layer("b")) == 2
    assert layer(b"c").tolist() == 3
    assert layer(("a", "d")).tolist() == [1, 4]
    assert layer(np.array([["a"], ["zz"]])).tolist() == [[1], [0]]  # "U" array
    assert layer(np.array([b"a", b"d"])).tolist() == [1, 4]  # "S" array
    assert layer(np.array([[["a", "b"]], [["c", "q"]]], dtype=object)).shape == (2, 1, 2)
    assert layer([]).shape == (0,)


def test_non_utf8_and_newline_tokens_round_trip():
    tokens = [b"\xff\xfe", "line\nbreak", "tab\tx", "  "]
    layer = StringLookup(vocabulary=tokens)
    assert layer([b"\xff\xfe", "line\nbreak", "  ", " "]).tolist() == [1, 2, 4, 0]
    # get_vocabulary decodes invalid UTF-8 with surrogateescape; feeding it back is lossless.
    again = StringLookup(vocabulary=layer.get_vocabulary())
    assert again.get_vocabulary() == layer.get_vocabulary()
    assert again([b"\xff\xfe"]).tolist() == [1]


@pytest.mark.parametrize(("num_oov", "mask"), [(1, None), (3, None), (2, ""), (0, "zz")])
def test_arrow_and_dict_lookups_agree(num_oov: int, mask: str | None) -> None:
    # All-str and all-bytes batches go through Arrow's hash table; mixed str / bytes, surrogate-escaped
    # str (non-UTF-8 tokens) and None go through the dict. Every container must give the same indices:
    # the mask maps to 0, OOV tokens hash to the same slot either way.
    vocab = ["a", "m", "é", b"\xff\xfe".decode("utf-8", "surrogateescape"), "line\nbreak"]
    layer = StringLookup(vocabulary=vocab, num_oov_indices=num_oov, mask_token=mask)
    tokens = ["a", "é", "m", "line\nbreak", "\udcff\udcfe", "q", "zz", "", "a"]
    if num_oov == 0:
        tokens = [t for t in tokens if t in vocab or t in ("\udcff\udcfe", mask)]
    as_bytes = [t.encode("utf-8", "surrogateescape") for t in tokens]
    utf8_only = [t for t in tokens if t != "\udcff\udcfe"]
    expected = np.fromiter(
        map(layer._table.get, as_bytes, [layer._oov_start_index()] * len(as_bytes)), np.int64
    )
    if num_oov > 1:
        oov = [i for i, b in enumerate(as_bytes) if b not in layer._table]
        expected[oov] = (
            hash_bucket_fast([as_bytes[i] for i in oov], num_oov) + layer._oov_start_index()
        )
    assert layer._arrow_indices(as_bytes) is not None  # the Arrow path is taken for these two
    assert layer._arrow_indices(utf8_only) is not None
    assert layer._arrow_indices(tokens) is None  # a lone surrogate: the dict path
    assert layer(as_bytes).tolist() == expected.tolist()
    assert layer(tokens).tolist() == expected.tolist()
    mixed = [b if i % 2 else t for i, (t, b) in enumerate(zip(tokens, as_bytes, strict=True))]
    assert layer(mixed).tolist() == expected.tolist()
    keep = [i for i, t in enumerate(tokens) if t != "\udcff\udcfe"]
    assert layer(utf8_only).tolist() == expected[keep].tolist()
    assert layer(np.array(utf8_only)).tolist() == expected[keep].tolist()  # "U" array
    assert layer(np.array(as_bytes, dtype=object)).tolist() == expected.tolist()
    with pytest.raises(TypeError, match="StringLookup inputs must be str or bytes; found NoneType"):
        layer(["a", None])


# --------------------------------------------------------------------------------------------
# adapt.
# --------------------------------------------------------------------------------------------


def test_adapt_orders_by_count_then_reverse_bytes():
    # Counts: "" 2, "[UNK]" 2 (the OOV token, dropped), every other token 1. Ties go in
    # descending byte order: "é" (0xC3 0xA9) > "z" > "e" > "b" > "a" > "B".
    layer = StringLookup()
    layer.adapt(np.array(["b", "B", "a", "é", "e", "", "", "[UNK]", "[UNK]", "z"]))
    assert layer.get_vocabulary() == ["[UNK]", "", "é", "z", "e", "b", "a", "B"]


def test_adapt_keras_docstring_example():
    layer = StringLookup()
    layer.adapt([["a", "c", "d"], ["d", "z", "b"]])
    assert layer.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    assert layer([["a", "c", "d"], ["d", "z", "b"]]).tolist() == [[5, 3, 1], [1, 2, 4]]


def test_adapt_max_tokens_counts_special_slots():
    # max_tokens=4 with a mask and one OOV slot leaves 2 learned tokens: "c" (3) and "b" (2).
    layer = StringLookup(max_tokens=4, mask_token="")
    layer.adapt(["c", "c", "c", "b", "b", "a", "", "", "", ""])
    assert layer.get_vocabulary() == ["", "[UNK]", "c", "b"]
    assert layer(["a", "b", ""]).tolist() == [1, 3, 0]


def test_adapt_batches_iterables_and_steps():
    data = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    capped = StringLookup()
    capped.adapt(np.array(data), batch_size=4, steps=1)  # only the first batch of 4 "a"
    assert capped.get_vocabulary() == ["[UNK]", "a"]
    from_generator = StringLookup()
    from_generator.adapt(iter([["a", "a"], ["b"]]))
    assert from_generator.get_vocabulary() == ["[UNK]", "a", "b"]
    readapted = StringLookup()
    readapted.adapt(["x"])
    readapted.adapt(["y", "y", "z"])  # adapt starts over
    assert readapted.get_vocabulary() == ["[UNK]", "y", "z"]


def test_adapt_tf_idf_one_dim_batches_are_documents():
    # 40 "a" then 3 "b", batch_size 32 -> 2 documents: "a" in both, "b" in the second.
    # idf("a") = log(1 + 2/3), idf("b") = log(1 + 2/2); the OOV slot gets their mean.
    layer = StringLookup(output_mode="tf_idf")
    layer.adapt(np.array(["a"] * 40 + ["b"] * 3))
    a, b = np.log(1 + 2 / 3), np.log(1 + 2 / 2)
    expected = np.array([(np.float32(a) + np.float32(b)) / 2, a, b], dtype=np.float32)
    np.testing.assert_allclose(layer.idf_weights.numpy(), expected, rtol=1e-6)
    # A row of the output is count * idf: "a", "b", "b", "q" -> [idf_oov, idf_a, 2 idf_b].
    np.testing.assert_allclose(
        layer(["a", "b", "b", "q"]).numpy(), expected * np.array([1, 1, 2]), rtol=1e-6
    )


def test_adapt_tf_idf_ragged_rows_and_padding():
    # 3 documents; "a" in docs 0,1 -> log(1+3/3); "c" in 1,2 -> log(1+3/3); "b" in 0 -> log(1+3/2).
    layer = StringLookup(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    layer.adapt([["a", "a", "b"], ["a", "c"], ["c"]])
    assert layer.get_vocabulary() == ["[UNK]", "a", "c", "b"]
    idf = np.log([2.0, 2.0, 2.5]).astype(np.float32)
    expected = np.concatenate([[idf.mean()], idf, [0.0, 0.0]]).astype(np.float32)
    np.testing.assert_allclose(layer.idf_weights.numpy(), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# invert and output modes.
# --------------------------------------------------------------------------------------------


def test_invert_maps_indices_back():
    layer = StringLookup(vocabulary=VOCAB, invert=True)
    out = layer([[1, 3, 4], [4, 0, 2]])
    assert out.dtype == object
    assert out.tolist() == [["a", "c", "d"], ["d", "[UNK]", "b"]]
    # With a mask, 0 -> mask, 1 -> OOV; out-of-range and negative indices -> OOV.
    masked = StringLookup(vocabulary=VOCAB, mask_token="M", invert=True)
    assert masked(torch.tensor([0, 1, 2, 5, 6, -1])).tolist() == [
        "M",
        "[UNK]",
        "a",
        "d",
        "[UNK]",
        "[UNK]",
    ]


def test_output_modes_keras_docstring_values():
    data = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]
    one_hot = StringLookup(vocabulary=VOCAB, output_mode="one_hot")(["a", "b", "c", "d", "z"])
    assert one_hot.tolist() == np.eye(5)[[1, 2, 3, 4, 0]].tolist()
    multi = StringLookup(vocabulary=VOCAB, output_mode="multi_hot")(data)
    assert multi.tolist() == [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]]
    count = StringLookup(vocabulary=VOCAB, output_mode="count")(data)
    assert count.dtype == torch.float32
    assert count.tolist() == [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]]
    # tf_idf: OOV weight = mean(0.25, 0.75, 0.6, 0.4) = 0.5; row 2 has two "z" -> 1.0.
    tfidf = StringLookup(output_mode="tf_idf")
    tfidf.set_vocabulary(VOCAB, idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(
        tfidf(data).numpy(), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6
    )
    # Explicit OOV weight when the vocabulary starts with the OOV token.
    explicit = StringLookup(output_mode="tf_idf")
    explicit.set_vocabulary(["[UNK]", *VOCAB], idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(explicit(data).numpy()[1], [1.8, 0, 0.75, 0, 0.4], rtol=1e-6)


def test_encoding_shapes_mask_dropped_and_padding():
    layer = StringLookup(vocabulary=["a", "b"], output_mode="one_hot", mask_token="")
    assert layer("a").tolist() == [0, 1, 0]  # scalar -> (depth,)
    assert layer([["a"], ["b"]]).shape == (2, 3)  # trailing axis of 1 is encoded in place
    # (1,) has a trailing axis of 1 too, so it encodes to (depth,); the mask takes no slot.
    assert layer([""]).tolist() == [0, 0, 0]
    assert layer(["", "a"]).tolist() == [[0, 0, 0], [0, 1, 0]]
    counts = StringLookup(vocabulary=["a", "b"], output_mode="count", mask_token="")
    assert counts.get_vocabulary() == ["[UNK]", "a", "b"]
    assert counts([["a", ""], ["", "q"]]).tolist() == [[0, 1, 0], [1, 0, 0]]
    padded = StringLookup(
        vocabulary=["a", "b"], output_mode="multi_hot", max_tokens=5, pad_to_max_tokens=True
    )
    assert padded(["b", "q"]).tolist() == [1, 0, 1, 0, 0]
    ints = StringLookup(vocabulary=["a", "b"], max_tokens=6, pad_to_max_tokens=True)
    assert ints([["a", "b", "z"]]).tolist() == [[1, 2, 0]]
    ragged = StringLookup(vocabulary=["a", "b"], output_mode="count")
    assert ragged([["a"], ["b", "b", "q"], []]).tolist() == [[0, 1, 0], [1, 0, 2], [0, 0, 0]]


# --------------------------------------------------------------------------------------------
# Vocabulary sources and serialisation.
# --------------------------------------------------------------------------------------------


def test_vocabulary_with_special_tokens_in_front_is_stripped():
    assert StringLookup(vocabulary=["", "[UNK]", "a"], mask_token="").get_vocabulary() == [
        "",
        "[UNK]",
        "a",
    ]
    two = StringLookup(vocabulary=["[UNK]", "[UNK]", "a"], num_oov_indices=2)
    assert two.get_vocabulary() == ["[UNK]", "[UNK]", "a"]
    # Not the exact special prefix: "[UNK]" is then an ordinary token (Keras does the same).
    odd = StringLookup(vocabulary=["[UNK]", "a"], num_oov_indices=2)
    assert odd.get_vocabulary() == ["[UNK]", "[UNK]", "[UNK]", "a"]
    assert StringLookup(vocabulary=np.array(["a", "[UNK]"]))(["[UNK]", "q"]).tolist() == [2, 0]


def test_vocabulary_file_reads_like_tensorflow(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"a\r\n b \nc\n")  # "\r\n" ends a line, other whitespace is kept
    layer = StringLookup(vocabulary=str(path))
    assert layer.get_vocabulary() == ["[UNK]", "a", " b ", "c"]
    assert layer(["a", "b", " b ", "c"]).tolist() == [1, 0, 2, 3]
    assert layer.get_config()["vocabulary"] == str(path)
    # A file is the table itself: a leading "[UNK]" line is a token, as in Keras.
    unk = tmp_path / "unk.txt"
    unk.write_text("[UNK]\na\n")
    assert StringLookup(vocabulary=unk)(["a", "[UNK]", "zz"]).tolist() == [2, 1, 0]
    blank = tmp_path / "blank.txt"
    blank.write_text("a\n\nb\n")
    with pytest.raises(ValueError, match="empty line found at line 1"):
        StringLookup(vocabulary=str(blank))
    dup = tmp_path / "dup.txt"
    dup.write_text("a\nb\na")
    with pytest.raises(ValueError, match=r"repeated term.*\['a'\]"):
        StringLookup(vocabulary=str(dup))
    with pytest.raises(ValueError, match="does not exist"):
        StringLookup(vocabulary=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="does not support loading a vocabulary from file"):
        StringLookup(output_mode="tf_idf").set_vocabulary(str(path), idf_weights=[1.0])


def test_config_is_json_and_round_trips():
    layer = StringLookup(vocabulary=["a", b"\xff", "é"], mask_token="", num_oov_indices=2)
    config = json.loads(json.dumps(layer.get_config()))
    assert config["vocabulary"] == ["a", "\udcff", "é"]
    assert config["vocabulary_size"] == 6 and config["encoding"] == "utf-8"
    assert "vocabulary_dtype" not in config
    again = StringLookup.from_config(config)
    assert again.get_vocabulary() == layer.get_vocabulary()
    inputs = ["a", b"\xff", "é", "?", ""]
    assert again(inputs).tolist() == layer(inputs).tolist()


def test_from_keras_config_with_base_layer_keys():
    keras_config = {
        "name": "movie_lookup",
        "trainable": True,
        "dtype": "int64",
        "batch_input_shape": [None],
        "invert": False,
        "max_tokens": None,
        "num_oov_indices": 1,
        "oov_token": "[UNK]",
        "mask_token": None,
        "output_mode": "int",
        "sparse": False,
        "pad_to_max_tokens": False,
        "idf_weights": None,
        "vocabulary": None,
        "vocabulary_size": 3,
        "encoding": "utf-8",
    }
    layer = StringLookup.from_config(keras_config)
    assert layer.name == "movie_lookup" and layer.vocabulary_size() == 1
    layer.set_vocabulary(["x", "y"])
    assert layer(["y"]).tolist() == [2]


def test_state_dict_carries_adapted_vocabulary_and_idf():
    layer = StringLookup(output_mode="tf_idf")
    layer.adapt([["a", "b\n", b"\xfe"], ["a", "c", "c"]])
    state = layer.state_dict()
    assert set(state) == {"token_bytes", "token_offsets", "idf_weights"}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    fresh = StringLookup.from_config(layer.get_config())
    fresh.load_state_dict(state)
    assert fresh.get_vocabulary() == layer.get_vocabulary()
    assert torch.equal(fresh.idf_weights, layer.idf_weights)
    data = [["a", b"\xfe", "zz"]]
    assert torch.equal(fresh(data), layer(data))
    with pytest.raises(RuntimeError, match="Missing key"):
        StringLookup().load_state_dict({"token_bytes": state["token_bytes"]})


def test_state_dict_nested_and_through_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    tower = torch.nn.Sequential(StringLookup(), torch.nn.Embedding(5, 2))
    tower[0].adapt(["b", "b", "a", "\n", b"\x00\xff"])
    save_file(tower.state_dict(), tmp_path / "tower.safetensors")
    state = load_file(tmp_path / "tower.safetensors")
    assert set(state) == {"0.token_bytes", "0.token_offsets", "1.weight"}
    fresh = torch.nn.Sequential(StringLookup(), torch.nn.Embedding(5, 2))
    fresh.load_state_dict(state)
    assert fresh[0].get_vocabulary() == tower[0].get_vocabulary()
    assert torch.equal(fresh(["b", b"\x00\xff", "?"]), tower(["b", b"\x00\xff", "?"]))


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


def test_vocabulary_errors():
    with pytest.raises(ValueError, match=r"repeated term.*\['a'\]"):
        StringLookup(vocabulary=["a", "b", "a"])
    with pytest.raises(ValueError, match="reserved mask token"):
        StringLookup(vocabulary=["a", ""], mask_token="")
    with pytest.raises(ValueError, match="reserved OOV token"):
        StringLookup(vocabulary=["a", "[UNK]"], invert=True)
    with pytest.raises(ValueError, match="empty vocabulary"):
        StringLookup(vocabulary=[])
    with pytest.raises(ValueError, match="only the special tokens"):
        StringLookup(vocabulary=["[UNK]"])
    with pytest.raises(
        ValueError, match=r"larger than the maximum vocab size.*4.*max_tokens`\) is 3"
    ):
        StringLookup(vocabulary=["a", "b", "c"], max_tokens=3)
    with pytest.raises(TypeError, match="entries must be str or bytes; got int 3"):
        StringLookup(vocabulary=["a", 3])
    with pytest.raises(ValueError, match="1-D array of str or bytes"):
        StringLookup(vocabulary=np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="`mask_token` must be a str or bytes"):
        StringLookup(mask_token=0)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"Unknown value for `output_mode`.*'nope'"):
        StringLookup(output_mode="nope")
    with pytest.raises(ValueError, match=r"`sparse=True` is not supported"):
        StringLookup(output_mode="multi_hot", sparse=True)
    with pytest.raises(
        ValueError, match=r"`num_oov_indices` must be .* Received: num_oov_indices=-1"
    ):
        StringLookup(num_oov_indices=-1)
    with pytest.raises(ValueError, match=r"`max_tokens` must be greater than 1.*max_tokens=1"):
        StringLookup(max_tokens=1)
    with pytest.raises(ValueError, match="`max_tokens` must be set"):
        StringLookup(pad_to_max_tokens=True)
    with pytest.raises(ValueError, match="must be `'int'` when `invert` is true"):
        StringLookup(output_mode="one_hot", invert=True)
    with pytest.raises(ValueError, match="`idf_weights` should only be set"):
        StringLookup(vocabulary=VOCAB, idf_weights=[1.0] * 4)
    with pytest.raises(ValueError, match="`idf_weights` must be set"):
        StringLookup(vocabulary=VOCAB, output_mode="tf_idf")
    with pytest.raises(
        ValueError, match=r"same length as `vocabulary`.*is 2, len\(vocabulary\) is 4"
    ):
        StringLookup(vocabulary=VOCAB, output_mode="tf_idf", idf_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="cannot be None"):
        StringLookup(invert=True, oov_token=None)
    with pytest.raises(TypeError, match=r"unexpected keyword arguments: \['colour'\]"):
        StringLookup(colour="red")
    assert StringLookup(output_mode="binary").output_mode == "multi_hot"  # deprecated alias


def test_call_and_adapt_errors():
    with pytest.raises(RuntimeError, match="has no vocabulary yet"):
        StringLookup()(["a"])
    with pytest.raises(RuntimeError, match="has no vocabulary yet"):
        StringLookup(output_mode="multi_hot", max_tokens=5, pad_to_max_tokens=True)(["a"])
    with pytest.raises(ValueError, match="expected input data to be non-empty"):
        StringLookup().adapt([])
    with pytest.raises(ValueError, match="found no tokens"):
        StringLookup().adapt(iter([[]]))
    with pytest.raises(ValueError, match="only mask/OOV tokens"):
        StringLookup().adapt(["[UNK]"])
    with pytest.raises(ValueError, match="Cannot adapt StringLookup layer after setting a static"):
        StringLookup(vocabulary=VOCAB).adapt(["a"])
    with pytest.raises(ValueError, match="Do not specify `batch_size`"):
        StringLookup().adapt(iter([["a"]]), batch_size=2)
    with pytest.raises(ValueError, match=r"rank 1 .* or 2"):
        StringLookup(output_mode="tf_idf").adapt(np.array([[["a"]]]))
    frozen = StringLookup(output_mode="multi_hot", vocabulary=["a", "b"])
    with pytest.raises(
        RuntimeError, match=r"cannot be changed once set.*Old vocab size is 3, new vocab size is 4"
    ):
        frozen.set_vocabulary(["a", "b", "c"])
    layer = StringLookup(vocabulary=VOCAB)
    with pytest.raises(TypeError, match=r"got a torch\.Tensor of dtype torch\.int64"):
        layer(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="NumPy array of str, bytes or object; got dtype int64"):
        layer(np.array([1, 2]))
    with pytest.raises(TypeError, match="must be str or bytes; found int 3"):
        layer(["a", 3])
    with pytest.raises(TypeError, match="found NoneType None"):
        layer(["a", None])
    with pytest.raises(TypeError, match="ragged input"):
        layer([["a"], ["b", "c"]])
    with pytest.raises(TypeError, match="expects str, bytes"):
        layer(3.5)
    with pytest.raises(TypeError, match="expects integer inputs"):
        StringLookup(vocabulary=VOCAB, invert=True)(["a"])
    with pytest.raises(ValueError, match="maximum supported output rank is 2"):
        StringLookup(vocabulary=VOCAB, output_mode="count")([[["a"]]])


def test_lookup_of_100k_tokens():
    # Speed is measured against tf.keras in benchmarks/test_preprocessing.py; here the large batch's values.
    rng = random.Random(0)
    vocab = [f"movie_{i}" for i in range(50_000)]
    layer = StringLookup(vocabulary=vocab, num_oov_indices=4)
    tokens = [f"movie_{rng.randrange(60_000)}" for _ in range(100_000)]  # ~17% OOV, hashed
    out = layer(tokens)
    assert out.shape == (100_000,)
    known = [i for i, token in enumerate(tokens) if int(token[6:]) < 50_000]
    assert out[known].tolist() == [4 + int(tokens[i][6:]) for i in known]
    unknown = [i for i, token in enumerate(tokens) if int(token[6:]) >= 50_000]
    assert 0.1 < len(unknown) / len(tokens) < 0.25
    assert out[unknown].max() < 4  # every unknown token lands in one of the 4 OOV buckets
    assert out[unknown].unique().numel() == 4


# --------------------------------------------------------------------------------------------
# FarmHash.
# --------------------------------------------------------------------------------------------


def _random_strings(rng: random.Random, count: int) -> list[bytes]:
    alphabet = "abcXYZ019 _-é中😀\n\t"
    out = [b"", b"a", b"\x00", b"\xff" * 3]
    # Every branch boundary of Fingerprint64 (0-16, 17-32, 33-64, > 64 with 64-byte blocks).
    out += [
        bytes(rng.randrange(256) for _ in range(n))
        for n in (3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000)
    ]
    for _ in range(count):
        length = rng.choice(
            [
                rng.randrange(0, 8),
                rng.randrange(8, 33),
                rng.randrange(33, 65),
                rng.randrange(65, 400),
            ]
        )
        if rng.random() < 0.3:
            out.append(bytes(rng.randrange(256) for _ in range(length)))
        else:
            out.append("".join(rng.choice(alphabet) for _ in range(length)).encode())
    return out


def test_vectorised_farmhash_equals_scalar_reference():
    tokens = _random_strings(random.Random(1), 600)
    assert fingerprint64_many(tokens).tolist() == [fingerprint64(t) for t in tokens]
    assert fingerprint64_many([]).shape == (0,)
    with pytest.raises(ValueError, match="num_buckets=0"):
        hash_bucket_fast([b"a"], 0)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_farmhash_matches_tensorflow(tf, seed):
    tokens = _random_strings(random.Random(seed), 400)
    tf_fingerprints = tf.fingerprint(tf.constant(tokens)).numpy()
    expected = [int.from_bytes(bytes(row), "little") for row in tf_fingerprints]
    assert fingerprint64_many(tokens).tolist() == expected
    assert [fingerprint64(t) for t in tokens[:50]] == expected[:50]
    for buckets in (2, 3, 7, 1000):
        tf_buckets = tf.strings.to_hash_bucket_fast(tf.constant(tokens), buckets).numpy()
        np.testing.assert_array_equal(hash_bucket_fast(tokens, buckets), tf_buckets)


# --------------------------------------------------------------------------------------------
# Parity with tf.keras.layers.StringLookup: outputs must be identical (integers, and float32
# products computed in the same order), except adapted TF-IDF weights, see below.
# --------------------------------------------------------------------------------------------


def _random_tokens(rng: random.Random, count: int) -> list[str]:
    pieces = ["a", "b", "é", "中文", "😀", " ", "x" * 70, "long-" * 30, "[", "]", "\t"]
    out = set()
    while len(out) < count:
        out.add("".join(rng.choice(pieces) for _ in range(rng.randrange(1, 4))))
    return sorted(out)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_oov", [0, 1, 3])
@pytest.mark.parametrize("mask_token", [None, ""])
def test_int_and_invert_match_keras(tf, seed, num_oov, mask_token):
    rng = random.Random(seed * 10 + num_oov)
    pool = _random_tokens(rng, 60)
    vocab, unseen = pool[:40], pool[40:]
    if mask_token is None:
        vocab = [*vocab, ""]  # the empty string as an ordinary token
    kwargs = {"vocabulary": vocab, "num_oov_indices": num_oov, "mask_token": mask_token}
    candidates = vocab + ([] if num_oov == 0 else [*unseen, b"\xff\xfe", "OOV é"])
    candidates += [] if mask_token is None else [mask_token]
    rows = [[rng.choice(candidates) for _ in range(7)] for _ in range(5)]
    ours = StringLookup(**kwargs)(rows)
    theirs = tf.keras.layers.StringLookup(**kwargs)(tf.constant(rows)).numpy()
    np.testing.assert_array_equal(ours.numpy(), theirs)
    assert (
        StringLookup(**kwargs).get_vocabulary()
        == tf.keras.layers.StringLookup(**kwargs).get_vocabulary()
    )
    indices = [[rng.randrange(-2, len(vocab) + 6) for _ in range(6)] for _ in range(4)]
    inv = StringLookup(invert=True, **kwargs)(indices)
    tf_inv = tf.keras.layers.StringLookup(invert=True, **kwargs)(tf.constant(indices, tf.int64))
    assert inv.tolist() == [[t.decode() for t in row] for row in tf_inv.numpy().tolist()]


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("output_mode", ["one_hot", "multi_hot", "count", "tf_idf"])
def test_output_modes_match_keras(tf, seed, output_mode):
    rng = random.Random(100 + seed)
    pool = _random_tokens(rng, 30)
    vocab = pool[:20]
    kwargs = {
        "vocabulary": vocab,
        "output_mode": output_mode,
        "mask_token": "",
        "num_oov_indices": 2,
    }
    if output_mode == "tf_idf":
        kwargs["idf_weights"] = [rng.uniform(0.1, 3.0) for _ in vocab]
    if seed == 1:
        kwargs.update(max_tokens=30, pad_to_max_tokens=True)
    width = 1 if output_mode == "one_hot" else 9
    rows = [[rng.choice([*pool, ""]) for _ in range(width)] for _ in range(6)]
    ours = StringLookup(**kwargs)(rows)
    theirs = tf.keras.layers.StringLookup(**kwargs)(tf.constant(rows)).numpy()
    assert ours.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), theirs)  # float32 count * weight: exact


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adapt_with_many_ties_matches_keras(tf, seed):
    rng = np.random.default_rng(seed)
    pool = np.array([*_random_tokens(random.Random(seed), 50), "[UNK]", ""], dtype=object)
    # Counts drawn from {1, 2, 3} so most tokens tie with others.
    data = np.concatenate([np.repeat(pool[i], rng.integers(1, 4)) for i in range(len(pool))])
    rng.shuffle(data)
    data = data.astype(str)
    for kwargs in ({}, {"max_tokens": 20, "mask_token": ""}, {"num_oov_indices": 3}):
        ours = StringLookup(**kwargs)
        ours.adapt(data)
        theirs = tf.keras.layers.StringLookup(**kwargs)
        theirs.adapt(data)
        assert ours.get_vocabulary() == theirs.get_vocabulary()
        np.testing.assert_array_equal(
            ours(data[:50]).numpy(), theirs(tf.constant(data[:50])).numpy()
        )


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
def test_adapt_tf_idf_matches_keras(tf, seed):
    rng = random.Random(seed)
    pool = _random_tokens(rng, 12)
    flat = np.array([rng.choice(pool) for _ in range(150)])
    # Keras's tf_idf adapt can only dedupe rows of equal unique counts, so use 1-D batches
    # (each batch of 16 is a document).
    ours = StringLookup(output_mode="tf_idf", max_tokens=10, pad_to_max_tokens=True)
    ours.adapt(flat, batch_size=16)
    theirs = tf.keras.layers.StringLookup(
        output_mode="tf_idf", max_tokens=10, pad_to_max_tokens=True
    )
    theirs.adapt(flat, batch_size=16)
    assert ours.get_vocabulary() == theirs.get_vocabulary()
    # Token weights are log(1 + D / (1 + d)) in float64 cast to float32: identical. The OOV
    # weight is a float32 mean whose summation order differs (TF reduce_mean vs torch.mean):
    # at most a few float32 ulps, hence rtol 1e-6.
    np.testing.assert_array_equal(ours.idf_weights.numpy()[1:], theirs.idf_weights.numpy()[1:])
    np.testing.assert_allclose(ours.idf_weights.numpy(), theirs.idf_weights.numpy(), rtol=1e-6)
    rows = flat[:40].reshape(4, 10)
    np.testing.assert_allclose(ours(rows).numpy(), theirs(tf.constant(rows)).numpy(), rtol=1e-6)


@pytest.mark.tf
def test_config_keys_match_keras(tf):
    kwargs = {
        "vocabulary": ["a", "b"],
        "mask_token": "",
        "num_oov_indices": 2,
        "output_mode": "count",
    }
    ours = StringLookup(**kwargs).get_config()
    theirs = tf.keras.layers.StringLookup(**kwargs).get_config()
    assert set(ours) == set(theirs)
    for key in set(theirs) - {"name", "vocabulary"}:
        assert ours[key] == theirs[key], key
    assert ours["vocabulary"] == list(theirs["vocabulary"])
    rebuilt = StringLookup.from_config(theirs)  # a Keras config is accepted as is
    assert rebuilt.get_vocabulary() == StringLookup(**kwargs).get_vocabulary()


@pytest.mark.tf
def test_accepts_tensorflow_tensors_and_datasets(tf):
    data = np.array(["x", "y", "y", "z", "z", "z"] * 3)
    ours = StringLookup(output_mode="tf_idf")
    ours.adapt(tf.constant(data), batch_size=4)  # eager tensor: sliced into batches like arrays
    theirs = tf.keras.layers.StringLookup(output_mode="tf_idf")
    theirs.adapt(tf.constant(data), batch_size=4)
    np.testing.assert_allclose(ours.idf_weights.numpy(), theirs.idf_weights.numpy(), rtol=1e-6)
    from_dataset = StringLookup()
    from_dataset.adapt(tf.data.Dataset.from_tensor_slices(data).batch(5))
    assert from_dataset.get_vocabulary() == ["[UNK]", "z", "y", "x"]
    assert from_dataset(tf.constant([["z", "q"]])).tolist() == [[1, 0]]
