"""The exceptions the converter raises for a user's mistake or a failed check (the CLI prints them, no traceback)."""

from __future__ import annotations

from enum import Enum


class ConversionError(ValueError):
    """A model that cannot be converted as asked: the message says what was wrong and how to fix it."""


class UnsupportedLayerError(ConversionError):
    """A layer the converter has no rule for; ``--no-strict`` turns it into a report entry.

    Attributes:
        class_name: the Keras class of the layer (or what the export says it is).
        path: its object path in the export (``query_model/layer-2``).
        detail: why it is unsupported.
        problem: the message without the advice (what ``report.json`` records).

    The advice depends on ``strict``: under ``--no-strict`` it never says to pass ``--no-strict``.

    >>> "--no-strict" in str(UnsupportedLayerError("Lambda", "layer-2", strict=False))
    False
    >>> UnsupportedLayerError("Lambda", "layer-2", "Python code").problem
    'Unsupported layer Lambda at layer-2: Python code'
    """

    def __init__(
        self, class_name: str, path: str, detail: str = "", *, strict: bool = True
    ) -> None:
        self.class_name = class_name
        self.path = path
        self.detail = detail
        self.problem = (
            f"Unsupported layer {class_name} at {path or '<root>'}{': ' + detail if detail else ''}"
        )
        # The advice depends on the mode: under --no-strict, passing --no-strict is no fix.
        advice = (
            "torchrs cannot rebuild it; pass --no-strict to convert the rest and list it in "
            "report.json, or rewrite that part in torchrs and use load_weights(module, MODEL_DIR)."
            if strict
            else "torchrs cannot rebuild it; rewrite that part in torchrs and use "
            "load_weights(module, MODEL_DIR)."
        )
        super().__init__(f"{self.problem}. {advice}")


class TensorFlowNotInstalledError(ConversionError):
    """TensorFlow (with tf_keras) cannot be imported: the one reason the forward comparison may be skipped."""

    def __init__(self, missing: str) -> None:
        self.missing = missing
        super().__init__(
            f"TensorFlow is not installed (cannot import {missing!r}). Install the [tf] extra: "
            "pip install -e '.[tf]' (or make setup)."
        )


class VerificationCheck(str, Enum):
    """The checks every conversion runs before its output is renamed into place, in order."""

    TENSORS = "re-reading the written tensors"
    BUILD = "building the module with torchrs.load"
    FORWARD = "the TF forward comparison"


class VerificationError(ConversionError):
    """A verification check failed: nothing was renamed into place.

    Attributes:
        check: the :class:`VerificationCheck` that failed.

    >>> str(VerificationError(VerificationCheck.BUILD, "KeyError: 'weight'"))
    "Verification failed (building the module with torchrs.load): KeyError: 'weight'. Nothing was written."
    """

    def __init__(self, check: VerificationCheck, detail: str) -> None:
        self.check = check
        detail = detail.rstrip(".")
        super().__init__(f"Verification failed ({check.value}): {detail}. Nothing was written.")
