"""What a torchrs checkpoint directory holds, defined once: file names, format version, prefixes, ``torchrs.json``.

A directory holds ``torchrs.json`` (a :class:`CheckpointSpec`), ``model.safetensors`` (tensors under torch names;
vocabularies as ``token_bytes`` + ``token_offsets``, see :mod:`torchrs.io.tensors`; optimizer slots under
:data:`OPTIMIZER_PREFIX`) and ``report.json`` (the converter's record of every source variable). The converter
(``converters.tfrs_to_torch``) writes these names and :func:`torchrs.load` reads them; both import them from here.

``torchrs.json`` is data, never code: :meth:`CheckpointSpec.from_json` checks every field's type before anything
is built, and each architecture node is checked against the :mod:`torchrs.io.registry` of layer kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "OPTIMIZER_PREFIX",
    "REPORT_FILE",
    "WEIGHTS_FILE",
    "CheckpointFormatError",
    "CheckpointSpec",
    "ModelKind",
]

#: Version of the directory layout written by the converter and read by :func:`torchrs.load`.
FORMAT_VERSION = 1
#: ``torchrs.json["format"]``: tells a torchrs checkpoint from any other JSON file.
FORMAT_NAME = "torchrs"
CONFIG_FILE = "torchrs.json"
WEIGHTS_FILE = "model.safetensors"
REPORT_FILE = "report.json"
#: Prefix of the optimizer tensors in ``model.safetensors`` (``optimizer/<tf path>/<slot>``, ``optimizer/iterations``).
OPTIMIZER_PREFIX = "optimizer/"


class ModelKind(str, Enum):
    """What a checkpoint rebuilds into (``torchrs.json["model_kind"]``)."""

    TOWER = "tower"  # a Keras Sequential / functional model: raw inputs -> embeddings
    INDEX = "index"  # a TFRS BruteForce / Streaming index with its query tower
    MODEL = "model"  # the towers of a tfrs.Model, as attributes of a Container
    WEIGHTS = "weights"  # a TF checkpoint: tensors by TF object path, for load_weights
    GRAPH = "graph"  # translated signatures of a tf.saved_model.save export (torchrs.graph)


class CheckpointFormatError(ValueError):
    """``torchrs.json`` does not describe a checkpoint this torchrs can rebuild: names the field and the fix.

    Attributes:
        where: the offending field (``architecture.layers[2].config.units``).
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        super().__init__(
            f"torchrs.json: {where}: {problem}. The file was not written by this torchrs's converter or was "
            "edited; re-run python -m converters.tfrs_to_torch MODEL_DIR --out DIR."
        )


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def check_type(value: Any, expected: type | tuple[type, ...], where: str) -> Any:
    """``value`` when it has a JSON type in ``expected`` (a bool is not an int here), else the typed error.

    >>> check_type(3, int, "config.units")
    3
    >>> check_type("3", int, "config.units")
    Traceback (most recent call last):
    ...
    torchrs.io.spec.CheckpointFormatError: torchrs.json: config.units: expected int, got str '3'. ...
    """
    types = expected if isinstance(expected, tuple) else (expected,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True  # JSON has one number type
    if not ok:
        raise CheckpointFormatError(
            where, f"expected {_type_name(expected)}, got {type(value).__name__} {value!r:.60}"
        )
    return value


def require(
    payload: dict[str, Any], key: str, expected: type | tuple[type, ...], where: str
) -> Any:
    """``payload[key]``, present and of the expected type."""
    if key not in payload:
        raise CheckpointFormatError(f"{where}.{key}" if where else key, "missing field")
    return check_type(payload[key], expected, f"{where}.{key}" if where else key)


@dataclass(frozen=True)
class CheckpointSpec:
    """The contents of ``torchrs.json``.

    Attributes:
        model_kind: what the checkpoint rebuilds into.
        architecture: the root architecture node (see :mod:`torchrs.io.registry` for the node kinds); for
            :attr:`ModelKind.WEIGHTS`, ``{"class_name": "Weights", "layout": "tensorflow", "paths": ...}``.
        format_version: :data:`FORMAT_VERSION` of the writer.
        source: ``{"path", "format"}`` of the converted export (converter output only).
        versions: TensorFlow / Keras / TFRS versions of the conversion.
        summary: the conversion summary (counts, skipped reasons, forward check).
        notes: remarks for the user.

    >>> spec = CheckpointSpec(ModelKind.TOWER, {"class_name": "Sequential", "layers": []})
    >>> CheckpointSpec.from_json(spec.to_json()) == spec
    True
    """

    model_kind: ModelKind
    architecture: dict[str, Any]
    format_version: int = FORMAT_VERSION
    source: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The ``torchrs.json`` payload (plain JSON types)."""
        out: dict[str, Any] = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "model_kind": self.model_kind.value,
            "architecture": self.architecture,
        }
        for key in ("source", "versions", "summary"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, payload: Any) -> CheckpointSpec:
        """Checks the top-level fields of a ``torchrs.json`` payload (architecture nodes: the registry's job).

        Raises:
            CheckpointFormatError: not an object, a missing field, a wrong type or an unknown model kind.
            ValueError: a newer ``format_version`` than this torchrs reads.
        """
        check_type(payload, dict, "<root>")
        version = require(payload, "format_version", int, "")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"torchrs.json has format_version={version!r}; this torchrs reads up to {FORMAT_VERSION}. "
                "Upgrade torchrs."
            )
        if payload.get("format", FORMAT_NAME) != FORMAT_NAME:
            raise CheckpointFormatError(
                "format", f"expected {FORMAT_NAME!r}, got {payload['format']!r}"
            )
        kind = require(payload, "model_kind", str, "")
        try:
            model_kind = ModelKind(kind)
        except ValueError:
            known = ", ".join(repr(k.value) for k in ModelKind)
            raise CheckpointFormatError(
                "model_kind", f"unknown kind {kind!r} (known: {known})"
            ) from None
        architecture = require(payload, "architecture", dict, "")
        require(architecture, "class_name", str, "architecture")
        optional = {
            key: check_type(payload[key], dict, key)
            for key in ("source", "versions", "summary")
            if key in payload
        }
        notes = check_type(payload.get("notes", []), list, "notes")
        return cls(
            model_kind,
            architecture,
            version,
            optional.get("source"),
            optional.get("versions"),
            optional.get("summary"),
            tuple(check_type(n, str, f"notes[{i}]") for i, n in enumerate(notes)),
        )
