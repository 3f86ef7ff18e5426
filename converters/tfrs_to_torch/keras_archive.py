"""Loading a ``.keras`` archive with tf_keras without extracting it anywhere but ``--out``'s sibling.

``tf_keras.models.load_model`` extracts the whole archive (weights included) to a fresh directory
in ``$TMPDIR`` as soon as it holds assets, and the converter then re-saved the model as a Keras
SavedModel in another ``$TMPDIR`` directory: a SIGKILLed conversion left both behind, where
nothing would ever remove them. Here the archive, already bounded and allow-listed by
:func:`~converters.tfrs_to_torch.safety.keras_files.check_keras_archive`, is read member by member:

* ``config.json`` is read in memory (size and nesting limits) and the model built from it with
  tf_keras's own deserialisation (``deserialize_keras_object``, ``safe_mode=True``), as
  ``load_model`` does;
* ``model.weights.h5`` is opened by h5py straight from the zip member (no copy on disk), with
  tf_keras's ``H5IOStore`` and restored by tf_keras's own ``_load_state`` walk (so every variable
  lands where ``load_model`` puts it);
* only ``assets/`` members (a lookup layer's ``vocabulary.txt``: tf_keras reads it with ``open``)
  are written, into ``scratch``, which the caller places inside the conversion's temporary
  sibling of ``--out``; the re-saved Keras SavedModel goes there too. A killed run leaves them
  only there, and the next conversion to that ``--out`` removes that sibling as stale.
"""

from __future__ import annotations

import errno
import shutil
import zipfile
from pathlib import Path
from typing import Any

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.safety.keras_files import ASSETS_PREFIX, read_member_json
from converters.tfrs_to_torch.tf_env import import_tf

# Members tf_keras's saving_lib names (tf_keras.src.saving.saving_lib._CONFIG_FILENAME / _VARS_FNAME).
CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
# tf_keras opens an asset store only when the archive holds more than its three fixed members.
FIXED_MEMBERS = 3
# Chunk of a member copied to disk at a time (an asset is read without holding it whole).
COPY_CHUNK_BYTES = 1 << 20


def _extract_assets(zf: zipfile.ZipFile, root: Path) -> None:
    """Writes the ``assets/`` members under ``root`` (names checked again: no ``..``, no absolute
    path)."""
    for info in zf.infolist():
        if not info.filename.startswith(ASSETS_PREFIX) or info.is_dir():
            continue
        parts = info.filename.split("/")
        if ".." in parts or info.filename.startswith("/") or "\\" in info.filename:
            # check_keras_archive refused these; the file may have been replaced since.
            raise ConversionError(f"{zf.filename}: member {info.filename!r} points outside.")
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as source, open(target, "xb") as sink:
            shutil.copyfileobj(source, sink, COPY_CHUNK_BYTES)


def _build(zf: zipfile.ZipFile, config: dict[str, Any], assets: Path | None, compile: bool) -> Any:
    """``saving_lib.load_model``'s body, reading the archive in place (see the module docstring)."""
    from tf_keras.src.saving import saving_lib
    from tf_keras.src.saving.serialization_lib import ObjectSharingScope, deserialize_keras_object

    v3_state = saving_lib._SAVING_V3_ENABLED
    previous = getattr(v3_state, "value", False)
    v3_state.value = True  # as load_model: the v3 (.keras) deserialisation rules
    try:
        if not compile:
            config = {**config, "compile_config": None}
        with ObjectSharingScope():
            model = deserialize_keras_object(config, None, safe_mode=True)
        weights = saving_lib.H5IOStore(WEIGHTS_MEMBER, archive=zf, mode="r")
        asset_store = None if assets is None else saving_lib.DiskIOStore(str(assets), mode="r")
        try:
            saving_lib._load_state(
                model,
                weights_store=weights,
                assets_store=asset_store,
                inner_path="",
                visited_trackables=set(),
            )
        finally:
            weights.close()
        return model
    finally:
        v3_state.value = previous


def load_keras_archive(path: str, scratch: Path) -> Any:
    """The tf_keras model of a checked ``.keras`` archive; its assets (if any) go to ``scratch``.

    Args:
        path: the archive (already checked by ``check_keras_archive``).
        scratch: an empty directory inside the conversion's temporary sibling of ``--out``.

    Returns:
        The restored tf_keras model (compiled when its compile config can be rebuilt).

    Raises:
        ConversionError: tf_keras cannot build or restore the model.
    """
    import_tf()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ConversionError(f"{path} is not a readable .keras archive ({err}).") from None
    with zf:
        config = read_member_json(zf, CONFIG_MEMBER)
        names = zf.namelist()
        if WEIGHTS_MEMBER not in names:
            raise ConversionError(
                f"{path} holds no {WEIGHTS_MEMBER}; the archive is truncated. Re-save the model."
            )
        assets = None
        if len(names) > FIXED_MEMBERS:
            _extract_assets(zf, scratch)  # an OSError here is the file system's (a full disk)
            assets = scratch / ASSETS_PREFIX.rstrip("/")
        try:
            try:
                # Compiled, so that the optimizer's variables (model.weights.h5) come along too.
                return _build(zf, config, assets, compile=True)
            except Exception:
                # A compile config tf_keras cannot rebuild (a custom loss...): weights only.
                return _build(zf, config, assets, compile=False)
        except Exception as err:  # h5py reports a corrupted member as an OSError: not the disk's
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConversionError(f"tf_keras cannot load {path}: {message}") from None


def resave(model: Any, target: Path) -> None:
    """Saves ``model`` as a Keras SavedModel at ``target`` (inside the conversion's scratch).

    Raises:
        OSError: the file system is full (ENOSPC), as the CLI reports a full disk anywhere else.
        ConversionError: TensorFlow cannot write the SavedModel for another reason.
    """
    try:
        model.save(str(target), save_format="tf")
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, OSError):
            raise
        if "No space left on device" in str(err):  # TF's C++ writer: an OpError, not an OSError
            raise OSError(errno.ENOSPC, "No space left on device", str(target)) from None
        raise ConversionError(f"TensorFlow cannot re-save the model at {target}: {first}") from None
