"""The name-mapping table: which TF variable becomes which torch tensor, and whether it is transposed.

A rule is data: ``(class_name, source_pattern, torch_template, transpose)``. ``source_pattern`` is a
regular expression over the variable's object path *relative to its layer* (``kernel``,
``_dense_u/kernel``, ``_sublayers/1/bias``); ``torch_template`` is the parameter name relative to
the torchrs module, with ``\\1``-style groups. Keras kernels are ``[in, out]`` and torch weights
``[out, in]``, hence ``transpose=True`` for every Dense kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    """One line of the table.

    Attributes:
        class_name: the Keras / TFRS layer class the rule applies to.
        source: regular expression matched (in full) against the variable path inside the layer.
        target: the torch parameter name, ``re.sub`` template over ``source``'s groups.
        transpose: whether the array is transposed (Dense kernels ``[in, out]`` -> ``[out, in]``).
    """

    class_name: str
    source: str
    target: str
    transpose: bool


RULES: tuple[Rule, ...] = (
    Rule("Embedding", r"embeddings", "weight", False),
    Rule("Dense", r"kernel", "weight", True),
    Rule("Dense", r"bias", "bias", False),
    # tfrs.layers.feature_interaction.Cross: full-rank `_dense`, or low-rank `_dense_u` @ `_dense_v`.
    Rule("Cross", r"(_dense|_dense_u|_dense_v)/kernel", r"\1.weight", True),
    Rule("Cross", r"(_dense|_dense_v)/bias", r"\1.bias", False),
    # tfrs.layers.blocks.MLP keeps its Dense layers in the list `_sublayers`.
    Rule("MLP", r"_sublayers/(\d+)/kernel", r"_sublayers.\1.weight", True),
    Rule("MLP", r"_sublayers/(\d+)/bias", r"_sublayers.\1.bias", False),
    # tf.keras.layers.Normalization after adapt(): running statistics, buffers in torchrs.
    Rule("Normalization", r"mean", "adapt_mean", False),
    Rule("Normalization", r"variance", "adapt_variance", False),
    Rule("Normalization", r"count", "count", False),
    # tf.keras.layers.LayerNormalization: gamma / beta are torchrs's weight / bias, same layout.
    Rule("LayerNormalization", r"gamma", "weight", False),
    Rule("LayerNormalization", r"beta", "bias", False),
)

# Layers without variables that torchrs rebuilds from their config alone.
STATELESS_LAYERS = frozenset({"DotInteraction", "InputLayer"})
# Keras layers of functional graphs (merging, reshaping, inference-time no-ops): the config keys
# torchrs.io rebuilds them from. Dropout is the identity at inference, as in Keras.
GRAPH_LAYERS: dict[str, tuple[str, ...]] = {
    "Concatenate": ("axis",),
    "Add": (),
    "Subtract": (),
    "Multiply": (),
    "Average": (),
    "Maximum": (),
    "Minimum": (),
    "Dot": ("axes", "normalize"),
    "Flatten": ("data_format",),
    "Reshape": ("target_shape",),
    "Dropout": ("rate",),
    "GlobalAveragePooling1D": ("data_format", "keepdims"),
}
# TFRS tasks and metrics of a tfrs.Model: training-time parts (loss, metrics), skipped when found
# beside the towers (by class name, as a Keras SavedModel records it).
TRAINING_ONLY_LAYERS = frozenset({"Ranking", "Retrieval", "Task", "FactorizedTopK", "Factorized"})
# Layers wrapping Python code: the export keeps only a traced graph of it, nothing torchrs can run.
LAMBDA_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
# Preprocessing layers whose whole state is their Keras config (bin boundaries, salt...).
CONFIG_LAYERS = frozenset({"Discretization", "Hashing"})
# Lookup layers: their state is the table (exported from the model), not a variable.
LOOKUP_LAYERS = frozenset({"StringLookup", "IntegerLookup"})


# Layers a plain tf.saved_model.save export (which keeps no class names) is recognised by, from the variables it
# holds. Their config is then Keras's defaults: reported as inferred, and checked by the forward comparison.
CLASSES_BY_VARIABLES: dict[frozenset[str], str] = {
    frozenset({"gamma", "beta"}): "LayerNormalization",
    frozenset({"gamma"}): "LayerNormalization",  # center=False
    frozenset({"beta"}): "LayerNormalization",  # scale=False
}


def has_rules(class_name: str) -> bool:
    """Whether :data:`RULES` maps the variables of ``class_name`` (its layers convert generically)."""
    return any(rule.class_name == class_name for rule in RULES)


def match(class_name: str, relative_path: str) -> tuple[str, bool] | None:
    """``(torch_name, transpose)`` for a variable of a layer, or None when no rule applies.

    Args:
        class_name: the layer class (``"Dense"``).
        relative_path: the variable path inside the layer (``"kernel"``).

    Returns:
        The torch parameter name relative to the rebuilt module and the transpose flag.

    >>> match("Dense", "kernel")
    ('weight', True)
    >>> match("MLP", "_sublayers/1/bias")
    ('_sublayers.1.bias', False)
    >>> match("Dense", "moving_mean") is None
    True
    """
    for rule in RULES:
        if rule.class_name == class_name:
            found = re.fullmatch(rule.source, relative_path)
            if found:
                return found.expand(rule.target), rule.transpose
    return None


# Variables mapped by structure alone (``load_weights``, parity's weight copy), where the layer class is not
# known: a variable attribute takes the rule of the Keras layer that owns it.
ATTRIBUTE_CLASSES = {
    "embeddings": "Embedding",
    "kernel": "Dense",
    "bias": "Dense",
    "gamma": "LayerNormalization",
    "beta": "LayerNormalization",
}


def attribute_rule(attribute: str) -> tuple[str, bool] | None:
    """``(torch attribute, transpose)`` of a Keras variable attribute, from :data:`RULES`; None if unknown.

    >>> attribute_rule("kernel"), attribute_rule("embeddings"), attribute_rule("moving_mean")
    (('weight', True), ('weight', False), None)
    """
    owner = ATTRIBUTE_CLASSES.get(attribute)
    return None if owner is None else match(owner, attribute)


def apply_transpose(array: np.ndarray, transpose: bool) -> np.ndarray:
    """The one place transposes happen: ``[in, out]`` -> ``[out, in]`` (contiguous) when asked.

    >>> apply_transpose(np.arange(6).reshape(2, 3), True).shape
    (3, 2)
    """
    if not transpose:
        return array
    if array.ndim != 2:
        raise ValueError(f"Only 2-D kernels are transposed; got shape {array.shape}.")
    return np.ascontiguousarray(array.T)


# Keras GRU packs its three gates as column blocks (z, r, h) of ``kernel`` [in, 3u],
# ``recurrent_kernel`` [u, 3u] and ``bias`` [2, 3u] (input bias, recurrent bias; reset_after=True);
# torch.nn.GRU packs them as row blocks (r, z, n) of ``weight_ih_l0`` [3u, in] / ``weight_hh_l0``.
KERAS_GRU_GATES = ("z", "r", "h")
TORCH_GRU_GATES = ("r", "z", "h")
GRU_RULES = {
    "cell/kernel": ("weight_ih_l0", None),
    "cell/recurrent_kernel": ("weight_hh_l0", None),
    "cell/bias": ("bias_ih_l0", 0),  # row 0 of the [2, 3u] bias
    "cell/bias#1": ("bias_hh_l0", 1),  # row 1 (the same variable, read twice)
}


def keras_gru_to_torch(array: np.ndarray, units: int) -> np.ndarray:
    """Keras gate columns (z, r, h) -> torch gate rows (r, z, n): reorder, then transpose.

    Args:
        array: a Keras GRU kernel ``[in, 3u]``, recurrent kernel ``[u, 3u]`` or one bias row ``[3u]``.
        units: the GRU's ``units``.

    Returns:
        ``[3u, in]`` / ``[3u, u]`` / ``[3u]``, gate blocks in torch order.

    >>> keras_gru_to_torch(np.array([0, 1, 2]), 1).tolist()  # z=0, r=1, h=2 -> r, z, n
    [1, 0, 2]
    >>> keras_gru_to_torch(np.arange(6).reshape(1, 6), 2).tolist()
    [[2], [3], [0], [1], [4], [5]]
    """
    if array.shape[-1] != 3 * units:
        raise ValueError(f"A GRU weight must end in 3 * units = {3 * units}; got {array.shape}.")
    return np.ascontiguousarray(_reorder_gates(array, units, KERAS_GRU_GATES, TORCH_GRU_GATES).T)


def torch_gru_to_keras(array: np.ndarray, units: int) -> np.ndarray:
    """The inverse of :func:`keras_gru_to_torch`: torch gate rows (r, z, n) -> Keras gate columns (z, r, h).

    >>> w = np.arange(6).reshape(1, 6)
    >>> torch_gru_to_keras(keras_gru_to_torch(w, 2), 2).tolist()
    [[0, 1, 2, 3, 4, 5]]
    """
    if array.shape[0] != 3 * units:
        raise ValueError(
            f"A torch GRU weight must start with 3 * units = {3 * units}; got {array.shape}."
        )
    return np.ascontiguousarray(_reorder_gates(array.T, units, TORCH_GRU_GATES, KERAS_GRU_GATES))


def _reorder_gates(
    array: np.ndarray, units: int, source: tuple[str, ...], target: tuple[str, ...]
) -> np.ndarray:
    """Gate blocks of the last axis, from ``source`` order to ``target`` order."""
    blocks = {g: array[..., i * units : (i + 1) * units] for i, g in enumerate(source)}
    return np.concatenate([blocks[g] for g in target], axis=-1)
