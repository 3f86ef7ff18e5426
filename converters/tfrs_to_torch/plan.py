"""The conversion plan: what a conversion will write and report, before any tensor is read.

A reader (:mod:`~converters.tfrs_to_torch.planning`) fills a :class:`Plan`; the writer streams its
:class:`TensorPlan` s into ``model.safetensors``; :mod:`~converters.tfrs_to_torch.verify` checks them. Decisions
about a variable are values (:class:`Status`, :class:`VariableRole`), never message text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from torchrs.io.tensors import TOKEN_BYTES, TOKEN_OFFSETS, encode_tokens

# What a plain tf.saved_model.save export lacking a layer's config is answered with.
REEXPORT_HINT = "re-export with model.save(dir, save_format='tf') or as a .keras file"
# Probe token for the verification forward pass: not in any real vocabulary.
OOV_PROBE = b"\x00torchrs-oov-probe\x00"


class Status(str, Enum):
    """What became of one source object in ``report.json``."""

    CONVERTED = "converted"
    SKIPPED = "skipped"
    UNSUPPORTED = "unsupported"
    INFERRED = "inferred"  # converted, with a config the export did not keep (stated, not guessed silently)


class VariableRole(str, Enum):
    """What a variable of an export is for, from its object path; the value is the report's skip reason.

    ``MODEL`` variables are the model's own; one no rebuilt module claims is skipped with that reason.
    """

    ADAPT_STATE = "adapt() state (token counts), not needed after adapt"
    SAVE_COUNTER = "checkpoint save counter"
    OPTIMIZER = "optimizer state (slots and iterations are not part of an inference export)"
    METRIC = "metric state"
    MODEL = "not used by the rebuilt module"


def variable_role(path: str) -> VariableRole:
    """The :class:`VariableRole` of the variable at object path ``path``.

    >>> variable_role("save_counter/.ATTRIBUTES/VARIABLE_VALUE").name
    'SAVE_COUNTER'
    >>> variable_role("user_model/layer_with_weights-0/embeddings").name
    'MODEL'
    """
    if re.search(r"(token_counts|token_document_counts|num_documents)(/|$)", path):
        return VariableRole.ADAPT_STATE
    if path.startswith("save_counter"):
        return VariableRole.SAVE_COUNTER
    if path.startswith("optimizer") or "/optimizer/" in path:
        return VariableRole.OPTIMIZER
    if re.search(
        r"(^|/)(metrics|_metrics|total|count|_top_k_metric|_factorized_metrics)(/|$)", path
    ):
        return VariableRole.METRIC
    return VariableRole.MODEL


@dataclass
class TensorPlan:
    """One tensor of the output, read only when written (so large tables are streamed).

    Attributes:
        torch_name: the key in ``model.safetensors``.
        source: where it comes from (a checkpoint key, or ``<table ...>`` for a vocabulary).
        shape: the shape *after* the transpose.
        dtype: NumPy dtype.
        load: returns the array, already transposed.
        transpose: whether a Dense kernel was transposed.
    """

    torch_name: str
    source: str
    shape: tuple[int, ...]
    dtype: np.dtype
    load: Callable[[], np.ndarray]
    transpose: bool = False


@dataclass
class ReportEntry:
    """What happened to one source object: converted into ``torch_name``, or skipped and why."""

    source: str
    status: Status
    torch_name: str | None = None
    reason: str | None = None
    shape: list[int] | None = None
    transposed: bool = False

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}


@dataclass
class Plan:
    """Everything a conversion writes, before any tensor is read.

    Attributes:
        model_kind: ``"index"``, ``"tower"``, ``"model"`` (towers of a tfrs.Model) or ``"weights"``.
        architecture: the JSON spec :func:`torchrs.io.load` rebuilds the module from.
        tensors: the tensors to write.
        report: one entry per source variable / table / layer.
        notes: human-readable remarks for the summary (assumptions, what to do next).
        probe: a :class:`TFProbe` running the TF model on sample inputs, for verification.
        samples: the sample inputs for that forward pass, per module path.
        sources: torch-name prefix of every rebuilt module -> its object path in the export.
    """

    model_kind: str
    architecture: dict[str, Any]
    tensors: list[TensorPlan] = field(default_factory=list)
    report: list[ReportEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    probe: Any = None
    samples: dict[str, list[Any]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    cleanup: list[Any] = field(default_factory=list)


def constant(array: np.ndarray) -> Callable[[], np.ndarray]:
    return lambda: array


def bytes_tensors(prefix: str, tokens: list[bytes], source: str) -> list[TensorPlan]:
    """Tokens as ``token_bytes`` (uint8, concatenated) + ``token_offsets`` (int64, N + 1): torchrs.io's format."""
    blob, offsets = encode_tokens(tokens)
    return [
        TensorPlan(prefix + TOKEN_BYTES, source, blob.shape, blob.dtype, lambda: blob),
        TensorPlan(prefix + TOKEN_OFFSETS, source, offsets.shape, offsets.dtype, lambda: offsets),
    ]
