"""Bad input: one clear message, exit status 2, no traceback, no output directory."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from converters.tfrs_to_torch.cli import main

pytestmark = pytest.mark.tf


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _no_output(out: Path) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


def test_missing_path(tmp_path, capsys) -> None:
    code, err = _run(capsys, str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert code == 2 and "does not exist" in err and _no_output(tmp_path / "o")


def test_empty_directory(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code, err = _run(capsys, str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert code == 2 and "empty directory" in err and _no_output(tmp_path / "o")


def test_truncated_variables_file(exports, tmp_path, capsys) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exports.tower_keras, broken)
    data = broken / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:10])
    code, err = _run(capsys, str(broken), "--out", str(tmp_path / "o"))
    assert code == 2 and "corrupted" in err and _no_output(tmp_path / "o")


def test_not_a_recommender(tf, tmp_path, capsys) -> None:
    module = tf.Module()
    module.v = tf.Variable([1.0, 2.0])
    tf.saved_model.save(module, str(tmp_path / "plain"))
    code, err = _run(capsys, str(tmp_path / "plain"), "--out", str(tmp_path / "o"))
    assert code == 2 and "not a Keras / TFRS model" in err and _no_output(tmp_path / "o")


def test_keras_3_archive(tmp_path, capsys) -> None:
    archive = tmp_path / "model.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"")
    code, err = _run(capsys, str(archive), "--out", str(tmp_path / "o"))
    assert code == 2 and "Keras 3" in err and "TF_USE_LEGACY_KERAS=1" in err
    assert _no_output(tmp_path / "o")


def test_unsupported_layer_names_class_and_path(tf, tmp_path, capsys) -> None:
    model = tf.keras.Sequential(
        [tf.keras.layers.Dense(3, input_shape=(2,)), tf.keras.layers.BatchNormalization()]
    )
    model.save(str(tmp_path / "bn"), save_format="tf")
    code, err = _run(capsys, str(tmp_path / "bn"), "--out", str(tmp_path / "o"))
    assert code == 2 and "BatchNormalization" in err and "layer-1" in err
    assert _no_output(tmp_path / "o")


def test_no_strict_reports_unsupported_part(tf, tmp_path, capsys) -> None:
    class TwoTowers(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.good = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=["a", "b"]),
                    tf.keras.layers.Embedding(3, 2),
                ]
            )
            self.bad = tf.keras.layers.BatchNormalization()

        def call(self, inputs):  # type: ignore[no-untyped-def]
            return self.good(inputs)

    model = TwoTowers()
    model(tf.constant(["a"]))
    model.bad(tf.zeros((1, 2)))
    tf.saved_model.save(model, str(tmp_path / "two"))
    # The layer-by-layer path refuses (--graph never: no fallback to the traced signatures).
    code, err = _run(
        capsys, str(tmp_path / "two"), "--out", str(tmp_path / "strict"), "--graph", "never"
    )
    assert (
        code == 2 and "at bad" in err and "moving_mean" in err and _no_output(tmp_path / "strict")
    )
    out = tmp_path / "lenient"
    code = main([str(tmp_path / "two"), "--out", str(out), "--no-strict", "--json"])
    printed = capsys.readouterr()
    assert code == 0
    # Nothing said under --no-strict tells the user to pass --no-strict.
    assert "no-strict" not in printed.out + printed.err
    assert "no-strict" not in (out / "report.json").read_text()
    entries = json.loads((out / "report.json").read_text())["entries"]
    assert any(e["status"] == "unsupported" and e["source"] == "bad" for e in entries)
    skipped = [e for e in entries if "inside unsupported layer" in e.get("reason", "")]
    assert len(skipped) == 4  # gamma, beta, moving mean, moving variance


def test_existing_non_empty_out_dir(exports, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _run(capsys, str(exports.tower_keras), "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_read_only_out_location(exports, tmp_path, capsys) -> None:
    # Root ignores permission bits, so as root (CI) the location is inside sysfs, where the kernel refuses to
    # create directories even for root; otherwise a directory without write permission.
    if os.geteuid() == 0:
        out = Path("/sys/torchrs_converter_out")
        code, err = _run(capsys, str(exports.tower_keras), "--out", str(out))
        assert not out.exists()
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            code, err = _run(capsys, str(exports.tower_keras), "--out", str(locked / "o"))
        finally:
            locked.chmod(0o700)
    assert code == 2
    assert "Choose a writable --out" in err or "permission denied" in err.lower()


def test_read_only_out_location_as_root(exports, tmp_path, capsys, monkeypatch) -> None:
    # Root bypasses permission bits, so the check is exercised through os.access.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    code, err = _run(capsys, str(exports.tower_keras), "--out", str(tmp_path / "o"))
    assert code == 2 and "permission denied" in err and _no_output(tmp_path / "o")


def test_bad_vocab_flag(exports, tmp_path, capsys) -> None:
    code, err = _run(capsys, str(exports.tower_keras), "--out", str(tmp_path / "o"), "--vocab", "x")
    assert code == 2 and "NAME=FILE" in err


def test_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--no-strict" in capsys.readouterr().out
