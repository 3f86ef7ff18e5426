"""How Keras 2 names and serialises objects, shared by the initializer and regularizer registries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["config_parts", "snake_case"]


def snake_case(name: str) -> str:
    """Keras' ``generic_utils.to_snake_case`` (``GlorotUniform`` -> ``glorot_uniform``).

    >>> snake_case("GlorotUniform")
    'glorot_uniform'
    """
    intermediate = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def config_parts(identifier: Mapping[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    """``(class_name, config)`` of a Keras-serialised object, legacy or ``"module"`` format."""
    if "class_name" not in identifier:
        raise ValueError(
            f"A {kind} config must have a 'class_name' key (Keras serialisation format), "
            f"got keys {sorted(identifier)}."
        )
    config = identifier.get("config") or {}
    if not isinstance(config, Mapping):
        raise ValueError(f"The 'config' of a {kind} must be a dict, got {config!r}.")
    return str(identifier["class_name"]), dict(config)
