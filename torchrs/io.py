"""Reading and writing torchrs checkpoint directories (what ``converters.tfrs_to_torch`` produces).

A directory holds ``torchrs.json`` (format version, model kind, the architecture to rebuild),
``model.safetensors`` (tensors under torch names; vocabularies as ``token_bytes`` +
``token_offsets`` so any byte string round-trips) and ``report.json``. No pickle anywhere.

:func:`load` rebuilds a ready ``nn.Module``:

* ``"tower"``: a :class:`Tower` (Keras ``Sequential``) mapping raw inputs (a list of ``str``) to
  embeddings, or a :class:`Functional` (a Keras functional model) taking the same named /
  positional inputs as the Keras model;
* ``"index"``: a BruteForce or Streaming index answering ``scores, ids = index(["42"], k=10)``;
* ``"model"``: a :class:`Container` holding the towers of a ``tfrs.Model`` as attributes;
* ``"weights"`` (a converted TF checkpoint): the tensors, by TF object path, as a dict.

TensorFlow is never imported here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchrs.functional.merging import MERGE_MODES
from torchrs.layers.merging import Concatenate, Dot, Merge
from torchrs.layers.pooling import GlobalAveragePooling1D
from torchrs.layers.recurrent import GRU
from torchrs.layers.reshaping import Flatten, Reshape

__all__ = [
    "FORMAT_VERSION",
    "OPTIMIZER_PREFIX",
    "Container",
    "Functional",
    "Tower",
    "build_module",
    "load",
    "load_optimizer_state",
    "save",
    "structural_parameter_keys",
]

#: Version of the directory layout written by the converter and read by :func:`load`.
FORMAT_VERSION = 1
CONFIG_FILE = "torchrs.json"
WEIGHTS_FILE = "model.safetensors"
#: Prefix of the optimizer tensors in ``model.safetensors`` (``optimizer/<tf path>/<slot>``).
OPTIMIZER_PREFIX = "optimizer/"
# Decoding of string identifiers: any byte string maps to a str and back (like StringLookup).
_ESCAPE_ERRORS = "surrogateescape"


class Tower(nn.Sequential):
    """A converted Keras ``Sequential`` tower: raw inputs in, embeddings out.

    Keras masks travel as in Keras: an ``Embedding(mask_zero=True)`` marks the id-0 steps, Dense
    and Dropout pass the mask on, and a GRU skips the masked steps.

    >>> from torchrs.layers.embedding import Embedding
    >>> from torchrs.preprocessing import StringLookup
    >>> tower = Tower(StringLookup(vocabulary=["a", "b"]), Embedding(3, 2))
    >>> tower(["a", "zz"]).shape
    torch.Size([2, 2])
    """

    def forward(self, inputs: Any) -> Any:
        mask: torch.Tensor | None = None
        for layer in self:
            inputs, mask = _call_with_mask(layer, inputs, mask)
        return inputs


def _mask_passing(layer: nn.Module) -> bool:
    """Layers Keras lets a mask through unchanged (``supports_masking`` without ``compute_mask``)."""
    from torchrs.layers.dense import KerasDense

    return isinstance(layer, KerasDense | nn.Dropout)


def _merge_masks(masks: Any) -> torch.Tensor | None:
    """Keras merge layers' output mask: the AND of the masks present (None when none is)."""
    present = [m for m in (masks or []) if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out & m
    return out


def _call_with_mask(layer: nn.Module, inputs: Any, mask: Any) -> tuple[Any, torch.Tensor | None]:
    """Calls ``layer`` as Keras does with the implicit mask; returns ``(outputs, output mask)``."""
    if isinstance(layer, GRU):
        outputs = layer(inputs, mask=mask)
        return outputs, (mask if layer.return_sequences else None)
    if isinstance(layer, GlobalAveragePooling1D):
        return layer(inputs, mask=mask), None  # Keras: the pooled output carries no mask
    outputs = layer(inputs)
    if isinstance(layer, nn.Embedding) and getattr(layer, "mask_zero", False):
        return outputs, torch.as_tensor(inputs, device=outputs.device) != 0  # Keras compute_mask
    if _mask_passing(layer):
        return outputs, mask
    if isinstance(layer, Merge | Concatenate) and isinstance(mask, list | tuple):
        if isinstance(layer, Concatenate) and layer.axis not in (-1, outputs.dim() - 1):
            if any(m is not None for m in mask):
                raise ValueError(
                    "A masked tensor reaches a Concatenate over a non-last axis; Keras's mask "
                    "arithmetic for that case is not rebuilt by torchrs."
                )
            return outputs, None
        return outputs, _merge_masks(mask)
    return outputs, None


def _is_ref(value: Any) -> bool:
    """``[layer name, node index, tensor index]``: a reference to a tensor of a functional graph."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
    )


def _resolve(structure: Any, values: dict[tuple[str, int, int], Any]) -> Any:
    if _is_ref(structure):
        return values.get((structure[0], structure[1], structure[2]))
    if isinstance(structure, dict):
        return {k: _resolve(v, values) for k, v in structure.items()}
    return [_resolve(v, values) for v in structure]


class Functional(nn.Module):
    """A converted Keras functional model (``tf.keras.Model(inputs, outputs)``): a graph of layers.

    ``layers`` holds one module per Keras layer, under the Keras layer name (made a valid module
    name); the graph is a list of layer calls in an order where every input is ready before use.
    A tensor is referenced as ``[layer, node_index, tensor_index]``: the ``tensor_index``-th output
    of the ``node_index``-th call of ``layer`` (an input is ``[input_name, 0, 0]``). Masks travel as
    in Keras (see :class:`Tower`).

    Call it as the Keras model: positionally (``model(user_ids, movie_ids)`` or
    ``model([user_ids, movie_ids])``), by input name (``model(user_id=..., movie_id=...)`` or a
    dict), or with the single input of a one-input model. One output comes back as a tensor, several
    as a list (or a dict, for a model built with a dict of outputs).

    Args:
        layers: ``{module name: module}``.
        nodes: the calls, in order: ``{"layer": module name, "node_index": i, "inbound": refs}``, where
            ``inbound`` is a ref, or a list / dict of refs (the layer's first call argument).
        inputs: the input names in call order, or ``{key: input name}`` for a dict-input model.
        outputs: a ref, or a list / dict of refs.

    >>> from torchrs.layers.dense import KerasDense
    >>> model = Functional(
    ...     {"a": KerasDense(2, input_dim=3), "b": KerasDense(2, input_dim=3), "sum": Merge("Add")},
    ...     [
    ...         {"layer": "a", "node_index": 0, "inbound": ["x", 0, 0]},
    ...         {"layer": "b", "node_index": 0, "inbound": ["y", 0, 0]},
    ...         {"layer": "sum", "node_index": 0, "inbound": [["a", 0, 0], ["b", 0, 0]]},
    ...     ],
    ...     inputs=["x", "y"],
    ...     outputs=["sum", 0, 0],
    ... )
    >>> model(torch.ones(4, 3), y=torch.ones(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        layers: dict[str, nn.Module],
        nodes: list[dict[str, Any]],
        inputs: list[str] | dict[str, str],
        outputs: Any,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self.nodes = [
            {"layer": n["layer"], "node_index": int(n["node_index"]), "inbound": n["inbound"]}
            for n in nodes
        ]
        for node in self.nodes:
            if node["layer"] not in self.layers:
                raise ValueError(
                    f"Graph node calls layer {node['layer']!r}, which is not in layers."
                )
        self.input_keys = dict(inputs) if isinstance(inputs, dict) else None
        self.input_names = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
        self.outputs = outputs

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self.input_names
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            kwargs, args = dict(args[0]), ()
        if self.input_keys is not None and kwargs:  # dict-input models: keys or input names
            kwargs = {self.input_keys.get(k, k): v for k, v in kwargs.items()}
        if (
            len(args) == 1
            and len(names) > 1
            and isinstance(args[0], list | tuple)
            and len(args[0]) == len(names)
        ):
            args = tuple(args[0])
        if len(args) > len(names):
            raise TypeError(
                f"This model takes {len(names)} input(s) {names}; got {len(args)} positional ones."
            )
        bound = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"Unknown input {name!r}; this model's inputs are {names}.")
            if name in bound:
                raise TypeError(f"Input {name!r} given twice (by position and by name).")
            bound[name] = value
        missing = [n for n in names if n not in bound]
        if missing:
            raise TypeError(f"Missing input(s) {missing}; this model's inputs are {names}.")
        return bound

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        bound = self._bind(args, kwargs)
        values: dict[tuple[str, int, int], Any] = {(n, 0, 0): v for n, v in bound.items()}
        masks: dict[tuple[str, int, int], Any] = {}
        for node in self.nodes:
            inputs = _resolve(node["inbound"], values)
            mask = _resolve(node["inbound"], masks)
            outputs, out_mask = _call_with_mask(self.layers[node["layer"]], inputs, mask)
            for index, value in enumerate(outputs if isinstance(outputs, tuple) else (outputs,)):
                values[(node["layer"], node["node_index"], index)] = value
                masks[(node["layer"], node["node_index"], index)] = out_mask
        return _resolve(self.outputs, values)


class Container(nn.Module):
    """The converted parts of a ``tfrs.Model`` (``user_model``, ``movie_model``...) as attributes.

    TFRS models define their own ``call`` / ``compute_loss``, which a converter cannot rebuild:
    use the towers directly (``model.user_model(["42"])``) or write the torchrs model and call
    ``converters.tfrs_to_torch.load_weights``.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "A converted tfrs.Model has no forward: call its towers "
            f"({', '.join(name for name, _ in self.named_children())}) directly."
        )


class _BruteForceIndex(nn.Module):
    """Exact top-K over stored candidates (TFRS ``BruteForce``), used until
    ``torchrs.layers.factorized_top_k`` is available: ``scores = q @ c.T``, ties to the lower index.
    """

    def __init__(self, query_model: nn.Module | None, k: int = 10) -> None:
        super().__init__()
        self.query_model = query_model
        self._k = k
        self.register_buffer("_candidates", torch.empty(0, 0))
        self._identifiers: np.ndarray | torch.Tensor | None = None

    def index(
        self, candidates: torch.Tensor, identifiers: np.ndarray | torch.Tensor | None = None
    ) -> _BruteForceIndex:
        self._candidates = candidates
        self._identifiers = identifiers
        return self

    def forward(self, queries: Any, k: int | None = None) -> tuple[torch.Tensor, Any]:
        k = self._k if k is None else k
        query = self.query_model(queries) if self.query_model is not None else queries
        scores = query @ self._candidates.T  # (B, N)
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]  # (B, k)
        top = torch.gather(scores, 1, order)  # (B, k)
        if isinstance(self._identifiers, np.ndarray):
            return top, self._identifiers[order.cpu().numpy()]
        if self._identifiers is None:
            return top, order
        return top, self._identifiers.to(order.device)[order]


def _decode_tokens(tensors: dict[str, torch.Tensor], prefix: str) -> list[bytes]:
    blob = tensors[prefix + "token_bytes"].numpy().tobytes()
    offsets = tensors[prefix + "token_offsets"].tolist()
    return [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _activation(value: Any) -> Any:
    if isinstance(value, dict):  # a serialised Keras activation
        value = value.get("config", {}).get("name", value.get("class_name"))
    return None if value in (None, "linear") else value


def build_module(
    spec: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str = ""
) -> nn.Module:
    """Rebuilds the module described by an architecture spec (tensors give sizes and index data).

    Args:
        spec: one node of ``torchrs.json["architecture"]``.
        tensors: every tensor of the checkpoint (read for shapes, and for index candidates).
        prefix: the torch-name prefix of this node.

    Returns:
        The module, with its parameters created (values are loaded afterwards).

    Raises:
        ValueError: a class this version of torchrs cannot rebuild.
    """
    cls = spec["class_name"]
    config = dict(spec.get("config") or {})
    shapes = spec.get("shapes", {})
    if cls == "Sequential":
        return Tower(
            *(
                build_module(layer, tensors, f"{prefix}{i}.")
                for i, layer in enumerate(spec["layers"])
            )
        )
    if cls == "Functional":
        layers = {
            key: build_module(layer, tensors, f"{prefix}layers.{key}.")
            for key, layer in spec["layers"].items()
        }
        return Functional(layers, spec["nodes"], spec["inputs"], spec["outputs"])
    if cls in MERGE_MODES:
        return Merge(cls)
    if cls == "Concatenate":
        return Concatenate(int(config.get("axis", -1)))
    if cls == "Dot":
        return Dot(config["axes"], normalize=bool(config.get("normalize", False)))
    if cls == "Flatten":
        return Flatten()
    if cls == "Reshape":
        return Reshape(config["target_shape"])
    if cls == "Dropout":
        return nn.Dropout(float(config.get("rate", 0.0)))
    if cls == "GlobalAveragePooling1D":
        return GlobalAveragePooling1D(
            config.get("data_format", "channels_last"), bool(config.get("keepdims", False))
        )
    if cls == "Container":
        container = Container()
        for name, child in spec["children"].items():
            container.add_module(name, build_module(child, tensors, f"{prefix}{name}."))
        return container
    if cls == "StringLookup":
        from torchrs.preprocessing import StringLookup

        return StringLookup(**config)
    if cls == "IntegerLookup":
        from torchrs.preprocessing import IntegerLookup

        return IntegerLookup(**config)
    if cls in ("Discretization", "Hashing", "TextVectorization"):
        from torchrs import preprocessing

        return getattr(preprocessing, cls)(**config)  # type: ignore[no-any-return]
    if cls == "GRU":
        return GRU(
            int(config["units"]),
            input_dim=int(shapes["gru.weight_ih_l0"][1]),
            return_sequences=bool(config.get("return_sequences", False)),
            zero_output_for_mask=bool(config.get("zero_output_for_mask", False)),
        )
    if cls == "Normalization":
        from torchrs.preprocessing import Normalization

        axis = config.pop("axis", -1)
        if isinstance(axis, list):
            axis = tuple(axis)
        return Normalization(axis=axis, **config)
    if cls == "Embedding":
        from torchrs.layers.embedding import Embedding

        rows, cols = shapes["weight"]
        return Embedding(rows, cols, mask_zero=bool(config.get("mask_zero", False)))
    if cls == "Dense":
        from torchrs.layers.dense import KerasDense

        out_features, in_features = shapes["weight"]
        return KerasDense(
            out_features,
            activation=_activation(config.get("activation")),
            use_bias=bool(config.get("use_bias", True)),
            input_dim=in_features,
        )
    if cls == "MLP":
        from torchrs.layers.blocks import MLP

        return MLP(
            [int(u) for u in config["units"]],
            use_bias=bool(config.get("use_bias", True)),
            activation=_activation(config.get("activation", "relu")),
            final_activation=_activation(config.get("final_activation")),
            input_dim=int(shapes["_sublayers.0.weight"][1]),
        )
    if cls == "Cross":
        from torchrs.layers.feature_interaction import Cross

        weight = shapes.get("_dense.weight") or shapes.get("_dense_v.weight")
        return Cross(
            projection_dim=config.get("projection_dim"),
            diag_scale=config.get("diag_scale", 0.0) or 0.0,
            use_bias=bool(config.get("use_bias", True)),
            preactivation=_activation(config.get("preactivation")),
            input_dim=int(weight[0]),
        )
    if cls == "DotInteraction":
        from torchrs.layers.feature_interaction import DotInteraction

        return DotInteraction(
            self_interaction=bool(config.get("self_interaction", False)),
            skip_gather=bool(config.get("skip_gather", False)),
        )
    if cls == "BruteForce":
        query = spec.get("query_model")
        query_model = (
            None if query is None else build_module(query, tensors, f"{prefix}query_model.")
        )
        candidates = tensors[prefix + "candidates"]
        identifiers: Any
        if spec.get("identifiers_dtype") == "string":
            identifiers = np.array(
                [
                    t.decode("utf-8", _ESCAPE_ERRORS)
                    for t in _decode_tokens(tensors, f"{prefix}identifiers.")
                ],
                dtype=object,
            )
        else:
            identifiers = tensors[prefix + "identifiers"]
        index = _make_brute_force(query_model, int(config.get("k", 10)))
        index.index(candidates, identifiers)  # type: ignore[operator]
        return index
    if cls == "Streaming":
        return _make_streaming(spec, tensors, prefix)
    raise ValueError(
        f"torchrs.load cannot rebuild a {cls!r} layer (architecture node {prefix or '<root>'}); "
        "this checkpoint needs a newer torchrs."
    )


def _make_streaming(
    spec: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str
) -> nn.Module:
    """A ``Streaming`` index over the exported candidate batches (same batch boundaries as TF)."""
    from torchrs.layers.factorized_top_k import Streaming

    config = dict(spec.get("config") or {})
    query = spec.get("query_model")
    query_model = None if query is None else build_module(query, tensors, f"{prefix}query_model.")
    candidates = tensors[prefix + "candidates"]  # (N, D)
    sizes = [int(n) for n in tensors[prefix + "batch_sizes"].tolist()]
    identifiers: Any = None
    if spec.get("identifiers_dtype") == "string":
        identifiers = np.array(
            [
                t.decode("utf-8", _ESCAPE_ERRORS)
                for t in _decode_tokens(tensors, f"{prefix}identifiers.")
            ],
            dtype=object,
        )
    elif spec.get("identifiers_dtype") is not None:
        identifiers = tensors[prefix + "identifiers"]
    batches: list[Any] = []
    start = 0
    for size in sizes:
        rows = candidates[start : start + size]  # (n, D), a view
        batches.append(rows if identifiers is None else (identifiers[start : start + size], rows))
        start += size
    index = Streaming(
        query_model,
        k=int(config.get("k", 10)),
        handle_incomplete_batches=bool(config.get("handle_incomplete_batches", True)),
        sorted_order=bool(config.get("sorted_order", True)),
    )
    return index.index_from_dataset(batches)


def _make_brute_force(query_model: nn.Module | None, k: int) -> nn.Module:
    try:
        from torchrs.layers.factorized_top_k import BruteForce
    except ImportError:
        return _BruteForceIndex(query_model, k=k)
    return BruteForce(query_model, k=k)


def _tensor_keys(spec: dict[str, Any], prefix: str = "") -> set[str]:
    """Tensors consumed by building (index data), not by ``load_state_dict``."""
    if spec["class_name"] in ("BruteForce", "Streaming"):
        keys = {
            prefix + "candidates",
            prefix + "batch_sizes",
            prefix + "identifiers",
            prefix + "identifiers.token_bytes",
            prefix + "identifiers.token_offsets",
        }
        return keys
    if spec["class_name"] == "Container":
        out: set[str] = set()
        for name, child in spec["children"].items():
            out |= _tensor_keys(child, f"{prefix}{name}.")
        return out
    return set()


def _load_query_states(
    module: nn.Module, spec: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str
) -> None:
    """Loads every parameter / vocabulary below ``module`` strictly (index data excluded)."""
    if spec["class_name"] in ("BruteForce", "Streaming"):
        query = spec.get("query_model")
        if query is not None:
            _load_query_states(module.query_model, query, tensors, prefix + "query_model.")  # type: ignore[arg-type]
        return
    if spec["class_name"] == "Container":
        for name, child in spec["children"].items():
            _load_query_states(getattr(module, name), child, tensors, f"{prefix}{name}.")
        return
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    module.load_state_dict(state, strict=True)


def load(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Loads a torchrs checkpoint directory into a ready module.

    Args:
        directory: the output of ``python -m converters.tfrs_to_torch MODEL_DIR --out DIR``.
        map_location: device to put the tensors on.

    Returns:
        An ``nn.Module`` (index, tower or container of towers) in eval mode, or for a converted TF
        checkpoint (``model_kind == "weights"``) a ``dict`` of tensors by TF object path. Optimizer
        state, when the export held one, is not loaded here: see :func:`load_optimizer_state`.

    Raises:
        ValueError: the directory is not a torchrs checkpoint, or has a newer format version.
    """
    from safetensors.torch import load_file

    root = Path(directory)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"{os.fspath(directory)!r} is not a torchrs checkpoint (no {CONFIG_FILE}). Convert a TF "
            "model first: python -m converters.tfrs_to_torch MODEL_DIR --out DIR."
        )
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{config_path} has format_version={version!r}; this torchrs reads up to {FORMAT_VERSION}. "
            "Upgrade torchrs."
        )
    tensors = load_file(str(root / WEIGHTS_FILE), device=str(map_location))
    if meta["model_kind"] == "weights":
        return tensors
    spec = meta["architecture"]
    module = build_module(spec, tensors)
    index_data = _tensor_keys(spec)
    states = {
        k: v
        for k, v in tensors.items()
        if k not in index_data and not k.startswith(OPTIMIZER_PREFIX)  # optimizer: see below
    }
    _load_query_states(module, spec, states, "")
    return module.eval()


def save(
    module: nn.Module,
    directory: str | os.PathLike[str],
    architecture: dict[str, Any],
    model_kind: str = "tower",
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes ``module.state_dict()`` and an architecture spec as a torchrs checkpoint directory.

    Args:
        module: the module whose state is saved (its names must match ``architecture``).
        directory: created if missing; files inside are replaced.
        architecture: the spec :func:`build_module` understands.
        model_kind: ``"tower"``, ``"index"``, ``"model"``.
        extra: more keys for ``torchrs.json``.
    """
    from safetensors.torch import save_file

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(root / WEIGHTS_FILE))
    payload = {
        "format": "torchrs",
        "format_version": FORMAT_VERSION,
        "model_kind": model_kind,
        "architecture": architecture,
        **(extra or {}),
    }
    (root / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def structural_parameter_keys(module: nn.Module) -> dict[str, str]:
    """Structural key -> parameter name, the way TF names checkpoint objects.

    Attribute names are kept; inside an ``nn.Sequential`` the children that own parameters are
    numbered ``#0, #1, ...`` like Keras's ``layer_with_weights-N``.

    Args:
        module: any module.

    Returns:
        ``{structural key: parameter name}``.

    >>> structural_parameter_keys(nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    {'#0.weight': '1.weight', '#0.bias': '1.bias'}
    """
    out: dict[str, str] = {}

    def walk(mod: nn.Module, key_prefix: str, name_prefix: str) -> None:
        for name, param in mod.named_parameters(recurse=False):
            if param is not None:
                out[key_prefix + name] = name_prefix + name
        weighted = 0
        for name, child in mod.named_children():
            if isinstance(mod, nn.Sequential):
                if not any(True for _ in child.parameters()):
                    continue
                key = f"#{weighted}"
                weighted += 1
            else:
                key = name
            walk(child, f"{key_prefix}{key}.", f"{name_prefix}{name}.")

    walk(module, "", "")
    return out


def _check_lazy_momentum_embeddings(
    optimizer: torch.optim.Optimizer, module: nn.Module, package: str, class_name: str
) -> None:
    """Legacy Keras momentum moves only the embedding rows a batch touched (TF's gradient of a gather is
    sparse); a dense torch gradient cannot tell an untouched row from a zero gradient, so it would move every
    row by its velocity and leave TF's trajectory."""
    if package != "torchrs.optim.legacy" or class_name != "SGD":
        return
    if not any(group.get("momentum", 0.0) for group in optimizer.param_groups):
        return
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    dense = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, nn.Embedding) and not layer.sparse and id(layer.weight) in optimized
    ]
    if dense:
        raise ValueError(
            f"Legacy Keras SGD with momentum updates embedding rows lazily, which needs sparse gradients, but "
            f"these embeddings produce dense ones: {dense}. Set `.sparse = True` on them before training."
        )


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, module: nn.Module, directory: str | os.PathLike[str]
) -> dict[str, list[str]]:
    """Fills a ``torchrs.optim`` optimizer with the Keras optimizer state of a converted checkpoint.

    The directory is what ``python -m converters.tfrs_to_torch CKPT --out DIR`` writes for a TF
    checkpoint saved with its optimizer (``model.save_weights`` after ``fit``, or
    ``tf.train.Checkpoint(model=model, optimizer=optimizer)``). Slots are stored in TF layout under
    ``optimizer/<tf variable path>/<slot>`` and Keras's ``iterations`` under
    ``optimizer/iterations``; they are matched to ``module``'s parameters by structure (as
    ``converters.tfrs_to_torch.load_weights`` matches weights), Dense kernels transposed. Every
    parameter gets ``state["step"] = iterations``, so the next step is Keras's step
    ``iterations + 1``. Load the weights first (``load_weights(module, DIR)``).

    Args:
        optimizer: a ``torchrs.optim.Adagrad`` / ``Adam`` / ``SGD`` (``torchrs.optim.legacy.*`` for
            ``tf.keras.optimizers.legacy`` state) over ``module``'s parameters, of the class
            ``torchrs.json`` names (and the same ``amsgrad`` setting).
        module: the torchrs model mirroring the TF model's attributes and layer order.
        directory: the converted checkpoint directory.

    Returns:
        ``{parameter name: [slot names loaded]}``.

    Raises:
        ValueError: no optimizer state in the directory, another optimizer class, or a slot that
            matches no parameter / a parameter without a slot / different shapes.
    """
    from safetensors import safe_open

    root = Path(directory)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"directory={os.fspath(directory)!r} is not a torchrs checkpoint (no {CONFIG_FILE})."
        )
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    spec = (meta.get("architecture") or {}).get("optimizer")
    if not spec:
        raise ValueError(
            f"{root} holds no optimizer state: convert a TF checkpoint saved with its optimizer "
            "(tf.train.Checkpoint(model=..., optimizer=...) or model.save_weights after fit)."
        )
    expected, package = spec["class_name"], spec.get("module", "torchrs.optim")
    # The class or an ancestor, from the same package: torchrs.optim.legacy.Adam is not torchrs.optim.Adam.
    if not any(
        cls.__name__ == expected and package in (cls.__module__, cls.__module__.rpartition(".")[0])
        for cls in type(optimizer).__mro__
    ):
        raise ValueError(
            f"optimizer is a {type(optimizer).__module__}.{type(optimizer).__name__} but the checkpoint "
            f"holds {package}.{expected} state; build {package}.{expected}(module.parameters(), ...) "
            "instead."
        )
    amsgrad = any(group.get("amsgrad", False) for group in optimizer.param_groups)
    if expected == "Adam" and amsgrad != bool(spec.get("amsgrad")):
        raise ValueError(
            f"optimizer has amsgrad={amsgrad} but the Keras Adam had amsgrad={spec.get('amsgrad')}; "
            "build the optimizer with the same setting."
        )
    _check_lazy_momentum_embeddings(optimizer, module, package, expected)
    variables: dict[str, dict[str, Any]] = spec["variables"]
    by_key = {entry["key"]: (path, entry) for path, entry in variables.items()}
    targets = structural_parameter_keys(module)
    roots = {key.split(".")[0] for key in by_key}
    if len(roots) == 1 and not any(k.split(".")[0] in roots for k in targets):
        strip = (
            len(roots.pop()) + 1
        )  # tf.train.Checkpoint(model=...) nests the model one level down
        by_key = {key[strip:]: value for key, value in by_key.items()}
    params = dict(module.named_parameters())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = sorted(  # no variables at all: a slotless optimizer (legacy SGD with decay), iterations only
        name
        for key, name in targets.items()
        if variables and key not in by_key and id(params[name]) in optimized
    )
    unexpected = sorted(path for key, (path, _) in by_key.items() if key not in targets)
    if missing or unexpected:
        raise ValueError(
            f"Optimizer state does not match the module: parameters without a slot {missing}, "
            f"slots without a parameter {unexpected}. The module must mirror the TF model's "
            "attributes and layer order (as for load_weights)."
        )
    loaded: dict[str, list[str]] = {}
    with safe_open(str(root / WEIGHTS_FILE), framework="pt") as handle:
        iterations = int(handle.get_tensor(spec.get("prefix", OPTIMIZER_PREFIX) + "iterations"))
        pending: list[tuple[nn.Parameter, dict[str, torch.Tensor]]] = []
        for key, name in targets.items():
            param = params[name]
            if id(param) not in optimized:
                continue
            slotless: dict[str, Any] = {"slots": [], "transpose": False}  # iterations only
            path, entry = by_key[key] if variables else (key, slotless)
            slots: dict[str, torch.Tensor] = {}
            for slot in entry["slots"]:
                value = handle.get_tensor(f"{spec.get('prefix', OPTIMIZER_PREFIX)}{path}/{slot}")
                if entry["transpose"]:
                    value = value.T.contiguous()
                if tuple(value.shape) != tuple(param.shape):
                    raise ValueError(
                        f"Slot {slot!r} of {path} has shape {tuple(value.shape)} (after transpose) "
                        f"but parameter {name} has shape {tuple(param.shape)}."
                    )
                slots[slot] = value.to(device=param.device, dtype=param.dtype)
            pending.append((param, slots))
            loaded[name] = list(entry["slots"])
    for param_tensor, slots in pending:
        state = optimizer.state[param_tensor]
        state.update(slots)
        state["step"] = torch.tensor(iterations, dtype=torch.int64)
    return loaded
