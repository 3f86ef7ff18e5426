"""Writing a torchrs checkpoint directory atomically: ``model.safetensors`` streamed tensor by tensor.

The safetensors file is written by hand (the format is an 8-byte header length, a JSON header and
the raw little-endian bytes): the header needs only shapes and dtypes, so each tensor is read from
the TF checkpoint, written and released before the next one. A 2M x 64 table is never held twice.
Everything goes into a temporary sibling directory that is renamed into place at the end, so a
failure leaves no partial output.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.plan import TensorPlan
from converters.tfrs_to_torch.safety.output import OutputLock, remove_stale_siblings
from torchrs.io.spec import CONFIG_FILE, REPORT_FILE, WEIGHTS_FILE  # defined once, by torchrs

__all__ = [
    "CONFIG_FILE",
    "REPORT_FILE",
    "SCRATCH_DIR",
    "WEIGHTS_FILE",
    "AtomicDirectory",
    "check_output_dir",
    "write_json",
    "write_safetensors",
]
# safetensors dtype codes for the NumPy dtypes a TF model holds.
SAFETENSORS_DTYPES: dict[np.dtype, str] = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
# Inside the temporary directory: what a .keras conversion unpacks and re-saves (assets, a Keras
# SavedModel); removed before the directory becomes --out, and with it on any failure.
SCRATCH_DIR = "keras-scratch"
# safetensors pads the JSON header with spaces to a multiple of 8 bytes (aligned tensor data).
HEADER_ALIGNMENT = 8


def write_safetensors(
    path: Path,
    tensors: list[TensorPlan],
    metadata: dict[str, str] | None = None,
    progress: Callable[[Iterable[TensorPlan]], Iterable[TensorPlan]] | None = None,
) -> None:
    """Streams ``tensors`` into a safetensors file (one tensor in memory at a time).

    Args:
        path: the file to create.
        tensors: the planned tensors (loaded lazily, in order).
        metadata: string metadata stored in the header.
        progress: optional wrapper of the iteration (a tqdm bar).

    Raises:
        ConversionError: an unsupported dtype, two tensors with one name, or a tensor whose loaded
            shape differs from the planned one.
    """
    header: dict[str, Any] = {}
    offset = 0
    names: set[str] = set()
    for plan in tensors:
        if plan.torch_name in names:
            raise ConversionError(f"Two source tensors map to the torch name {plan.torch_name!r}.")
        names.add(plan.torch_name)
        code = SAFETENSORS_DTYPES.get(np.dtype(plan.dtype))
        if code is None:
            raise ConversionError(
                f"{plan.source} has dtype {plan.dtype}, which safetensors cannot store."
            )
        size = int(np.prod(plan.shape, dtype=np.int64)) * np.dtype(plan.dtype).itemsize
        header[plan.torch_name] = {
            "dtype": code,
            "shape": list(plan.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % HEADER_ALIGNMENT)
    iterator: Iterable[TensorPlan] = progress(tensors) if progress else tensors
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for plan in iterator:
            array = np.asarray(plan.load())
            if tuple(array.shape) != tuple(plan.shape) or array.dtype != np.dtype(plan.dtype):
                raise ConversionError(
                    f"{plan.source}: read shape {array.shape} / {array.dtype}, expected "
                    f"{plan.shape} / {plan.dtype}. The variables file is inconsistent; re-export."
                )
            little = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
            if (
                little.size
            ):  # memoryview: no bytes copy of a large table (tobytes() would double it)
                handle.write(little.reshape(-1).view(np.uint8).data)
            del array, little


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses an existing non-empty output directory (unless ``overwrite``) or a file there."""
    if out.exists():
        if not out.is_dir():
            raise ConversionError(
                f"--out {out} exists and is not a directory; choose another path."
            )
        if any(out.iterdir()) and not overwrite:
            raise ConversionError(
                f"Output directory {out} exists and is not empty. Pass --overwrite to replace it, "
                "or choose another --out."
            )
    parent = out.parent if out.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise ConversionError(
            f"Cannot write to {probe}: permission denied. Choose a writable --out location."
        )


class AtomicDirectory:
    """A temporary directory next to ``target`` that becomes ``target`` on :meth:`commit`."""

    def __init__(self, target: Path, overwrite: bool) -> None:
        self.target = target
        self.overwrite = overwrite
        check_output_dir(target, overwrite)
        # The parents this run creates go again on abort (the model is read after this point).
        self._created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        self._lock = OutputLock(target)  # issue 11: one writer per --out, then the stale temps go
        try:
            remove_stale_siblings(target)
            check_output_dir(target, overwrite)  # again, under the lock
            self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        except OSError as err:
            self._lock.release()
            raise ConversionError(
                f"Cannot create the output next to {target}: {err.strerror}. Choose a writable --out."
            ) from None
        except BaseException:
            self._lock.release()
            raise

    def commit(self) -> None:
        old = None
        if self.target.exists():
            if any(self.target.iterdir()):
                old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
                os.replace(self.target, old)
            else:
                self.target.rmdir()
        os.replace(self.path, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._lock.release()

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.release()
        for parent in self._created:  # innermost first; only while empty
            try:
                parent.rmdir()
            except OSError:
                break


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Writes indented UTF-8 JSON."""
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
