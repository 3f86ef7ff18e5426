"""``graph.json`` is checked before anything is built: types, references, the op allow-list."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from torchrs.graph import Graph, HashTable, TranslatedSavedModel, UnsupportedGraphError
from torchrs.graph.storage import decode, encode, load_graph_model

GRAPH: dict[str, Any] = {
    "inputs": [{"name": "user_id", "dtype": "string", "shape": [None]}],
    "outputs": [{"name": "embedding", "ref": ["relu", 0]}],
    "nodes": [
        {"name": "x", "op": "Placeholder", "inputs": [], "attrs": {"index": 0}},
        {"name": "t", "op": "Table", "inputs": [], "attrs": {"path": "tower/layer-0/lookup_table"}},
        {"name": "d", "op": "Const", "inputs": [], "attrs": {"tensor": "const/1"}},
        {
            "name": "ids",
            "op": "LookupTableFindV2",
            "inputs": [["t", 0], ["x", 0], ["d", 0]],
            "attrs": {},
        },
        {
            "name": "e",
            "op": "Variable",
            "inputs": [],
            "attrs": {"path": "tower/layer_with_weights-0/embeddings"},
        },
        {"name": "g", "op": "ResourceGather", "inputs": [["e", 0], ["ids", 0]], "attrs": {}},
        {"name": "relu", "op": "Relu", "inputs": [["g", 0]], "attrs": {}},
    ],
}


def _model(graph: dict[str, Any] = GRAPH) -> TranslatedSavedModel:
    tensors = {
        "const/1": torch.tensor(0),
        "tower/layer_with_weights-0/embeddings": torch.tensor(
            [[0.0, 0.0], [1.0, -2.0], [3.0, 4.0]]
        ),
    }
    table = HashTable(np.array([b"a", b"b"], dtype=object), torch.tensor([1, 2]))
    return TranslatedSavedModel(
        {"serving_default": Graph.from_json(graph)}, tensors, {"tower/layer-0/lookup_table": table}
    )


def test_builds_and_runs_hand_derived() -> None:
    model = _model()
    # "b" -> row 2 = (3, 4); "zz" is unknown -> default 0 -> row 0; "a" -> row 1 = relu(1, -2)
    assert model(["b", "zz", "a"]).tolist() == [[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]
    assert set(model.tf_variables()) == {"tower/layer_with_weights-0/embeddings"}
    assert "tower/layer_with_weights-0/embeddings" in model.signatures["serving_default"].code


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda g: g["nodes"][6].update(op="PyFunc"), "not in torchrs's allow-list"),
        (lambda g: g["nodes"][6].update(inputs=[["later", 0]]), "not an earlier node"),
        (lambda g: g["nodes"][0]["attrs"].update(index=3), "input index 3"),
        (lambda g: g["inputs"][0].update(dtype="complex64"), "dtype 'complex64'"),
        (lambda g: g["nodes"][6].pop("inputs"), "lacks inputs"),
        (lambda g: g["nodes"][6].update(inputs=[["g", "0"]]), r"\[node name, output index\]"),
        (
            lambda g: g["nodes"][6]["attrs"].update(alpha={"__import__": "os"}),
            "JSON scalars or lists",
        ),
        (lambda g: g["outputs"][0].update(ref=["nowhere", 0]), "not a node"),
    ],
)
def test_malformed_graphs_are_refused_before_building(mutate: Any, match: str) -> None:
    graph = copy.deepcopy(GRAPH)
    mutate(graph)
    with pytest.raises(UnsupportedGraphError, match=match):
        Graph.from_json(graph)


def test_json_round_trip() -> None:
    graph = Graph.from_json(GRAPH)
    assert Graph.from_json(graph.to_json()) == graph


def test_strings_round_trip_any_bytes() -> None:
    tokens = np.array([[b"a\nb", b""], [b"\xff\xfe", "é".encode()]], dtype=object)
    arrays, strings = encode(
        {"ids": tokens, "w": np.ones((2, 2), np.float32), "s": np.array(3, np.int64)}
    )
    back = decode({k: torch.from_numpy(v) for k, v in arrays.items()}, strings)
    assert back["ids"].tolist() == tokens.tolist() and back["ids"].shape == (2, 2)
    assert back["s"].shape == ()  # scalars stay scalars


def test_corrupted_string_offsets_are_refused() -> None:
    arrays, strings = encode({"ids": np.array([b"ab", b"c"], dtype=object)})
    arrays["graph/ids.token_offsets"] = np.array([0, 5, 3], np.int64)
    with pytest.raises(UnsupportedGraphError, match="corrupted offsets"):
        decode({k: torch.from_numpy(v) for k, v in arrays.items()}, strings)


def test_architecture_without_signatures_is_refused() -> None:
    with pytest.raises(UnsupportedGraphError, match="no signatures"):
        load_graph_model({"kind": "graph", "signatures": {}}, {})
