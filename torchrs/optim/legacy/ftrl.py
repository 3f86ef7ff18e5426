"""``Ftrl``: ``tf.keras.optimizers.legacy.Ftrl`` (tf_keras ``optimizers/legacy/ftrl.py``) in PyTorch.

TF's ``ResourceApplyFtrl`` / ``ResourceApplyFtrlV2`` kernels (V2 when ``l2_shrinkage_regularization_strength >
0``), with ``l2 = l2_regularization_strength + beta / (2 * lr)`` and ``p = -learning_rate_power``::

    g_shrunk = g + 2 * l2_shrinkage * var                      # V2 only; the accumulator uses g
    new_accum = accum + g**2
    linear += g_shrunk - (new_accum**p - accum**p) / lr * var   # sqrt when p = 0.5
    var = (l1 * sign(linear) - linear) / (new_accum**p / lr + 2 * l2)  if |linear| > l1  else 0
    accum = new_accum

The sparse kernels (``ResourceSparseApplyFtrl(V2)``) run the same arithmetic on the touched rows only (clipping
``linear`` to ``[-l1, l1]``, which gives the same values). Hyperparameters live in float32 variables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    SparseGrad,
    check_non_negative,
    check_number,
    keras_default,
    resolve_learning_rate,
)
from torchrs.optim.ftrl import (
    FTRL_INITIAL_ACCUMULATOR_VALUE,
    FTRL_LEARNING_RATE,
    FTRL_LEARNING_RATE_POWER,
)
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper

__all__ = ["Ftrl", "legacy_ftrl_update"]


def _power(x: Tensor, power: Tensor) -> Tensor:
    # The kernels special-case lr_power == -0.5 with sqrt.
    return torch.sqrt(x) if float(power) == 0.5 else torch.pow(x, power)


def _ftrl_rows(
    var: Tensor,
    accum: Tensor,
    linear: Tensor,
    grad: Tensor,
    *,
    lr: Tensor,
    l1: Tensor,
    l2: Tensor,
    l2_shrinkage: Tensor | None,
    power: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel's arithmetic on (rows of) the tensors; returns the new ``(var, accum, linear)``."""
    grad_to_use = grad if l2_shrinkage is None else grad + 2 * l2_shrinkage * var
    new_accum = accum + grad * grad
    new_linear = linear + (
        grad_to_use - (_power(new_accum, power) - _power(accum, power)) / lr * var
    )
    x = l1 * torch.sign(new_linear) - new_linear
    y = _power(new_accum, power) / lr + 2 * l2
    new_var = torch.where(new_linear.abs() > l1, x / y, torch.zeros_like(var))
    return new_var, new_accum, new_linear


def legacy_ftrl_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    accumulator: Tensor,
    linear: Tensor,
    *,
    learning_rate: Tensor,
    learning_rate_power: Tensor,
    l1: Tensor,
    l2: Tensor,
    beta: Tensor,
    l2_shrinkage: float,
) -> None:
    """One legacy Keras FTRL update, in place (see the module docstring).

    Args:
        param: the parameter, replaced in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        accumulator: legacy slot ``accumulator``.
        linear: legacy slot ``linear``.
        learning_rate: the (decayed) learning rate, in the parameter's dtype.
        learning_rate_power: float32 ``learning_rate_power`` cast to the parameter's dtype.
        l1: float32 L1 strength cast to the parameter's dtype.
        l2: float32 L2 strength cast to the parameter's dtype.
        beta: float32 ``beta`` cast to the parameter's dtype.
        l2_shrinkage: the L2 shrinkage strength (> 0 selects the V2 kernel).

    >>> p, acc, lin = torch.tensor([0.0]), torch.tensor([0.0]), torch.zeros(1)
    >>> z = torch.tensor(0.0)
    >>> legacy_ftrl_update(p, torch.tensor([2.0]), acc, lin, learning_rate=torch.tensor(1.0),
    ...                    learning_rate_power=torch.tensor(-0.5), l1=z, l2=z, beta=z, l2_shrinkage=0.0)
    >>> acc, lin, p
    (tensor([4.]), tensor([2.]), tensor([-1.]))
    """
    adjusted_l2 = l2 + beta / (2.0 * learning_rate)
    shrinkage = torch.tensor(l2_shrinkage, dtype=param.dtype) if l2_shrinkage > 0.0 else None
    if isinstance(grad, SparseGrad):
        idx = grad.indices
        new_var, new_accum, new_linear = _ftrl_rows(
            param[idx],
            accumulator[idx],
            linear[idx],
            grad.values,
            lr=learning_rate,
            l1=l1,
            l2=adjusted_l2,
            l2_shrinkage=shrinkage,
            power=-learning_rate_power,
        )
        param[idx], accumulator[idx], linear[idx] = new_var, new_accum, new_linear
        return
    new_var, new_accum, new_linear = _ftrl_rows(
        param,
        accumulator,
        linear,
        grad,
        lr=learning_rate,
        l1=l1,
        l2=adjusted_l2,
        l2_shrinkage=shrinkage,
        power=-learning_rate_power,
    )
    param.copy_(new_var)
    accumulator.copy_(new_accum)
    linear.copy_(new_linear)


class Ftrl(OptimizerV2):
    """FTRL-Proximal with ``tf.keras.optimizers.legacy.Ftrl``'s kernels, defaults and argument names.

    State per parameter, named after the legacy slots: ``accumulator`` (starts at
    ``initial_accumulator_value``), ``linear``, ``step`` (``iterations``).

    Args:
        params: parameters or parameter groups.
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        learning_rate_power: ``<= 0``.
        initial_accumulator_value: ``>= 0``.
        l1_regularization_strength: ``>= 0``.
        l2_regularization_strength: ``>= 0``.
        name: Keras name of the optimizer.
        l2_shrinkage_regularization_strength: ``>= 0``; ``> 0`` uses TF's V2 kernels.
        beta: adds ``beta / (2 * lr)`` to the L2 strength.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([0.0]))
    >>> opt = Ftrl([p], learning_rate=1.0, initial_accumulator_value=0.0)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p
    Parameter containing:
    tensor([-1.], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(FTRL_LEARNING_RATE),
        learning_rate_power: float = FTRL_LEARNING_RATE_POWER,
        initial_accumulator_value: float = FTRL_INITIAL_ACCUMULATOR_VALUE,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        name: str = "Ftrl",
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        *,
        decay: float = LEGACY_DECAY,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "learning_rate_power": learning_rate_power,
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
            "beta": beta,
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
        if check_number("learning_rate_power", group["learning_rate_power"]) > 0:
            raise ValueError(
                "`learning_rate_power` needs to be negative or zero "
                f"(got {group['learning_rate_power']!r}); Keras's default is {FTRL_LEARNING_RATE_POWER}."
            )
        for key in (
            "initial_accumulator_value",
            "l1_regularization_strength",
            "l2_regularization_strength",
            "l2_shrinkage_regularization_strength",
        ):
            check_non_negative(key, group[key])
        check_number("beta", group["beta"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "accumulator" not in state:
            state["accumulator"] = torch.full_like(
                param, group["initial_accumulator_value"], memory_format=torch.preserve_format
            )
        if "linear" not in state:
            state["linear"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _apply(
        self,
        param: Tensor,
        grad: Tensor | SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        legacy_ftrl_update(
            param,
            grad,
            state["accumulator"],
            state["linear"],
            learning_rate=lr_t,
            learning_rate_power=hyper(group["learning_rate_power"], param.dtype),
            l1=hyper(group["l1_regularization_strength"], param.dtype),
            l2=hyper(group["l2_regularization_strength"], param.dtype),
            beta=hyper(group["beta"], param.dtype),
            l2_shrinkage=group["l2_shrinkage_regularization_strength"],
        )
