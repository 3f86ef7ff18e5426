"""Keras 2 activations, as ``tf.keras.activations`` (``tf_keras``), in torch.

:func:`get` (also :func:`get_activation`) resolves every Keras 2 activation name, with TF's own numerics
where they differ from torch's: ``leaky_relu`` slope 0.2, ``hard_sigmoid`` = ``clip(0.2 x + 0.5)``,
``gelu``'s float32 ``1/sqrt(2)``, ``softplus`` thresholds and ``sigmoid`` gradient, ``selu``'s gradient
at 0.

>>> import torchrs as trs
>>> trs.activations.get("leaky_relu")(torch.tensor([-1.0, 2.0]))
tensor([-0.2000,  2.0000])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "ActivationLike",
    "gelu",
    "get",
    "get_activation",
    "hard_sigmoid",
    "leaky_relu",
    "linear",
    "selu",
    "softplus",
]

# `tf.keras.activations.get("leaky_relu")` is tf.nn.leaky_relu: default slope 0.2 (torch's is 0.01),
# stored as a float32 op attribute, so float64 inputs see float32(0.2).
LEAKY_RELU_ALPHA = 0.20000000298023224
# SELU constants of Klambauer et al. (2017), as in TF's Selu kernel (torch uses the same values).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# tf.nn.gelu (exact) is 0.5 * x * erfc(-x * c) with c = 1/sqrt(2) cast from a float32 constant, so
# float64 inputs see float32(1/sqrt(2)) (a 5e-9 relative offset from the exact GELU).
GELU_SQRT_HALF = 0.7071067690849304
# Keras 2 hard_sigmoid is clip(0.2 * x + 0.5, 0, 1) (torch's F.hardsigmoid is x / 6 + 0.5).
HARD_SIGMOID_SLOPE = 0.2
HARD_SIGMOID_OFFSET = 0.5

ActivationLike = str | Callable[[torch.Tensor], torch.Tensor] | None


def linear(x: torch.Tensor) -> torch.Tensor:
    """Keras ``linear``: the identity (what ``activation=None`` means)."""
    return x


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2 ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``."""
    return (x * HARD_SIGMOID_SLOPE + HARD_SIGMOID_OFFSET).clamp(0.0, 1.0)


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.leaky_relu`` with its default ``alpha=0.2``."""
    return F.leaky_relu(x, LEAKY_RELU_ALPHA)


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.gelu(x, approximate=False)``, the Keras 2 ``gelu``, with TF's float32 constant."""
    return 0.5 * x * torch.erfc(-x * GELU_SQRT_HALF)


class _Softplus(torch.autograd.Function):
    """TF's Softplus kernel: ``x`` above ``-t``, ``exp(x)`` below ``t``, else ``log1p(exp(x))`` with
    ``t = log(eps) + 2``; its gradient is ``sigmoid(x)`` everywhere (TF's SoftplusGrad)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        threshold = math.log(torch.finfo(x.dtype).eps) + 2.0
        exp_x = torch.exp(x)
        return torch.where(x > -threshold, x, torch.where(x < threshold, exp_x, torch.log1p(exp_x)))

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``tf.math.softplus``: ``log(1 + exp(x))`` with TF's thresholds and ``sigmoid`` gradient."""
    return _Softplus.apply(x)


def selu(x: torch.Tensor) -> torch.Tensor:
    """``tf.nn.selu``. Unlike ``torch.selu``, the gradient at exactly 0 is ``scale`` (TF's SeluGrad
    takes the linear branch there; torch takes the exponential one, ``scale * alpha``)."""
    negative = SELU_ALPHA * torch.expm1(x.clamp(max=0.0))  # clamp: no inf (nor nan grad) for x >> 0
    return SELU_SCALE * torch.where(x < 0, negative, x)


def _mish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tanh(softplus(x))


def _softsign(x: torch.Tensor) -> torch.Tensor:
    return x / (1.0 + x.abs())


# `tf.keras.activations.get(name)` names (tf_keras activations.py). gelu is exact (approximate=False).
# Softmax and log_softmax act on the last axis, as Keras' default `axis=-1`.
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "elu": F.elu,
    "exponential": torch.exp,
    "gelu": gelu,
    "hard_sigmoid": hard_sigmoid,
    "leaky_relu": leaky_relu,
    "linear": linear,
    "log_softmax": _log_softmax,
    "mish": _mish,
    "relu": torch.relu,
    "relu6": F.relu6,
    "selu": selu,
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softmax": _softmax,
    "softplus": softplus,
    "softsign": _softsign,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def get_activation(identifier: ActivationLike) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resolves a Keras activation identifier, as ``tf.keras.activations.get`` does.

    Args:
        identifier: ``None`` (linear), a Keras 2 activation name (``"relu"``, ``"swish"``,
            ``"gelu"``, ...), or any callable ``fn(x) -> Tensor`` (e.g. ``torch.tanh`` or an
            ``nn.Module``).

    Returns:
        The activation function.

    Raises:
        ValueError: if the name is not a Keras 2 activation.
        TypeError: if ``identifier`` is neither a string, ``None`` nor callable.

    >>> get_activation("hard_sigmoid")(torch.tensor([-3.0, 0.0, 1.0]))
    tensor([0.0000, 0.5000, 0.7000])
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _ACTIVATIONS[identifier]
        except KeyError:
            raise ValueError(
                f"Unknown activation function {identifier!r}. Keras 2 activations: "
                f"{', '.join(sorted(_ACTIVATIONS))} (or pass a callable)."
            ) from None
    if callable(identifier):
        return identifier
    raise TypeError(
        f"Could not interpret activation identifier {identifier!r} ({type(identifier).__name__}): "
        "pass a Keras activation name such as 'relu', None or a callable."
    )


#: ``tf.keras.activations.get``.
get = get_activation
