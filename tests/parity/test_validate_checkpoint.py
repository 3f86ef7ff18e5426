"""``parity validate`` on every input the converter accepts (a TF checkpoint prefix included), and a
``--no-strict`` conversion that skipped layers reported INCOMPLETE, never PASS (issue 13)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from parity.cli import main
from parity.validate import EXIT_FAILED, EXIT_INCOMPLETE
from parity.validate_checkpoint import NOT_COMPARED


@dataclass
class Exports:
    prefix: Path  # tower.save_weights(".../ckpt/w"): the checkpoint prefix
    weights_torchrs: Path  # the prefix, converted (model_kind "weights")
    tower_torchrs: Path  # the same tower's .keras archive, converted
    two: Path  # a tf.saved_model.save export with a layer the converter does not support
    two_torchrs: Path  # converted with --no-strict


def _convert(*args: object) -> None:
    from converters.tfrs_to_torch.cli import main as convert

    assert convert([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def exports(tf, tmp_path_factory) -> Exports:
    root = tmp_path_factory.mktemp("validate_checkpoint")
    tf.keras.utils.set_random_seed(5)
    tower = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(3,)),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    tower.save(str(root / "tower.keras"))
    tower.save_weights(str(root / "ckpt" / "w"))
    _convert(root / "ckpt" / "w", "--out", root / "weights_torchrs")
    _convert(root / "tower.keras", "--out", root / "tower_torchrs")

    class TwoTowers(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.good = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=["a", "b"]),
                    tf.keras.layers.Embedding(3, 2),
                ]
            )
            self.bad = tf.keras.layers.BatchNormalization()  # not supported by the converter

        def call(self, inputs):  # type: ignore[no-untyped-def]
            return self.good(inputs)

    model = TwoTowers()
    model(tf.constant(["a"]))
    model.bad(tf.zeros((1, 2)))
    tf.saved_model.save(model, str(root / "two"))
    _convert(root / "two", "--out", root / "two_torchrs", "--no-strict")
    return Exports(
        root / "ckpt" / "w",
        root / "weights_torchrs",
        root / "tower_torchrs",
        root / "two",
        root / "two_torchrs",
    )


def _validate(capsys, *args: object) -> tuple[int, str, str]:
    status = main(["validate", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.tf
def test_checkpoint_prefix_is_compared_weight_by_weight(exports, tmp_path, capsys) -> None:
    status, out, err = _validate(
        capsys, exports.prefix, exports.weights_torchrs, "--report", tmp_path
    )
    assert status == 0, out + err
    assert f"not compared: {NOT_COMPARED}" in out and "PASS: 0 failed check(s)" in out
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["tf_format"] == "checkpoint" and figures["passed"] is True
    assert "in TF's layout" in figures["compared"]
    # Two Dense layers: kernel and bias each, one row per weight.
    assert len(figures["weights"]) == 4
    assert all(row["check"].endswith("values identical") for row in figures["weights"])
    assert "## What was compared" in (tmp_path / "report.md").read_text()
    # The checkpoint's directory is accepted as well as its prefix.
    status, out, _ = _validate(
        capsys, exports.prefix.parent, exports.weights_torchrs, "--report", tmp_path / "dir"
    )
    assert status == 0, out


@pytest.mark.tf
def test_checkpoint_against_a_converted_export_goes_through_load_weights(
    exports, tmp_path, capsys
) -> None:
    status, out, err = _validate(
        capsys, exports.prefix, exports.tower_torchrs, "--report", tmp_path
    )
    assert status == 0, out + err
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert "load_weights" in figures["compared"]
    assert sorted(row["check"].split(" ")[0] for row in figures["weights"]) == [
        "0.bias",
        "0.weight",
        "1.bias",
        "1.weight",
    ]


@pytest.mark.tf
def test_a_changed_weight_fails_against_the_checkpoint(exports, tmp_path, capsys) -> None:
    import shutil

    from safetensors.numpy import load_file, save_file

    changed = tmp_path / "changed"
    shutil.copytree(exports.weights_torchrs, changed)
    file = changed / "model.safetensors"
    tensors = load_file(str(file))
    tensors["layer_with_weights-1/bias"] = tensors["layer_with_weights-1/bias"] + 1e-6
    save_file(tensors, str(file), metadata={"format": "pt"})
    status, out, _ = _validate(capsys, exports.prefix, changed, "--report", tmp_path / "r")
    assert status == EXIT_FAILED and "FAIL: 1 failed check(s)" in out
    figures = json.loads((tmp_path / "r" / "figures.json").read_text())
    failed = [row["check"] for row in figures["weights"] if not row["passed"]]
    assert failed == ["layer_with_weights-1/bias (1): values identical"]


@pytest.mark.tf
def test_a_missing_prefix_still_says_so(exports, tmp_path, capsys) -> None:
    status, _, err = _validate(capsys, exports.prefix.parent / "nope", exports.weights_torchrs)
    assert status == 2 and "does not exist" in err and "checkpoint prefix" in err


@pytest.mark.tf
def test_a_no_strict_conversion_is_incomplete_never_pass(exports, tmp_path, capsys) -> None:
    report = json.loads((exports.two_torchrs / "report.json").read_text())
    assert any(e["status"] == "unsupported" for e in report["entries"])  # what --no-strict left out
    status, out, _ = _validate(capsys, exports.two, exports.two_torchrs, "--report", tmp_path)
    assert status == EXIT_INCOMPLETE, out
    assert "PASS" not in out
    assert "INCOMPLETE: the conversion skipped 1 layer(s): bad" in out
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["passed"] is False and figures["incomplete"][0].startswith("bad")
    assert "## INCOMPLETE: the conversion skipped layers" in (tmp_path / "report.md").read_text()


def test_skipped_layers_are_the_unsupported_entries(tmp_path) -> None:
    from parity.validate import skipped_layers

    entries = [
        {"source": "bad", "status": "unsupported", "reason": "BatchNormalization is not supported"},
        {"source": "save_counter", "status": "skipped", "reason": "checkpoint bookkeeping"},
        {"source": "good/embeddings", "status": "converted"},
    ]
    (tmp_path / "report.json").write_text(json.dumps({"entries": entries}))
    assert skipped_layers(str(tmp_path)) == ("bad (BatchNormalization is not supported)",)
    (tmp_path / "report.json").write_text(json.dumps({"entries": entries[1:]}))
    assert skipped_layers(str(tmp_path)) == ()  # skipped bookkeeping is no skipped layer
    # Without report.json, torchrs.json's summary count stands in.
    (tmp_path / "report.json").unlink()
    (tmp_path / "torchrs.json").write_text(json.dumps({"summary": {"unsupported": 2}}))
    assert skipped_layers(str(tmp_path)) == (
        "2 unsupported entries (torchrs.json; report.json is missing)",
    )
