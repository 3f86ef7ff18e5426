"""Imports TensorFlow with Keras 2, as TFRS 0.7.7 requires, so that no user ever sets TF_USE_LEGACY_KERAS."""

from __future__ import annotations

import os
from types import ModuleType


def import_tf() -> tuple[ModuleType, ModuleType]:
    """Returns ``(tensorflow, tensorflow_recommenders)`` with ``tf.keras`` being Keras 2 (tf-keras).

    TensorFlow has no type stubs. A function that derives classes from TF classes (``class M(tfrs.Model)``)
    first declares the names it unpacks these modules into as ``Any`` (``tfrs: Any``): mypy accepts a
    dynamic base class only through a variable declared ``Any``.

    Raises:
        ImportError: with the install command, when the ``tf`` extra is missing, or when TensorFlow was already
            imported with Keras 3 in this process.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tensorflow_recommenders as tfrs
    except ImportError as err:
        raise ImportError(
            f"{err}. The TFRS side needs the `tf` extra: pip install 'torchrs[tf]' "
            "(tensorflow-cpu, tf-keras, tensorflow-recommenders==0.7.7)."
        ) from err
    return tf, tfrs


# The tensorflow-ranking modules the listwise tutorial uses; they need TensorFlow alone.
_TFR_KERAS_MODULES = ("losses", "metrics")


def import_tfr() -> ModuleType:
    """Returns ``tensorflow_ranking.python.keras``, the listwise tutorial's ``tfr.keras``, with ``losses`` and ``metrics``.

    tensorflow-ranking 0.5.5, the last release, pins ``tensorflow<2.16`` because its package ``__init__`` imports
    ``tf.estimator`` (removed in TF 2.16). Its Keras losses and metrics import only TensorFlow, so they are loaded
    here without running the package ``__init__`` files: the parent packages are registered as bare namespaces
    pointing at the installed directories. The code that runs is tensorflow-ranking's own, unmodified.

    Raises:
        ImportError: with the install command, when tensorflow-ranking is not installed.
    """
    import importlib
    import importlib.util
    import sys

    import_tf()
    if "tensorflow_ranking.python.keras.losses" not in sys.modules:
        spec = importlib.util.find_spec("tensorflow_ranking")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "tensorflow-ranking is not installed; the listwise scenario's TF side needs its losses and NDCG: "
                "pip install --no-deps tensorflow-ranking==0.5.5 (--no-deps: it pins tensorflow<2.16 for code "
                "torchrs does not use)."
            )
        root = next(iter(spec.submodule_search_locations))
        for name, path in (
            ("tensorflow_ranking", root),
            ("tensorflow_ranking.python", os.path.join(root, "python")),
            ("tensorflow_ranking.python.keras", os.path.join(root, "python", "keras")),
        ):
            if name not in sys.modules:
                package = ModuleType(name)
                package.__path__ = [path]
                sys.modules[name] = package
    keras = sys.modules["tensorflow_ranking.python.keras"]
    for module in _TFR_KERAS_MODULES:
        setattr(keras, module, importlib.import_module(f"tensorflow_ranking.python.keras.{module}"))
    return keras
