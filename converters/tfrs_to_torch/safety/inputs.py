"""What a conversion checks before it reads a model: where it writes, what the export would run,
how much it declares, and the ``--vocab`` files it was given.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.safety.graph_ops import OpAudit, audit_saved_model
from converters.tfrs_to_torch.safety.keras_files import (
    ClassAudit,
    check_keras_archive,
    check_keras_metadata,
)
from converters.tfrs_to_torch.safety.nonfinite import NonFinite
from converters.tfrs_to_torch.safety.output import check_output, source_paths
from torchrs._safe_io import MEMORY_GUARD_ENV, memory_limit

# A --vocab file is read whole; a vocabulary of 100M tokens is ~1 GiB, larger is not a vocabulary.
MAX_VOCAB_FILE_BYTES = 1 << 30
# A string element of a checkpoint tensor is stored as a varint length (>= 1 byte) plus its bytes.
MIN_STRING_ELEMENT_BYTES = 1
# A SavedModel holds a handful of files (plus assets); more than this is not an export.
MAX_MODEL_ENTRIES = 100_000
# formats.SourceFormat kinds (strings; formats is not imported to keep this module TF-free).
_ARCHIVE = "keras_archive"
_SAVED_MODELS = ("saved_model", "keras_saved_model")


@dataclass(frozen=True)
class SafetyRecord:
    """What the safety checks found; ``report.json`` gets :meth:`as_json` under ``"safety"``."""

    trust_model: bool
    allow_nonfinite: bool
    ops: OpAudit | None = None
    nonfinite: dict[str, NonFinite] = field(default_factory=dict)
    classes: ClassAudit | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "trust_model": self.trust_model,
            "op_check": None if self.ops is None else self.ops.as_json(),
            "class_check": None if self.classes is None else self.classes.as_json(),
            "allow_nonfinite": self.allow_nonfinite,
            "nonfinite": [f.as_json() for f in self.nonfinite.values()],
        }


def check_checkpoint_sizes(prefix: str) -> None:
    """The tensors a TF checkpoint's index declares must fit, together, in its data files, and
    each in the memory guard.

    The index (read by TensorFlow's own ``CheckpointReader``: shapes and dtypes, no data) declares
    every tensor; the data files store them back to back, so their sizes add up to at least the
    sum of the declared sizes (a string element takes at least one byte, its length). A forged or
    truncated index / data pair fails that sum before any tensor is allocated from it.

    Raises:
        ConversionError: declared tensors larger than the stored data (a forged index), or one
            larger than ``TORCHRS_MAX_LOAD_BYTES`` / the machine's memory.
    """
    from converters.tfrs_to_torch.tf_format import open_checkpoint

    reader = open_checkpoint(prefix)
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    stored = sum(p.stat().st_size for p in Path(prefix).parent.glob(Path(prefix).name + ".data-*"))
    largest = declared = 0
    for key, shape in shapes.items():
        dtype = dtypes[key]
        elements = math.prod(int(d) for d in shape)
        if dtype.name == "string":
            declared += elements * MIN_STRING_ELEMENT_BYTES
            continue
        size = elements * dtype.size
        if size > stored:
            raise ConversionError(
                f"{prefix}: variable {key.split('/.ATTRIBUTES')[0]!r} declares {size} bytes "
                f"({dtype.name}{list(shape)}) but the data files hold {stored}; the checkpoint is "
                "truncated, corrupted or forged. Re-export the model."
            )
        declared += size
        largest = max(largest, size)
    if declared > stored:
        raise ConversionError(
            f"{prefix}: the index declares {len(shapes)} tensors of {declared} bytes in all but "
            f"the data files hold {stored}; the index does not belong to these data files "
            "(truncated, corrupted or forged). Re-export the model."
        )
    # The converter streams one tensor at a time: the largest one is what must fit in memory.
    if largest > memory_limit():
        raise ConversionError(
            f"{prefix} declares a {largest}-byte variable, more than the {memory_limit()} bytes "
            f"allowed (raise {MEMORY_GUARD_ENV} if this machine can hold it)."
        )


def check_model_files(path: str, checkpoint_prefix: str | None) -> None:
    """Every file the conversion may open is a regular file: a FIFO would block a read forever, a
    device would stream without end.

    Raises:
        ConversionError: naming the first such entry.
    """
    root = Path(path)
    entries: list[Path] = [root]
    if root.is_dir():
        for count, entry in enumerate(root.rglob("*")):
            if count >= MAX_MODEL_ENTRIES:
                raise ConversionError(
                    f"{root} holds more than {MAX_MODEL_ENTRIES} files; that is not a model export."
                )
            entries.append(entry)
    if checkpoint_prefix is not None:
        prefix = Path(checkpoint_prefix)
        entries += list(prefix.parent.glob(prefix.name + ".*"))
        entries.append(prefix.parent / "checkpoint")
    for entry in entries:
        try:
            mode = entry.stat().st_mode
        except FileNotFoundError:
            continue  # a dangling name: the readers report what is missing
        except OSError as err:
            raise ConversionError(f"{entry} cannot be read: {err.strerror}.") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ConversionError(
                f"{entry} is not a regular file (a FIFO, socket or device); a model export holds "
                "only regular files. Copy the real files there."
            )


def preflight(
    kind: str,
    path: str,
    checkpoint_prefix: str | None,
    out: Path,
    *,
    overwrite: bool,
    trust_model: bool,
    allow_nonfinite: bool,
) -> SafetyRecord:
    """Everything checked before the model is read (see the package docstring).

    Raises:
        ConversionError: the first refusal.
    """
    check_output(source_paths(path, checkpoint_prefix), out, overwrite)
    check_model_files(path, checkpoint_prefix)
    audit = classes = None
    if kind == _ARCHIVE:
        check_keras_archive(path)
    if kind in _SAVED_MODELS:
        classes = check_keras_metadata(path, trust_model)
        audit = audit_saved_model(path, trust_model)
    if checkpoint_prefix is not None:
        check_checkpoint_sizes(checkpoint_prefix)
    return SafetyRecord(trust_model, allow_nonfinite, audit, classes=classes)


def check_vocab_file(name: str, file: Path) -> None:
    """A ``--vocab NAME=FILE`` file is a readable regular file of valid vocabulary lines.

    Raises:
        ConversionError: a FIFO / device / directory, unreadable, too large, or an empty line.
    """
    from torchrs.preprocessing._index_lookup import read_vocabulary_file

    try:
        info = os.stat(file)
        if not stat.S_ISREG(info.st_mode):
            raise ConversionError(f"--vocab {name}: {file} is not a regular file.")
        if info.st_size > MAX_VOCAB_FILE_BYTES:
            raise ConversionError(
                f"--vocab {name}: {file} is {info.st_size} bytes; a vocabulary file may be at most "
                f"{MAX_VOCAB_FILE_BYTES}."
            )
        read_vocabulary_file(file)
    except ConversionError:
        raise
    except (OSError, ValueError) as err:
        detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConversionError(f"--vocab {name}: cannot use {file}: {detail}") from None


class VocabRequests(dict[str, Path]):
    """``--vocab`` files by layer path or name, remembering which names the converter asked for."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__(files)
        self.asked: list[str] = []
        self.used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self.asked and key != "\0":
            self.asked.append(key)
        if key in self:
            self.used.add(key)
        return super().get(key, default)


def check_vocab_used(vocab: Iterable[str] | None, source: str) -> None:
    """Every ``--vocab NAME`` must have matched a lookup layer of the model.

    Raises:
        ConversionError: naming the unknown NAME and the layers that take vocabularies.
    """
    if not vocab:
        return
    asked = getattr(vocab, "asked", [])
    used: set[str] = getattr(vocab, "used", set())
    unknown = [name for name in vocab if name not in used]
    if unknown:
        layers = ", ".join(asked) if asked else "none (a TF checkpoint holds no lookup layers)"
        raise ConversionError(
            f"--vocab {unknown[0]}: {source} has no lookup layer with that name or path. Layers "
            f"that take a vocabulary: {layers}."
        )
