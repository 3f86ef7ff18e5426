"""Every conversion is checked twice: the written tensors against the source, then a forward pass."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.tfrs_to_torch.compare import (
    CONVERTER_TOLERANCE,
    IDENTICAL_IDS,
    Check,
    InputField,
    OutputComparison,
    Tolerance,
    compare_index,
    compare_outputs,
    index_rows,
    normalization_statistics,
    sample_input,
    to_numpy,
)
from converters.tfrs_to_torch.errors import VerificationCheck, VerificationError
from converters.tfrs_to_torch.plan import Plan
from converters.tfrs_to_torch.writer import SAFETENSORS_DTYPES
from torchrs.io.registry import is_index

# Rows compared at a time when re-reading a written tensor (bounds the verification's extra memory).
VERIFY_BLOCK_ROWS = 65536


# safetensors dtype names -> NumPy: the writer's table, inverted.
_SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    code: dtype for dtype, code in SAFETENSORS_DTYPES.items()
}
# The safetensors header: an 8-byte little-endian length, then that many bytes of JSON.
_HEADER_LENGTH_BYTES = 8


class _WrittenTensors:
    """Reads rows of the tensors of a ``model.safetensors`` with plain file reads.

    The safetensors library reads through a memory map, whose touched pages count as resident memory: scanning
    a 2M x 64 table that way holds a second copy of it. Reading row blocks into fresh buffers does not.
    """

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        length = int.from_bytes(self._file.read(_HEADER_LENGTH_BYTES), "little")
        header = json.loads(self._file.read(length))
        header.pop("__metadata__", None)
        self._data_start = _HEADER_LENGTH_BYTES + length
        self.entries: dict[str, dict[str, Any]] = header

    def close(self) -> None:
        self._file.close()

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (the whole tensor for a scalar)."""
        entry = self.entries[name]
        dtype = _SAFETENSORS_DTYPES[entry["dtype"]]
        shape = tuple(entry["shape"])
        row_items = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
        if not shape:
            start, stop = 0, 1
        self._file.seek(
            self._data_start + entry["data_offsets"][0] + start * row_items * dtype.itemsize
        )
        count = (stop - start) * row_items
        values = np.fromfile(self._file, dtype=dtype, count=count)
        if values.size != count:
            raise VerificationError(
                VerificationCheck.TENSORS, f"{name} is truncated in the written file."
            )
        return values.reshape((stop - start, *shape[1:]) if shape else ())


def check_tensors(weights_file: Path, plan: Plan) -> int:
    """Re-reads ``model.safetensors`` and compares every tensor with its source, exactly.

    The source tensor is read whole (a TF checkpoint cannot be read in parts: a slice read loads the whole
    stored tensor) and the written one in blocks of ``VERIFY_BLOCK_ROWS`` rows by plain file reads, so
    verification holds one copy of the largest table, as the conversion itself does.

    Args:
        weights_file: the written file.
        plan: the plan it was written from (tensors are re-read from the source one by one).

    Returns:
        The number of tensors compared.

    Raises:
        VerificationError: a tensor is missing or differs in shape, dtype or any value.
    """
    written = _WrittenTensors(weights_file)
    try:
        for tensor in plan.tensors:
            _check_tensor(written, tensor)
    finally:
        written.close()
    return len(plan.tensors)


def _check_tensor(written: _WrittenTensors, tensor: Any) -> None:
    name = tensor.torch_name
    if name not in written.entries:
        raise VerificationError(VerificationCheck.TENSORS, f"{name} missing from the written file.")
    shape = written.shape(name)
    if shape != tuple(tensor.shape):
        raise VerificationError(
            VerificationCheck.TENSORS,
            f"{name} was written with shape {shape}, source is {tensor.shape}/{tensor.dtype}.",
        )
    rows = shape[0] if shape else 0
    whole = np.asarray(tensor.load())
    spans = [(s, min(s + VERIFY_BLOCK_ROWS, rows)) for s in range(0, rows, VERIFY_BLOCK_ROWS)]
    for start, stop in spans or [(0, 0)]:
        if not shape:  # a scalar
            got, want = written.rows(name, 0, 1), whole
        else:
            got, want = written.rows(name, start, stop), whole[start:stop]
        want = np.asarray(want)
        if got.dtype != want.dtype or got.shape != want.shape:
            raise VerificationError(
                VerificationCheck.TENSORS,
                f"{name} was written as {got.dtype}{list(got.shape)}, "
                f"source is {want.dtype}{list(want.shape)}.",
            )
        if not np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
            raise VerificationError(
                VerificationCheck.TENSORS, f"{name} differs from {tensor.source}."
            )


# Rows of the sample batch a tower is fed (its own sample values and the probes first, then random picks).
SAMPLE_BATCH = 8
# Length given to an axis the traced signature leaves open (a sequence of any length).
SAMPLE_OPEN_AXIS = 4
# Seed of the random samples: the check is reproducible.
SAMPLE_SEED = 0

_TOWERS = ("Sequential", "Functional")


def _parts(spec: dict[str, Any], module: Any, path: str, prefix: str) -> list[tuple[Any, ...]]:
    """``(path, prefix, spec, module)`` of every tower and index to check."""
    cls = spec["class_name"]
    if cls in _TOWERS or is_index(cls):
        return [(path, prefix, spec, module)]
    if cls == "Container":
        out: list[tuple[Any, ...]] = []
        for name, child in spec["children"].items():
            child_path = f"{path}/{name}" if path else name
            out += _parts(child, getattr(module, name), child_path, f"{prefix}{name}.")
        return out
    return []


def _consumers(spec: dict[str, Any], module: Any, prefix: str) -> list[tuple[Any, ...]]:
    """Per input of a tower: ``(spec, module, prefix)`` of the first layer that reads it."""
    if spec["class_name"] == "Sequential":
        if not spec["layers"]:
            return [(None, None, None)]
        first = _consumers(spec["layers"][0], module[0], f"{prefix}0.")
        return first[:1]
    if spec["class_name"] == "Functional":
        names = spec["inputs"]
        names = list(names.values()) if isinstance(names, dict) else list(names)
        out = []
        for name in names:
            node = next(
                (n for n in spec["nodes"] if [name, 0, 0] in _flat_refs(n["inbound"])), None
            )
            if node is None:
                out.append((None, None, None))
                continue
            key = node["layer"]
            inner = _consumers(spec["layers"][key], module.layers[key], f"{prefix}layers.{key}.")
            out.append(inner[0])
        return out
    return [(spec, module, prefix)]


def _flat_refs(structure: Any) -> list[list[Any]]:
    if isinstance(structure, list) and len(structure) == 3 and isinstance(structure[0], str):
        return [list(structure)]
    values = structure.values() if isinstance(structure, dict) else structure
    return [ref for value in values for ref in _flat_refs(value)]


def _field(
    shape: list[int | None] | None, dtype: str, consumer: tuple[Any, ...], plan: Plan
) -> InputField:
    """What the model knows about one input: the reader's sample values for its first layer
    (vocabulary tokens and an OOV probe, bin boundaries...), a Normalization's statistics, or an
    Embedding's rows."""
    from torch import nn

    _spec, module, prefix = consumer
    values = plan.samples.get(plan.sources.get(prefix, "\0")) if prefix is not None else None
    mean, variance = normalization_statistics(module)
    return InputField(
        name=prefix or "input",
        dtype=dtype,
        shape=tuple(shape) if shape is not None else (None,),
        vocabulary=values or None,
        int_high=module.num_embeddings if isinstance(module, nn.Embedding) else None,
        mean=mean,
        variance=variance,
    )


def _sample(
    shape: list[int | None] | None,
    dtype: str,
    consumer: tuple[Any, ...],
    plan: Plan,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """A sample batch for one input (:func:`~converters.tfrs_to_torch.compare.sample_input` of its
    :func:`_field`); None when nothing is known of it."""
    sample = sample_input(
        _field(shape, dtype, consumer, plan), SAMPLE_BATCH, rng, open_axis=SAMPLE_OPEN_AXIS
    )
    return None if sample is None else sample.values


def _tower_inputs(
    path: str, spec: dict[str, Any], module: Any, prefix: str, plan: Plan, index_path: str | None
) -> tuple[Any, Any] | None:
    """(TF inputs, torch inputs) for a tower, from its traced signature; None if none fits."""
    import torch

    specs = plan.probe.input_specs(index_path if index_path is not None else path)
    consumers = _consumers(spec, module, prefix)
    if not specs or len(specs) != len(consumers):
        return None
    rng = np.random.default_rng(SAMPLE_SEED)
    arrays = []
    for (_name, shape, dtype), consumer in zip(specs, consumers, strict=True):
        array = _sample(shape, dtype, consumer, plan, rng)
        if array is None:
            return None
        arrays.append(array)
    if len({a.shape[0] for a in arrays}) > 1:  # several inputs: one batch size
        rows = min(a.shape[0] for a in arrays)
        arrays = [a[:rows] for a in arrays]

    def to_torch(array: np.ndarray) -> Any:
        return array.tolist() if array.dtype == object else torch.from_numpy(array)

    if len(arrays) == 1:
        return arrays[0], to_torch(arrays[0])
    names = spec.get("inputs")
    if isinstance(names, dict):
        keys = list(names)
        return dict(zip(keys, arrays, strict=True)), {
            k: to_torch(a) for k, a in zip(keys, arrays, strict=True)
        }
    return arrays, [to_torch(a) for a in arrays]


def _call(module: Any, inputs: Any, **kwargs: Any) -> Any:
    if isinstance(inputs, list) and inputs and not isinstance(inputs[0], bytes | str | list):
        return module(*inputs, **kwargs)
    return module(inputs, **kwargs)


def build_module(out_dir: Path) -> Any:
    """The written directory rebuilt by ``torchrs.load``, as a user will load it."""
    import torchrs.io

    return torchrs.io.load(out_dir)


@dataclass(frozen=True)
class ForwardComparison:
    """TF against the reloaded torchrs module on sample inputs, part by part.

    Attributes:
        max_abs_diff: ``{part: max |difference|}`` over its float outputs (NaN where a NaN is on one
            side only; ``"<index>/ids_mismatch"`` counts differing top-K ids): ``summary.max_abs_diff``.
        excess: ``{part: excess over the tolerance}``, 0 when it passes (NaN: a NaN on one side only).
        rows: the :class:`~converters.tfrs_to_torch.compare.Check` rows of ``report.json``.
        tolerance: the tolerance they were judged by.
    """

    max_abs_diff: dict[str, float]
    excess: dict[str, float]
    rows: tuple[Check, ...]
    tolerance: Tolerance = CONVERTER_TOLERANCE


def _worst(values: Iterable[float]) -> float:
    """The largest value, NaN if any is NaN (``max`` would depend on the order)."""
    listed = list(values)
    return math.nan if any(math.isnan(v) for v in listed) else max(listed, default=0.0)


def _excess(c: OutputComparison) -> float:
    return math.nan if c.floats is not None and c.floats.nonfinite_mismatch else c.excess


def forward_comparison(
    module: Any, plan: Plan, tolerance: Tolerance = CONVERTER_TOLERANCE
) -> ForwardComparison:
    """Runs TF and the reloaded torchrs module on sample inputs and compares them (the shared engine).

    Every tower (Sequential or functional, at the root or inside a ``tfrs.Model``) is fed sample
    inputs shaped as its traced signature: string and integer inputs get the vocabulary of the
    lookup reading them plus an unknown token and the empty string (or hashing / text samples);
    float inputs get bin boundaries for a Discretization, values drawn around the adapted mean and
    variance for a Normalization, standard normal values otherwise. An index is queried with its
    query tower's samples and must return the same identifiers, in the same order.
    """
    diffs: dict[str, float] = {}
    excess: dict[str, float] = {}
    rows: list[Check] = []
    if plan.probe is None:
        return ForwardComparison(diffs, excess, (), tolerance)
    probe: Callable[..., Any] = plan.probe
    for path, prefix, spec, part in _parts(plan.architecture, module, "", ""):
        label = path or ("<index>" if is_index(spec["class_name"]) else "<tower>")
        if spec["class_name"] in _TOWERS:
            inputs = _tower_inputs(path, spec, part, prefix, plan, None)
            if inputs is None:
                plan.notes.append(f"forward check not run for {label}: no sample inputs fit it")
                continue
            outputs = compare_outputs(probe(path, inputs[0]), _call(part, inputs[1]), tolerance)
            diffs[label] = _worst(c.max_abs for c in outputs)  # NaN on one side never passes
            excess[label] = _worst(_excess(c) for c in outputs)
            rows += [r for c in outputs for r in c.rows(label, tolerance)]
            continue
        query = spec.get("query_model")
        if not query or query["class_name"] not in _TOWERS:
            plan.notes.append(f"forward check not run for {label}: it has no query tower")
            continue
        qpath = f"{path}/query_model" if path else "query_model"
        inputs = _tower_inputs(qpath, query, part.query_model, f"{prefix}query_model.", plan, path)
        if inputs is None:
            plan.notes.append(f"forward check not run for {label}: no sample queries fit it")
            continue
        tf_scores, tf_ids = probe(path, inputs[0])
        k = int(np.asarray(tf_ids).shape[1])
        scores, ids = _call(part, inputs[1], k=k)
        c = compare_index(to_numpy(tf_scores), tf_ids, to_numpy(scores), ids, tolerance)
        scores_nan = math.nan if c.scores.nonfinite_mismatch else None
        diffs[f"{label}/scores"] = scores_nan if scores_nan is not None else c.scores.max_abs[0]
        excess[f"{label}/scores"] = (
            scores_nan if scores_nan is not None else max(0.0, c.scores.max_excess)
        )
        diffs[f"{label}/ids_mismatch"] = excess[f"{label}/ids_mismatch"] = float(c.mismatched_ids)
        rows += index_rows(label, c, tolerance, IDENTICAL_IDS, ties_aside=False)
    return ForwardComparison(diffs, excess, tuple(rows), tolerance)


def forward_differences(module: Any, plan: Plan) -> dict[str, float]:
    """``{part: max |difference|}`` of :func:`forward_comparison` (``"<index>/ids_mismatch"`` counts
    differing top-K ids)."""
    return forward_comparison(module, plan).max_abs_diff
