"""Architecture nodes as typed records: one frozen dataclass per layer kind, parsed from ``torchrs.json``.

:func:`parse` checks a node (and everything below it) against :data:`~torchrs.io.registry.REGISTRY` first, so
an unknown kind, a missing field or a field of the wrong type is the same
:class:`~torchrs.io.spec.CheckpointFormatError` naming the field; then it builds the typed tree:

* :class:`LayerNode` for a layer without children, :class:`SequentialNode` (``layers``),
  :class:`FunctionalNode` (``layers`` by name, the Keras ``nodes`` as :class:`Call` records, ``inputs`` /
  ``outputs``), :class:`ContainerNode` (``children``), :class:`IndexNode` (``query_model``,
  ``identifiers_dtype``);
* each kind gets its own subclass (``DenseNode``, ``StringLookupNode``...: :func:`node_type`) whose attributes
  are the config fields the kind declares (``DenseNode.use_bias``), ``None`` when the file leaves them out.

:meth:`Node.to_json` gives back the dict it was parsed from, key for key and in the same order, so the on-disk
format is unchanged. The builders of :mod:`torchrs.io.registry` still read the JSON dict; the loader walks the
typed tree (:func:`torchrs.io.checkpoint.load`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from torchrs.io.registry import REGISTRY, Children, validate

__all__ = [
    "Call",
    "ContainerNode",
    "FunctionalNode",
    "IndexNode",
    "LayerNode",
    "Node",
    "SequentialNode",
    "node_type",
    "parse",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Node:
    """An architecture node: its kind, config, shapes and any other key, kept verbatim.

    Attributes:
        class_name: the layer kind (a key of ``REGISTRY``).
        config: the Keras config entries (read-only).
        shapes: parameter shapes by torch name (read-only; lists as tuples).
        other: the node's keys this record does not model (a layer's ``name``...), verbatim.
        order: the node's keys in file order, so :meth:`to_json` writes them back identically.
    """

    CHILD_KEYS: ClassVar[tuple[str, ...]] = ()

    class_name: str
    config: Mapping[str, Any] = field(default_factory=_empty)
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=_empty)
    other: Mapping[str, Any] = field(default_factory=_empty)
    order: tuple[str, ...] = ()

    def _children_json(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        """The node as ``torchrs.json`` holds it (equal to what :func:`parse` was given, key order included).

        >>> node = {"class_name": "Dense", "config": {"units": 2}, "shapes": {"weight": [2, 3]}}
        >>> # (units is not a declared field of Dense: kept in config all the same)
        >>> parse(node).to_json() == node
        True
        """
        values: dict[str, Any] = {"class_name": self.class_name, **self.other}
        if "config" not in values:  # (a null config is kept verbatim in ``other``)
            values["config"] = dict(self.config)
        if "shapes" not in values:
            values["shapes"] = {name: list(shape) for name, shape in self.shapes.items()}
        values.update(self._children_json())
        return {key: values[key] for key in self.order}


@dataclass(frozen=True)
class LayerNode(Node):
    """A layer without child nodes."""


@dataclass(frozen=True)
class SequentialNode(Node):
    """A Keras ``Sequential``: its layers in order."""

    CHILD_KEYS: ClassVar[tuple[str, ...]] = ("layers",)

    layers: tuple[Node, ...] = ()

    def _children_json(self) -> dict[str, Any]:
        return {"layers": [layer.to_json() for layer in self.layers]}


@dataclass(frozen=True)
class Call:
    """One call of a layer inside a functional graph (a Keras ``inbound_nodes`` entry).

    Attributes:
        layer: the key of the called layer in :attr:`FunctionalNode.layers`.
        node_index: which call of that layer this is.
        inbound: the call's inputs, as Keras nests ``[layer, node_index, tensor_index]`` references.
        other: the call's other keys, verbatim; order: its keys in file order.
    """

    layer: str
    node_index: int
    inbound: Any
    other: Mapping[str, Any] = field(default_factory=_empty)
    order: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        values = {
            "layer": self.layer,
            "node_index": self.node_index,
            "inbound": self.inbound,
            **self.other,
        }
        return {key: values[key] for key in self.order}


@dataclass(frozen=True)
class FunctionalNode(Node):
    """A Keras functional graph: its layers by name, their calls, its inputs and outputs."""

    CHILD_KEYS: ClassVar[tuple[str, ...]] = ("layers", "nodes", "inputs", "outputs")

    layers: Mapping[str, Node] = field(default_factory=_empty)
    calls: tuple[Call, ...] = ()
    inputs: Any = None
    outputs: Any = None

    def _children_json(self) -> dict[str, Any]:
        return {
            "layers": {key: layer.to_json() for key, layer in self.layers.items()},
            "nodes": [call.to_json() for call in self.calls],
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class ContainerNode(Node):
    """The towers of a ``tfrs.Model`` by attribute name."""

    CHILD_KEYS: ClassVar[tuple[str, ...]] = ("children",)

    children: Mapping[str, Node] = field(default_factory=_empty)

    def _children_json(self) -> dict[str, Any]:
        return {"children": {name: child.to_json() for name, child in self.children.items()}}


@dataclass(frozen=True)
class IndexNode(Node):
    """A ``BruteForce`` / ``Streaming`` index: its query tower and the dtype of its identifiers."""

    CHILD_KEYS: ClassVar[tuple[str, ...]] = ("query_model", "identifiers_dtype")

    query_model: Node | None = None
    identifiers_dtype: str | None = None

    def _children_json(self) -> dict[str, Any]:
        return {
            "query_model": None if self.query_model is None else self.query_model.to_json(),
            "identifiers_dtype": self.identifiers_dtype,
        }


_BASES: dict[Children, type[Node]] = {
    Children.NONE: LayerNode,
    Children.LIST: SequentialNode,
    Children.GRAPH: FunctionalNode,
    Children.NAMED: ContainerNode,
    Children.QUERY: IndexNode,
}
_TYPES: dict[str, type[Node]] = {}


def node_type(class_name: str) -> type[Node]:
    """The frozen dataclass of one layer kind: its children's base class plus the config fields it declares.

    >>> dense = node_type("Dense")
    >>> dense.__name__, issubclass(dense, LayerNode), "use_bias" in {f.name for f in dataclasses.fields(dense)}
    ('DenseNode', True, True)
    """
    if class_name not in _TYPES:
        kind = REGISTRY[class_name]
        base = _BASES[kind.children]
        taken = {f.name for f in dataclasses.fields(base)}
        clash = [c.name for c in kind.config if c.name in taken]
        if clash:  # a declared config field named like a node attribute: a registry bug
            raise TypeError(f"{class_name}: config fields {clash} clash with {base.__name__}")
        _TYPES[class_name] = dataclasses.make_dataclass(
            f"{class_name}Node",
            [(c.name, Any, field(default=None)) for c in kind.config],
            bases=(base,),
            frozen=True,
            namespace={"__doc__": f"A ``{class_name}`` node (its declared config fields typed)."},
        )
    return _TYPES[class_name]


def parse(payload: Any, where: str = "architecture") -> Node:
    """The typed node of an architecture dict, checked first by :func:`~torchrs.io.registry.validate`.

    Raises:
        CheckpointFormatError: an unknown kind, a missing field or a field of the wrong type (named).

    >>> node = parse({"class_name": "Sequential", "layers": [
    ...     {"class_name": "Dense", "config": {"use_bias": False}, "shapes": {"weight": [4, 3]}}]})
    >>> type(node.layers[0]).__name__, node.layers[0].use_bias, node.layers[0].shapes["weight"]
    ('DenseNode', False, (4, 3))
    >>> parse({"class_name": "Dense", "config": {"use_bias": "no"}, "shapes": {"weight": [4, 3]}})
    Traceback (most recent call last):
    ...
    torchrs.io.spec.CheckpointFormatError: torchrs.json: architecture.config.use_bias: expected bool, got str 'no'. ...
    """
    validate(payload, where)
    return _parse(payload)


def _parse(payload: dict[str, Any]) -> Node:
    kind = REGISTRY[payload["class_name"]]
    cls = node_type(kind.class_name)
    config = payload.get("config") or {}
    # A null config / shapes (read as empty) stays in ``other``, so it is written back as null.
    modelled = {"class_name", *cls.CHILD_KEYS}
    modelled |= {key for key in ("config", "shapes") if payload.get(key) is not None}
    values: dict[str, Any] = {
        "class_name": payload["class_name"],
        "config": _frozen(config),
        "shapes": _frozen({k: tuple(v) for k, v in (payload.get("shapes") or {}).items()}),
        "other": _frozen({k: v for k, v in payload.items() if k not in modelled}),
        "order": tuple(payload),
        **{c.name: config.get(c.name) for c in kind.config},
    }
    if kind.children is Children.LIST:
        values["layers"] = tuple(_parse(layer) for layer in payload["layers"])
    elif kind.children is Children.GRAPH:
        values["layers"] = _frozen({k: _parse(v) for k, v in payload["layers"].items()})
        values["calls"] = tuple(_call(call) for call in payload["nodes"])
        values["inputs"], values["outputs"] = payload["inputs"], payload["outputs"]
    elif kind.children is Children.NAMED:
        values["children"] = _frozen({k: _parse(v) for k, v in payload["children"].items()})
    elif kind.children is Children.QUERY:
        query = payload.get("query_model")
        values["query_model"] = None if query is None else _parse(query)
        values["identifiers_dtype"] = payload.get("identifiers_dtype")
    return cls(**values)


def _call(payload: dict[str, Any]) -> Call:
    known = ("layer", "node_index", "inbound")
    return Call(
        payload["layer"],
        payload["node_index"],
        payload["inbound"],
        _frozen({k: v for k, v in payload.items() if k not in known}),
        tuple(payload),
    )
