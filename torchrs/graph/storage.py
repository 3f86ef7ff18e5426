"""Translated graphs in a torchrs checkpoint directory: ``torchrs.json`` + ``model.safetensors``.

The architecture entry of a ``model_kind == "graph"`` directory is::

    {"class_name": "TranslatedSavedModel", "kind": "graph", "signatures": {name: Graph JSON}, "tables": {TF path: {"keys": t, "values": t}},
     "strings": {tensor name: shape}}

Tensors live in ``model.safetensors`` under ``graph/<name>`` (variables by TF object path, constants
by ``const/<n>``). Strings (torch has none) are stored as ``<name>.token_bytes`` (uint8, concatenated)
+ ``<name>.token_offsets`` (int64, N + 1), their shape in ``strings``, so any byte string round-trips.
Nothing here imports or executes anything named by the file.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from torchrs.graph.ir import Graph
from torchrs.graph.module import HashTable, TranslatedSavedModel
from torchrs.graph.ops import UnsupportedGraphError

__all__ = ["GRAPH_KIND", "TENSOR_PREFIX", "decode", "encode", "load_graph_model"]

#: ``architecture["kind"]`` of a translated SavedModel.
GRAPH_KIND = "graph"
#: Prefix of the graph's tensors in ``model.safetensors``.
TENSOR_PREFIX = "graph/"


def encode(values: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Arrays (strings included) as safetensors-ready arrays under ``graph/`` + string shapes."""
    out: dict[str, np.ndarray] = {}
    strings: dict[str, list[int]] = {}
    for name, array in values.items():
        key = TENSOR_PREFIX + name
        if array.dtype == object:
            flat = [bytes(v) for v in array.reshape(-1)]
            lengths = np.array([len(v) for v in flat], dtype=np.int64)
            out[key + ".token_bytes"] = np.frombuffer(b"".join(flat), dtype=np.uint8).copy()
            out[key + ".token_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            strings[name] = list(array.shape)
        else:
            out[key] = array.copy(order="C")  # (np.ascontiguousarray would make a scalar 1-D)
    return out, strings


def decode(tensors: Mapping[str, torch.Tensor], strings: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`encode`: ``{name: tensor, or NumPy bytes array for strings}``."""
    out: dict[str, Any] = {}
    for name, tensor in tensors.items():
        if not name.startswith(TENSOR_PREFIX) or name.endswith((".token_bytes", ".token_offsets")):
            continue
        out[name[len(TENSOR_PREFIX) :]] = tensor
    for name, shape in strings.items():
        key = TENSOR_PREFIX + name
        if key + ".token_bytes" not in tensors or key + ".token_offsets" not in tensors:
            raise UnsupportedGraphError(f"String tensor {name!r} is declared but not stored.")
        blob = tensors[key + ".token_bytes"].cpu().numpy().tobytes()
        offsets = tensors[key + ".token_offsets"].cpu().tolist()
        if any(b < a for a, b in itertools.pairwise(offsets)) or (
            offsets and offsets[-1] > len(blob)
        ):
            raise UnsupportedGraphError(f"String tensor {name!r} has corrupted offsets.")
        items = [blob[a:b] for a, b in itertools.pairwise(offsets)]
        if not isinstance(shape, list) or int(np.prod(shape)) != len(items):
            raise UnsupportedGraphError(
                f"String tensor {name!r}: shape {shape!r} does not hold {len(items)} items."
            )
        array = np.empty(len(items), dtype=object)
        array[:] = items
        out[name] = array.reshape(shape)
    return out


def load_graph_model(
    architecture: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
) -> TranslatedSavedModel:
    """Builds the module of a ``kind == "graph"`` architecture (checked first, nothing executed)."""
    signatures = architecture.get("signatures")
    if not isinstance(signatures, Mapping) or not signatures:
        raise UnsupportedGraphError("The graph architecture has no signatures.")
    graphs = {str(k): Graph.from_json(v, f"signatures[{k!r}]") for k, v in signatures.items()}
    strings = architecture.get("strings", {})
    if not isinstance(strings, Mapping):
        raise UnsupportedGraphError("architecture['strings'] must be an object.")
    values = decode(tensors, strings)
    tables: dict[str, HashTable] = {}
    table_specs = architecture.get("tables", {})
    if not isinstance(table_specs, Mapping):
        raise UnsupportedGraphError("architecture['tables'] must be an object.")
    for path, spec in table_specs.items():
        if not isinstance(spec, Mapping) or not {"keys", "values"} <= set(spec):
            raise UnsupportedGraphError(f"Table {path!r} needs 'keys' and 'values'.")
        keys, vals = values.get(spec["keys"]), values.get(spec["values"])
        if keys is None or vals is None:
            raise UnsupportedGraphError(f"Table {path!r}: its keys or values are not stored.")
        tables[str(path)] = HashTable(keys, vals)
    return TranslatedSavedModel(graphs, values, tables).eval()
