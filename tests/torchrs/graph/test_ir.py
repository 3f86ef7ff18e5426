"""``graph.json`` is checked before anything is built: types, references, the op allow-list."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from torchrs.graph import Graph, HashTable, TranslatedSavedModel, UnsupportedGraphError
from torchrs.graph.ops import to_bytes_array
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


# A tower reading a constant subexpression: emb * max(sqrt(4.0), 0.5) -> every row times 2.
SCALED: dict[str, Any] = copy.deepcopy(GRAPH)
SCALED["nodes"] += [
    {"name": "four", "op": "Const", "inputs": [], "attrs": {"tensor": "const/4"}},
    {"name": "half", "op": "Const", "inputs": [], "attrs": {"tensor": "const/half"}},
    {"name": "root", "op": "Sqrt", "inputs": [["four", 0]], "attrs": {}},
    {"name": "scale", "op": "Maximum", "inputs": [["root", 0], ["half", 0]], "attrs": {}},
    {"name": "scaled", "op": "Mul", "inputs": [["relu", 0], ["scale", 0]], "attrs": {}},
]
SCALED["outputs"] = [{"name": "embedding", "ref": ["scaled", 0]}]


def _scaled_model() -> TranslatedSavedModel:
    tensors = {
        "const/1": torch.tensor(0),
        "const/4": torch.tensor(4.0),
        "const/half": torch.tensor(0.5),
        "tower/layer_with_weights-0/embeddings": torch.tensor(
            [[0.0, 0.0], [1.0, -2.0], [3.0, 4.0]]
        ),
    }
    table = HashTable(np.array([b"a", b"b"], dtype=object), torch.tensor([1, 2]))
    return TranslatedSavedModel(
        {"serving_default": Graph.from_json(SCALED)},
        tensors,
        {"tower/layer-0/lookup_table": table},
    )


def test_a_call_runs_the_graph_with_constants_folded_and_the_same_results() -> None:
    model = _scaled_model()
    signature = model.signatures["serving_default"]
    run_ops = {str(n.target) for n in signature._run.graph.nodes if n.op == "call_function"}
    assert not any("sqrt" in op or "maximum" in op for op in run_ops)  # evaluated at load
    assert "sqrt_op" in signature.code  # what users see and --emit-python writes: the graph as is
    tokens = ["b", "zz", "a"]
    expected = [[6.0, 8.0], [0.0, 0.0], [2.0, 0.0]]  # rows 2, 0 (unknown), relu(row 1), times 2
    assert model(tokens).tolist() == expected
    assert signature.graph_module(to_bytes_array(tokens))[0].tolist() == expected  # unfolded
    # The folded value is not a checkpoint tensor: state_dict keys are the graph's own.
    assert not any("folded" in k for k in model.state_dict())


@pytest.mark.parametrize(
    "tokens",
    [
        ["b", "zz", "a", "é", ""],
        np.array(["b", "zz", "a", "é", ""]),
        np.array([b"b", b"zz", b"a", "é".encode(), b""], dtype=object),
        np.array(["b", "zz", "a", "é", ""] * 40),  # the vectorised lookup
    ],
)
def test_string_inputs_in_any_form_give_the_same_result(tokens: Any) -> None:
    model = _scaled_model()
    assert model.signatures["serving_default"]._as_keys == {0}  # only ever a lookup key
    out = model(tokens)
    expected = [[6.0, 8.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert out.tolist() == expected * (len(tokens) // 5)


def test_a_call_sees_parameters_changed_after_load() -> None:
    model = _scaled_model()
    path = "tower/layer_with_weights-0/embeddings"
    state = model.state_dict()
    state[f"variables.{path}"] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    model.load_state_dict(state)
    assert model(["b"]).tolist() == [[10.0, 10.0]]
    model.to(torch.float64)  # parameters and buffers replaced in their holders
    out = model(["b", "a"])
    assert out.dtype == torch.float64 and out.tolist() == [[10.0, 10.0], [2.0, 2.0]]


def _dense_graph(matmul_users: int = 1) -> dict[str, Any]:
    """x -> MatMul -> BiasAdd -> Relu -> MatMul -> BiasAdd (a Keras Dense(relu), Dense pair)."""
    nodes: list[dict[str, Any]] = [
        {"name": "x", "op": "Placeholder", "inputs": [], "attrs": {"index": 0}},
        {"name": "w0", "op": "Variable", "inputs": [], "attrs": {"path": "d0/kernel"}},
        {"name": "b0", "op": "Variable", "inputs": [], "attrs": {"path": "d0/bias"}},
        {"name": "w1", "op": "Variable", "inputs": [], "attrs": {"path": "d1/kernel"}},
        {"name": "b1", "op": "Variable", "inputs": [], "attrs": {"path": "d1/bias"}},
        {"name": "m0", "op": "MatMul", "inputs": [["x", 0], ["w0", 0]], "attrs": {}},
        {"name": "a0", "op": "BiasAdd", "inputs": [["m0", 0], ["b0", 0]], "attrs": {}},
        {"name": "r0", "op": "Relu", "inputs": [["a0", 0]], "attrs": {}},
        {"name": "m1", "op": "MatMul", "inputs": [["r0", 0], ["w1", 0]], "attrs": {}},
        {"name": "a1", "op": "BiasAdd", "inputs": [["m1", 0], ["b1", 0]], "attrs": {}},
    ]
    outputs = [{"name": "score", "ref": ["a1", 0]}]
    if matmul_users == 2:  # the first product is an output too: it must stay as it is
        outputs.append({"name": "product", "ref": ["m0", 0]})
    return {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, None]}],
        "outputs": outputs,
        "nodes": nodes,
    }


@pytest.mark.parametrize("depth", [16, 200])  # within and past FUSED_MAX_DEPTH
@pytest.mark.parametrize("matmul_users", [1, 2])
def test_dense_chains_run_fused_with_the_unfused_results(depth: int, matmul_users: int) -> None:
    gen = torch.Generator().manual_seed(depth)
    tensors = {
        "d0/kernel": torch.randn(depth, 16, generator=gen),
        "d0/bias": torch.randn(16, generator=gen),
        "d1/kernel": torch.randn(16, 3, generator=gen),
        "d1/bias": torch.randn(3, generator=gen),
    }
    model = TranslatedSavedModel(
        {"serving_default": Graph.from_json(_dense_graph(matmul_users))}, tensors, {}
    )
    signature = model.signatures["serving_default"]
    run = {getattr(n.target, "__name__", "") for n in signature._run.graph.nodes}
    assert "_matmul_bias" in run  # the second Dense
    assert ("_matmul_bias_relu" in run) == (matmul_users == 1)  # the first, unless shared
    x = torch.randn(257, depth, generator=gen)
    with torch.no_grad():
        got = signature(x)
        expected = signature.graph_module(x)  # MatMul, BiasAdd and Relu one by one
    # addmm adds the bias after the whole dot product, as the unfused ops do: identical on MKL,
    # but a BLAS promises no summation order, so the bound is a few float32 ulps.
    torch.testing.assert_close(got["score"], expected[0], rtol=1e-6, atol=1e-5)
    if matmul_users == 2:
        assert torch.equal(got["product"], expected[1])
    signature(x)["score"].sum().backward()  # fine-tuning goes through the fused ops
    assert model.variables.get_parameter("d0/kernel").grad is not None
