"""The layer kinds ``torchrs.load`` can rebuild: one :class:`LayerKind` per ``class_name`` of an architecture node.

A kind declares the fields its node must carry (config entries with their JSON types, the shapes it sizes its
parameters from, its child nodes) and the builder that turns a node into a module. :func:`validate` checks a whole
architecture against these declarations before anything is built, so an unknown kind, a wrong type or a missing
field is a :class:`~torchrs.io.spec.CheckpointFormatError` naming the node; nothing in the file is imported or
executed (a kind is looked up in :data:`REGISTRY`, never by importing a name the file gives).

Adding a layer kind: a builder here plus one :func:`register` call (and, on the converter side, the rule that maps
its Keras variables, in ``converters/tfrs_to_torch/rules.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import torch
from torch import nn

from torchrs.io.modules import Container, Functional, Tower
from torchrs.io.nodes import (
    Call,
    ContainerNode,
    FunctionalNode,
    IndexNode,
    LayerNode,
    Node,
    SequentialNode,
    read_only,
)
from torchrs.io.spec import CheckpointFormatError, check_type, require
from torchrs.io.tensors import INDEX_TENSORS, decode_tokens, tokens_as_str

__all__ = [
    "REGISTRY",
    "Children",
    "ConfigField",
    "LayerKind",
    "build_module",
    "index_tensor_keys",
    "is_index",
    "node_type",
    "parse",
    "register",
    "validate",
]

Builder = Callable[[Node, Mapping[str, torch.Tensor], str], nn.Module]
_N = TypeVar("_N", bound=Node)
NUMBER = (int, float)
OPTIONAL_STR = (str, type(None))


class Children(str, Enum):
    """Where a node keeps its child nodes."""

    NONE = "none"
    LIST = "layers: a list of nodes (Sequential)"
    GRAPH = "layers: nodes by name, plus nodes / inputs / outputs (Functional)"
    NAMED = "children: nodes by attribute name (Container)"
    QUERY = "query_model: one optional node (an index)"


@dataclass(frozen=True)
class ConfigField:
    """One checked ``config`` entry: its JSON types and whether it must be there."""

    name: str
    types: type | tuple[type, ...]
    required: bool = False


@dataclass(frozen=True)
class LayerKind:
    """What a node of one ``class_name`` must carry, and how it is built.

    Attributes:
        class_name: the Keras / TFRS class name the converter writes.
        build: ``(node, tensors, prefix) -> module`` (parameters created; values loaded afterwards); the node is
            the kind's typed record (:func:`node_type`).
        config: checked config entries (others are passed to constructors taking the Keras config as keywords).
        shapes: tensor shapes the builder sizes parameters from; ``shapes_any``: at least one of them.
        children: where its child nodes are.
    """

    class_name: str
    build: Builder
    config: tuple[ConfigField, ...] = ()
    shapes: tuple[str, ...] = ()
    shapes_any: tuple[str, ...] = ()
    children: Children = Children.NONE


REGISTRY: dict[str, LayerKind] = {}


def register(kind: LayerKind) -> LayerKind:
    """Adds a kind to :data:`REGISTRY` (one per class name)."""
    if kind.class_name in REGISTRY:
        raise ValueError(f"Layer kind {kind.class_name!r} is registered twice.")
    REGISTRY[kind.class_name] = kind
    return kind


# ------------------------------------------------------------------------------------------------ validation


def validate(node: Any, where: str = "architecture") -> None:
    """Checks an architecture node and everything below it against :data:`REGISTRY`.

    Raises:
        CheckpointFormatError: an unknown kind, a missing field or a field of the wrong type (named).

    >>> validate({"class_name": "Dense", "config": {}, "shapes": {"weight": [2, 3]}})
    >>> validate({"class_name": "Dense", "config": {"use_bias": "yes"}, "shapes": {"weight": [2, 3]}})
    Traceback (most recent call last):
    ...
    torchrs.io.spec.CheckpointFormatError: torchrs.json: architecture.config.use_bias: expected bool, got str 'yes'. ...
    """
    check_type(node, dict, where)
    cls = require(node, "class_name", str, where)
    kind = REGISTRY.get(cls)
    if kind is None:
        raise CheckpointFormatError(
            f"{where}.class_name",
            f"torchrs.load cannot rebuild a {cls!r} layer (known kinds: {', '.join(sorted(REGISTRY))}); "
            "this checkpoint needs a newer torchrs",
        )
    config = check_type(node.get("config") or {}, dict, f"{where}.config")
    for item in kind.config:
        if item.name in config:
            check_type(config[item.name], item.types, f"{where}.config.{item.name}")
        elif item.required:
            raise CheckpointFormatError(f"{where}.config.{item.name}", "missing field")
    shapes = check_type(node.get("shapes") or {}, dict, f"{where}.shapes")
    for name, shape in shapes.items():
        check_type(shape, list, f"{where}.shapes.{name}")
        for i, dim in enumerate(shape):
            check_type(dim, int, f"{where}.shapes.{name}[{i}]")
    for name in kind.shapes:
        if name not in shapes:
            raise CheckpointFormatError(f"{where}.shapes.{name}", "missing field")
    if kind.shapes_any and not any(name in shapes for name in kind.shapes_any):
        raise CheckpointFormatError(f"{where}.shapes", f"needs one of {list(kind.shapes_any)}")
    _validate_children(node, kind.children, where)


def _validate_children(node: dict[str, Any], children: Children, where: str) -> None:
    if children is Children.LIST:
        for i, child in enumerate(require(node, "layers", list, where)):
            validate(child, f"{where}.layers[{i}]")
    elif children is Children.GRAPH:
        layers = require(node, "layers", dict, where)
        for key, child in layers.items():
            validate(child, f"{where}.layers.{key}")
        for i, call in enumerate(require(node, "nodes", list, where)):
            call_where = f"{where}.nodes[{i}]"
            check_type(call, dict, call_where)
            if require(call, "layer", str, call_where) not in layers:
                raise CheckpointFormatError(
                    f"{call_where}.layer", f"calls {call['layer']!r}, not in layers"
                )
            require(call, "node_index", int, call_where)
            require(call, "inbound", (list, dict), call_where)
        require(node, "inputs", (list, dict), where)
        require(node, "outputs", (list, dict), where)
    elif children is Children.NAMED:
        for name, child in require(node, "children", dict, where).items():
            validate(child, f"{where}.children.{name}")
    elif children is Children.QUERY:
        if node.get("query_model") is not None:
            validate(node["query_model"], f"{where}.query_model")
        check_type(node.get("identifiers_dtype"), OPTIONAL_STR, f"{where}.identifiers_dtype")


# ------------------------------------------------------------------------------------------------ typed nodes


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

    >>> import dataclasses
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
        "config": read_only(config),
        "shapes": read_only({k: tuple(v) for k, v in (payload.get("shapes") or {}).items()}),
        "other": read_only({k: v for k, v in payload.items() if k not in modelled}),
        "order": tuple(payload),
        **{c.name: config.get(c.name) for c in kind.config},
    }
    if kind.children is Children.LIST:
        values["layers"] = tuple(_parse(layer) for layer in payload["layers"])
    elif kind.children is Children.GRAPH:
        values["layers"] = read_only({k: _parse(v) for k, v in payload["layers"].items()})
        values["calls"] = tuple(_call(call) for call in payload["nodes"])
        values["inputs"], values["outputs"] = payload["inputs"], payload["outputs"]
    elif kind.children is Children.NAMED:
        values["children"] = read_only({k: _parse(v) for k, v in payload["children"].items()})
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
        read_only({k: v for k, v in payload.items() if k not in known}),
        tuple(payload),
    )


# ------------------------------------------------------------------------------------------------ building


def build_module(
    spec: dict[str, Any] | Node, tensors: Mapping[str, torch.Tensor], prefix: str = ""
) -> nn.Module:
    """Rebuilds the module described by an architecture node (tensors give sizes and index data).

    Args:
        spec: one node of ``torchrs.json["architecture"]`` (checked and typed by :func:`parse` first), or its
            typed record.
        tensors: every tensor of the checkpoint (read for shapes, and for index candidates).
        prefix: the torch-name prefix of this node.

    Returns:
        The module, with its parameters created (values are loaded afterwards).

    Raises:
        CheckpointFormatError: a node this torchrs cannot rebuild, or a malformed one.
    """
    if not isinstance(spec, Node):
        spec = parse(spec, f"architecture.{prefix.rstrip('.')}" if prefix else "architecture")
    return _build(spec, tensors, prefix)


def _build(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    return REGISTRY[node.class_name].build(node, tensors, prefix)


def _config(node: Node) -> dict[str, Any]:
    return dict(node.config)


def _as(node: Node, kind: type[_N]) -> _N:
    """``node`` as the record its kind's children make it (always so for a node from :func:`parse`)."""
    if not isinstance(node, kind):
        raise CheckpointFormatError(
            node.class_name, f"expected a {kind.__name__}, got {type(node).__name__}"
        )
    return node


def _activation(value: Any) -> Any:
    if isinstance(value, dict):  # a serialised Keras activation
        value = value.get("config", {}).get("name", value.get("class_name"))
    return None if value in (None, "linear") else value


def is_index(class_name: str) -> bool:
    """Whether ``class_name`` is a retrieval index kind (BruteForce, Streaming): the one answer the loader, the
    converter's verification and ``parity validate`` share.

    >>> is_index("Streaming"), is_index("BruteForce"), is_index("Sequential"), is_index("Nope")
    (True, True, False, False)
    """
    kind = REGISTRY.get(class_name)
    return kind is not None and kind.children is Children.QUERY


def index_tensor_keys(spec: dict[str, Any], prefix: str = "") -> set[str]:
    """Tensors consumed by building (index data), not by ``load_state_dict``."""
    if is_index(spec["class_name"]):
        return {prefix + name for name in INDEX_TENSORS}
    if spec["class_name"] == "Container":
        return {
            k
            for name, child in spec["children"].items()
            for k in index_tensor_keys(child, f"{prefix}{name}.")
        }
    return set()


# -- containers and graphs


def _sequential(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    layers = _as(node, SequentialNode).layers
    return Tower(*(_build(layer, tensors, f"{prefix}{i}.") for i, layer in enumerate(layers)))


def _functional(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    graph = _as(node, FunctionalNode)
    layers = {
        key: _build(layer, tensors, f"{prefix}layers.{key}.") for key, layer in graph.layers.items()
    }
    calls = [call.to_json() for call in graph.calls]  # Functional reads Keras's call records
    return Functional(layers, calls, graph.inputs, graph.outputs)


def _container(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    container = Container()
    for name, child in _as(node, ContainerNode).children.items():
        container.add_module(name, _build(child, tensors, f"{prefix}{name}."))
    return container


register(LayerKind("Sequential", _sequential, children=Children.LIST))
register(LayerKind("Functional", _functional, children=Children.GRAPH))
register(LayerKind("Container", _container, children=Children.NAMED))


# -- Keras graph layers (merging, reshaping, inference-time no-ops)


def _merge(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.merging import Merge

    return Merge(node.class_name)


def _concatenate(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.merging import Concatenate

    return Concatenate(int(_config(node).get("axis", -1)))


def _dot(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.merging import Dot

    config = _config(node)
    return Dot(config["axes"], normalize=bool(config.get("normalize", False)))


def _flatten(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.reshaping import Flatten

    return Flatten()


def _reshape(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.reshaping import Reshape

    return Reshape(_config(node)["target_shape"])


def _dropout(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    return nn.Dropout(float(_config(node).get("rate", 0.0)))


def _global_average_pooling_1d(
    node: Node, tensors: Mapping[str, torch.Tensor], prefix: str
) -> nn.Module:
    from torchrs.layers.pooling import GlobalAveragePooling1D

    config = _config(node)
    return GlobalAveragePooling1D(
        config.get("data_format", "channels_last"), bool(config.get("keepdims", False))
    )


for _name in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
    register(LayerKind(_name, _merge))
register(LayerKind("Concatenate", _concatenate, config=(ConfigField("axis", int),)))
register(
    LayerKind(
        "Dot",
        _dot,
        config=(ConfigField("axes", (int, list), required=True), ConfigField("normalize", bool)),
    )
)
register(LayerKind("Flatten", _flatten, config=(ConfigField("data_format", OPTIONAL_STR),)))
register(LayerKind("Reshape", _reshape, config=(ConfigField("target_shape", list, required=True),)))
register(LayerKind("Dropout", _dropout, config=(ConfigField("rate", NUMBER),)))
register(
    LayerKind(
        "GlobalAveragePooling1D",
        _global_average_pooling_1d,
        config=(ConfigField("data_format", str), ConfigField("keepdims", bool)),
    )
)


# -- preprocessing (the whole Keras config is the constructor's keywords)


def _preprocessing(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs import preprocessing

    classes: dict[str, type[nn.Module]] = {
        "StringLookup": preprocessing.StringLookup,
        "IntegerLookup": preprocessing.IntegerLookup,
        "Discretization": preprocessing.Discretization,
        "Hashing": preprocessing.Hashing,
        "TextVectorization": preprocessing.TextVectorization,
    }
    return classes[node.class_name](**_config(node))


def _normalization(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.preprocessing import Normalization

    config = _config(node)
    axis = config.pop("axis", -1)
    if isinstance(axis, list):
        axis = tuple(axis)
    return Normalization(axis=axis, **config)


for _name in ("StringLookup", "IntegerLookup", "Discretization", "Hashing", "TextVectorization"):
    register(LayerKind(_name, _preprocessing))
register(
    LayerKind(
        "Normalization", _normalization, config=(ConfigField("axis", (int, list, type(None))),)
    )
)


# -- layers with weights


def _embedding(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.embedding import Embedding

    rows, cols = node.shapes["weight"]
    config = _config(node)
    return Embedding(
        rows,
        cols,
        mask_zero=bool(config.get("mask_zero", False)),
        embeddings_regularizer=config.get("embeddings_regularizer"),
    )


def _dense(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.dense import KerasDense

    config = _config(node)
    out_features, in_features = node.shapes["weight"]
    return KerasDense(
        out_features,
        activation=_activation(config.get("activation")),
        use_bias=bool(config.get("use_bias", True)),
        input_dim=in_features,
        kernel_regularizer=config.get("kernel_regularizer"),
        bias_regularizer=config.get("bias_regularizer"),
    )


def _mlp(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.blocks import MLP

    config = _config(node)
    mlp = MLP(
        [int(u) for u in config["units"]],
        use_bias=bool(config.get("use_bias", True)),
        activation=_activation(config.get("activation", "relu")),
        final_activation=_activation(config.get("final_activation")),
        input_dim=int(node.shapes["_sublayers.0.weight"][1]),
    )
    regularizers = config.get("sublayer_regularizers")
    if regularizers is not None:
        _set_sublayer_regularizers(mlp, regularizers, f"MLP {prefix or '<root>'}")
    return mlp


#: Regularizers a Dense sublayer of an MLP can carry (TFRS's MLP takes none, its Dense layers do).
SUBLAYER_REGULARIZERS = ("kernel_regularizer", "bias_regularizer")


def _set_sublayer_regularizers(mlp: nn.Module, regularizers: list[Any], where: str) -> None:
    """Gives each Dense sublayer of a rebuilt MLP the regularizers its Keras twin carried."""
    from torchrs.regularizers import get_regularizer

    sublayers: Any = mlp._sublayers
    where = f"{where} config.sublayer_regularizers"
    if len(regularizers) != len(sublayers) or not all(isinstance(r, dict) for r in regularizers):
        raise CheckpointFormatError(
            where, f"expected one dict per sublayer ({len(sublayers)}), got {regularizers!r}"
        )
    for layer, found in zip(sublayers, regularizers, strict=True):
        unknown = sorted(set(found) - set(SUBLAYER_REGULARIZERS))
        if unknown:
            raise CheckpointFormatError(
                where, f"unknown keys {unknown}, expected among {list(SUBLAYER_REGULARIZERS)}"
            )
        for key, value in found.items():
            setattr(layer, key, get_regularizer(value))


def _cross(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.feature_interaction import Cross

    config, shapes = _config(node), node.shapes
    weight = shapes.get("_dense.weight") or shapes.get("_dense_v.weight") or ()
    return Cross(
        projection_dim=config.get("projection_dim"),
        diag_scale=config.get("diag_scale", 0.0) or 0.0,
        use_bias=bool(config.get("use_bias", True)),
        preactivation=_activation(config.get("preactivation")),
        input_dim=int(weight[0]),
    )


def _dot_interaction(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.feature_interaction import DotInteraction

    config = _config(node)
    return DotInteraction(
        self_interaction=bool(config.get("self_interaction", False)),
        skip_gather=bool(config.get("skip_gather", False)),
    )


def _gru(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.recurrent import GRU

    config = _config(node)
    return GRU(
        int(config["units"]),
        input_dim=int(node.shapes["gru.weight_ih_l0"][1]),
        return_sequences=bool(config.get("return_sequences", False)),
        zero_output_for_mask=bool(config.get("zero_output_for_mask", False)),
    )


ACTIVATION = (str, dict, type(None))
REGULARIZER = (str, dict, type(None))  # a Keras regularizer name or config dict
register(
    LayerKind(
        "Embedding",
        _embedding,
        config=(ConfigField("mask_zero", bool), ConfigField("embeddings_regularizer", REGULARIZER)),
        shapes=("weight",),
    )
)
register(
    LayerKind(
        "Dense",
        _dense,
        config=(
            ConfigField("activation", ACTIVATION),
            ConfigField("use_bias", bool),
            ConfigField("kernel_regularizer", REGULARIZER),
            ConfigField("bias_regularizer", REGULARIZER),
        ),
        shapes=("weight",),
    )
)
register(
    LayerKind(
        "MLP",
        _mlp,
        config=(
            ConfigField("units", list, required=True),
            ConfigField("use_bias", bool),
            ConfigField("activation", ACTIVATION),
            ConfigField("final_activation", ACTIVATION),
            ConfigField("sublayer_regularizers", (list, type(None))),
        ),
        shapes=("_sublayers.0.weight",),
    )
)
register(
    LayerKind(
        "Cross",
        _cross,
        config=(
            ConfigField("projection_dim", (int, type(None))),
            ConfigField("diag_scale", (*NUMBER, type(None))),
            ConfigField("use_bias", bool),
            ConfigField("preactivation", ACTIVATION),
        ),
        shapes_any=("_dense.weight", "_dense_v.weight"),
    )
)
register(
    LayerKind(
        "DotInteraction",
        _dot_interaction,
        config=(ConfigField("self_interaction", bool), ConfigField("skip_gather", bool)),
    )
)
register(
    LayerKind(
        "GRU",
        _gru,
        config=(
            ConfigField("units", int, required=True),
            ConfigField("return_sequences", bool),
            ConfigField("zero_output_for_mask", bool),
        ),
        shapes=("gru.weight_ih_l0",),
    )
)


def _layer_normalization(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.normalization import KERAS_EPSILON, LayerNormalization

    config, shapes = _config(node), node.shapes
    return LayerNormalization(
        axis=config.get("axis", -1),
        epsilon=float(config.get("epsilon", KERAS_EPSILON)),
        center="bias"
        in shapes,  # what the export holds decides (Keras: center=False keeps no beta)
        scale="weight" in shapes,
        input_dim=shapes.get("weight") or shapes.get("bias"),
    )


register(
    LayerKind(
        "LayerNormalization",
        _layer_normalization,
        config=(
            ConfigField("axis", (int, list)),
            ConfigField("epsilon", NUMBER),
            ConfigField("center", bool),
            ConfigField("scale", bool),
        ),
    )
)


# -- indexes


def _identifiers(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> Any:
    dtype = _as(node, IndexNode).identifiers_dtype
    if dtype == "string":
        return tokens_as_str(decode_tokens(dict(tensors), f"{prefix}identifiers."))
    if dtype is not None:
        return tensors[prefix + "identifiers"]
    return None


def _query_model(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module | None:
    query = _as(node, IndexNode).query_model
    return None if query is None else _build(query, tensors, f"{prefix}query_model.")


def _brute_force(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    from torchrs.layers.factorized_top_k import BruteForce

    index = BruteForce(_query_model(node, tensors, prefix), k=int(_config(node).get("k", 10)))
    identifiers = _identifiers(node, tensors, prefix)
    if identifiers is None:  # written by an older converter: identifiers always stored
        identifiers = tensors[prefix + "identifiers"]
    index.index(tensors[prefix + "candidates"], identifiers)
    return index


def _streaming(node: Node, tensors: Mapping[str, torch.Tensor], prefix: str) -> nn.Module:
    """A ``Streaming`` index over the exported candidate batches (same batch boundaries as TF)."""
    from torchrs.layers.factorized_top_k import Streaming

    config = _config(node)
    candidates = tensors[prefix + "candidates"]  # (N, D)
    sizes = [int(n) for n in tensors[prefix + "batch_sizes"].tolist()]
    identifiers = _identifiers(node, tensors, prefix)
    batches: list[Any] = []
    start = 0
    for size in sizes:
        rows = candidates[start : start + size]  # (n, D), a view
        batches.append(rows if identifiers is None else (identifiers[start : start + size], rows))
        start += size
    index = Streaming(
        _query_model(node, tensors, prefix),
        k=int(config.get("k", 10)),
        handle_incomplete_batches=bool(config.get("handle_incomplete_batches", True)),
        sorted_order=bool(config.get("sorted_order", True)),
    )
    return index.index_from_dataset(batches)


register(
    LayerKind("BruteForce", _brute_force, config=(ConfigField("k", int),), children=Children.QUERY)
)
register(
    LayerKind(
        "Streaming",
        _streaming,
        config=(
            ConfigField("k", int),
            ConfigField("handle_incomplete_batches", bool),
            ConfigField("sorted_order", bool),
        ),
        children=Children.QUERY,
    )
)
