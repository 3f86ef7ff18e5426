"""``Ftrl``: Keras 2's ``tf.keras.optimizers.Ftrl`` (tf_keras ``optimizers/ftrl.py``) in PyTorch.

Follow The Regularized Leader (McMahan et al. 2013), the optimizer of the linear half of wide & deep models.
Keras's rule, with ``p = -learning_rate_power`` (0.5 by default) and ``l2 = l2_regularization_strength +
beta / (2 * lr)``::

    g_shrunk = g + 2 * l2_shrinkage_regularization_strength * param
    new_accumulator = accumulator + g**2
    linear += g_shrunk - (new_accumulator**p - accumulator**p) / lr * param
    quadratic = new_accumulator**p / lr + 2 * l2
    param = (clip(linear, -l1, l1) - linear) / quadratic
    accumulator = new_accumulator

A sparse gradient enters these formulas densified (Keras's ``update_step`` has no sparse branch; ``tf.pow`` of
the ``tf.IndexedSlices`` converts it), so every row is updated, as in Keras.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    KERAS_EMA_MOMENTUM,
    Grad,
    KerasOptimizer,
    SparseGrad,
    check_non_negative,
    check_number,
    keras_default,
    resolve_learning_rate,
)

#: tf_keras ``Ftrl(learning_rate=0.001)``.
FTRL_LEARNING_RATE = 0.001
#: tf_keras ``Ftrl(learning_rate_power=-0.5)``: the per-coordinate rate decays as ``1 / sqrt(accumulator)``.
FTRL_LEARNING_RATE_POWER = -0.5
#: tf_keras ``Ftrl(initial_accumulator_value=0.1)``.
FTRL_INITIAL_ACCUMULATOR_VALUE = 0.1

__all__ = [
    "FTRL_INITIAL_ACCUMULATOR_VALUE",
    "FTRL_LEARNING_RATE",
    "FTRL_LEARNING_RATE_POWER",
    "Ftrl",
    "ftrl_update",
]


def ftrl_update(
    param: Tensor,
    grad: Grad,
    accumulator: Tensor,
    linear: Tensor,
    *,
    learning_rate: float,
    learning_rate_power: float,
    l1_regularization_strength: float,
    l2_regularization_strength: float,
    l2_shrinkage_regularization_strength: float,
    beta: float,
) -> None:
    """One Keras FTRL update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, replaced in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` (densified, as in Keras).
        accumulator: Keras slot ``accumulator`` (sum of squared gradients, from ``initial_accumulator_value``).
        linear: Keras slot ``linear``.
        learning_rate: the learning rate.
        learning_rate_power: ``<= 0``; ``-0.5`` gives ``1 / sqrt`` per-coordinate rates.
        l1_regularization_strength: L1 strength (sparsity: ``|linear| <= l1`` gives a zero weight).
        l2_regularization_strength: L2 strength.
        l2_shrinkage_regularization_strength: L2 shrinkage added to the gradient.
        beta: adds ``beta / (2 * lr)`` to the L2 strength.

    >>> p, acc, lin = torch.tensor([0.0]), torch.tensor([0.0]), torch.zeros(1)
    >>> ftrl_update(p, torch.tensor([2.0]), acc, lin, learning_rate=1.0, learning_rate_power=-0.5,
    ...             l1_regularization_strength=0.0, l2_regularization_strength=0.0,
    ...             l2_shrinkage_regularization_strength=0.0, beta=0.0)
    >>> acc, lin, p  # acc = 4, linear = 2, quadratic = sqrt(4) = 2, p = -2 / 2
    (tensor([4.]), tensor([2.]), tensor([-1.]))
    """
    if isinstance(grad, SparseGrad):
        grad = torch.zeros_like(param).index_add_(0, grad.indices, grad.values)
    lr = torch.tensor(learning_rate, dtype=param.dtype)
    power = -learning_rate_power
    l2_reg = l2_regularization_strength + beta / (2.0 * lr)
    grad_to_use = grad + 2 * l2_shrinkage_regularization_strength * param
    new_accumulator = accumulator + torch.pow(grad, 2)
    linear.add_(
        grad_to_use
        - (torch.pow(new_accumulator, power) - torch.pow(accumulator, power)) / lr * param
    )
    quadratic = torch.pow(new_accumulator, power) / lr + 2 * l2_reg
    linear_clipped = torch.clamp(linear, -l1_regularization_strength, l1_regularization_strength)
    param.copy_((linear_clipped - linear) / quadratic)
    accumulator.copy_(new_accumulator)


class Ftrl(KerasOptimizer):
    """FTRL-Proximal with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), named after the Keras slots: ``accumulator`` (starts at
    ``initial_accumulator_value``), ``linear``, ``step`` (Keras's ``iterations``), ``average`` (only with
    ``use_ema``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, the FTRL strengths and ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        learning_rate_power: ``<= 0``; how the per-coordinate rate decays with the accumulator.
        initial_accumulator_value: starting value of the accumulator, >= 0.
        l1_regularization_strength: >= 0.
        l2_regularization_strength: >= 0.
        l2_shrinkage_regularization_strength: >= 0; a magnitude penalty added to the gradient.
        beta: adds ``beta / (2 * lr)`` to the L2 strength.
        weight_decay: decoupled weight decay ``p -= p * weight_decay * lr`` before the update, or ``None``.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (ignored if a norm clip is set).
        global_clipnorm: clip all gradients together to this global L2 norm.
        use_ema: keep an exponential moving average of the parameters.
        ema_momentum: weight of the old average.
        ema_overwrite_frequency: copy the averages into the parameters every this many steps.
        jit_compile: accepted for Keras compatibility, no effect.
        name: Keras name of the optimizer.
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
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Ftrl",
        *,
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
            "weight_decay": weight_decay,
        }
        super().__init__(
            params,
            defaults,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            jit_compile=jit_compile,
            name=name,
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

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        ftrl_update(
            param,
            grad,
            state["accumulator"],
            state["linear"],
            learning_rate=group["lr"],
            learning_rate_power=group["learning_rate_power"],
            l1_regularization_strength=group["l1_regularization_strength"],
            l2_regularization_strength=group["l2_regularization_strength"],
            l2_shrinkage_regularization_strength=group["l2_shrinkage_regularization_strength"],
            beta=group["beta"],
        )
