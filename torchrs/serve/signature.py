"""Signatures of a converted model: what TF's SavedModel ``signature_def`` reports, rebuilt from torchrs.json.

A TF Serving client addresses inputs and outputs by the names of the SavedModel's signature. The
converted directory keeps enough to name them the same way:

- an index (``BruteForce`` / ``Streaming``, exported with ``tf.saved_model.save``): Keras names
  the positional query ``input_1`` and the returned ``(scores, identifiers)`` ``output_1`` /
  ``output_2``; ``k`` is fixed by the export's config, as in TF;
- a functional Keras model: the ``tf.keras.Input`` names with their dtypes and shapes
  (``input_specs``), and the output layers' names;
- a Sequential tower: ``<first layer>_input`` / ``<last layer>`` as Keras names them, where the
  converted directory records both layer names, else ``input_1`` / ``output_1``;
- a ``tfrs.Model`` container: its own ``call`` is not kept by the converter, so its towers are
  served one signature each, named by attribute path (``user_model``, ``ranking_model.ratings``).

Where the converter recorded the export's own ``signature_def`` (``serving_signatures`` in the
architecture: keys, dtypes, shapes and tensor names, as TF Serving's ``/metadata`` shows them),
``serving_default`` takes those names, dtypes and shapes instead of the rebuilt ones above: a
Sequential exported without named layers is then served under TF's ``<first layer>_input`` /
``<last layer>`` (or its ``Input`` layer's name), exactly as TF Serving would serve the export.

Every signature runs a batch: ``{input name: array}`` -> ``{output name: array}``, string tensors as
NumPy ``object`` arrays of ``bytes`` (TF's ``DT_STRING``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

# Keras's names for the arguments and results of a traced call without named Inputs (TF 2.x SavedModel).
KERAS_INPUT = "input_1"
KERAS_OUTPUTS = ("output_1", "output_2")
# The architecture entry where the converter records the export's own signature_defs.
SERVING_SIGNATURES = "serving_signatures"
# TF Serving's default signature key (tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY).
DEFAULT_SIGNATURE = "serving_default"
# The method name TF writes into every predict signature_def.
PREDICT_METHOD = "tensorflow/serving/predict"
# Identifiers travel as str in torchrs (surrogateescape keeps non-UTF-8 bytes), as bytes on the wire.
_ESCAPE_ERRORS = "surrogateescape"
# The first layer decides what a Sequential tower eats.
_STRING_FIRST_LAYERS = frozenset({"StringLookup", "Hashing", "TextVectorization"})
_INTEGER_FIRST_LAYERS = frozenset({"IntegerLookup", "Embedding"})

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature, as TF's ``TensorInfo`` describes it.

    Args:
        dtype: TF's dtype name without the ``DT_`` prefix, lower case: ``string``, ``float32``, ``int64``...
        shape: dimensions, ``-1`` where unknown (the batch axis always is).
        tensor: the graph tensor's name TF reports (``serving_default_user_id:0``), or empty where
            unknown (the servers then write the name TF's exports use).
    """

    dtype: str
    shape: tuple[int, ...]
    tensor: str = field(default="", repr=False)


@dataclass(frozen=True)
class Signature:
    """A servable function: named inputs in, named outputs out, one batch at a time.

    Args:
        name: the signature key (``serving_default``).
        inputs: ``{name: spec}``.
        outputs: ``{name: spec}``, in the order TF lists them.
        run: the batch function.
    """

    name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    run: Callable[[Arrays], Arrays]


def _dtype_of_first_layer(spec: Mapping[str, Any]) -> str:
    layers = spec.get("layers") or []
    first = layers[0].get("class_name") if layers else None
    if first in _STRING_FIRST_LAYERS:
        return "string"
    if first in _INTEGER_FIRST_LAYERS:
        return "int64"
    return "float32"


def _to_model_input(value: np.ndarray, dtype: str) -> Any:
    """A batch as the torchrs layers take it: bytes arrays for strings, tensors for numbers."""
    if dtype == "string":
        return value  # (B, ...) object array of bytes: lookups read it as is
    return torch.from_numpy(np.ascontiguousarray(value))


def _to_array(value: Any) -> np.ndarray:
    """A model output as a NumPy array; str identifiers back to their exact bytes."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind in "UO":
        flat = [
            v.encode("utf-8", _ESCAPE_ERRORS) if isinstance(v, str) else v for v in array.ravel()
        ]
        out = np.empty(array.shape, dtype=object)
        out.ravel()[:] = flat
        return out
    return array


def _index_signature(module: nn.Module, spec: Mapping[str, Any]) -> Signature:
    query = spec.get("query_model")
    k = int((spec.get("config") or {}).get("k", 10))
    dtype = _dtype_of_first_layer(query) if query is not None else "float32"
    in_shape = (-1,) if dtype != "float32" else (-1, -1)
    # No identifiers: TF returns int32 candidate positions; else the export's own dtype (numpy name).
    ids_dtype = str(spec.get("identifiers_dtype") or "int32")

    def run(inputs: Arrays) -> Arrays:
        scores, ids = module(_to_model_input(inputs[KERAS_INPUT], dtype), k=k)
        ids_array = _to_array(ids)
        if ids_dtype != "string":
            ids_array = ids_array.astype(ids_dtype)  # torch positions are int64, TF's int32
        return {KERAS_OUTPUTS[0]: _to_array(scores), KERAS_OUTPUTS[1]: ids_array}

    return Signature(
        DEFAULT_SIGNATURE,
        {KERAS_INPUT: TensorSpec(dtype, in_shape)},
        {
            KERAS_OUTPUTS[0]: TensorSpec("float32", (-1, k)),
            KERAS_OUTPUTS[1]: TensorSpec(ids_dtype, (-1, k)),
        },
        run,
    )


def _output_names(outputs: Any) -> list[str]:
    """Keras's serving output names: the output layers' names (dict outputs: the keys)."""
    if isinstance(outputs, dict):
        return list(outputs)
    refs = [outputs] if outputs and isinstance(outputs[0], str) else list(outputs)
    names: list[str] = []
    for ref in refs:
        name = str(ref[0])
        names.append(name if name not in names else f"{name}_{names.count(name)}")
    return names


def _functional_signature(module: nn.Module, spec: Mapping[str, Any]) -> Signature:
    names = list(spec["inputs"].values()) if isinstance(spec["inputs"], dict) else spec["inputs"]
    specs = spec.get("input_specs") or {}
    inputs = {
        n: TensorSpec(
            str(specs.get(n, {}).get("dtype", "float32")),
            tuple(-1 if d is None else int(d) for d in specs.get(n, {}).get("shape", [None])),
        )
        for n in names
    }
    out_names = _output_names(spec["outputs"])

    def run(batch: Arrays) -> Arrays:
        result = module(**{n: _to_model_input(batch[n], inputs[n].dtype) for n in names})
        if isinstance(result, dict):
            values = [result[n] for n in out_names]
        elif isinstance(result, list | tuple):
            values = list(result)
        else:
            values = [result]
        return {n: _to_array(v) for n, v in zip(out_names, values, strict=True)}

    return Signature(
        DEFAULT_SIGNATURE, inputs, {n: TensorSpec("float32", (-1, -1)) for n in out_names}, run
    )


def _tower_names(spec: Mapping[str, Any]) -> tuple[str, str]:
    """Keras's serving names of a Sequential: ``<first layer>_input`` and the last layer's name.

    The converter records layer names only for some exports; without both, ``input_1`` / ``output_1``.
    """
    layers = spec.get("layers") or []
    first = (layers[0].get("config") or {}).get("name") if layers else None
    last = (layers[-1].get("config") or {}).get("name") if layers else None
    if first and last:
        return f"{first}_input", str(last)
    return KERAS_INPUT, KERAS_OUTPUTS[0]


def _dense_width(spec: Mapping[str, Any]) -> int:
    """Input width of a tower that starts with a Dense layer (torch layout ``[out, in]``), else -1."""
    layers = spec.get("layers") or []
    if layers and layers[0].get("class_name") == "Dense":
        weight = (layers[0].get("shapes") or {}).get("weight")
        if weight and len(weight) == 2:
            return int(weight[1])
    return -1


def _tower_signature(module: nn.Module, spec: Mapping[str, Any], name: str) -> Signature:
    dtype = _dtype_of_first_layer(spec)
    input_name, output_name = _tower_names(spec)

    def run(batch: Arrays) -> Arrays:
        return {output_name: _to_array(module(_to_model_input(batch[input_name], dtype)))}

    in_shape = (-1,) if dtype != "float32" else (-1, _dense_width(spec))
    return Signature(
        name,
        {input_name: TensorSpec(dtype, in_shape)},
        {output_name: TensorSpec("float32", (-1, -1))},
        run,
    )


def signatures(
    module: nn.Module, architecture: Mapping[str, Any], compile: bool = False
) -> dict[str, Signature]:
    """The signatures of what ``torchrs.load`` returned, keyed as TF's SavedModel keys them.

    Args:
        module: the loaded model.
        architecture: the ``architecture`` entry of its ``torchrs.json``.
        compile: run each served module's tensor part through ``torch.compile``, lookups eager
            (:mod:`torchrs.serve.compiling`); a translated graph (issue 12's path) stays eager.

    Returns:
        ``{signature name: Signature}``; a container has no ``serving_default``.

    Raises:
        ValueError: nothing in the model can be served.

    >>> from torchrs.layers.embedding import Embedding
    >>> from torchrs.preprocessing import StringLookup
    >>> tower = torch.nn.Sequential(StringLookup(vocabulary=["a", "b"]), Embedding(3, 2))
    >>> spec = {"class_name": "Sequential", "layers": [{"class_name": "StringLookup"}, {}]}
    >>> sig = signatures(tower, spec)["serving_default"]
    >>> sig.inputs, sig.run({"input_1": np.array([b"a", b"zz"], dtype=object)})["output_1"].shape
    ({'input_1': TensorSpec(dtype='string', shape=(-1,))}, (2, 2))
    """
    found = _collect(module, architecture, "", compile)
    recorded = (architecture.get(SERVING_SIGNATURES) or {}).get(DEFAULT_SIGNATURE)
    if recorded and DEFAULT_SIGNATURE in found:
        found[DEFAULT_SIGNATURE] = _as_recorded(found[DEFAULT_SIGNATURE], recorded)
    return found


def _matched(ours: Mapping[str, TensorSpec], theirs: Mapping[str, Any]) -> dict[str, str]:
    """``{our name: TF's name}``: the same names, or the only one of each; empty if no match."""
    if set(ours) == set(theirs):
        return {n: n for n in ours}
    if len(ours) == 1 and len(theirs) == 1:
        return {next(iter(ours)): next(iter(theirs))}
    return {}


def _as_recorded(sig: Signature, recorded: Mapping[str, Any]) -> Signature:
    """``sig`` under the export's own ``serving_default`` names, dtypes and shapes.

    A side (inputs or outputs) whose names cannot be matched one to one keeps the rebuilt names.

    >>> ours = Signature("serving_default", {"input_1": TensorSpec("string", (-1,))},
    ...                  {"output_1": TensorSpec("float32", (-1, -1))}, lambda b: {"output_1": b["input_1"]})
    >>> tf_sig = {"inputs": {"string_lookup_input": {"dtype": "string", "shape": [-1]}},
    ...           "outputs": {"dense_1": {"dtype": "float32", "shape": [-1, 3]}}}
    >>> sig = _as_recorded(ours, tf_sig)
    >>> sig.inputs, sig.outputs["dense_1"].shape, sig.run({"string_lookup_input": 7})
    ({'string_lookup_input': TensorSpec(dtype='string', shape=(-1,))}, (-1, 3), {'dense_1': 7})
    """
    inputs, outputs = recorded.get("inputs") or {}, recorded.get("outputs") or {}
    in_names, out_names = _matched(sig.inputs, inputs), _matched(sig.outputs, outputs)
    # In the model's order; a side that cannot be matched keeps the rebuilt names and specs.
    new_inputs = (
        {in_names[n]: _known(inputs[in_names[n]], s) for n, s in sig.inputs.items()}
        if in_names
        else dict(sig.inputs)
    )
    new_outputs = (
        {out_names[n]: _known(outputs[out_names[n]], s) for n, s in sig.outputs.items()}
        if out_names
        else dict(sig.outputs)
    )
    in_names = in_names or {n: n for n in sig.inputs}
    out_names = out_names or {n: n for n in sig.outputs}
    to_ours = {theirs: ours for ours, theirs in in_names.items()}
    run = sig.run

    def renamed(batch: Arrays) -> Arrays:
        result = run({to_ours[n]: v for n, v in batch.items()})
        return {out_names[n]: v for n, v in result.items()}

    return Signature(sig.name, new_inputs, new_outputs, renamed)


def _known(entry: Mapping[str, Any], ours: TensorSpec) -> TensorSpec:
    """A recorded tensor as a spec; our shape where TF's rank is unknown (``shape`` None)."""
    shape = entry.get("shape")
    return TensorSpec(
        str(entry["dtype"]),
        ours.shape if shape is None else _tf_shape(shape),
        str(entry.get("name") or ""),
    )


def _translated_signatures(module: Any) -> dict[str, Signature]:
    """A translated ``tf.saved_model.save`` export serves its own signatures, named as in TF.

    Its traced Keras calls (``<tower>.__call__``) are not ``signature_def``s in TF either: left out.
    """
    out: dict[str, Signature] = {}
    for key, graph_signature in module.signatures.items():
        if key.endswith("__call__"):
            continue
        graph = graph_signature.graph_spec

        def run(batch: Arrays, fn: Any = graph_signature) -> Arrays:
            return {k: _to_array(v) for k, v in fn(**batch).items()}

        out[key] = Signature(
            key,
            {s.name: TensorSpec(s.dtype, _tf_shape(s.shape)) for s in graph.inputs},
            {o.name: TensorSpec(o.dtype or "float32", _tf_shape(o.shape)) for o in graph.outputs},
            run,
        )
    if not out:
        raise ValueError("This translated export has no serving signature (only traced calls).")
    return out


def _tf_shape(shape: Any) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in shape) if shape is not None else (-1,)


def _collect(
    module: nn.Module, spec: Mapping[str, Any], path: str, compile: bool = False
) -> dict[str, Signature]:
    if spec.get("kind") == "graph":
        return _translated_signatures(module)
    cls = spec.get("class_name")
    name = path or DEFAULT_SIGNATURE
    if compile and cls in ("BruteForce", "Streaming", "Functional", "Sequential"):
        from torchrs.serve.compiling import compile_model

        module = compile_model(module)
    if cls in ("BruteForce", "Streaming"):
        sig = _index_signature(module, spec)
        return {name: Signature(name, sig.inputs, sig.outputs, sig.run)}
    if cls == "Functional":
        sig = _functional_signature(module, spec)
        return {name: Signature(name, sig.inputs, sig.outputs, sig.run)}
    if cls == "Sequential":
        return {name: _tower_signature(module, spec, name)}
    if cls == "Container":
        out: dict[str, Signature] = {}
        for child, child_spec in spec.get("children", {}).items():
            out.update(
                _collect(
                    getattr(module, child),
                    child_spec,
                    f"{path}.{child}" if path else child,
                    compile,
                )
            )
        if not out and not path:
            raise ValueError("This converted tfrs.Model holds no tower that can be served.")
        return out
    if path:
        return {}
    raise ValueError(
        f"A converted {cls!r} cannot be served: torchrs.serve serves indexes, Sequential and "
        "functional towers, and the towers of a tfrs.Model."
    )
