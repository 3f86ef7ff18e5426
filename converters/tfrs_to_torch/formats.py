"""Input detection: which kind of TensorFlow export a path is, without flags."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.safety.keras_files import read_member_json  # bounded (issue 11)

SAVED_MODEL = "saved_model"  # tf.saved_model.save(obj, dir)
KERAS_SAVED_MODEL = "keras_saved_model"  # model.save(dir, save_format="tf"): adds keras_metadata.pb
KERAS_ARCHIVE = "keras_archive"  # model.save("m.keras") with tf_keras (Keras 2 "keras_v3" format)
CHECKPOINT = (
    "checkpoint"  # save_weights / tf.train.Checkpoint / ModelCheckpoint: prefix or directory
)

# Files that make a directory a SavedModel (tf.saved_model.save writes the binary proto).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
# model.save(save_format="tf") writes the Keras layer configs next to the SavedModel proto.
KERAS_METADATA_FILE = "keras_metadata.pb"
# A tf_keras `.keras` archive holds these two (plus metadata.json with keras_version).
KERAS_ARCHIVE_FILES = ("config.json", "model.weights.h5")
# The first Keras major version whose `.keras` files tf_keras (and so TFRS 0.7.7) cannot read.
KERAS_3_MAJOR = 3


@dataclass(frozen=True)
class SourceFormat:
    """What a model path turned out to be.

    Attributes:
        kind: one of ``saved_model``, ``keras_saved_model``, ``keras_archive``, ``checkpoint``.
        path: the path the user gave, resolved.
        checkpoint_prefix: the TF checkpoint prefix holding the variables (``dir/variables/variables``
            for a SavedModel; ``None`` for a ``.keras`` archive).
    """

    kind: str
    path: str
    checkpoint_prefix: str | None


def _keras_version(archive: Path) -> str:
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            missing = [n for n in KERAS_ARCHIVE_FILES if n not in names]
            meta = read_member_json(zf, "metadata.json") if "metadata.json" in names else {}
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as err:
        raise ConversionError(
            f"{archive} is not a readable .keras archive ({err}). Re-save the model with "
            "model.save('model.keras') from tf_keras."
        ) from None
    version = str(meta.get("keras_version", ""))
    if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= KERAS_3_MAJOR:
        raise ConversionError(
            f"{archive} was written by Keras {version} (Keras 3). TFRS 0.7.7 runs on Keras 2 "
            "(tf_keras) and so does this converter: re-save the model with TF_USE_LEGACY_KERAS=1 "
            "(model.save('model.keras') or model.save(dir, save_format='tf'))."
        )
    if missing:
        raise ConversionError(
            f"{archive} is a zip archive without {', '.join(missing)}: not a tf_keras .keras file."
        )
    return version


def _checkpoint_prefix(path: Path) -> str | None:
    """The prefix of a TF checkpoint given as a prefix or as its directory (or None)."""
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            text = state.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    prefix = Path(name) if os.path.isabs(name) else path / name
                    return str(prefix)
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return str(indexes[0].with_suffix(""))
        return None
    if Path(str(path) + ".index").is_file():
        return str(path)
    if path.suffix == ".index" and path.is_file():
        return str(path.with_suffix(""))
    return None


def detect_format(path: str | os.PathLike[str]) -> SourceFormat:
    """Recognises a TF SavedModel, Keras SavedModel, ``.keras`` archive or TF checkpoint.

    Args:
        path: a directory or file as the user saved it (a checkpoint may be given by its prefix,
            e.g. ``ckpt/ckpt-3``, or by its directory holding a ``checkpoint`` file).

    Returns:
        The :class:`SourceFormat`.

    Raises:
        ConversionError: the path does not exist, is empty, or is none of the known formats
            (including a Keras 3 ``.keras`` file).
    """
    raw = os.fspath(path)
    p = Path(raw).expanduser()
    if not p.exists() and not Path(raw + ".index").exists():
        raise ConversionError(
            f"MODEL_DIR {raw!r} does not exist. Pass the directory given to tf.saved_model.save / "
            "model.save, a .keras file, or a checkpoint prefix (e.g. ckpt/ckpt-3)."
        )
    if p.is_dir():
        if not any(p.iterdir()):
            raise ConversionError(
                f"MODEL_DIR {raw!r} is an empty directory: nothing to convert. Did the export fail?"
            )
        if any((p / name).is_file() for name in SAVED_MODEL_FILES):
            prefix = str(p / "variables" / "variables")
            kind = KERAS_SAVED_MODEL if (p / KERAS_METADATA_FILE).is_file() else SAVED_MODEL
            return SourceFormat(kind, str(p.resolve()), prefix)
    elif p.is_file() and zipfile.is_zipfile(p):
        _keras_version(p)
        return SourceFormat(KERAS_ARCHIVE, str(p.resolve()), None)
    found = _checkpoint_prefix(p)
    if found is not None:
        return SourceFormat(CHECKPOINT, str(p.resolve()), found)
    raise ConversionError(
        f"{raw!r} is not a model export this converter knows: expected a SavedModel directory "
        "(saved_model.pb), a .keras archive, or a TF checkpoint (prefix with .index, or a directory "
        "with a `checkpoint` file)."
    )
