"""``RMSprop``: ``tf.keras.optimizers.legacy.RMSprop`` (tf_keras ``optimizers/legacy/rmsprop.py``) in PyTorch.

Two rules, as Keras picks them:

* ``momentum > 0``: TF's ``ResourceApplyRMSProp`` / ``ResourceApplyCenteredRMSProp`` kernels, epsilon *inside*
  the square root: ``ms += (g**2 - ms) * (1 - rho)``; (centered: ``mg += (g - mg) * (1 - rho)``,
  ``denominator = ms - mg**2 + eps``); ``mom = momentum * mom + lr * g / sqrt(denominator)``; ``var -= mom``.
  Their sparse kernels update the touched rows only (lazy), ``ms = ms * rho + g**2 * (1 - rho)`` per row;
* no momentum: Keras's Python rule, epsilon *outside* the square root: ``rms = rho * rms + (1 - rho) * g**2``;
  (centered: ``mg = rho * mg + (1 - rho) * g``, ``denominator = rms - mg**2``); ``var -= lr * g /
  (sqrt(denominator) + eps)``. A sparse gradient decays ``rms`` (and ``mg``) on every row, adds the touched rows'
  terms, and moves the touched rows only.

``rho`` and ``momentum`` live in float32 variables (so ``1 - rho`` is computed in float32, as in Keras).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    KERAS_EPSILON,
    SparseGrad,
    check_unit_interval,
    keras_default,
    resolve_learning_rate,
)
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper, legacy_epsilon
from torchrs.optim.rmsprop import RMSPROP_LEARNING_RATE, RMSPROP_RHO

__all__ = ["RMSprop", "legacy_rmsprop_update"]


def legacy_rmsprop_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    rms: Tensor,
    momentum: Tensor | None,
    mg: Tensor | None,
    *,
    learning_rate: Tensor,
    rho: Tensor,
    momentum_coef: Tensor,
    epsilon: float,
) -> None:
    """One legacy Keras RMSprop update, in place (see the module docstring for the two rules).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        rms: legacy slot ``rms``.
        momentum: legacy slot ``momentum`` when ``momentum > 0`` (the kernel rule), else ``None``.
        mg: legacy slot ``mg`` when centered, else ``None``.
        learning_rate: the (decayed) learning rate, in the parameter's dtype.
        rho: float32 ``rho`` cast to the parameter's dtype.
        momentum_coef: float32 ``momentum`` cast to the parameter's dtype.
        epsilon: the epsilon.

    >>> p, rms = torch.tensor([1.0]), torch.zeros(1)
    >>> legacy_rmsprop_update(p, torch.tensor([2.0]), rms, None, None, learning_rate=torch.tensor(0.1),
    ...                       rho=torch.tensor(0.9), momentum_coef=torch.tensor(0.0), epsilon=0.0)
    >>> p  # rms = 0.4; p = 1 - 0.1 * 2 / sqrt(0.4)
    tensor([0.6838])
    """
    one_minus_rho = 1 - rho
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        if momentum is not None:  # ResourceSparseApply(Centered)RMSProp: touched rows only
            ms_rows = rms[idx] * rho + torch.square(values) * one_minus_rho
            rms[idx] = ms_rows
            if mg is not None:
                mg_rows = mg[idx] * rho + values * one_minus_rho
                mg[idx] = mg_rows
                denominator = ms_rows + epsilon - torch.square(mg_rows)
            else:
                denominator = ms_rows + epsilon
            mom_rows = (
                momentum[idx] * momentum_coef + torch.rsqrt(denominator) * learning_rate * values
            )
            momentum[idx] = mom_rows
            param[idx] = param[idx] - mom_rows
            return
        rms.copy_(rms * rho)
        rms.index_add_(0, idx, (values * values) * one_minus_rho)
        denominator_rows = rms[idx]
        if mg is not None:
            mg.copy_(mg * rho)
            mg.index_add_(0, idx, values * one_minus_rho)
            denominator_rows = denominator_rows - torch.square(mg[idx])
        param.index_add_(0, idx, -learning_rate * values / (torch.sqrt(denominator_rows) + epsilon))
        return
    if momentum is not None:  # ResourceApply(Centered)RMSProp
        rms.add_((torch.square(grad) - rms) * one_minus_rho)
        if mg is not None:
            mg.add_((grad - mg) * one_minus_rho)
            denominator = (rms - torch.square(mg)) + epsilon
        else:
            denominator = rms + epsilon
        momentum.copy_(momentum * momentum_coef + (grad * learning_rate) / torch.sqrt(denominator))
        param.sub_(momentum)
        return
    rms.copy_(rho * rms + one_minus_rho * torch.square(grad))
    denominator = rms
    if mg is not None:
        mg.copy_(rho * mg + one_minus_rho * grad)
        denominator = rms - torch.square(mg)
    param.copy_(param - learning_rate * grad / (torch.sqrt(denominator) + epsilon))


class RMSprop(OptimizerV2):
    """RMSprop with ``tf.keras.optimizers.legacy.RMSprop``'s update rules, defaults and argument names.

    State per parameter, named after the legacy slots (``<var>/.OPTIMIZER_SLOT/optimizer/<slot>``): ``rms``;
    ``momentum`` (only with ``momentum > 0``); ``mg`` (only when ``centered``); ``step`` (``iterations``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``rho``, ``momentum``, ``epsilon``,
            ``centered``, ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        rho: discounting factor, in [0, 1].
        momentum: momentum coefficient in [0, 1] (0: no momentum slot, Keras's Python rule).
        epsilon: ``None`` or 0 mean 1e-7, as in Keras (``epsilon or 1e-7``).
        centered: normalise by the estimated variance of the gradient.
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = RMSprop([p], learning_rate=0.01)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p  # 1 - 0.01 * 2 / (sqrt(0.1 * 4) + 1e-7)
    Parameter containing:
    tensor([0.9684], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(RMSPROP_LEARNING_RATE),
        rho: float = RMSPROP_RHO,
        momentum: float = 0.0,
        epsilon: float | None = KERAS_EPSILON,
        centered: bool = False,
        name: str = "RMSprop",
        *,
        decay: float = LEGACY_DECAY,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "rho": rho,
            "momentum": momentum,
            "epsilon": epsilon,
            "centered": bool(centered),
            "decay": decay,
        }
        super().__init__(
            params,
            defaults,
            name=name,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
        )

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_unit_interval("rho", group["rho"], closed=True)
        check_unit_interval("momentum", group["momentum"], closed=True)
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        keys = ["rms"]
        if group["momentum"] > 0:
            keys.append("momentum")
        if group["centered"]:
            keys.append("mg")
        for key in keys:
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _apply(
        self,
        param: Tensor,
        grad: Tensor | SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        legacy_rmsprop_update(
            param,
            grad,
            state["rms"],
            state["momentum"] if group["momentum"] > 0 else None,
            state["mg"] if group["centered"] else None,
            learning_rate=lr_t,
            rho=hyper(group["rho"], param.dtype),
            momentum_coef=hyper(group["momentum"], param.dtype),
            epsilon=group["epsilon"],
        )
