"""Importing TensorFlow the way TFRS 0.7.7 needs it (Keras 2 behind ``tf.keras``)."""

from __future__ import annotations

import os
from typing import Any

from converters.tfrs_to_torch.errors import TensorFlowNotInstalledError


def import_tf() -> Any:
    """``tensorflow`` with ``TF_USE_LEGACY_KERAS=1`` set first (TFRS refuses Keras 3).

    Raises:
        TensorFlowNotInstalledError: ``tensorflow`` cannot be imported.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] != "tensorflow":
            raise
        raise TensorFlowNotInstalledError("tensorflow") from None
    return tf


def versions() -> dict[str, str | None]:
    """TensorFlow / TFRS / Keras versions of this environment (None for what is missing)."""
    out: dict[str, str | None] = {}
    try:
        out["tensorflow"] = import_tf().__version__
    except TensorFlowNotInstalledError:
        out["tensorflow"] = None
    try:
        import tf_keras

        out["keras"] = tf_keras.__version__
    except ImportError:
        out["keras"] = None
    try:
        from importlib.metadata import version

        out["tensorflow_recommenders"] = version("tensorflow-recommenders")
    except Exception:
        out["tensorflow_recommenders"] = None
    return out
