"""``torchrs.load`` on hostile and broken checkpoint directories: one ``ValueError`` naming the
problem, raised before anything is allocated; never a hang, a file outside the directory, or a
silently wrong tensor.

Organised by the classes of the hostile-input issue: (4) bounded resources and (5) files that are
not what they claim. No TensorFlow: the directories are written with ``torchrs.io.save``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import torchrs.io
from torchrs._safe_io import MEMORY_GUARD_ENV, UnsafeCheckpointError
from torchrs.io import Tower
from torchrs.layers.embedding import Embedding
from torchrs.preprocessing import StringLookup

VOCAB = ["a", "b", "c"]
SPEC = {
    "class_name": "Sequential",
    "layers": [
        {"class_name": "StringLookup", "config": {"num_oov_indices": 1}},
        {"class_name": "Embedding", "config": {"mask_zero": False}, "shapes": {"weight": [4, 2]}},
    ],
}
# torchrs needs ~3 s to import here; a load that hangs on a FIFO would never end.
SUBPROCESS_TIMEOUT_S = 120


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A valid converted tower: StringLookup(a, b, c) -> Embedding(4, 2)."""
    tower = Tower(StringLookup(vocabulary=VOCAB), Embedding(4, 2))
    root = tmp_path / "ckpt"
    torchrs.io.save(tower, root, SPEC, model_kind="tower")
    return root


def _config(root: Path) -> dict:
    return json.loads((root / "torchrs.json").read_text())


def _write_config(root: Path, payload: object) -> None:
    (root / "torchrs.json").write_text(json.dumps(payload))


def _rewrite_tensors(root: Path, **replace: torch.Tensor) -> None:
    tensors = load_file(str(root / "model.safetensors"))
    tensors.update(replace)
    save_file(tensors, str(root / "model.safetensors"))


def test_valid_checkpoint_loads(ckpt: Path) -> None:
    tower = torchrs.io.load(ckpt)
    assert tower(["a", "zz"]).shape == (2, 2)


class TestMalformedConfig:
    """A malformed torchrs.json is one ValueError, not KeyError / TypeError / RecursionError."""

    @pytest.mark.parametrize(
        "payload",
        [
            [1, 2, 3],  # not an object
            {"format_version": 1},  # no model_kind
            {"format_version": 1, "model_kind": "tower"},  # no architecture
            {
                "format_version": 1,
                "model_kind": "tower",
                "architecture": {"class_name": "Sequential", "layers": 3},
            },
            {
                "format_version": 1,
                "model_kind": "tower",
                "architecture": {"class_name": "Embedding"},
            },
            {
                "format_version": 1,
                "model_kind": "tower",
                "architecture": {"class_name": "Dense", "config": []},
            },
        ],
        ids=[
            "list",
            "no-kind",
            "no-architecture",
            "layers-not-list",
            "no-shapes",
            "config-not-object",
        ],
    )
    def test_malformed(self, ckpt: Path, payload: object) -> None:
        _write_config(ckpt, payload)
        with pytest.raises(ValueError, match="torchrs"):
            torchrs.io.load(ckpt)

    def test_deeply_nested(self, ckpt: Path) -> None:
        (ckpt / "torchrs.json").write_text("[" * 5000 + "]" * 5000)
        with pytest.raises(UnsafeCheckpointError, match="nests 5000 levels"):
            torchrs.io.load(ckpt)

    def test_not_utf8(self, ckpt: Path) -> None:
        (ckpt / "torchrs.json").write_bytes(b"\xff\xfe{}")
        with pytest.raises(UnsafeCheckpointError, match="not UTF-8"):
            torchrs.io.load(ckpt)


class TestDeclaredSizes:
    """Every declared shape is checked against the safetensors header before allocating."""

    def test_declared_shape_larger_than_stored(self, ckpt: Path) -> None:
        payload = _config(ckpt)
        # 10^12 elements (4 TB): the old loader allocated this before comparing.
        payload["architecture"]["layers"][1]["shapes"]["weight"] = [1_000_000, 1_000_000]
        _write_config(ckpt, payload)
        with pytest.raises(UnsafeCheckpointError, match=r"declares 1\.weight with shape"):
            torchrs.io.load(ckpt)

    def test_config_units_larger_than_stored(self, ckpt: Path) -> None:
        payload = _config(ckpt)
        payload["architecture"]["layers"].append(
            {
                "class_name": "MLP",
                "config": {"units": [10**6, 10**6]},
                "shapes": {"_sublayers.0.weight": [10**6, 2]},
            }
        )
        _write_config(ckpt, payload)
        with pytest.raises(UnsafeCheckpointError):
            torchrs.io.load(ckpt)

    def test_memory_guard(self, ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(MEMORY_GUARD_ENV, "16")  # the embedding alone is 32 bytes
        with pytest.raises(UnsafeCheckpointError, match=MEMORY_GUARD_ENV):
            torchrs.io.load(ckpt)

    def test_header_offsets_past_the_data(self, ckpt: Path) -> None:
        data = (ckpt / "model.safetensors").read_bytes()
        length = struct.unpack("<Q", data[:8])[0]
        (ckpt / "model.safetensors").write_bytes(data[: 8 + length + 4])  # data truncated
        with pytest.raises(UnsafeCheckpointError, match="corrupted"):
            torchrs.io.load(ckpt)

    def test_header_length_past_the_file(self, ckpt: Path) -> None:
        data = (ckpt / "model.safetensors").read_bytes()
        (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", 10**12) + data[8:])
        with pytest.raises(UnsafeCheckpointError, match="header"):
            torchrs.io.load(ckpt)


class TestDtypes:
    """A tensor stored with the wrong kind of dtype is refused, not cast silently."""

    def test_int_for_a_float_weight(self, ckpt: Path) -> None:
        _rewrite_tensors(ckpt, **{"1.weight": torch.zeros(4, 2, dtype=torch.int32)})
        with pytest.raises(UnsafeCheckpointError, match="1.weight as I32"):
            torchrs.io.load(ckpt)

    def test_float_vocabulary_bytes(self, ckpt: Path) -> None:
        _rewrite_tensors(ckpt, **{"0.token_bytes": torch.zeros(3, dtype=torch.float32)})
        with pytest.raises(UnsafeCheckpointError, match="token_bytes"):
            torchrs.io.load(ckpt)

    @pytest.mark.parametrize(
        "offsets",
        [[0, 2, 1, 3], [0, 1, 2, 99], [1, 2, 3, 3]],
        ids=["decreasing", "past-end", "not-from-0"],
    )
    def test_bad_vocabulary_offsets(self, ckpt: Path, offsets: list[int]) -> None:
        _rewrite_tensors(ckpt, **{"0.token_offsets": torch.tensor(offsets, dtype=torch.int64)})
        with pytest.raises(UnsafeCheckpointError, match="token_offsets must rise"):
            torchrs.io.load(ckpt)


class TestFilesOutsideTheDirectory:
    """Only regular files inside the checkpoint directory are opened."""

    def test_weights_symlinked_out(self, ckpt: Path, tmp_path: Path) -> None:
        outside = tmp_path / "elsewhere.safetensors"
        (ckpt / "model.safetensors").rename(outside)
        (ckpt / "model.safetensors").symlink_to(outside)
        with pytest.raises(UnsafeCheckpointError, match="outside the checkpoint directory"):
            torchrs.io.load(ckpt)

    def test_symlink_inside_is_fine(self, ckpt: Path) -> None:
        (ckpt / "model.safetensors").rename(ckpt / "real.safetensors")
        (ckpt / "model.safetensors").symlink_to("real.safetensors")
        assert torchrs.io.load(ckpt)(["a"]).shape == (1, 2)

    def test_config_names_a_vocabulary_file(self, ckpt: Path, tmp_path: Path) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("x\ny\nz\n")
        payload = _config(ckpt)
        payload["architecture"]["layers"][0]["config"]["vocabulary"] = str(secret)
        _write_config(ckpt, payload)
        with pytest.raises(UnsafeCheckpointError, match="names a file as its vocabulary"):
            torchrs.io.load(ckpt)

    def test_fifo_weights_do_not_hang(self, ckpt: Path) -> None:
        (ckpt / "model.safetensors").unlink()
        os.mkfifo(ckpt / "model.safetensors")
        # A real process: a blocked open() cannot be interrupted from a test thread.
        run = subprocess.run(
            [sys.executable, "-c", f"import torchrs.io; torchrs.io.load({str(ckpt)!r})"],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert run.returncode != 0
        assert "UnsafeCheckpointError" in run.stderr and "not a regular file" in run.stderr

    def test_optimizer_state_reads_the_same_checks(self, ckpt: Path) -> None:
        payload = _config(ckpt)
        payload["architecture"]["layers"][1]["shapes"]["weight"] = [5, 2]
        _write_config(ckpt, payload)
        tower = Tower(StringLookup(vocabulary=VOCAB), Embedding(4, 2))
        optimizer = torch.optim.SGD(tower.parameters(), lr=0.1)
        with pytest.raises(UnsafeCheckpointError, match="do not belong together"):
            torchrs.io.load_optimizer_state(optimizer, tower, ckpt)
