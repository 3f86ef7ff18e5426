"""Pieces that need no TensorFlow: the streaming safetensors writer, the rules table, format detection."""

from __future__ import annotations

import itertools
import json
import zipfile

import numpy as np
import pytest
from safetensors.numpy import load_file

from converters.tfrs_to_torch import formats, rules
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.plan import TensorPlan, bytes_tensors
from converters.tfrs_to_torch.writer import AtomicDirectory, write_safetensors


def _plan(name: str, array: np.ndarray) -> TensorPlan:
    return TensorPlan(name, name, array.shape, array.dtype, lambda: array)


def test_streamed_file_reads_back_with_safetensors(tmp_path) -> None:
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensors = [
        _plan("w", rules.apply_transpose(kernel, True)),
        _plan("ids", np.array([7, 9], dtype=np.int64)),
        *bytes_tensors("vocab.", [b"a\nb", b"\xff", b""], "table"),
    ]
    write_safetensors(tmp_path / "m.safetensors", tensors, metadata={"format": "pt"})
    back = load_file(str(tmp_path / "m.safetensors"))
    assert np.array_equal(back["w"], kernel.T) and back["ids"].tolist() == [7, 9]
    blob, offsets = back["vocab.token_bytes"].tobytes(), back["vocab.token_offsets"].tolist()
    assert [blob[a:b] for a, b in itertools.pairwise(offsets)] == [b"a\nb", b"\xff", b""]


def test_writer_rejects_duplicate_names_and_shape_drift(tmp_path) -> None:
    a = np.zeros(2, dtype=np.float32)
    with pytest.raises(ConversionError, match="Two source tensors map to the torch name 'x'"):
        write_safetensors(tmp_path / "d.safetensors", [_plan("x", a), _plan("x", a)])
    drift = TensorPlan("y", "src/y", (3,), np.dtype("float32"), lambda: a)
    with pytest.raises(ConversionError, match=r"src/y: read shape \(2,\)"):
        write_safetensors(tmp_path / "e.safetensors", [drift])


def test_rules_table() -> None:
    assert rules.match("Embedding", "embeddings") == ("weight", False)
    assert rules.match("Cross", "_dense_u/kernel") == ("_dense_u.weight", True)
    assert rules.match("Dense", "gamma") is None
    with pytest.raises(ValueError, match="Only 2-D kernels"):
        rules.apply_transpose(np.zeros((2, 2, 2)), True)


def test_atomic_directory_commit_and_abort(tmp_path) -> None:
    target = AtomicDirectory(tmp_path / "out", overwrite=False)
    (target.path / "f").write_text("x")
    target.commit()
    assert (tmp_path / "out" / "f").read_text() == "x"
    again = AtomicDirectory(tmp_path / "out", overwrite=True)
    again.abort()
    assert (tmp_path / "out" / "f").exists() and not again.path.exists()
    with pytest.raises(ConversionError, match=r"not empty\. Pass --overwrite"):
        AtomicDirectory(tmp_path / "out", overwrite=False)


def test_detect_formats(tmp_path) -> None:
    saved = tmp_path / "sm"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert formats.detect_format(saved).kind == formats.SAVED_MODEL
    (saved / "keras_metadata.pb").write_bytes(b"")
    assert formats.detect_format(saved).kind == formats.KERAS_SAVED_MODEL
    ckpt = tmp_path / "ck"
    ckpt.mkdir()
    (ckpt / "ckpt-3.index").write_bytes(b"")
    (ckpt / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    assert formats.detect_format(ckpt).checkpoint_prefix == str(ckpt / "ckpt-3")
    assert formats.detect_format(ckpt / "ckpt-3").kind == formats.CHECKPOINT
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "2.21.0"}))
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", b"")
    assert formats.detect_format(archive).kind == formats.KERAS_ARCHIVE
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(ConversionError, match="not a model export this converter knows"):
        formats.detect_format(tmp_path / "junk")
