"""Layers, as ``tfrs.layers``, plus the Keras core layers TFRS models use (``Embedding``, ``Dense``, ``GRU``,
the merge layers ``Concatenate`` / ``Add`` / ``Dot`` ..., ``Flatten``, ``Reshape``,
``GlobalAveragePooling1D``)."""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = (
    "blocks",
    "dcn",
    "dense",
    "embedding",
    "factorized_top_k",
    "feature_interaction",
    "loss",
    "merging",
    "normalization",
    "pooling",
    "recurrent",
    "reshaping",
)
# Keras core layers TFRS models use, by name -> the submodule that defines them.
_KERAS_LAYERS = {
    "Dense": "dense",
    "Embedding": "embedding",
    "Add": "merging",
    "Average": "merging",
    "Concatenate": "merging",
    "Dot": "merging",
    "Maximum": "merging",
    "Minimum": "merging",
    "Multiply": "merging",
    "Subtract": "merging",
    "Flatten": "reshaping",
    "Reshape": "reshaping",
    "GRU": "recurrent",
    "LayerNormalization": "normalization",
    "GlobalAveragePooling1D": "pooling",
}

__all__ = [*_KERAS_LAYERS, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"torchrs.layers.{name}")
    if name in _KERAS_LAYERS:
        return getattr(importlib.import_module(f"torchrs.layers.{_KERAS_LAYERS[name]}"), name)
    raise AttributeError(f"module 'torchrs.layers' has no attribute {name!r}")
