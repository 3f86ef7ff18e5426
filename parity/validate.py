"""Sign off a migration: run a TFRS / Keras model and its converted torchrs checkpoint on the same inputs.

Usage::

    python -m converters.tfrs_to_torch exported_index --out index_torchrs
    python -m parity validate exported_index index_torchrs                  # sampled inputs
    python -m parity validate exported_index index_torchrs --inputs queries.json --k 10

``TF_MODEL_DIR`` is what TensorFlow wrote: a ``tf.saved_model.save`` directory (an exported ``BruteForce``
or ``Streaming`` index with its query model, a whole ``tfrs.Model``, a Keras tower), a Keras SavedModel
(``model.save(dir, save_format="tf")``) or a ``.keras`` archive. ``TORCHRS_DIR`` is what
``python -m converters.tfrs_to_torch`` made of it; it is read with ``torchrs.load``.

What is compared, part by part (a ``tfrs.Model`` is split into the towers the converter found):

* an index (``scores, ids = index(queries)``): per query, whether the top-K identifiers agree, ties
  aside (:func:`top_k_agreement`); the top-K scores; the query embeddings; the query vocabulary;
* a tower / ranker (raw inputs in, embeddings or predictions out): the outputs; its vocabulary when
  it starts with a lookup layer.

Numeric outputs pass when every value satisfies ``|torchrs - TFRS| <= atol + rtol * |TFRS|``
(defaults: :data:`DEFAULT_TOLERANCE`); the report also gives the largest absolute and relative
differences. Identifier lists must agree for every query (:data:`TOP_K_AGREEMENT`).

Inputs (``--inputs FILE``) are one JSON object: each key names a part, each value is that part's
batch as a JSON array. A model with one part (an index, a tower) takes ``{"queries": [...]}`` /
``{"inputs": [...]}`` or just the array; a converted ``tfrs.Model`` takes its towers' attribute
names (``{"user_model": ["42", "7"], "ratings": [[0.1, 0.2, ...], ...]}``). Strings for string
inputs, integers for integer inputs, numbers for float inputs; nested arrays for 2-D inputs
(sequences, feature vectors). Parts missing from the file are sampled. Without ``--inputs`` every
part is sampled (``--num-samples``, ``--seed``) by the comparison engine the converter's own
verification uses (:mod:`converters.tfrs_to_torch.compare`): string / integer ids from the model's
own vocabulary (read from the TF model) plus one unknown token (and the empty string for strings),
integer ids for a bare Embedding within its table, floats around a Discretization's boundaries, else
standard normal. The inputs used are
written to ``REPORT_DIR/inputs.json`` in the ``--inputs`` format, so a run can be repeated exactly.

Report (``--report DIR``): ``report.md`` (the table of ``python -m parity run``: scenario, check,
TFRS, torchrs, difference, tolerance, result; the scenario column names the part),
``figures.json`` (every number, per-query disagreements) and ``inputs.json``. Exit status: 0 when
every check passes, 1 when one fails, 2 for a usage error (one ``error:`` line, no traceback), 3
when the conversion skipped layers (``--no-strict``: ``report.json`` lists them as unsupported):
such a conversion is INCOMPLETE and never passes.

``TF_MODEL_DIR`` may also be a TF checkpoint (a prefix such as ``ckpt/ckpt-3`` or its directory),
as for the converter. A checkpoint holds no graph to run, so only weights are compared, exactly
(see :mod:`parity.validate_checkpoint`); the report says what was not compared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from converters.tfrs_to_torch.compare import (
    TOP_K_AGREEMENT,
    VALIDATE_TOLERANCE,
    Agreement,
    ArrayComparison,
    Check,
    InputField,
    Tolerance,
    as_identifiers,
    compare_arrays,
    compare_index,
    compare_output,
    index_rows,
    normalization_statistics,
    sample_input,
    to_numpy,
    top_k_agreement,
)
from converters.tfrs_to_torch.formats import CHECKPOINT
from torchrs.io.registry import is_index

DEFAULT_REPORT = "reports/validate"
# Inputs sampled per part when no --inputs file is given: enough to cover a few hundred vocabulary tokens.
DEFAULT_NUM_SAMPLES = 256
DEFAULT_SEED = 0
# Length of sampled sequences when the TF model leaves a non-batch dimension open.
DEFAULT_SEQUENCE_LENGTH = 5
# Integer inputs of a tower that starts with neither a lookup nor an Embedding are drawn from [0, this).
ARBITRARY_INT_RANGE = 100
EXIT_FAILED = 1
EXIT_USAGE = 2
# The conversion skipped layers (--no-strict): whatever the checks say, the migration is not signed off.
EXIT_INCOMPLETE = 3
# The input name of a model with a single part: TFRS's ``BruteForce.call(queries, k)`` / Keras's ``call(inputs)``.
INDEX_INPUT = "queries"
TOWER_INPUT = "inputs"

# The comparison engine's records (converters.tfrs_to_torch.compare), shared with the converter.
DEFAULT_TOLERANCE = VALIDATE_TOLERANCE
HELP_EPILOG = """\
inputs (--inputs FILE, JSON):
  one object mapping each input name to a batch (a JSON array):
    an exported index:        {"queries": ["42", "7", "unknown user"]}
    a tower / ranker:         {"inputs": ["42", "7"]}   or   {"inputs": [[0.1, 2.0, 3.5], ...]}
    a converted tfrs.Model:   {"user_model": ["42", "7"], "ratings": [[0.1, ...], ...]}
  a one-part model also takes the bare array. Strings for string inputs, integers for integer
  inputs, numbers for float inputs, nested arrays for 2-D inputs. Parts the file does not name,
  and every part without --inputs, are sampled: ids from the model's own vocabulary plus one
  unknown token and the empty string; floats standard normal (around the bins of a Discretization).

checks (the scenario column names the part):
  outputs / scores / query embeddings: max |difference|, max relative difference, and how many
    values are within atol + rtol * |TFRS| (all must be);
  index: the fraction of queries whose top-K ids agree, ties aside (ties: scores equal within
    the tolerance); vocabularies: token for token.

TF checkpoints (a prefix or its directory) hold no graph to run: their weights are compared
  exactly (with the checkpoint's own conversion, or through load_weights with a converted
  SavedModel); outputs, top-K and vocabularies are not, and the report says so.

exit status: 0 all checks pass, 1 a check fails, 2 usage error (one error: line),
  3 INCOMPLETE: the conversion skipped layers (--no-strict), whatever the checks say.
example:
  python -m converters.tfrs_to_torch export/index --out export/index_torchrs
  python -m parity validate export/index export/index_torchrs --report reports/validate
"""
# The lookup layers whose vocabulary is sampled and compared, and the input each takes.
_LOOKUP_INPUTS = {"StringLookup": "string", "TextVectorization": "string", "IntegerLookup": "int"}
_LOOKUPS = tuple(_LOOKUP_INPUTS)
_VOCABULARY_REASON = (
    "vocabularies are copied byte for byte by the converter; any difference sends ids to other rows"
)


class ValidationError(ValueError):
    """A user's mistake: a missing path, inputs that do not fit the model, two different models."""


# ------------------------------------------------------------------------------------------------ the models
@dataclass(frozen=True)
class InputSpec:
    """What a part takes: ``kind`` is ``"string"``, ``"int"`` or ``"float"``; ``shape[0]`` is the batch (None)."""

    kind: str
    shape: tuple[int | None, ...]
    tf_dtype: Any


@dataclass
class Part:
    """One comparable piece: an index or a tower, in both frameworks."""

    name: str
    input_name: str
    kind: str  # "index" | "tower"
    spec: dict[str, Any]
    tf_obj: Any
    torch_module: nn.Module
    input_spec: InputSpec
    inputs: np.ndarray | None = None
    input_source: str = ""
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_torchrs(directory: str, *, weights: bool = False) -> tuple[Any, dict[str, Any]]:
    """``torchrs.load(directory)`` and its ``torchrs.json``; usage errors as :class:`ValidationError`.

    Args:
        directory: the converter's output.
        weights: accept a converted TF checkpoint (``model_kind == "weights"``: a dict of tensors).
    """
    import torchrs

    root = Path(directory)
    if not root.is_dir():
        raise ValidationError(
            f"TORCHRS_DIR {directory!r} is not a directory. Pass the --out directory of "
            "python -m converters.tfrs_to_torch."
        )
    config_file = root / "torchrs.json"
    if not config_file.is_file():
        raise ValidationError(
            f"TORCHRS_DIR {directory!r} is not a torchrs checkpoint (no torchrs.json). Convert the TF "
            "model first: python -m converters.tfrs_to_torch TF_MODEL_DIR --out TORCHRS_DIR."
        )
    try:
        meta = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(
            f"{config_file} is not valid JSON ({err}); re-run the converter."
        ) from None
    if meta.get("model_kind") == "weights" and not weights:
        raise ValidationError(
            f"TORCHRS_DIR {directory!r} is a converted TF checkpoint: weights without the computation. "
            "Compare it with the checkpoint it came from (python -m parity validate CHECKPOINT "
            "TORCHRS_DIR), or convert the SavedModel / .keras archive to compare outputs."
        )
    try:
        module = torchrs.load(root)
    except Exception as err:  # torchrs.load raises ValueError; safetensors its own errors
        raise ValidationError(
            f"torchrs.load({directory!r}) failed: {_first_line(err)}. Re-run the converter."
        ) from None
    return module, meta


def detect_tf(path: str) -> Any:
    """What ``TF_MODEL_DIR`` is, as the converter recognises it (its ``SourceFormat``)."""
    from converters.tfrs_to_torch.errors import ConversionError
    from converters.tfrs_to_torch.formats import detect_format

    try:
        return detect_format(path)
    except ConversionError as err:
        raise ValidationError(str(err).replace("MODEL_DIR", "TF_MODEL_DIR", 1)) from None


def load_tf(path: str) -> tuple[Any, str]:
    """The TF model: ``tf.saved_model.load`` for SavedModels, ``tf.keras.models.load_model`` for ``.keras``.

    A TF checkpoint has nothing to run: :func:`validate` compares its weights instead
    (:mod:`parity.validate_checkpoint`).
    """
    from converters.tfrs_to_torch.formats import CHECKPOINT, KERAS_ARCHIVE
    from parity._tf import import_tf

    fmt = detect_tf(path)
    if fmt.kind == CHECKPOINT:
        raise ValidationError(
            f"TF_MODEL_DIR {path!r} is a TF checkpoint: weights only, nothing TensorFlow can run; "
            "its weights are compared by parity.validate_checkpoint."
        )
    tf, _ = import_tf()
    try:
        if fmt.kind == KERAS_ARCHIVE:
            return tf.keras.models.load_model(fmt.path, compile=False), fmt.kind
        return tf.saved_model.load(fmt.path), fmt.kind
    except Exception as err:
        raise ValidationError(f"TensorFlow cannot load {path!r}: {_first_line(err)}") from None


def _is_keras(obj: Any) -> bool:
    from parity._tf import import_tf

    tf, _ = import_tf()
    return isinstance(obj, tf.keras.layers.Layer)


def _is_tf_index(obj: Any) -> bool:
    """A TFRS BruteForce (candidates and identifiers) or Streaming (a row counter; its candidates are a dataset)."""
    brute_force = any(hasattr(obj, n) for n in ("candidates", "_candidates")) and any(
        hasattr(obj, n) for n in ("identifiers", "_identifiers")
    )
    return brute_force or hasattr(obj, "_counter")


def _tf_attr(obj: Any, *names: str) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def _input_spec(obj: Any, name: str) -> InputSpec:
    """The input a TF part was traced (or built) for."""
    from parity._tf import import_tf

    tf, _ = import_tf()
    spec = None
    if _is_keras(obj):
        inputs = getattr(obj, "inputs", None)
        if inputs and len(inputs) == 1:
            spec = tf.TensorSpec(inputs[0].shape, inputs[0].dtype)
    else:
        call = obj.__call__ if callable(obj) else None
        for fn in getattr(call, "concrete_functions", None) or []:
            args = fn.structured_input_signature[0]
            if args and isinstance(args[0], tf.TensorSpec):
                spec = args[0]
                break
    if spec is None:
        raise ValidationError(
            f"The TF part {name!r} has no single-tensor input this tool can feed (no traced call in the "
            "export, or several inputs). Export it after calling it once on a batch."
        )
    dtype = spec.dtype
    kind = ""
    if dtype == tf.string:
        kind = "string"
    elif dtype.is_floating:
        kind = "float"
    elif dtype.is_integer:
        kind = "int"
    if not kind:
        raise ValidationError(f"The TF part {name!r} takes {dtype.name} inputs; not supported.")
    return InputSpec(
        kind, tuple(spec.shape.as_list()) if spec.shape.rank is not None else (None,), dtype
    )


def _count(values: Any) -> int:
    return int(sum(int(np.prod(v.shape)) for v in values))


def find_parts(spec: dict[str, Any], module: nn.Module, tf_model: Any) -> list[Part]:
    """Pairs every index / tower of the torchrs checkpoint with the TF object it came from.

    Raises:
        ValidationError: the TF model lacks a part, or a part differs in kind, weight count or index size
            (the two directories hold different models).
    """
    parts: list[Part] = []

    def different(message: str) -> ValidationError:
        return ValidationError(
            f"TF_MODEL_DIR and TORCHRS_DIR hold different models: {message}. Pass the TF model "
            "TORCHRS_DIR was converted from."
        )

    def walk(node: dict[str, Any], mod: nn.Module, tf_obj: Any, path: str) -> None:
        cls = node["class_name"]
        if cls == "Container":
            for child, child_spec in node["children"].items():
                tf_child = getattr(tf_obj, child, None)
                where = f"{path}/{child}" if path else child
                if tf_child is None:
                    raise different(
                        f"the TF model has no part {where!r} (the torchrs checkpoint has parts "
                        f"{sorted(node['children'])})"
                    )
                walk(child_spec, getattr(mod, child), tf_child, where)
            return
        index = is_index(cls)
        label = f"part {path!r}" if path else "the model"
        if index and not _is_tf_index(tf_obj):
            raise different(f"{label} is an index in torchrs but not in TF (no candidates there)")
        if not index and _is_tf_index(tf_obj):
            raise different(f"{label} is a {cls} in torchrs but an index in TF")
        tf_weights = _count(getattr(tf_obj, "trainable_variables", []) or [])
        torch_weights = sum(p.numel() for p in mod.parameters() if p.requires_grad)
        if tf_weights != torch_weights:
            raise different(
                f"{label} has {tf_weights:,} trainable weights in TF and {torch_weights:,} in torchrs"
            )
        if index and cls == "BruteForce":  # a Streaming index keeps its candidates as a dataset
            tf_candidates = tuple(_tf_attr(tf_obj, "candidates", "_candidates").shape.as_list())
            indexed: Any = mod.candidates
            torch_candidates = tuple(indexed.shape)
            if tf_candidates != torch_candidates:
                raise different(
                    f"the TF index holds candidates of shape {tf_candidates}, torchrs {torch_candidates}"
                )
        name = path or ("index" if index else "tower")
        input_name = path or (INDEX_INPUT if index else TOWER_INPUT)
        part = Part(
            name,
            input_name,
            "index" if index else "tower",
            node,
            tf_obj,
            mod,
            _input_spec(tf_obj, name),
        )
        tower_spec, _, torch_tower = _tower_of(part)
        first_spec, _ = _first_layer(tower_spec, torch_tower)
        first = first_spec["class_name"] if first_spec else None
        if first in _LOOKUP_INPUTS and _LOOKUP_INPUTS[first] != part.input_spec.kind:
            raise different(
                f"{label} starts with a {first} in torchrs but takes {part.input_spec.tf_dtype.name} "
                "inputs in TF"
            )
        parts.append(part)

    walk(spec, module, tf_model, "")
    return parts


# ------------------------------------------------------------------------------------------------ inputs
def _tower_of(part: Part) -> tuple[dict[str, Any] | None, Any, nn.Module | None]:
    """(spec, TF object, torch module) of the tower that reads the part's raw inputs, if any."""
    if part.kind == "index":
        query_spec = part.spec.get("query_model")
        tf_query = _tf_attr(part.tf_obj, "query_model", "_query_model")
        return query_spec, tf_query, getattr(part.torch_module, "query_model", None)
    return part.spec, part.tf_obj, part.torch_module


def _first_layer(
    spec: dict[str, Any] | None, module: nn.Module | None
) -> tuple[dict[str, Any] | None, Any]:
    if spec is None or module is None:
        return None, None
    if spec["class_name"] == "Sequential":
        layers = spec.get("layers") or []
        return (layers[0], module[0]) if layers else (None, None)  # type: ignore[index]
    return spec, module


def _tf_lookup_layer(tf_tower: Any) -> Any:
    """The TF lookup layer a tower starts with (a Keras layer or a restored object), or None."""
    if tf_tower is None:
        return None
    if _is_keras(tf_tower):
        candidates = list(getattr(tf_tower, "layers", []) or [])[:2] or [tf_tower]
    else:
        candidates = [getattr(tf_tower, f"layer-{i}", None) for i in range(2)] + [tf_tower]
    for layer in candidates:
        if layer is not None and any(
            hasattr(layer, n) for n in ("get_vocabulary", "lookup_table", "_lookup_layer")
        ):
            return layer
    return None


def _export_table(table: Any, key_dtype: Any) -> list[Any]:
    """A restored lookup table's keys in index order.

    ``key_dtype`` must be the table's own: TensorFlow aborts the process (a C++ check, no exception) when
    ``LookupTableExportV2`` is asked for keys of another dtype, so it is taken from the layer's input.
    """
    from parity._tf import import_tf

    tf, _ = import_tf()
    keys, values = tf.raw_ops.LookupTableExportV2(
        table_handle=table.resource_handle, Tkeys=key_dtype, Tvalues=tf.int64
    )
    order = np.argsort(values.numpy(), kind="stable")
    return [k if isinstance(k, bytes) else int(k) for k in keys.numpy()[order].tolist()]


def _as_token(value: Any) -> Any:
    """Vocabulary tokens compared as bytes (strings) or ints."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    return value


def tf_vocabulary(tf_tower: Any, input_kind: str) -> list[Any] | None:
    """The vocabulary (special tokens excluded) of the lookup layer a TF tower starts with.

    Args:
        tf_tower: the TF tower (a Keras model or a restored SavedModel object).
        input_kind: ``"string"`` or ``"int"``, what the tower takes (and so its table's key dtype).
    """
    from parity._tf import import_tf

    layer = _tf_lookup_layer(tf_tower)
    if layer is None or input_kind not in ("string", "int"):
        return None
    if hasattr(layer, "get_vocabulary"):
        return [_as_token(t) for t in layer.get_vocabulary(include_special_tokens=False)]
    inner = getattr(layer, "_lookup_layer", layer)
    table = getattr(inner, "lookup_table", None)
    if table is None:
        return None
    tf, _ = import_tf()
    return _export_table(table, tf.string if input_kind == "string" else tf.int64)


def torch_vocabulary(first: Any) -> list[Any] | None:
    if first is None or not hasattr(first, "get_vocabulary"):
        return None
    return [_as_token(t) for t in first.get_vocabulary(include_special_tokens=False)]


def input_field(part: Part) -> InputField:
    """What the model knows about a part's input: the vocabulary of the lookup it starts with (read
    from the TF model), a Discretization's boundaries, a Normalization's statistics, an Embedding's
    rows."""
    spec = part.input_spec
    tower_spec, tf_tower, torch_tower = _tower_of(part)
    first_spec, first = _first_layer(tower_spec, torch_tower)
    cls = first_spec["class_name"] if first_spec else None
    layer = first_spec or {}
    vocabulary = None
    if cls in _LOOKUPS and spec.kind in ("string", "int"):
        vocabulary = tf_vocabulary(tf_tower, spec.kind) or torch_vocabulary(first) or []
    int_high = None
    if spec.kind == "int":
        rows = layer.get("shapes", {}).get("weight") if cls == "Embedding" else None
        int_high = int(rows[0]) if rows else ARBITRARY_INT_RANGE
    boundaries = None
    if cls == "Discretization":
        boundaries = layer.get("config", {}).get("bin_boundaries") or [0.0]
    mean, variance = normalization_statistics(first if cls == "Normalization" else None)
    return InputField(
        part.input_name,
        {"string": "string", "int": "int64", "float": "float32"}[spec.kind],
        (None, *spec.shape[1:]),  # the batch is --num-samples
        vocabulary=vocabulary or None,
        text=cls == "TextVectorization",
        int_high=int_high,
        boundaries=boundaries,
        mean=mean,
        variance=variance,
        arbitrary=True,
    )


def sample_inputs(part: Part, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``n`` inputs for ``part`` (the shared engine's :func:`sample_input` of its :func:`input_field`;
    a 1-D lookup input whose vocabulary is smaller gets each token once) and their description."""
    sample = sample_input(
        input_field(part), n, rng, open_axis=DEFAULT_SEQUENCE_LENGTH, fit_vocabulary=True
    )
    if sample is None:  # arbitrary=True: every field gets values
        raise ValidationError(
            f"No inputs can be sampled for {part.name!r}; pass them with --inputs."
        )
    return sample.values, sample.description


def read_inputs_file(path: str, parts: Sequence[Part]) -> dict[str, Any]:
    """The ``--inputs`` JSON: ``{part input name: array}``, or a bare array for a single-part model."""
    file = Path(path)
    if not file.is_file():
        raise ValidationError(f"--inputs {path!r} does not exist or is not a file.")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(
            f"--inputs {path!r} is not JSON ({err}). Expected a JSON object mapping input names to arrays, "
            f"e.g. {{{json.dumps(parts[0].input_name)}: [...]}}."
        ) from None
    names = [p.input_name for p in parts]
    if isinstance(data, list) and len(parts) == 1:
        data = {names[0]: data}
    if not isinstance(data, dict):
        raise ValidationError(
            f"--inputs {path!r} holds a JSON {type(data).__name__}; expected an object with the input "
            f"names {names}."
        )
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValidationError(
            f"--inputs {path!r} names inputs {unknown} that the model does not have; its inputs are {names}."
        )
    return data


def parse_inputs(part: Part, values: Any, source: str) -> np.ndarray:
    """A JSON array as the part's input array, checked against the TF input (kind and shape)."""
    spec = part.input_spec
    where = f"{source} input {part.input_name!r}"
    if not isinstance(values, list) or not values:
        raise ValidationError(
            f"{where} must be a non-empty JSON array (got {json.dumps(values)[:60]})."
        )
    try:
        array = np.array(values, dtype=object)
    except ValueError:
        array = None
    if (
        array is None
        or array.dtype != object
        or any(isinstance(v, list) for v in array.reshape(-1))
    ):
        raise ValidationError(
            f"{where}: rows of different lengths; every row must have the same length."
        )
    want: dict[str, tuple[type, ...]] = {"string": (str,), "int": (int,), "float": (int, float)}
    bad = [
        v for v in array.reshape(-1) if not isinstance(v, want[spec.kind]) or isinstance(v, bool)
    ]
    if bad:
        noun = {"string": "strings", "int": "integers", "float": "numbers"}[spec.kind]
        raise ValidationError(
            f"{where} must hold {noun} (the TF model takes {spec.tf_dtype.name}); got {bad[0]!r}."
        )
    if array.ndim != len(spec.shape) or any(
        d is not None and d != a for d, a in zip(spec.shape[1:], array.shape[1:], strict=False)
    ):
        expected = "(" + ", ".join("N" if d is None else str(d) for d in spec.shape) + ")"
        raise ValidationError(f"{where} has shape {array.shape}; the TF model takes {expected}.")
    if spec.kind == "string":
        return np.vectorize(lambda s: s.encode("utf-8", "surrogateescape"), otypes=[object])(array)
    return array.astype(np.int64 if spec.kind == "int" else np.float32)


def _json_inputs(values: np.ndarray) -> Any:
    if values.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])(
            values
        ).tolist()
    return values.tolist()


# ------------------------------------------------------------------------------------------------ running
def _torch_inputs(values: np.ndarray) -> Any:
    if values.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "surrogateescape"), otypes=[object])(values)
    return torch.from_numpy(np.ascontiguousarray(values))


def _call_tf(part: Part, obj: Any, values: np.ndarray) -> Any:
    from parity._tf import import_tf

    tf, _ = import_tf()
    tensor = tf.constant(values, dtype=part.input_spec.tf_dtype)
    try:
        try:
            return obj(tensor, training=False)
        except (TypeError, ValueError):  # a restored function traced without a `training` argument
            return obj(tensor)
    except Exception as err:
        raise ValidationError(
            f"TensorFlow could not run {part.name!r} on its inputs: {_first_line(err)}"
        ) from None


def _call_torch(part: Part, module: Any, values: np.ndarray, **kwargs: Any) -> Any:
    try:
        with torch.no_grad():
            return module(_torch_inputs(values), **kwargs)
    except (TypeError, ValueError, IndexError, RuntimeError) as err:
        raise ValidationError(
            f"torchrs could not run {part.name!r} on its inputs: {type(err).__name__}: {_first_line(err)}"
        ) from None


def _output_check(part: Part, what: str, ref: Any, got: Any, tol: Tolerance) -> None:
    c = compare_output(what, ref, got, tol)
    if c.shapes[0] != c.shapes[1]:
        raise ValidationError(
            f"TF_MODEL_DIR and TORCHRS_DIR hold different models: {part.name} {what} have shape "
            f"{c.shapes[0]} in TF and {c.shapes[1]} in torchrs."
        )
    part.checks += c.rows(part.name, tol)
    part.figures[what] = asdict(c.floats) if c.floats is not None else {"mismatched": c.mismatched}


def _vocabulary_check(part: Part) -> None:
    tower_spec, tf_tower, torch_tower = _tower_of(part)
    first_spec, first = _first_layer(tower_spec, torch_tower)
    if first_spec is None or first_spec["class_name"] not in _LOOKUPS:
        return
    ref, got = tf_vocabulary(tf_tower, part.input_spec.kind), torch_vocabulary(first)
    if ref is None or got is None:
        return
    same = sum(a == b for a, b in zip(ref, got, strict=False))
    part.checks.append(
        Check(
            part.name,
            f"{first_spec['class_name']} vocabulary: tokens at the same index",
            float(len(ref)),
            float(same),
            float(max(len(ref), len(got)) - same),
            "all",
            ref == got,
            _VOCABULARY_REASON,
        )
    )
    part.figures["vocabulary"] = {
        "tfrs_size": len(ref),
        "torchrs_size": len(got),
        "same_index": same,
    }


def validate_index(part: Part, k: int | None, tol: Tolerance, agreement: Agreement) -> None:
    """Top-K identifiers (ties aside), top-K scores, query embeddings and vocabulary of an index."""
    values = part.inputs
    assert values is not None
    tf_scores, tf_ids = _call_tf(part, part.tf_obj, values)
    exported_k = int(to_numpy(tf_scores).shape[1])  # the index answers the k it was exported with
    if k is not None and k > exported_k:
        raise ValidationError(
            f"--k {k}: the TF index was exported with k={exported_k} and answers no more; pass --k "
            f"{exported_k} or less."
        )
    k = exported_k if k is None else k
    tf_scores, tf_ids = to_numpy(tf_scores)[:, :k], to_numpy(tf_ids)[:, :k]
    torch_scores, torch_ids = _call_torch(part, part.torch_module, values, k=k)
    torch_scores = to_numpy(torch_scores)
    _vocabulary_check(part)
    tf_query = _tf_attr(part.tf_obj, "query_model", "_query_model")
    torch_query = getattr(part.torch_module, "query_model", None)
    if tf_query is not None and torch_query is not None:
        _output_check(
            part,
            "query embeddings",
            _call_tf(part, tf_query, values),
            _call_torch(part, torch_query, values),
            tol,
        )
    if tf_scores.shape != torch_scores.shape:
        raise ValidationError(
            f"TF_MODEL_DIR and TORCHRS_DIR hold different models: {part.name} top-{k} scores have "
            f"shape {tf_scores.shape} in TF and {torch_scores.shape} in torchrs."
        )
    c = compare_index(tf_scores, tf_ids, torch_scores, torch_ids, tol)
    part.checks += index_rows(part.name, c, tol, agreement, ties_aside=True)
    part.figures[f"top-{k} scores"] = asdict(c.scores)
    agree, identical, fraction = c.agreeing, c.identical, float(np.mean(c.agreeing))
    tf_ids, torch_ids = as_identifiers(tf_ids), as_identifiers(torch_ids)
    queries = _json_inputs(values)
    part.figures["top_k"] = {
        "k": k,
        "exported_k": exported_k,
        "queries": len(agree),
        "identical_fraction": float(np.mean(identical)),
        "agreeing_fraction_ties_aside": fraction,
        "disagreements": [
            {
                "query": queries[i],
                "tfrs_ids": tf_ids[i].tolist(),
                "torchrs_ids": torch_ids[i].tolist(),
                "tfrs_scores": tf_scores[i].tolist(),
                "torchrs_scores": torch_scores[i].tolist(),
            }
            for i in np.flatnonzero(~agree)
        ],
        "ties_reordered": int(np.sum(agree & ~identical)),
    }


def validate_tower(part: Part, tol: Tolerance) -> None:
    """Outputs (embeddings or predictions) and vocabulary of a tower."""
    values = part.inputs
    assert values is not None
    ref = _call_tf(part, part.tf_obj, values)
    got = _call_torch(part, part.torch_module, values)
    _vocabulary_check(part)
    _output_check(part, "outputs", ref, got, tol)


@dataclass
class ValidationResult:
    """Everything a validation run found (the CLI writes it as a report)."""

    tf_model: str
    tf_format: str
    torchrs_dir: str
    model_kind: str
    parts: list[Part]
    tolerance: Tolerance
    agreement: Agreement
    weight_checks: list[Check] = field(default_factory=list)
    compared: str = ""
    not_compared: tuple[str, ...] = ()
    incomplete: tuple[str, ...] = ()

    @property
    def checks(self) -> list[Check]:
        return [c for p in self.parts for c in p.checks] + self.weight_checks

    @property
    def passed(self) -> bool:
        """Every check passes and the conversion skipped nothing (an incomplete one never passes)."""
        return not self.incomplete and all(c.passed for c in self.checks)

    def figures(self) -> dict[str, Any]:
        return {
            "mode": "validate",
            "tf_model": self.tf_model,
            "tf_format": self.tf_format,
            "torchrs_dir": self.torchrs_dir,
            "model_kind": self.model_kind,
            "passed": self.passed,
            "incomplete": list(self.incomplete),
            "compared": self.compared,
            "not_compared": list(self.not_compared),
            "tolerance": asdict(self.tolerance),
            "top_k_agreement": asdict(self.agreement),
            "parts": {
                p.name: {
                    "kind": p.kind,
                    "input": p.input_name,
                    "input_shape": list(p.inputs.shape) if p.inputs is not None else None,
                    "input_source": p.input_source,
                    "passed": all(c.passed for c in p.checks),
                    "checks": [asdict(c) for c in p.checks],
                    **p.figures,
                }
                for p in self.parts
            },
            **({"weights": [asdict(c) for c in self.weight_checks]} if self.weight_checks else {}),
        }

    def inputs_json(self) -> dict[str, Any]:
        return {p.input_name: _json_inputs(p.inputs) for p in self.parts if p.inputs is not None}


def validate(
    tf_model_dir: str,
    torchrs_dir: str,
    *,
    inputs_file: str | None = None,
    k: int | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = DEFAULT_SEED,
    tolerance: Tolerance = DEFAULT_TOLERANCE,
    agreement: Agreement = TOP_K_AGREEMENT,
) -> ValidationResult:
    """Runs a TF model and its torchrs conversion on the same inputs and checks they agree.

    Args:
        tf_model_dir: SavedModel directory, ``.keras`` archive or TF checkpoint (prefix or directory:
            its weights are compared, see :mod:`parity.validate_checkpoint`).
        torchrs_dir: the converter's output directory.
        inputs_file: JSON inputs (see the module docstring); parts it does not name are sampled.
        k: top-K of an index (default: the K it was exported with; at most that).
        num_samples: inputs sampled per part.
        seed: seed of the sampling.
        tolerance: numeric tolerance (scores, embeddings, predictions; ties in top-K).
        agreement: least fraction of queries whose top-K must agree.

    Returns:
        The :class:`ValidationResult` (``incomplete`` lists what a ``--no-strict`` conversion skipped;
        such a result never passes).

    Raises:
        ValidationError: bad paths or inputs, or two different models.
    """
    if num_samples < 1:
        raise ValidationError(f"--num-samples must be at least 1 (got {num_samples}).")
    if k is not None and k < 1:
        raise ValidationError(f"--k must be at least 1 (got {k}).")
    if not os.path.exists(tf_model_dir) and not os.path.exists(f"{tf_model_dir}.index"):
        raise ValidationError(
            f"TF_MODEL_DIR {tf_model_dir!r} does not exist. Pass the directory given to "
            "tf.saved_model.save / model.save, a .keras file, or a checkpoint prefix (e.g. ckpt/ckpt-3)."
        )
    incomplete = skipped_layers(torchrs_dir)
    fmt = detect_tf(tf_model_dir)
    if fmt.kind == CHECKPOINT:
        return _validate_checkpoint(
            tf_model_dir, fmt, torchrs_dir, incomplete, tolerance, agreement
        )
    module, meta = load_torchrs(torchrs_dir)
    tf_model, tf_format = load_tf(tf_model_dir)
    parts = find_parts(meta["architecture"], module, tf_model)
    given = read_inputs_file(inputs_file, parts) if inputs_file is not None else {}
    rng = np.random.default_rng(seed)
    for part in parts:
        if part.input_name in given:
            part.inputs = parse_inputs(part, given[part.input_name], "--inputs")
            part.input_source = f"--inputs {inputs_file}"
        else:
            part.inputs, what = sample_inputs(part, num_samples, rng)
            part.input_source = f"sampled (seed {seed}): {what}"
    for part in parts:
        if part.kind == "index":
            validate_index(part, k, tolerance, agreement)
        else:
            validate_tower(part, tolerance)
    return ValidationResult(
        tf_model_dir,
        tf_format,
        torchrs_dir,
        str(meta.get("model_kind")),
        parts,
        tolerance,
        agreement,
        compared="outputs of every part on the same inputs (sampled or --inputs)",
        incomplete=incomplete,
    )


def _validate_checkpoint(
    path: str,
    fmt: Any,
    torchrs_dir: str,
    incomplete: tuple[str, ...],
    tolerance: Tolerance,
    agreement: Agreement,
) -> ValidationResult:
    from parity.validate_checkpoint import validate_checkpoint

    module, meta = load_torchrs(torchrs_dir, weights=True)
    try:
        found = validate_checkpoint(path, fmt, torchrs_dir, meta, module)
    except ValidationError:
        raise
    except Exception as err:  # an unreadable checkpoint: TF's own error, on one line
        raise ValidationError(
            f"Cannot compare the TF checkpoint {path!r}: {_first_line(err)}"
        ) from None
    return ValidationResult(
        path,
        fmt.kind,
        torchrs_dir,
        str(meta.get("model_kind")),
        [],
        tolerance,
        agreement,
        weight_checks=found.checks,
        compared=found.compared,
        not_compared=found.not_compared,
        incomplete=incomplete,
    )


def skipped_layers(torchrs_dir: str) -> tuple[str, ...]:
    """What a ``--no-strict`` conversion left out: the layers ``report.json`` lists as unsupported, with why.

    Without a readable ``report.json`` (the converter always writes one), ``torchrs.json``'s summary
    count of unsupported entries stands in. ``()`` for a complete conversion.
    """
    root = Path(torchrs_dir)
    try:
        report = json.loads((root / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report = None
    if isinstance(report, dict) and isinstance(report.get("entries"), list):
        out = []
        for entry in report["entries"]:
            if isinstance(entry, dict) and entry.get("status") == "unsupported":
                why = entry.get("reason")
                out.append(f"{entry.get('source')}" + (f" ({why})" if why else ""))
        return tuple(out)
    try:
        summary = json.loads((root / "torchrs.json").read_text(encoding="utf-8")).get("summary")
        count = int(summary.get("unsupported", 0)) if isinstance(summary, dict) else 0
    except (OSError, ValueError, AttributeError, TypeError):
        return ()
    return (f"{count} unsupported entries (torchrs.json; report.json is missing)",) if count else ()


# ------------------------------------------------------------------------------------------------ report / CLI
def _markdown_sections(result: ValidationResult) -> list[str]:
    lines: list[str] = []
    if result.incomplete:
        lines += ["## INCOMPLETE: the conversion skipped layers", ""]
        lines += [f"- {item}" for item in result.incomplete]
        lines += ["", "A conversion that skipped anything (--no-strict) never passes.", ""]
    if result.compared:
        lines += ["## What was compared", "", f"- compared: {result.compared}"]
        lines += [f"- not compared: {item}" for item in result.not_compared]
        lines.append("")
    if not result.parts:
        return lines
    lines += ["## Inputs", ""]
    for p in result.parts:
        shape = "x".join(str(d) for d in p.inputs.shape) if p.inputs is not None else "-"
        lines.append(f"- **{p.name}** (`{p.input_name}`, {shape}): {p.input_source}")
    lines.append("\nThe inputs used are in `inputs.json` (the `--inputs` format).")
    for p in result.parts:
        top = p.figures.get("top_k")
        if not top or not top["disagreements"]:
            continue
        lines += ["", f"## {p.name}: queries whose top-{top['k']} disagree (first 10)", ""]
        lines += ["| query | TFRS ids | torchrs ids |", "| --- | --- | --- |"]
        for d in top["disagreements"][:10]:
            cells = [
                repr(d["query"]),
                *(", ".join(map(str, d[f"{w}_ids"])) for w in ("tfrs", "torchrs")),
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``validate`` subcommand's arguments."""
    parser.add_argument(
        "tf_model_dir",
        metavar="TF_MODEL_DIR",
        help="SavedModel directory, .keras file, or TF checkpoint (prefix or directory)",
    )
    parser.add_argument(
        "torchrs_dir", metavar="TORCHRS_DIR", help="python -m converters.tfrs_to_torch output"
    )
    parser.add_argument(
        "--inputs",
        metavar="FILE",
        help='JSON object {input name: array}: "queries" for an index, "inputs" for a tower, the tower '
        "attribute names for a tfrs.Model (a bare array for one-part models); default: sampled",
    )
    parser.add_argument(
        "--report", default=DEFAULT_REPORT, help=f"report directory (default {DEFAULT_REPORT})"
    )
    parser.add_argument(
        "--k", type=int, default=None, help="top-K of an index (default: its exported k)"
    )
    parser.add_argument(
        "--num-samples", type=int, default=DEFAULT_NUM_SAMPLES, help="inputs sampled per part"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sampled inputs")
    parser.add_argument(
        "--rtol", type=float, default=DEFAULT_TOLERANCE.rtol, help="relative tolerance (of |TFRS|)"
    )
    parser.add_argument(
        "--atol", type=float, default=DEFAULT_TOLERANCE.atol, help="absolute tolerance"
    )


def run(args: argparse.Namespace) -> int:
    """``python -m parity validate ...``; returns the exit status."""
    from parity import report

    try:
        if args.rtol < 0 or args.atol < 0 or not np.isfinite(args.rtol + args.atol):
            raise ValidationError(
                f"--rtol and --atol must be finite and >= 0 (got {args.rtol}, {args.atol})."
            )
        tolerance = DEFAULT_TOLERANCE
        if (args.rtol, args.atol) != (DEFAULT_TOLERANCE.rtol, DEFAULT_TOLERANCE.atol):
            tolerance = Tolerance(args.atol, args.rtol, "set with --atol / --rtol")
        result = validate(
            args.tf_model_dir,
            args.torchrs_dir,
            inputs_file=args.inputs,
            k=args.k,
            num_samples=args.num_samples,
            seed=args.seed,
            tolerance=tolerance,
        )
    except ValidationError as err:
        skipped = skipped_layers(args.torchrs_dir)
        if skipped:  # e.g. the parts the conversion kept no longer match the TF model
            print(f"parity: error: {err}", file=sys.stderr)
            print(_incomplete_line(skipped, None), file=sys.stderr)
            return EXIT_INCOMPLETE
        print(f"parity: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.report)
    path = report.write_checks(
        result.checks,
        out,
        title="torchrs parity report (validate)",
        intro=[
            f"TFRS model `{result.tf_model}` ({result.tf_format}) against the torchrs checkpoint "
            f"`{result.torchrs_dir}` ({result.model_kind}), on the same inputs. TFRS is the reference.",
        ],
        sections=_markdown_sections(result),
        figures=result.figures(),
    )
    (out / "inputs.json").write_text(json.dumps(result.inputs_json(), indent=1) + "\n")
    if result.not_compared:
        print(f"compared: {result.compared}")
        print("\n".join(f"not compared: {item}" for item in result.not_compared) + "\n")
    print(report.console_checks(result.checks))
    failed = [c for c in result.checks if not c.passed]
    if result.incomplete:
        print(f"\n{_incomplete_line(result.incomplete, len(failed))} Report: {path}")
        return EXIT_INCOMPLETE
    print(f"\n{'FAIL' if failed else 'PASS'}: {len(failed)} failed check(s). Report: {path}")
    return EXIT_FAILED if failed else 0


def _incomplete_line(skipped: Sequence[str], failed: int | None) -> str:
    """The verdict of a conversion that skipped layers: never PASS."""
    checks = f" {failed} failed check(s) among what was converted." if failed is not None else ""
    return (
        f"INCOMPLETE: the conversion skipped {len(skipped)} layer(s): {'; '.join(skipped)}. "
        "Support them (or convert the model as a translated graph) and convert again without "
        f"--no-strict.{checks}"
    )


__all__ = [
    "DEFAULT_TOLERANCE",
    "TOP_K_AGREEMENT",
    "ArrayComparison",
    "Check",
    "ValidationError",
    "ValidationResult",
    "compare_arrays",
    "top_k_agreement",
    "validate",
]
