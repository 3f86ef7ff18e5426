"""The declarative form of a translated TF function graph, as stored in ``graph.json``.

A graph is data only: named inputs with TF dtypes, nodes naming an op of the allow-list
(:data:`torchrs.graph.ops.OPS`) or one of the source kinds below, their attribute values (JSON
scalars and lists) and edges as ``[node, output index]`` references; sub-graphs (the bodies of
``While`` / ``If``) nest as graphs. :func:`Graph.from_json` checks every field's type and every op
against the allow-list before anything is built; nothing in the file is imported or executed.

Source kinds (no inputs):

* ``Placeholder`` — a graph input (``attrs["index"]``: its position);
* ``Variable`` — a TF variable, ``attrs["path"]``: its TF object path, which names the parameter;
* ``Table`` — a lookup table, ``attrs["path"]``: its object path (keys and values are tensors);
* ``Const`` — a constant, ``attrs["tensor"]``: its name in ``model.safetensors``.

>>> g = Graph.from_json({
...     "inputs": [{"name": "x", "dtype": "float32", "shape": [None, 2]}],
...     "outputs": [{"name": "y", "ref": ["relu", 0]}],
...     "nodes": [
...         {"name": "x", "op": "Placeholder", "inputs": [], "attrs": {"index": 0}},
...         {"name": "relu", "op": "Relu", "inputs": [["x", 0]], "attrs": {}},
...     ],
... })
>>> [n.op for n in g.nodes]
['Placeholder', 'Relu']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torchrs.graph.ops import DTYPES, OPS, UnsupportedGraphError

__all__ = ["CONTROL_FLOW_OPS", "SOURCE_OPS", "Graph", "Node", "Output", "Ref", "TensorSpec"]

#: Node kinds that are not ops: where values enter the graph.
SOURCE_OPS = frozenset({"Placeholder", "Variable", "Table", "Const"})
#: Control flow, whose attributes hold sub-graphs.
CONTROL_FLOW_OPS = frozenset({"While", "If"})
#: Attribute names that hold sub-graphs, per control-flow op.
SUBGRAPH_ATTRS = {"While": ("cond", "body"), "If": ("then_branch", "else_branch")}
#: dtypes that only a sub-graph's inputs carry (loop state: a TensorList, a variable's handle).
INTERNAL_DTYPES = frozenset({"variant", "resource"})
#: Deepest nesting of sub-graphs accepted (Keras RNN loops nest one level; ten is generous).
MAX_DEPTH = 10


@dataclass(frozen=True)
class Ref:
    """The ``index``-th output of node ``node``."""

    node: str
    index: int = 0


@dataclass(frozen=True)
class TensorSpec:
    """A graph input: name, TF dtype name, shape (``None`` for an unknown dimension or rank)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class Output:
    """A named graph output, with the TF dtype and shape the export declared (where known)."""

    name: str
    ref: Ref
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None


@dataclass(frozen=True)
class Node:
    """One node: an allowed op (or a source kind), its inputs and attributes.

    ``attrs`` values are JSON scalars / lists, except a control-flow op's sub-graph attributes,
    which are :class:`Graph` objects.
    """

    name: str
    op: str
    inputs: tuple[Ref, ...] = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    #: Where the node came from (TF function and node name), for error messages.
    origin: str = ""


@dataclass(frozen=True)
class Graph:
    """A translated function: inputs, nodes in an order where every input comes first, outputs."""

    inputs: tuple[TensorSpec, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Output, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the inverse of :meth:`from_json`)."""
        return {
            "inputs": [
                {
                    "name": s.name,
                    "dtype": s.dtype,
                    "shape": None if s.shape is None else list(s.shape),
                }
                for s in self.inputs
            ],
            "outputs": [_output_json(o) for o in self.outputs],
            "nodes": [_node_json(n) for n in self.nodes],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "graph", depth: int = 0) -> Graph:
        """Parses and checks a graph; raises :class:`UnsupportedGraphError` naming the bad field."""
        if depth > MAX_DEPTH:
            raise UnsupportedGraphError(f"{where}: sub-graphs nest deeper than {MAX_DEPTH}.")
        obj = _mapping(data, where, ("inputs", "nodes", "outputs"))
        inputs = tuple(
            _spec(s, f"{where}.inputs[{i}]")
            for i, s in enumerate(_list(obj["inputs"], f"{where}.inputs"))
        )
        nodes = tuple(
            _node(n, f"{where}.nodes[{i}]", depth)
            for i, n in enumerate(_list(obj["nodes"], f"{where}.nodes"))
        )
        outputs = tuple(
            _output(o, f"{where}.outputs[{i}]")
            for i, o in enumerate(_list(obj["outputs"], f"{where}.outputs"))
        )
        graph = cls(inputs, nodes, outputs)
        graph.check(where)
        return graph

    def check(self, where: str = "graph") -> None:
        """Every reference points at an earlier node's existing output; names are unique."""
        seen: dict[str, Node] = {}
        for node in self.nodes:
            if node.name in seen:
                raise UnsupportedGraphError(f"{where}: node name {node.name!r} appears twice.")
            for ref in node.inputs:
                if ref.node not in seen:
                    raise UnsupportedGraphError(
                        f"{where}: node {node.name!r} reads {ref.node!r}, which is not an earlier node."
                    )
            if node.op == "Placeholder":
                index = node.attrs.get("index")
                if not isinstance(index, int) or not 0 <= index < len(self.inputs):
                    raise UnsupportedGraphError(
                        f"{where}: placeholder {node.name!r} has input index {index!r}; the graph has "
                        f"{len(self.inputs)} inputs."
                    )
            seen[node.name] = node
        for out in self.outputs:
            if out.ref.node not in seen:
                raise UnsupportedGraphError(
                    f"{where}: output {out.name!r} reads {out.ref.node!r}, which is not a node."
                )


def _output_json(output: Output) -> dict[str, Any]:
    out: dict[str, Any] = {"name": output.name, "ref": [output.ref.node, output.ref.index]}
    if output.dtype is not None:
        out["dtype"] = output.dtype
    if output.shape is not None:
        out["shape"] = list(output.shape)
    return out


def _node_json(node: Node) -> dict[str, Any]:
    attrs = {k: (v.to_json() if isinstance(v, Graph) else v) for k, v in node.attrs.items()}
    out: dict[str, Any] = {
        "name": node.name,
        "op": node.op,
        "inputs": [[r.node, r.index] for r in node.inputs],
        "attrs": attrs,
    }
    if node.origin:
        out["origin"] = node.origin
    return out


def _mapping(data: Any, where: str, required: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UnsupportedGraphError(f"{where} must be an object, got {type(data).__name__}.")
    missing = [k for k in required if k not in data]
    if missing:
        raise UnsupportedGraphError(f"{where} lacks {', '.join(missing)}.")
    return data


def _list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise UnsupportedGraphError(f"{where} must be a list, got {type(data).__name__}.")
    return data


def _str(data: Any, where: str) -> str:
    if not isinstance(data, str):
        raise UnsupportedGraphError(f"{where} must be a string, got {type(data).__name__}.")
    return data


def _ref(data: Any, where: str) -> Ref:
    if (
        not isinstance(data, list)
        or len(data) != 2
        or not isinstance(data[0], str)
        or not isinstance(data[1], int)
        or data[1] < 0
    ):
        raise UnsupportedGraphError(f"{where} must be [node name, output index], got {data!r}.")
    return Ref(data[0], data[1])


def _spec(data: Any, where: str) -> TensorSpec:
    obj = _mapping(data, where, ("name", "dtype"))
    dtype = _str(obj["dtype"], f"{where}.dtype")
    if dtype not in DTYPES and dtype not in INTERNAL_DTYPES:
        raise UnsupportedGraphError(
            f"{where}: input dtype {dtype!r} is not supported (supported: {sorted(DTYPES)})."
        )
    shape = obj.get("shape")
    if shape is not None:
        shape = tuple(
            None if d is None else _int(d, f"{where}.shape") for d in _list(shape, f"{where}.shape")
        )
    return TensorSpec(_str(obj["name"], f"{where}.name"), dtype, shape)


def _int(data: Any, where: str) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise UnsupportedGraphError(f"{where} must be an integer, got {data!r}.")
    return data


def _output(data: Any, where: str) -> Output:
    obj = _mapping(data, where, ("name", "ref"))
    spec = _spec(
        {"name": obj["name"], "dtype": obj.get("dtype", "float32"), "shape": obj.get("shape")},
        where,
    )
    return Output(
        _str(obj["name"], f"{where}.name"),
        _ref(obj["ref"], f"{where}.ref"),
        spec.dtype if "dtype" in obj else None,
        spec.shape,
    )


def _attr_value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_attr_value(v, where) for v in value]
    raise UnsupportedGraphError(
        f"{where}: attribute values are JSON scalars or lists, got {value!r}."
    )


def _node(data: Any, where: str, depth: int) -> Node:
    obj = _mapping(data, where, ("name", "op", "inputs", "attrs"))
    op = _str(obj["op"], f"{where}.op")
    name = _str(obj["name"], f"{where}.name")
    if op not in OPS and op not in SOURCE_OPS and op not in CONTROL_FLOW_OPS:
        raise UnsupportedGraphError(
            f"{where} ({name!r}): op {op!r} is not in torchrs's allow-list of TF ops."
        )
    attrs_in = _mapping(obj["attrs"], f"{where}.attrs", ())
    attrs: dict[str, Any] = {}
    graph_attrs = SUBGRAPH_ATTRS.get(op, ())
    for key, value in attrs_in.items():
        if key in graph_attrs:
            attrs[key] = Graph.from_json(value, f"{where}.attrs.{key}", depth + 1)
        else:
            attrs[key] = _attr_value(value, f"{where}.attrs.{key}")
    for key in graph_attrs:
        if key not in attrs:
            raise UnsupportedGraphError(f"{where}: {op} lacks its sub-graph {key!r}.")
    inputs = tuple(
        _ref(r, f"{where}.inputs[{i}]")
        for i, r in enumerate(_list(obj["inputs"], f"{where}.inputs"))
    )
    origin = obj.get("origin", "")
    return Node(name, op, inputs, attrs, origin if isinstance(origin, str) else "")
