"""Typed architecture nodes: every registered kind parses into its own frozen dataclass and serialises back
to the identical JSON; malformed nodes fail exactly as ``validate`` says."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from torchrs.io.nodes import (
    ContainerNode,
    FunctionalNode,
    IndexNode,
    LayerNode,
    Node,
    SequentialNode,
)
from torchrs.io.registry import REGISTRY, Children, node_type, parse, validate
from torchrs.io.spec import CheckpointFormatError

# One JSON value per type a config field may declare.
_EXAMPLES: dict[type, Any] = {
    bool: True,
    int: 3,
    float: 0.5,
    str: "relu",
    list: [1, 2],
    dict: {"class_name": "relu"},
    type(None): None,
}
_DENSE = {"class_name": "Dense", "config": {"use_bias": False}, "shapes": {"weight": [4, 3]}}


def _example(class_name: str) -> dict[str, Any]:
    """A node of ``class_name`` with every declared field, an undeclared config entry and a name."""
    kind = REGISTRY[class_name]
    config: dict[str, Any] = {"not_declared": [1, "x"]}
    for item in kind.config:
        types = item.types if isinstance(item.types, tuple) else (item.types,)
        config[item.name] = _EXAMPLES[types[0]]
    node: dict[str, Any] = {"class_name": class_name, "name": f"my_{class_name.lower()}"}
    node["config"] = config
    shapes = {name: [2, 3] for name in (*kind.shapes, *kind.shapes_any[:1])}
    if shapes:
        node["shapes"] = shapes
    if kind.children is Children.LIST:
        node["layers"] = [_DENSE, dict(_DENSE, name="second")]
    elif kind.children is Children.GRAPH:
        node["layers"] = {"dense": _DENSE}
        node["nodes"] = [
            {"layer": "dense", "node_index": 0, "inbound": [["input_1", 0, 0]], "kwargs": {}}
        ]
        node["inputs"] = ["input_1"]
        node["outputs"] = [["dense", 0, 0]]
    elif kind.children is Children.NAMED:
        node["children"] = {"user_model": {"class_name": "Sequential", "layers": [_DENSE]}}
    elif kind.children is Children.QUERY:
        node["query_model"] = {"class_name": "Sequential", "layers": [_DENSE]}
        node["identifiers_dtype"] = "string"
    return node


@pytest.mark.parametrize("class_name", sorted(REGISTRY))
def test_every_kind_round_trips_identically(class_name: str) -> None:
    payload = _example(class_name)
    validate(payload)  # the example is a valid node of its kind
    node = parse(payload)
    assert type(node) is node_type(class_name) and type(node).__name__ == f"{class_name}Node"
    assert json.dumps(node.to_json()) == json.dumps(payload)  # same keys, values and order
    # Declared config fields are typed attributes; the record is frozen.
    for item in REGISTRY[class_name].config:
        assert getattr(node, item.name) == payload["config"][item.name]
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.class_name = "Other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        node.config["not_declared"] = 1  # type: ignore[index]  # read-only


def test_children_are_typed_nodes() -> None:
    assert isinstance(parse(_example("Sequential")).layers[1], LayerNode)  # type: ignore[attr-defined]
    graph = parse(_example("Functional"))
    assert isinstance(graph, FunctionalNode) and graph.calls[0].layer == "dense"
    container = parse(_example("Container"))
    assert isinstance(container, ContainerNode)
    assert isinstance(container.children["user_model"], SequentialNode)
    index = parse(_example("BruteForce"))
    assert isinstance(index, IndexNode) and index.identifiers_dtype == "string"
    assert isinstance(index.query_model, Node)


def test_null_config_and_missing_keys_round_trip() -> None:
    for payload in (
        {"class_name": "Dense", "config": None, "shapes": {"weight": [4, 3]}},
        {"shapes": {"weight": [4, 3]}, "class_name": "Dense"},
        {"class_name": "BruteForce", "config": {"k": 5}},
    ):
        assert json.dumps(parse(payload).to_json()) == json.dumps(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"class_name": "Nope"}, r"architecture.class_name: torchrs.load cannot rebuild a 'Nope'"),
        ({"class_name": "Dense", "config": {}}, r"architecture.shapes.weight: missing field"),
        (
            {
                "class_name": "Sequential",
                "layers": [{"class_name": "Dense", "config": {"use_bias": 1}}],
            },
            r"architecture.layers\[0\].config.use_bias: expected bool, got int",
        ),
        ({"class_name": "Functional", "layers": {}}, r"architecture.nodes: missing field"),
    ],
)
def test_malformed_nodes_fail_as_validate_says(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(CheckpointFormatError, match=message) as parsed:
        parse(payload)
    with pytest.raises(CheckpointFormatError) as validated:
        validate(payload)
    assert str(parsed.value) == str(validated.value)
