"""Keras 2 weight regularizers, as ``tf.keras.regularizers`` (``tf_keras``), in torch.

:class:`L1`, :class:`L2` and :class:`L1L2` with the Keras values (``l2(w) = l2 * sum(w ** 2)``) and
:func:`get` (also :func:`get_regularizer`), which resolves ``"l1"``, ``"l2"``, ``"l1_l2"``, Keras config
dicts, instances and callables. Layers add the penalties to the model's ``regularization_loss``; kernels are
passed in the Keras layout ``[in, out]``.

>>> import torchrs as trs
>>> trs.regularizers.get("l2")(torch.tensor([3.0, 4.0]))  # 0.01 * 25
tensor(0.2500)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from torchrs._keras_config import config_parts as _config_parts

__all__ = ["L1", "L1L2", "L2", "Regularizer", "RegularizerLike", "get", "get_regularizer"]

# Keras 2 "l1" / "l2" / "l1_l2" string identifiers use a factor of 0.01 (L1(), L2(), l1_l2()).
DEFAULT_L1 = 0.01
DEFAULT_L2 = 0.01

RegularizerLike = str | Mapping[str, Any] | Callable[[torch.Tensor], torch.Tensor] | None


def _check_penalty(value: Any, name: str) -> float:
    """Keras' ``_check_penalty_number``: a finite int or float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"`{name}`={value!r} is not a valid regularization penalty: expected an int or float."
        )
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"`{name}`={value} is not a valid regularization penalty: must be finite.")
    return float(value)


class Regularizer:
    """Base class of the Keras 2 weight regularizers: ``regularizer(weight) -> scalar tensor``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Regularizer:
        return cls(**dict(config))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """Keras ``L1L2(l1=0.0, l2=0.0)``: ``l1 * sum(|x|) + l2 * sum(x ** 2)``.

    >>> L1L2(l1=0.5, l2=0.25)(torch.tensor([1.0, -2.0]))  # 0.5 * 3 + 0.25 * 5
    tensor(2.7500)
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _check_penalty(0.0 if l1 is None else l1, "l1")
        self.l2 = _check_penalty(0.0 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros(())
        if self.l1:
            loss = loss + self.l1 * x.abs().sum()
        if self.l2:
            loss = loss + self.l2 * x.square().sum()
        return loss

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """Keras ``L1(l1=0.01)``: ``l1 * sum(|x|)``."""

    def __init__(self, l1: float = DEFAULT_L1) -> None:
        self.l1 = _check_penalty(DEFAULT_L1 if l1 is None else l1, "l1")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * x.abs().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(Regularizer):
    """Keras ``L2(l2=0.01)``: ``l2 * sum(x ** 2)``.

    >>> L2()(torch.tensor([3.0, 4.0]))  # 0.01 * 25
    tensor(0.2500)
    """

    def __init__(self, l2: float = DEFAULT_L2) -> None:
        self.l2 = _check_penalty(DEFAULT_L2 if l2 is None else l2, "l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * x.square().sum()

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


_REGULARIZERS: dict[str, Callable[..., Regularizer]] = {
    "L1": L1,
    "l1": L1,
    "L2": L2,
    "l2": L2,
    "L1L2": L1L2,
}


def get_regularizer(
    identifier: RegularizerLike,
) -> Regularizer | Callable[[torch.Tensor], torch.Tensor] | None:
    """Resolves a Keras regularizer identifier, as ``tf.keras.regularizers.get`` does.

    Args:
        identifier: ``None``; ``"l1"``, ``"l2"`` (factor 0.01), ``"l1_l2"`` (0.01 and 0.01, the
            Keras string default), ``"L1"``, ``"L2"``, ``"L1L2"``; a Keras config dict
            ``{"class_name": "L2", "config": {"l2": 0.1}}``; a :class:`Regularizer`; or a callable
            ``fn(weight) -> scalar tensor`` (it receives Keras-layout kernels ``[in, out]``).

    Returns:
        The regularizer (``None`` for ``None``).

    Raises:
        ValueError: if the name is not a supported Keras regularizer (``OrthogonalRegularizer`` is
            not implemented).
        TypeError: if ``identifier`` is none of the above.

    >>> get_regularizer("l1_l2")
    L1L2(l1=0.01, l2=0.01)
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier == "l1_l2":  # Keras special case: the string uses l1=l2=0.01, L1L2() 0 and 0.
            return L1L2(l1=DEFAULT_L1, l2=DEFAULT_L2)
        return _regularizer_factory(identifier)()
    if isinstance(identifier, Mapping):
        class_name, config = _config_parts(identifier, "regularizer")
        if class_name == "l1_l2" and not config:
            return L1L2(l1=DEFAULT_L1, l2=DEFAULT_L2)
        return _regularizer_factory(class_name)(**config)
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret regularizer identifier {identifier!r} ({type(identifier).__name__}): "
        "pass 'l1', 'l2', 'l1_l2', a Keras config dict, a Regularizer or a callable fn(weight)."
    )


def _regularizer_factory(name: str) -> Callable[..., Regularizer]:
    if name == "l1_l2":
        return L1L2
    try:
        return _REGULARIZERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown regularizer {name!r}. Supported Keras 2 regularizers: 'l1', 'l2', 'l1_l2', "
            "'L1', 'L2', 'L1L2' (or pass a callable fn(weight) -> scalar)."
        ) from None


#: ``tf.keras.regularizers.get``.
get = get_regularizer
