"""Argument checks shared by the Keras-style layers (one wording for every layer's errors)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["check_input", "check_positive_int"]


def check_positive_int(value: Any, name: str, *, allow_none: bool = False) -> None:
    """Raises unless ``value`` is a positive ``int`` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"`{name}` must be a positive int{' or None' if allow_none else ''}, "
            f"got {value!r} ({type(value).__name__})."
        )
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {name}={value}.")


def check_input(x: Any, name: str, layer: str, *, min_ndim: int = 2) -> None:
    """Raises unless ``x`` is a tensor of rank >= ``min_ndim`` (Keras Dense's ``min_ndim=2``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer} expects `{name}` to be a torch.Tensor, got {type(x).__name__}.")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{layer} expects `{name}` of rank >= {min_ndim} (batch_size, ..., features), got shape "
            f"{tuple(x.shape)}. Add a batch dimension, e.g. `{name}.unsqueeze(0)`."
        )
