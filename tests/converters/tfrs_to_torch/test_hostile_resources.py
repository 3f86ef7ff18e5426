"""Hostile inputs, class 4: bounded resources.

Archives are listed member by member and refused when they expand beyond what a tf_keras file
can (a zip bomb) or declare more weights than they store; JSON is read with size and nesting
limits; a FIFO in place of a model file is refused instead of read (which blocks forever); the
declared tensor sizes meet a configurable memory guard before anything is allocated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

# Zeros deflate ~1000x: 64 MiB become ~64 KB in the archive (tf_keras stores members uncompressed).
BOMB_BYTES = 64 << 20
# A FIFO read by the old converter blocked forever; TensorFlow's import alone takes 10-30 s here.
FIFO_TIMEOUT_S = 300


def _keras_members(archive: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(archive) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_archive(
    target: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_STORED
) -> Path:
    with zipfile.ZipFile(target, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return target


class TestArchives:
    def test_zip_bomb_is_not_extracted(self, exports, run_cli, tree, tmp_path) -> None:
        members = _keras_members(exports.tower_keras_archive)
        members["assets/padding.bin"] = bytes(BOMB_BYTES)
        archive = _write_archive(tmp_path / "bomb.keras", members, zipfile.ZIP_DEFLATED)
        assert archive.stat().st_size < BOMB_BYTES // 100
        run = run_cli(archive, "--out", tmp_path / "out")
        run.one_error("zip bomb", "assets/padding.bin")
        assert tree.nothing_left(tmp_path / "out")

    def test_member_tf_keras_never_writes(self, exports, run_cli, tree, tmp_path) -> None:
        members = _keras_members(exports.tower_keras_archive)
        members["extra/payload.bin"] = b"x" * 1024
        archive = _write_archive(tmp_path / "extra.keras", members)
        run_cli(archive, "--out", tmp_path / "out").one_error("'extra/payload.bin' is not part of")
        assert tree.nothing_left(tmp_path / "out")

    def test_declared_embedding_larger_than_stored_weights(
        self, exports, run_cli, tree, tmp_path
    ) -> None:
        members = _keras_members(exports.tower_keras_archive)
        config = json.loads(members["config.json"])
        embedding = next(
            layer for layer in config["config"]["layers"] if layer["class_name"] == "Embedding"
        )
        embedding["config"]["input_dim"] = 10**7  # 160 MB of float32 from a few-KB archive
        members["config.json"] = json.dumps(config).encode()
        archive = _write_archive(tmp_path / "forged.keras", members)
        run = run_cli(archive, "--out", tmp_path / "out")
        run.one_error("declares at least 1600", "bytes of weights")
        assert tree.nothing_left(tmp_path / "out")

    def test_deeply_nested_config(self, exports, run_cli, tmp_path) -> None:
        members = _keras_members(exports.tower_keras_archive)
        config = json.loads(members["config.json"])
        config["config"]["deep"] = "@"
        members["config.json"] = (
            json.dumps(config).replace('"@"', "[" * 50_000 + "]" * 50_000).encode()
        )
        archive = _write_archive(tmp_path / "deep.keras", members)
        run_cli(archive, "--out", tmp_path / "out").one_error("nests 50002 levels")


class TestSavedModelFiles:
    def test_deeply_nested_keras_metadata(self, exports, run_cli, tree, tmp_path) -> None:
        from tf_keras.protobuf import saved_metadata_pb2

        model = tmp_path / "model"
        shutil.copytree(exports.tower_keras, model)
        metadata = saved_metadata_pb2.SavedMetadata()
        metadata.ParseFromString((model / "keras_metadata.pb").read_bytes())
        metadata.nodes[0].metadata = "[" * 100_000 + "]" * 100_000
        (model / "keras_metadata.pb").write_bytes(metadata.SerializeToString())
        run = run_cli(model, "--out", tmp_path / "out")
        run.one_error("nests 100000 levels")
        assert tree.nothing_left(tmp_path / "out")

    def test_fifo_instead_of_the_variables_index(self, exports, tree, tmp_path) -> None:
        model = tmp_path / "model"
        shutil.copytree(exports.tower_keras, model)
        index = model / "variables" / "variables.index"
        index.unlink()
        os.mkfifo(index)
        # A real process: TensorFlow blocks in open() holding the GIL, so an in-process run that
        # reads the FIFO (as the old converter did) could not even be interrupted.
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "converters.tfrs_to_torch",
                str(model),
                "--out",
                str(tmp_path / "out"),
            ],
            capture_output=True,
            text=True,
            timeout=FIFO_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(lines) == 1, run.stderr
        assert "variables.index is not a regular file" in lines[0]
        assert tree.nothing_left(tmp_path / "out")

    def test_memory_guard_on_declared_variables(
        self, exports, run_cli, tree, tmp_path, monkeypatch
    ) -> None:
        monkeypatch.setenv("TORCHRS_MAX_LOAD_BYTES", "100")  # the tower's variables are ~500 bytes
        run = run_cli(exports.weights, "--out", tmp_path / "out")
        run.one_error("TORCHRS_MAX_LOAD_BYTES")
        assert tree.nothing_left(tmp_path / "out")


class TestCheckpointIndex:
    def test_forged_index_declaring_more_than_the_data_files(
        self, tf, run_cli, tree, tmp_path
    ) -> None:
        """Each declared tensor fits in the data file, all of them together do not: the index of
        one checkpoint beside the (smaller) data of another with the same variables."""
        big = tf.train.Checkpoint(
            a=tf.Variable(tf.ones([256, 64])), b=tf.Variable(tf.ones([256, 64]))
        )
        small = tf.train.Checkpoint(
            a=tf.Variable(tf.ones([256, 64])), b=tf.Variable(tf.ones([4, 64]))
        )
        forged = Path(big.write(str(tmp_path / "big" / "w")))
        donor = Path(small.write(str(tmp_path / "small" / "w")))
        for data in forged.parent.glob("w.data-*"):
            shutil.copy(donor.parent / data.name, data)
        assert all(
            (forged.parent / f).stat().st_size > 256 * 64 * 4
            for f in os.listdir(forged.parent)
            if ".data-" in f
        )  # a single declared table fits: only the sum shows the forgery
        before = tree.snapshot(tmp_path)
        run = run_cli(forged.parent, "--out", tmp_path / "out")
        run.one_error("the index declares", "but the data files hold")
        assert tree.snapshot(tmp_path) == before
