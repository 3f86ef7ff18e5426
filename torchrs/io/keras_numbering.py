"""Keras's numbering of layers "with weights": structural keys shared by every loader of TF weights.

TF names checkpoint objects by structure: attribute names, and inside a Keras ``Sequential`` /
functional model ``layer_with_weights-N``. ``converters.tfrs_to_torch.load_weights``,
:func:`torchrs.io.load_optimizer_state` and :func:`torchrs.distributed.load_sharded` all turn those
paths into structural keys (``user_model.#1.weight``) with :func:`structural_key` and number the
torch twin's children with :func:`layout`. Pure Python: no TensorFlow, nothing from ``converters``.

Keras numbers the layers of a ``Sequential`` / functional model that own *any* weight
(``layer_with_weights-N``), and several preprocessing layers own weights that are no parameters:

* an adapted ``StringLookup`` / ``IntegerLookup`` / ``TextVectorization`` (built without a
  ``vocabulary``) tracks its ``token_counts`` table (and, for ``tf_idf``, ``idf_weights``);
* an adapted ``Normalization`` has ``mean``, ``variance`` and ``count``;
* an adapted ``Discretization`` has ``summary`` (its boundaries are computed from it).

The same layers built with a vocabulary / statistics / boundaries own nothing and are not numbered.
A torchrs twin cannot tell which way the Keras layer was built, so the checkpoint decides: each
TF ``layer_with_weights-N`` is classified by what it holds, and the torch children are aligned
with them in order (a torch lookup takes the number only where TF has a lookup's state there).

What the checkpoint holds is then restored (``LoadingInfo.restored_state``), or said to be absent
(``LoadingInfo.state_not_restored``): Keras's ``adapt`` empties ``token_counts`` once the
vocabulary is built, so a TF checkpoint holds no vocabulary; a SavedModel does (its lookup table).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

# Object-graph children that Keras / TF add for tracking; they duplicate real attributes.
TRACKING_NAMES = frozenset(
    {
        "variables",
        "trainable_variables",
        "non_trainable_variables",
        "regularization_losses",
        "keras_api",
        "layers",
        "metrics",
        "layer_regularization_losses",
        "layer_metrics",
        "signatures",
        "_self_tracked_trackables",
        "_default_save_signature",
        "input_vocabulary",
    }
)

# Keras variable attribute -> (torch attribute, transpose), where the layer class is not known:
# Dense kernels are [in, out] in TF and nn.Linear weights [out, in]. The converter's rules table
# (converters.tfrs_to_torch.rules) maps the same attributes the same way (a test holds them equal).
STRUCTURAL_LEAVES: dict[str, tuple[str, bool]] = {
    "embeddings": ("weight", False),
    "kernel": ("weight", True),
    "bias": ("bias", False),
    "gamma": ("weight", False),
    "beta": ("bias", False),
}

_WEIGHTED_LAYER = re.compile(r"layer_with_weights-(\d+)")
_ANY_LAYER = re.compile(r"layer-(\d+)")

PARAMETERS = "parameters"
LOOKUP = "lookup"
NORMALIZATION = "normalization"
DISCRETIZATION = "discretization"
INDEX = "index"  # a TFRS BruteForce / Streaming: not numbered, found by attribute name

# What each state kind is, in Keras's words, for messages.
KIND_TEXT = {
    LOOKUP: "an adapted StringLookup / IntegerLookup / TextVectorization (its token_counts table "
    "is a Keras weight)",
    NORMALIZATION: "an adapted Normalization (mean / variance / count are Keras weights)",
    DISCRETIZATION: "an adapted Discretization (its quantile summary is a Keras weight)",
    PARAMETERS: "a layer with parameters",
}

# Keras attribute names that mark a layer's state kind (direct children of the layer's object).
_LOOKUP_CHILDREN = frozenset(
    {"token_counts", "token_document_counts", "_lookup_layer", "lookup_table"}
)
_NORMALIZATION_CHILDREN = frozenset({"mean", "variance"})
_DISCRETIZATION_CHILDREN = frozenset({"summary"})


@dataclass(frozen=True)
class TFLayer:
    """One ``layer_with_weights-N`` of a TF checkpoint.

    Attributes:
        container: the structural key prefix of its Sequential / functional model (``""`` at the
            root, ``"user_model."`` inside an attribute).
        index: ``N``.
        path: its object path (``user_model/layer_with_weights-0``).
        kind: :data:`PARAMETERS`, :data:`LOOKUP`, :data:`NORMALIZATION` or :data:`DISCRETIZATION`.
    """

    container: str
    index: int
    path: str
    kind: str


def classify(child_names: set[str]) -> str:
    """The kind of a TF layer from the names of its tracked children.

    >>> classify({"token_counts"}), classify({"mean", "variance", "count"}), classify({"kernel"})
    ('lookup', 'normalization', 'parameters')
    """
    if child_names & _LOOKUP_CHILDREN:
        return LOOKUP
    if _DISCRETIZATION_CHILDREN <= child_names:
        return DISCRETIZATION
    if _NORMALIZATION_CHILDREN <= child_names and "kernel" not in child_names:
        return NORMALIZATION
    return PARAMETERS


def structural_prefix(parts: list[str]) -> str | None:
    """``["user_model", "layer_with_weights-1"]`` -> ``"user_model.#1."``; None for alias paths."""
    out = []
    for part in parts:
        if part in TRACKING_NAMES or _ANY_LAYER.fullmatch(part):
            return None
        found = _WEIGHTED_LAYER.fullmatch(part)
        out.append(f"#{found.group(1)}" if found else part)
    return "".join(f"{p}." for p in out)


def structural_key(path: str) -> tuple[str, bool] | None:
    """``(structural key, transpose)`` of a TF variable object path; None for alias paths.

    >>> structural_key("user_model/layer_with_weights-1/kernel")
    ('user_model.#1.weight', True)
    >>> structural_key("user_model/layer-1/kernel") is None  # the same variable under an alias
    True
    """
    parts = path.split("/")
    prefix = structural_prefix(parts[:-1])
    if prefix is None:
        return None
    leaf, transpose = STRUCTURAL_LEAVES.get(parts[-1], (parts[-1], False))
    return prefix + leaf, transpose


def weighted_layers(graph: Any) -> list[TFLayer]:
    """Every ``layer_with_weights-N`` reachable in a ``TrackableObjectGraph`` by a non-alias path."""
    out: dict[tuple[str, int], TFLayer] = {}
    queue: list[tuple[int, list[str]]] = [(0, [])]
    seen: set[int] = set()
    while queue:
        node_id, parts = queue.pop(0)
        if node_id in seen:
            continue
        seen.add(node_id)
        for child in graph.nodes[node_id].children:
            child_parts = [*parts, child.local_name]
            if child.local_name in TRACKING_NAMES or _ANY_LAYER.fullmatch(child.local_name):
                continue
            found = _WEIGHTED_LAYER.fullmatch(child.local_name)
            if found:
                container = structural_prefix(parts)
                if container is not None:
                    names = {c.local_name for c in graph.nodes[child.node_id].children}
                    layer = TFLayer(
                        container, int(found.group(1)), "/".join(child_parts), classify(names)
                    )
                    out.setdefault((container, layer.index), layer)
            if len(child_parts) < 64:
                queue.append((child.node_id, child_parts))
    return sorted(out.values(), key=lambda layer: (layer.container, layer.index))


def torch_kind(module: nn.Module) -> str | None:
    """The kind a torch child can take in Keras's numbering (None: never numbered).

    A table sharded by ``torchrs.distributed.shard`` (``torchrs_sharded``) keeps the number of the
    ``nn.Embedding`` it replaced, though its shards are no parameters of the module tree.
    """
    from torchrs.preprocessing import Discretization, Normalization, TextVectorization
    from torchrs.preprocessing._index_lookup import IndexLookup

    if isinstance(module, IndexLookup | TextVectorization):
        return LOOKUP
    if isinstance(module, Normalization):
        return NORMALIZATION
    if isinstance(module, Discretization):
        return DISCRETIZATION
    if getattr(module, "torchrs_sharded", False) or any(True for _ in module.parameters()):
        return PARAMETERS
    return None


@dataclass(frozen=True)
class StateTarget:
    """A torch preprocessing module aligned with a TF layer that holds its state.

    Attributes:
        key: the structural key prefix (``"#0."``).
        name: the module's name in the torch model (``"0"``).
        module: the module.
        layer: the TF layer.
    """

    key: str
    name: str
    module: nn.Module
    layer: TFLayer


@dataclass(frozen=True)
class Layout:
    """The torch model seen through Keras's numbering.

    Attributes:
        parameters: structural key -> parameter name.
        states: the preprocessing modules (and indexes) whose TF twin may hold state.
        unmatched: TF layers holding state that no torch child stands for (nothing restored).
        numbering: one line per numbered torch child (``0 (StringLookup) <-> TF
            layer_with_weights-0, an adapted ...``), for errors.
        modules: module name -> its structural key prefix (``"user_model.1"`` ->
            ``"user_model.#0."``; the root is ``""`` -> ``""``).
    """

    parameters: dict[str, str]
    states: tuple[StateTarget, ...]
    unmatched: tuple[TFLayer, ...]
    numbering: tuple[str, ...]
    modules: dict[str, str]


def layout(module: nn.Module, tf_layers: list[TFLayer]) -> Layout:
    """Structural keys of ``module``'s parameters, numbered inside each ``nn.Sequential`` (and each
    converted functional model, :class:`torchrs.io.Functional`, whose ``layers`` are in Keras's
    order) as Keras numbers the TF layers at the same place.

    Without TF layers at a container's place, its children with parameters are numbered in order.

    >>> from torchrs.preprocessing import StringLookup
    >>> twin = nn.Sequential(StringLookup(vocabulary=["a"]), nn.Linear(2, 1))
    >>> tf_layers = [TFLayer("", 0, "layer_with_weights-0", "lookup"),
    ...              TFLayer("", 1, "layer_with_weights-1", "parameters")]
    >>> layout(twin, tf_layers).parameters
    {'#1.weight': '1.weight', '#1.bias': '1.bias'}
    >>> layout(twin, []).parameters
    {'#0.weight': '1.weight', '#0.bias': '1.bias'}
    """
    from torchrs.io.modules import Functional

    by_container: dict[str, list[TFLayer]] = {}
    for layer in tf_layers:
        by_container.setdefault(layer.container, []).append(layer)
    parameters: dict[str, str] = {}
    states: list[StateTarget] = []
    unmatched: list[TFLayer] = []
    numbering: list[str] = []
    modules: dict[str, str] = {}

    def walk(mod: nn.Module, key_prefix: str, name_prefix: str) -> None:
        modules[name_prefix.rstrip(".")] = key_prefix
        for name, param in mod.named_parameters(recurse=False):
            if param is not None:
                parameters[key_prefix + name] = name_prefix + name
        if isinstance(mod, Functional):
            numbered = [(f"layers.{name}", child) for name, child in mod.layers.items()]
        elif isinstance(mod, nn.Sequential):
            numbered = list(mod.named_children())
        else:
            if _is_index(mod):
                found = TFLayer("", -1, key_prefix.rstrip(".").replace(".", "/"), INDEX)
                states.append(StateTarget(key_prefix, name_prefix.rstrip("."), mod, found))
            for name, child in mod.named_children():
                walk(child, f"{key_prefix}{name}.", f"{name_prefix}{name}.")
            return
        tf_here = by_container.get(key_prefix)
        for key, name, child, layer in _align(numbered, tf_here, unmatched):
            if tf_here is not None:
                where = (
                    f"TF {layer.path}, {KIND_TEXT[layer.kind]}"
                    if layer is not None
                    else "no TF layer (TF has fewer layers with weights here)"
                )
                numbering.append(f"{name_prefix}{name} ({type(child).__name__}) <-> {where}")
            if layer is not None and layer.kind != PARAMETERS:
                states.append(StateTarget(f"{key_prefix}{key}.", name_prefix + name, child, layer))
            walk(child, f"{key_prefix}{key}.", f"{name_prefix}{name}.")

    walk(module, "", "")
    return Layout(parameters, tuple(states), tuple(unmatched), tuple(numbering), modules)


def _is_index(module: nn.Module) -> bool:
    from torchrs.layers.factorized_top_k import BruteForce, Streaming

    return isinstance(module, BruteForce | Streaming)


def _align(
    children: list[tuple[str, nn.Module]],
    tf_layers: list[TFLayer] | None,
    unmatched: list[TFLayer],
) -> Iterator[tuple[str, str, nn.Module, TFLayer | None]]:
    """``(structural key, name, child, TF layer)`` of each numbered child of a Sequential.

    A torch preprocessing child takes the next TF number only where TF holds that kind's state
    (else its Keras twin was built with its vocabulary / statistics and owns no weight); a TF
    state layer that no torch child stands for is skipped (a lookup has no parameters, so the
    twin may leave it out) and listed in ``unmatched``.
    """
    if tf_layers is None:  # nothing in TF at this place: number the children with parameters
        weighted = 0
        for name, child in children:
            if torch_kind(child) == PARAMETERS:
                yield f"#{weighted}", name, child, None
                weighted += 1
        return
    pending = list(tf_layers)
    extra = max(layer.index for layer in tf_layers) + 1 if tf_layers else 0
    for name, child in children:
        kind = torch_kind(child)
        if kind is None:
            continue
        if kind != PARAMETERS:
            if pending and pending[0].kind == kind:
                layer = pending.pop(0)
                yield f"#{layer.index}", name, child, layer
            continue
        while pending and pending[0].kind != PARAMETERS:
            unmatched.append(pending.pop(0))
        if pending:
            layer = pending.pop(0)
            yield f"#{layer.index}", name, child, layer
        else:  # more torch layers than TF has: numbered past TF's, so reported as missing
            yield f"#{extra}", name, child, None
            extra += 1
    unmatched.extend(layer for layer in pending if layer.kind != PARAMETERS)


def parameter_layers(paths: list[str]) -> list[TFLayer]:
    """The :data:`PARAMETERS` layers among :func:`weighted_layers_from_paths` (frozen ones
    included: they have no optimizer slot but keep their number).

    >>> [l.path for l in parameter_layers(
    ...     ["layer_with_weights-0/token_counts", "layer_with_weights-1/embeddings"])]
    ['layer_with_weights-1']
    """
    return [layer for layer in weighted_layers_from_paths(paths) if layer.kind == PARAMETERS]


def weighted_layers_from_paths(paths: list[str]) -> list[TFLayer]:
    """:func:`weighted_layers` from variable object paths (a converted checkpoint directory).

    >>> [l.kind for l in weighted_layers_from_paths(
    ...     ["layer_with_weights-0/mean", "layer_with_weights-0/variance", "layer_with_weights-1/kernel"])]
    ['normalization', 'parameters']
    """
    names: dict[tuple[str, int], tuple[str, set[str]]] = {}
    for path in paths:
        parts = path.split("/")
        for i, part in enumerate(parts[:-1]):
            found = _WEIGHTED_LAYER.fullmatch(part)
            if not found:
                continue
            container = structural_prefix(parts[:i])
            if container is not None:
                entry = names.setdefault(
                    (container, int(found.group(1))), ("/".join(parts[: i + 1]), set())
                )
                entry[1].add(parts[i + 1])
    layers = [TFLayer(c, n, path, classify(kids)) for (c, n), (path, kids) in names.items()]
    return sorted(layers, key=lambda layer: (layer.container, layer.index))
