"""End to end: TF exports -> ``python -m converters.tfrs_to_torch`` -> ``torchrs.io.load`` -> same numbers.

Tolerances: embeddings and tower outputs are compared to 1e-6 (the issue's bar). Lookups and
embedding gathers are exact; a Dense layer is one float32 matmul whose summation order may differ
between TF's and torch's kernels (observed differences are 0 to a few 1e-8). Top-K identifiers
must be identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from converters.tfrs_to_torch.cli import main
from torchrs.io import load
from torchrs.preprocessing import IntegerLookup, StringLookup

pytestmark = pytest.mark.tf

TOL = 1e-6  # see module docstring


def _convert(source: Path, out: Path, *extra: str) -> int:
    return main([str(source), "--out", str(out), "--json", *extra])


@pytest.fixture(scope="module")
def index_dir(exports, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "index"
    assert _convert(exports.index, out) == 0
    return out


def test_index_answers_like_tfrs_for_every_user(exports, index_dir, tf) -> None:
    index = load(index_dir)
    queries = [u.decode("utf-8", "surrogateescape") for u in exports.users] + ["not a user"]
    scores, ids = index(queries, k=10)
    tf_scores, tf_ids = exports.models["index"](tf.constant([*exports.users, b"not a user"]), k=10)
    tf_ids = np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"))(tf_ids.numpy())
    assert np.array_equal(np.asarray(ids).astype(object), tf_ids.astype(object))
    np.testing.assert_allclose(scores.detach().numpy(), tf_scores.numpy(), atol=TOL, rtol=0)


def test_index_files_and_report(index_dir) -> None:
    meta = json.loads((index_dir / "torchrs.json").read_text())
    assert meta["format_version"] == 1 and meta["model_kind"] == "index"
    assert meta["source"]["format"] == "saved_model"
    assert meta["versions"]["tensorflow"] and meta["versions"]["keras"]
    assert meta["architecture"]["query_model"]["layers"][2]["class_name"] == "Dense"
    report = json.loads((index_dir / "report.json").read_text())["entries"]
    by_source = {e["source"]: e for e in report}
    assert by_source["candidates"]["torch_name"] == "candidates"
    kernel = [e for e in report if e.get("torch_name") == "query_model.2.weight"]
    assert kernel and kernel[0]["transposed"] is True
    assert any(e["status"] == "inferred" for e in report)  # configs are not in tf.saved_model.save
    assert not list(index_dir.parent.glob(".index.tmp-*"))  # the temporary directory is gone


def test_vocabulary_round_trips_byte_for_byte(exports, index_dir) -> None:
    index = load(index_dir)
    lookup = index.query_model[0]
    assert isinstance(lookup, StringLookup)
    tokens = [t.encode("utf-8", "surrogateescape") for t in lookup.get_vocabulary(False)]
    assert tokens == exports.users  # newline, non-ASCII and invalid UTF-8 tokens included


def test_tower_outputs_match(exports, tmp_path, tf) -> None:
    for source, tower_tf in (
        (exports.tower_saved_model, exports.models["plain"]),
        (exports.tower_keras, exports.models["tower"]),
    ):
        out = tmp_path / source.name
        assert _convert(source, out) == 0
        tower = load(out)
        inputs = ["1", "7", "", "nobody", "19"]  # "" is the mask token of the Keras tower
        expected = tower_tf(tf.constant(inputs)).numpy()
        np.testing.assert_allclose(tower(inputs).detach().numpy(), expected, atol=TOL, rtol=0)


def test_keras_metadata_gives_exact_configs(exports, tmp_path) -> None:
    out = tmp_path / "keras"
    assert _convert(exports.tower_keras, out) == 0
    layers = json.loads((out / "torchrs.json").read_text())["architecture"]["layers"]
    assert layers[0]["config"]["mask_token"] == ""
    assert [layer["config"].get("activation") for layer in layers[2:]] == ["relu", "sigmoid"]
    assert layers[3]["config"]["use_bias"] is False


@pytest.mark.parametrize("source", ["tower_keras", "tower_keras_archive"])
def test_the_exports_serving_signature_is_recorded_as_tf_reports_it(
    exports, tmp_path, tf, source
) -> None:
    # Sequential towers: TF names their serving inputs / outputs after layers (or an Input layer);
    # torchrs.serve serves the recorded names, dtypes and shapes (what TF Serving's /metadata shows).
    out = tmp_path / "out"
    assert _convert(getattr(exports, source), out) == 0
    architecture = json.loads((out / "torchrs.json").read_text())["architecture"]
    recorded = architecture["serving_signatures"]["serving_default"]
    tf_dir = exports.tower_keras if source == "tower_keras" else str(out / "tf")
    if source == "tower_keras_archive":  # TF Serving serves the archive re-saved as a SavedModel
        tf.keras.models.load_model(exports.tower_keras_archive).save(tf_dir, save_format="tf")
    signature = tf.saved_model.load(str(tf_dir)).signatures["serving_default"]
    for side, specs in [
        ("inputs", signature.structured_input_signature[1]),
        ("outputs", signature.structured_outputs),
    ]:
        assert {
            name: (entry["dtype"], entry["shape"]) for name, entry in recorded[side].items()
        } == {
            name: (spec.dtype.name, [-1 if d is None else d for d in spec.shape.as_list()])
            for name, spec in specs.items()
        }
    assert recorded["method_name"] == "tensorflow/serving/predict"


def test_keras_archive_integer_tower(exports, tmp_path, tf) -> None:
    out = tmp_path / "int"
    assert _convert(exports.tower_keras_archive, out) == 0
    tower = load(out)
    assert isinstance(tower[0], IntegerLookup)
    assert tower[0].get_vocabulary(False) == list(range(100, 130))
    inputs = [100, 129, 5, 117]
    expected = exports.models["int_tower"](tf.constant(inputs, dtype=tf.int64)).numpy()
    got = tower(torch.tensor(inputs)).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_checkpoint_converts_to_weights(exports, tmp_path) -> None:
    out = tmp_path / "w"
    assert _convert(exports.weights, out) == 0
    tensors = load(out)
    kernel = exports.models["tower"].layers[2].kernel.numpy()
    assert np.array_equal(tensors["layer_with_weights-1/kernel"].numpy(), kernel)  # TF layout kept


def test_summary_text(exports, tmp_path, capsys) -> None:
    out = tmp_path / "s"
    assert main([str(exports.tower_saved_model), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "model kind:  tower" in text and "torchrs.io.load(" in text
    assert "max |TF - torch|" in text


def test_overwrite_replaces_output(exports, tmp_path) -> None:
    out = tmp_path / "o"
    assert _convert(exports.tower_saved_model, out) == 0
    (out / "stale.txt").write_text("old")
    assert _convert(exports.tower_saved_model, out, "--overwrite", "--no-verify") == 0
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()


def test_movie_vocabulary_in_index_identifiers(exports, index_dir) -> None:
    index = load(index_dir)
    _, ids = index(["3"], k=len(exports.movies))
    assert sorted(ids[0].tolist()) == sorted(m.decode() for m in exports.movies)


def test_plain_saved_model_without_lookup_config_is_refused(exports, tmp_path, capsys) -> None:
    # tf.saved_model.save keeps the table but not mask_token="": a table starting at index 2 could be a mask plus
    # one OOV bucket or two OOV buckets, so the converter refuses before writing anything.
    out = tmp_path / "masked"
    assert _convert(exports.root / "tower_masked_sm", out, "--graph", "never") == 2
    err = capsys.readouterr().err
    assert "StringLookup at layer-0" in err and "mask token or an OOV bucket" in err
    assert not out.exists() and not list(tmp_path.glob(".masked*"))
