"""``load_weights``: Keras's ``layer_with_weights-N`` numbering of adapted preprocessing layers, and
the state that is not a parameter (vocabularies, Normalization statistics, Discretization
boundaries, a BruteForce index), each against the tf.keras model itself.

Keras facts these tests pin (reproduced with tf_keras 2 ``save_weights`` + ``tf.train.list_variables``):
an adapted StringLookup / IntegerLookup / TextVectorization tracks ``token_counts`` (a hash table,
*emptied* by ``adapt``), so it is a layer "with weights" but its checkpoint holds no vocabulary; the
same layer built with ``vocabulary=`` owns nothing and is not numbered. An adapted Normalization holds
``mean`` / ``variance`` / ``count``; an adapted Discretization holds ``summary`` (boundaries are
computed from it); built with statistics / boundaries they own nothing. Functional models number
layers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from converters.tfrs_to_torch import ConversionError, load_weights
from torchrs.layers.dense import KerasDense
from torchrs.layers.embedding import Embedding
from torchrs.layers.factorized_top_k import BruteForce, Streaming
from torchrs.layers.pooling import GlobalAveragePooling1D
from torchrs.preprocessing import (
    Discretization,
    IntegerLookup,
    Normalization,
    StringLookup,
    TextVectorization,
)

pytestmark = pytest.mark.tf

WORDS = ["apple", "pear", "plum", "apple", "fig", "pear", "apple", "kiwi"]
UNKNOWN = ["never seen", "zz"]
# 1e-6: one float32 matmul per Dense (summation order may differ between TF and torch); lookups,
# gathers and boundaries are exact.
ATOL = 1e-6


@dataclass
class Saved:
    model: Any  # the tf.keras model
    checkpoint: Path  # model.save_weights(prefix)
    keras_saved_model: Path  # model.save(dir, save_format="tf")
    saved_model: Path  # tf.saved_model.save(model, dir)


def _save(tf: Any, root: Path, name: str, model: Any) -> Saved:
    model.save_weights(str(root / name / "ckpt" / "weights"))
    model.save(str(root / name / "keras"), save_format="tf")
    tf.saved_model.save(model, str(root / name / "plain"))
    return Saved(model, root / name / "ckpt", root / name / "keras", root / name / "plain")


@pytest.fixture(scope="session")
def saved(tf, tmp_path_factory) -> dict[str, Saved]:
    root = tmp_path_factory.mktemp("adapted")
    tf.keras.utils.set_random_seed(3)
    layers = tf.keras.layers
    rng = np.random.default_rng(3)
    out: dict[str, Saved] = {}

    lookup = layers.StringLookup(mask_token="")
    lookup.adapt(np.array(WORDS))
    out["string"] = _save(
        tf,
        root,
        "string",
        tf.keras.Sequential(
            [
                tf.keras.Input(shape=(), dtype=tf.string),
                lookup,
                layers.Embedding(7, 4),
                layers.Dense(3),
            ]
        ),
    )
    integers = layers.IntegerLookup()
    integers.adapt(np.array([7, 3, 3, 9, 7, 7, 42], dtype=np.int64))
    out["integer"] = _save(
        tf,
        root,
        "integer",
        tf.keras.Sequential(
            [
                tf.keras.Input(shape=(), dtype=tf.int64),
                integers,
                layers.Embedding(5, 4),
                layers.Dense(2),
            ]
        ),
    )
    text = layers.TextVectorization(output_sequence_length=5)
    text.adapt(np.array(["apple pear plum", "Fig, apple! kiwi", "pear pear fig"]))
    out["text"] = _save(
        tf,
        root,
        "text",
        tf.keras.Sequential(
            [
                tf.keras.Input(shape=(1,), dtype=tf.string),
                text,
                layers.Embedding(8, 4),
                layers.GlobalAveragePooling1D(),
                layers.Dense(2),
            ]
        ),
    )
    tf_idf_text = layers.TextVectorization(output_mode="tf_idf")
    tf_idf_text.adapt(np.array(["apple pear plum", "pear fig", "apple apple kiwi"]))
    out["text_tf_idf"] = _save(
        tf,
        root,
        "text_tf_idf",
        tf.keras.Sequential(
            [tf.keras.Input(shape=(1,), dtype=tf.string), tf_idf_text, layers.Dense(2)]
        ),
    )
    tf_idf_lookup = layers.StringLookup(output_mode="tf_idf")
    tf_idf_lookup.adapt(np.array([["apple", "pear"], ["pear", "fig"]]))
    out["string_tf_idf"] = _save(
        tf,
        root,
        "string_tf_idf",
        tf.keras.Sequential(
            [tf.keras.Input(shape=(2,), dtype=tf.string), tf_idf_lookup, layers.Dense(2)]
        ),
    )
    normalization = layers.Normalization()
    normalization.adapt(rng.normal(3.0, 2.0, size=(64, 3)).astype("float32"))
    out["normalization"] = _save(
        tf,
        root,
        "normalization",
        tf.keras.Sequential([tf.keras.Input(shape=(3,)), normalization, layers.Dense(2)]),
    )
    discretization = layers.Discretization(num_bins=4)
    discretization.adapt(rng.normal(size=(300,)).astype("float32"))
    out["discretization"] = _save(
        tf,
        root,
        "discretization",
        tf.keras.Sequential(
            [tf.keras.Input(shape=()), discretization, layers.Embedding(4, 3), layers.Dense(2)]
        ),
    )
    inputs = tf.keras.Input(shape=(), dtype=tf.string)
    functional_lookup = layers.StringLookup()
    functional_lookup.adapt(np.array(WORDS))
    hidden = layers.Embedding(6, 4)(functional_lookup(inputs))
    out["functional"] = _save(
        tf, root, "functional", tf.keras.Model(inputs, layers.Dense(2)(hidden))
    )
    return out


def _vocabulary(layer: Any) -> list[str]:
    """A Keras lookup's learned tokens (no mask / OOV)."""
    return [t for t in layer.get_vocabulary(include_special_tokens=False)]


def _assert_same(torch_out: torch.Tensor, tf_out: Any) -> None:
    np.testing.assert_allclose(torch_out.detach().numpy(), tf_out.numpy(), atol=ATOL, rtol=0)


SOURCES = ["checkpoint", "keras_saved_model", "saved_model"]


@pytest.mark.parametrize("source", SOURCES)
def test_adapted_string_lookup(saved, tf, source) -> None:
    entry = saved["string"]
    keras_vocab = _vocabulary(entry.model.layers[0])
    from_checkpoint = source == "checkpoint"
    # From a SavedModel the vocabulary is restored: the twin starts with a wrong one.
    twin = nn.Sequential(
        StringLookup(vocabulary=keras_vocab if from_checkpoint else ["wrong"], mask_token=""),
        Embedding(7, 4),
        KerasDense(3),
    )
    info = load_weights(twin, getattr(entry, source))
    assert info.ok and set(info.matched) == {"1.weight", "2.weight", "2.bias"}
    if from_checkpoint:  # Keras writes no adapted vocabulary into a checkpoint
        assert info.restored_state == ()
        assert [name for name, _ in info.state_not_restored] == ["0"]
        assert "token_counts" in info.state_not_restored[0][1]
    else:
        assert info.restored_state == ("0.vocabulary",) and info.state_not_restored == ()
    inputs = ["apple", "", *UNKNOWN, "kiwi", "fig", "plum"]
    _assert_same(twin(inputs), entry.model(tf.constant(inputs)))


@pytest.mark.parametrize("source", SOURCES)
def test_adapted_integer_lookup(saved, tf, source) -> None:
    entry = saved["integer"]
    twin = nn.Sequential(
        IntegerLookup(
            vocabulary=_vocabulary(entry.model.layers[0]) if source == "checkpoint" else [1]
        ),
        Embedding(5, 4),
        KerasDense(2),
    )
    info = load_weights(twin, getattr(entry, source))
    assert info.ok
    assert info.restored_state == (() if source == "checkpoint" else ("0.vocabulary",))
    inputs = np.array([7, 3, 9, 42, 0, -5, 1000], dtype=np.int64)
    _assert_same(twin(torch.from_numpy(inputs)), entry.model(tf.constant(inputs)))


@pytest.mark.parametrize("source", SOURCES)
def test_adapted_text_vectorization(saved, tf, source) -> None:
    entry = saved["text"]
    vocabulary = _vocabulary(entry.model.layers[0]) if source == "checkpoint" else ["wrong"]
    twin = nn.Sequential(
        TextVectorization(output_sequence_length=5, vocabulary=vocabulary),
        Embedding(8, 4),
        GlobalAveragePooling1D(),
        KerasDense(2),
    )
    info = load_weights(twin, getattr(entry, source))
    assert info.ok
    assert info.restored_state == (() if source == "checkpoint" else ("0.vocabulary",))
    inputs = [["apple kiwi zz"], ["PEAR, never seen fig plum apple"], [""]]
    _assert_same(twin(inputs), entry.model(tf.constant(inputs)))


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("kind", ["text_tf_idf", "string_tf_idf"])
def test_adapted_tf_idf(saved, tf, source, kind) -> None:
    entry = saved[kind]
    keras_vocab = _vocabulary(entry.model.layers[0])
    from_checkpoint = source == "checkpoint"
    vocabulary = keras_vocab if from_checkpoint else [f"wrong{i}" for i in keras_vocab]
    # IDF weights of ones: the restored ones must replace them (from checkpoints too).
    ones = np.ones(len(vocabulary))
    if kind == "text_tf_idf":
        layer: nn.Module = TextVectorization(
            output_mode="tf_idf", vocabulary=vocabulary, idf_weights=ones
        )
        inputs: Any = [["apple kiwi zz zz"], ["pear, never seen fig plum"]]
    else:
        layer = StringLookup(output_mode="tf_idf", vocabulary=vocabulary, idf_weights=ones)
        inputs = [["apple", "zz"], ["fig", "pear"]]
    twin = nn.Sequential(layer, KerasDense(2))
    info = load_weights(twin, getattr(entry, source))
    assert info.ok
    expected = ("0.idf_weights",) if from_checkpoint else ("0.vocabulary", "0.idf_weights")
    assert info.restored_state == expected
    _assert_same(twin(inputs), entry.model(tf.constant(inputs)))


@pytest.mark.parametrize("source", SOURCES)
def test_adapted_normalization(saved, tf, source) -> None:
    entry = saved["normalization"]
    twin = nn.Sequential(Normalization(), KerasDense(2))  # unbuilt: built from TF's statistics
    info = load_weights(twin, getattr(entry, source))
    assert info.ok and info.matched == ("1.weight", "1.bias")
    assert info.restored_state == ("0.adapt_mean", "0.adapt_variance", "0.count")
    keras = entry.model.layers[0]
    np.testing.assert_array_equal(twin[0].adapt_mean.numpy(), keras.adapt_mean.numpy())
    assert int(twin[0].count) == 64
    inputs = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 3)).astype("float32")
    _assert_same(twin(torch.from_numpy(inputs)), entry.model(inputs))


@pytest.mark.parametrize("source", SOURCES)
def test_adapted_discretization(saved, tf, source) -> None:
    entry = saved["discretization"]
    twin = nn.Sequential(Discretization(num_bins=4), Embedding(4, 3), KerasDense(2))
    info = load_weights(twin, getattr(entry, source))
    assert info.ok
    assert info.restored_state == ("0.summary", "0.bin_boundaries")
    # The boundaries are computed from the restored summary, as Keras's finalize_state does.
    np.testing.assert_allclose(
        twin[0].bin_boundaries, entry.model.layers[0].bin_boundaries, rtol=0, atol=0
    )
    inputs = np.random.default_rng(1).normal(size=(40,)).astype("float32")
    _assert_same(twin(torch.from_numpy(inputs)), entry.model(inputs))


def test_functional_model_numbers_like_sequential(saved, tf) -> None:
    entry = saved["functional"]
    twin = nn.Sequential(StringLookup(vocabulary=["x"]), Embedding(6, 4), KerasDense(2))
    info = load_weights(twin, entry.saved_model)
    assert info.ok and info.restored_state == ("0.vocabulary",)
    inputs = ["apple", *UNKNOWN, "plum"]
    _assert_same(twin(inputs), entry.model(tf.constant(inputs)))


def test_lookups_built_with_vocabulary_are_not_numbered(tf, tmp_path) -> None:
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            layers.StringLookup(vocabulary=["a", "b"]),
            layers.Embedding(3, 2),
        ]
    )
    model.save_weights(str(tmp_path / "w" / "ckpt"))
    twin = nn.Sequential(StringLookup(vocabulary=["a", "b"]), Embedding(3, 2))
    info = load_weights(twin, tmp_path / "w")
    assert info.ok and info.matched == ("1.weight",) and info.restored_state == ()
    assert info.state_not_restored == ()


def test_twin_without_the_lookup_still_loads_and_says_so(saved) -> None:
    twin = nn.Sequential(Embedding(7, 4), KerasDense(3))
    info = load_weights(twin, saved["string"].checkpoint)
    assert info.ok and info.matched == ("0.weight", "1.weight", "1.bias")
    assert info.state_not_restored[0][0] == "layer_with_weights-0"


def test_a_shift_that_remains_is_explained(saved) -> None:
    # One Dense too many before the embedding: every layer after it is one off.
    twin = nn.Sequential(
        StringLookup(vocabulary=["a"]), KerasDense(4), Embedding(7, 4), KerasDense(3)
    )
    with pytest.raises(ConversionError) as err:
        load_weights(twin, saved["string"].checkpoint)
    message = str(err.value)
    assert "Keras numbers the layers that own weights" in message
    assert "0 (StringLookup) <-> TF layer_with_weights-0, an adapted StringLookup" in message
    assert "3 (Dense) <-> no TF layer" in message


def test_brute_force_index_candidates_and_identifiers(tf, tfrs, tmp_path) -> None:
    tf.keras.utils.set_random_seed(5)
    query = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            tf.keras.layers.StringLookup(vocabulary=["u1", "u2", "u3"]),
            tf.keras.layers.Embedding(4, 3),
        ]
    )
    index = tfrs.layers.factorized_top_k.BruteForce(query, k=3)
    candidates = np.random.default_rng(2).normal(size=(6, 3)).astype("float32")
    names = np.array([f"movie {i}" for i in range(6)])
    index.index(tf.constant(candidates), tf.constant(names))
    expected_scores, expected_ids = index(tf.constant(["u2", "nobody"]))
    tf.train.Checkpoint(index=index).save(str(tmp_path / "ckpt" / "ckpt"))

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            tower = nn.Sequential(StringLookup(vocabulary=["u1", "u2", "u3"]), Embedding(4, 3))
            self.index = BruteForce(tower, k=3)

    twin = Twin()
    info = load_weights(twin, tmp_path / "ckpt")
    assert info.ok and info.matched == ("index.query_model.1.weight",)
    assert info.restored_state == ("index.candidates", "index.identifiers")
    scores, ids = twin.index(["u2", "nobody"])
    np.testing.assert_allclose(scores.detach().numpy(), expected_scores.numpy(), atol=ATOL, rtol=0)
    assert [list(row) for row in ids] == [
        [x.decode() for x in row] for row in expected_ids.numpy().tolist()
    ]


def test_streaming_index_says_its_candidates_are_not_in_the_checkpoint(tf, tfrs, tmp_path) -> None:
    query = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(2)])
    index = tfrs.layers.factorized_top_k.Streaming(query, k=1)
    tf.train.Checkpoint(index=index).save(str(tmp_path / "ckpt" / "ckpt"))

    class Twin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.index = Streaming(nn.Sequential(KerasDense(2)), k=1)

    info = load_weights(Twin(), tmp_path / "ckpt")
    assert info.ok and info.restored_state == ()
    assert info.state_not_restored[0][0] == "index"
    assert "index_from_dataset" in info.state_not_restored[0][1]


@pytest.fixture(scope="session")
def trained_with_lookup(tf, tmp_path_factory) -> tuple[Any, Path]:
    """A Sequential with an adapted lookup and a frozen Dense, fitted with Adam and saved with its
    optimizer: ``(model, converted directory)``."""
    from converters.tfrs_to_torch.cli import main

    root = tmp_path_factory.mktemp("trained_with_lookup")
    tf.keras.utils.set_random_seed(11)
    layers = tf.keras.layers
    lookup = layers.StringLookup()
    lookup.adapt(np.array(WORDS))
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            lookup,
            layers.Embedding(6, 3),
            layers.Dense(4, trainable=False),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    x, y = tf.constant(WORDS), tf.constant(np.arange(len(WORDS), dtype="float32"))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    model.save_weights(str(root / "ckpt" / "weights"))
    assert main([str(root / "ckpt"), "--out", str(root / "out"), "--json"]) == 0
    return model, root / "out"


def test_optimizer_state_follows_keras_numbering(trained_with_lookup) -> None:
    """An adapted lookup shifts the numbers of the layers after it, a frozen Dense keeps its number
    without having a slot: the optimizer slots still land on the right torch parameters."""
    from torchrs.io import load_optimizer_state
    from torchrs.optim import Adam

    model, out = trained_with_lookup
    lookup = model.layers[0]
    twin = nn.Sequential(
        StringLookup(vocabulary=_vocabulary(lookup)), Embedding(6, 3), KerasDense(4), KerasDense(1)
    )
    assert load_weights(twin, out).ok
    twin[2].requires_grad_(False)
    optimizer = Adam([p for p in twin.parameters() if p.requires_grad], learning_rate=0.01)
    loaded = load_optimizer_state(optimizer, twin, out)
    assert set(loaded) == {"1.weight", "3.weight", "3.bias"}
    tf_m = {
        v.name: v.numpy()
        for v in model.optimizer.variables()
        if "/m/" in v.name or v.name.endswith("/m")
    }
    embedding_m = next(value for name, value in tf_m.items() if "embedding" in name)
    np.testing.assert_array_equal(optimizer.state[twin[1].weight]["m"].numpy(), embedding_m)


def test_brute_force_index_from_a_saved_model(exports, tf) -> None:
    """The basic-retrieval tutorial's export (tf.saved_model.save of a BruteForce over a user tower)."""
    from tests.converters.conftest import USERS

    tower = nn.Sequential(
        StringLookup(vocabulary=USERS), Embedding(len(USERS) + 1, 8), KerasDense(6)
    )
    twin = BruteForce(tower, k=10)
    info = load_weights(twin, exports.index)
    assert info.ok and info.restored_state == ("candidates", "identifiers")
    queries = [b"3", b"never seen", "é".encode()]
    loaded = tf.saved_model.load(str(exports.index))
    expected_scores, expected_ids = loaded(tf.constant(queries))
    scores, ids = twin(queries)
    np.testing.assert_allclose(scores.detach().numpy(), expected_scores.numpy(), atol=ATOL, rtol=0)
    assert [list(row) for row in ids] == [
        [x.decode() for x in row] for row in expected_ids.numpy().tolist()
    ]


def test_saved_model_with_refused_ops_needs_trust_model(tf, tmp_path) -> None:
    """Reading a SavedModel's vocabulary runs its functions: the converter's op audit comes first,
    with load_weights's own way out (trust_model=True), not the CLI's flag."""
    lookup = tf.keras.layers.StringLookup()
    lookup.adapt(np.array(WORDS))
    model = tf.keras.Sequential([tf.keras.Input(shape=(), dtype=tf.string), lookup])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def writer(path: Any) -> None:
        tf.io.write_file(path, "x")

    model.writer = writer
    tf.saved_model.save(model, str(tmp_path / "sm"))
    twin = nn.Sequential(StringLookup(vocabulary=["wrong"]))
    with pytest.raises(ConversionError, match=r"WriteFile.*pass trust_model=True") as err:
        load_weights(twin, tmp_path / "sm")
    assert "--trust-model" not in str(err.value)
    info = load_weights(twin, tmp_path / "sm", trust_model=True)
    assert info.restored_state == ("0.vocabulary",)
    assert twin[0].get_vocabulary(include_special_tokens=False) == _vocabulary(lookup)


def test_converted_functional_twin_is_numbered_as_keras(saved, tf, tmp_path) -> None:
    """The torchrs.io.Functional that torchrs.load rebuilds from a conversion of the functional
    model's Keras SavedModel takes the model's save_weights checkpoint: its layers (under Keras's
    layer names) are numbered as Keras numbers them, the adapted lookup included."""
    from converters.tfrs_to_torch.cli import main
    from torchrs.io import Functional, load

    entry = saved["functional"]
    assert main([str(entry.keras_saved_model), "--out", str(tmp_path / "out"), "--json"]) == 0
    twin = load(tmp_path / "out")
    assert isinstance(twin, Functional)
    with torch.no_grad():  # the checkpoint, not the conversion, must give the weights
        for param in twin.parameters():
            param.zero_()
    info = load_weights(twin, entry.checkpoint)
    lookup, embedding, dense = (
        layer.name for layer in entry.model.layers if layer.__class__.__name__ != "InputLayer"
    )
    assert info.ok
    assert info.matched == (
        f"layers.{embedding}.weight",
        f"layers.{dense}.weight",
        f"layers.{dense}.bias",
    )
    # the checkpoint holds no adapted vocabulary; the converted twin keeps the SavedModel's
    assert [name for name, _ in info.state_not_restored] == [f"layers.{lookup}"]
    inputs = ["apple", *UNKNOWN, "plum", "kiwi"]
    _assert_same(twin(inputs), entry.model(tf.constant(inputs)))


def test_load_sharded_follows_keras_numbering(trained_with_lookup) -> None:
    """torchrs.distributed.load_sharded numbers layers as load_weights does (the adapted lookup shifts
    the Embedding to layer_with_weights-1): on a model with no sharded table it loads the same
    weights and optimizer slots as load_weights + load_optimizer_state."""
    from torchrs.distributed import load_sharded
    from torchrs.io import load_optimizer_state
    from torchrs.optim import Adam

    model, out = trained_with_lookup
    vocabulary = _vocabulary(model.layers[0])

    def twin() -> nn.Sequential:
        return nn.Sequential(
            StringLookup(vocabulary=vocabulary), Embedding(6, 3), KerasDense(4), KerasDense(1)
        )

    reference = twin()
    assert load_weights(reference, out).ok
    reference_opt = Adam([p for n, p in reference.named_parameters() if not n.startswith("2.")])
    load_optimizer_state(reference_opt, reference, out)
    sharded = twin()
    sharded(["apple"])  # materialise the Dense layers' lazy weights
    sharded.optimizer = Adam(  # type: ignore[assignment]
        [p for n, p in sharded.named_parameters() if not n.startswith("2.")]
    )
    loaded = load_sharded(sharded, out)
    assert loaded["1.weight"] == ["weight", "m", "v"]
    for (name, param), (_, expected) in zip(
        sharded.named_parameters(), reference.named_parameters(), strict=True
    ):
        torch.testing.assert_close(param, expected, rtol=0, atol=0, msg=name)
        if not name.startswith("2."):
            for slot in ("m", "v"):
                torch.testing.assert_close(
                    sharded.optimizer.state[param][slot],
                    reference_opt.state[expected][slot],
                    rtol=0,
                    atol=0,
                )
