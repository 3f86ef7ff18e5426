"""Architecture nodes as typed records: one frozen dataclass per layer kind, parsed from ``torchrs.json``.

:func:`torchrs.io.registry.parse` checks a node (and everything below it) against the layer-kind registry
first, so an unknown kind, a missing field or a field of the wrong type is the same
:class:`~torchrs.io.spec.CheckpointFormatError` naming the field; then it builds the typed tree of these records:

* :class:`LayerNode` for a layer without children, :class:`SequentialNode` (``layers``),
  :class:`FunctionalNode` (``layers`` by name, the Keras ``nodes`` as :class:`Call` records, ``inputs`` /
  ``outputs``), :class:`ContainerNode` (``children``), :class:`IndexNode` (``query_model``,
  ``identifiers_dtype``);
* each kind gets its own subclass (``DenseNode``, ``StringLookupNode``...: :func:`torchrs.io.registry.node_type`)
  whose attributes are the config fields the kind declares (``DenseNode.use_bias``), ``None`` when the file
  leaves them out.

:meth:`Node.to_json` gives back the dict it was parsed from, key for key and in the same order, so the on-disk
format is unchanged. The builders of :mod:`torchrs.io.registry` and the loader work on these records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = [
    "Call",
    "ContainerNode",
    "FunctionalNode",
    "IndexNode",
    "LayerNode",
    "Node",
    "SequentialNode",
    "read_only",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def read_only(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy of ``mapping`` (the records' mappings cannot be changed in place)."""
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

        >>> from torchrs.io.registry import parse
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
