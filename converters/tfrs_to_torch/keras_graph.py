"""Keras functional configs and layer configs, read into what ``torchrs.load`` rebuilds.

A Keras functional model's graph comes from its functional config (``layers`` with their ``inbound_nodes``,
``input_layers``, ``output_layers``), which only Keras exports keep.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError, UnsupportedLayerError

# Names a module of an ``nn.ModuleDict`` cannot take (its own attributes).
MODULE_DICT_ATTRIBUTES = frozenset(
    {"keys", "items", "values", "update", "pop", "clear", "training", "forward", "layers"}
)


def module_key(name: str, taken: set[str]) -> str:
    """A torch module name for a Keras layer name: no dots, unique, not a ModuleDict attribute.

    >>> taken = {"user_id"}
    >>> module_key("dense", taken), module_key("dense", taken), module_key("a.b", taken)
    ('dense', 'dense_1', 'a_b')
    >>> module_key("keys", taken), module_key("_x", taken)
    ('layer_keys', 'layer__x')
    """
    key = re.sub(r"\W", "_", name)
    if not key or key.startswith("_") or key in MODULE_DICT_ATTRIBUTES:
        key = f"layer_{key}"
    candidate, suffix = key, 1
    while candidate in taken:
        candidate, suffix = f"{key}_{suffix}", suffix + 1
    taken.add(candidate)
    return candidate


def is_ref(value: Any) -> bool:
    """``[layer name, node index, tensor index(, kwargs)]``: a tensor of a Keras functional config."""
    return (
        isinstance(value, list)
        and len(value) in (3, 4)
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
        and (len(value) == 3 or isinstance(value[3], dict))
    )


def keras_refs(structure: Any) -> Any:
    """``input_layers`` / ``output_layers``: refs ``[name, 0, 0]`` in a list or dict."""
    if is_ref(structure):
        return list(structure[:3])
    if isinstance(structure, dict):
        return {k: keras_refs(v) for k, v in structure.items()}
    if isinstance(structure, list):
        return [keras_refs(v) for v in structure]
    raise ConversionError(f"Unexpected entry {structure!r} in a Keras functional config.")


def unnest(structure: Any) -> Any:
    """Keras's ``unnest_if_single_tensor``: a list holding one ref is that ref."""
    if isinstance(structure, list) and len(structure) == 1 and is_ref(structure[0]):
        return structure[0]
    return structure


def first_node_index(layer: dict[str, Any]) -> int:
    """Index of a layer's first call listed in ``inbound_nodes`` (tf_keras's
    ``_should_skip_first_node``): a nested model built on its own ``Input`` keeps that first
    node out of the config, so its calls in this graph are numbered from 1.
    """
    config = layer.get("config") or {}
    if "input_layers" in config:
        return 1
    inner = config.get("layers")
    if isinstance(inner, list) and inner and isinstance(inner[0], dict):
        return int(inner[0].get("class_name") == "InputLayer")
    return 0


def parse_node(node_data: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """One entry of ``inbound_nodes``: (the first call argument as refs, the call's kwargs)."""
    kwargs: dict[str, Any] = {}

    def walk(value: Any) -> Any:
        if is_ref(value):
            if value[0] == "_CONSTANT_VALUE" or value[1] < 0:
                raise UnsupportedLayerError(
                    "<constant input>", where, "it is called on a constant, not a layer output"
                )
            if len(value) == 4:
                kwargs.update(value[3])
            return list(value[:3])
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        raise UnsupportedLayerError(
            "<constant input>", where, f"its call argument {value!r} is not a layer output"
        )

    return unnest(walk(node_data)), kwargs


def refs_of(structure: Any) -> list[tuple[str, int]]:
    if is_ref(structure):
        return [(structure[0], structure[1])]
    values = structure.values() if isinstance(structure, dict) else structure
    return [ref for value in values for ref in refs_of(value)]


def topological(nodes: list[dict[str, Any]], inputs: set[str], where: str) -> list[dict[str, Any]]:
    """Layer calls in an order where every input is computed first (config order where possible)."""
    ready = {(name, 0) for name in inputs}
    pending = list(nodes)
    ordered: list[dict[str, Any]] = []
    while pending:
        for position, node in enumerate(pending):
            if all(ref in ready for ref in refs_of(node["inbound"])):
                ordered.append(pending.pop(position))
                ready.add((node["layer"], node["node_index"]))
                break
        else:
            missing = sorted(
                {f"{r[0]}[{r[1]}]" for n in pending for r in refs_of(n["inbound"])}
                - {f"{r[0]}[{r[1]}]" for r in ready}
            )
            raise ConversionError(
                f"The functional model at {where} has layer calls whose inputs are never "
                f"computed ({', '.join(missing)}); the export's config is inconsistent."
            )
    return ordered


# Config keys passed on to the torchrs constructors (name / dtype / shapes are Keras bookkeeping).
CONFIG_KEYS = {
    "Discretization": ("bin_boundaries", "num_bins", "epsilon", "output_mode"),
    "Hashing": ("num_bins", "mask_value", "salt", "output_mode"),
    "TextVectorization": (
        "max_tokens",
        "standardize",
        "split",
        "ngrams",
        "output_mode",
        "output_sequence_length",
        "pad_to_max_tokens",
        "ragged",
        "encoding",
    ),
}
# Built-in TextVectorization options (anything else is a user function, not serialisable).
TEXT_MODES = {
    "standardize": ("lower_and_strip_punctuation", "lower", "strip_punctuation"),
    "split": ("whitespace", "character"),
}


def keras_value(value: Any) -> Any:
    """Undoes Keras config serialisation of tuples (``{"class_name": "__tuple__", ...}``)."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return [keras_value(v) for v in value.get("items", [])]
    if isinstance(value, list):
        return [keras_value(v) for v in value]
    return value


def keras_config(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: keras_value(config[k]) for k in keys if k in config}


LOOKUP_DROP = frozenset(
    {"vocabulary", "idf_weights", "vocabulary_size", "has_input_vocabulary", "trainable"}
)


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value
