"""``RMSprop``: Keras 2's ``tf.keras.optimizers.RMSprop`` (tf_keras ``optimizers/rmsprop.py``) in PyTorch.

Keras's rule, with epsilon *inside* the inverse square root (``torch.optim.RMSprop`` adds it outside)::

    velocity = rho * velocity + (1 - rho) * g**2
    average_gradient = rho * average_gradient + (1 - rho) * g          # centered only
    denominator = velocity (- average_gradient**2) + eps
    increment = lr * g * rsqrt(denominator)
    momentum = momentum_coef * momentum + increment; param -= momentum # momentum > 0
    param -= increment                                                 # otherwise

Sparse gradients (``tf.IndexedSlices``) decay ``velocity`` (and ``average_gradient``, ``momentum``) on every row,
then add the touched rows' terms; without momentum only the touched rows move, with momentum every row does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    KERAS_EMA_MOMENTUM,
    KERAS_EPSILON,
    Grad,
    KerasOptimizer,
    SparseGrad,
    check_non_negative,
    check_unit_interval,
    keras_default,
    resolve_learning_rate,
)

#: tf_keras ``RMSprop(learning_rate=0.001)``.
RMSPROP_LEARNING_RATE = 0.001
#: tf_keras ``RMSprop(rho=0.9)``: decay of the squared-gradient average.
RMSPROP_RHO = 0.9
#: tf_keras ``RMSprop(ema_overwrite_frequency=100)``: unlike the other optimizers, RMSprop's default is not None.
RMSPROP_EMA_OVERWRITE_FREQUENCY = 100

__all__ = ["RMSPROP_LEARNING_RATE", "RMSPROP_RHO", "RMSprop", "rmsprop_update"]


def rmsprop_update(
    param: Tensor,
    grad: Grad,
    velocity: Tensor,
    momentum: Tensor | None,
    average_gradient: Tensor | None,
    *,
    learning_rate: float,
    rho: float,
    momentum_coef: float,
    epsilon: float,
) -> None:
    """One Keras RMSprop update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        velocity: Keras slot ``velocity`` (running mean of ``g**2``).
        momentum: Keras slot ``momentum`` when ``momentum_coef > 0``, else ``None``.
        average_gradient: Keras slot ``average_gradient`` when centered, else ``None``.
        learning_rate: the learning rate.
        rho: decay of the running means.
        momentum_coef: the ``momentum`` hyperparameter.
        epsilon: added to the denominator inside the inverse square root.

    >>> p, vel = torch.tensor([1.0]), torch.zeros(1)
    >>> rmsprop_update(p, torch.tensor([2.0]), vel, None, None, learning_rate=0.1, rho=0.9, momentum_coef=0.0,
    ...                epsilon=0.0)
    >>> vel, p  # velocity = 0.1 * 4 = 0.4; p = 1 - 0.1 * 2 / sqrt(0.4) = 0.68377
    (tensor([0.4000]), tensor([0.6838]))
    """
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        velocity.copy_(rho * velocity)
        velocity.index_add_(0, idx, torch.square(values) * (1 - rho))
        if average_gradient is not None:
            average_gradient.copy_(rho * average_gradient)
            average_gradient.index_add_(0, idx, values * (1 - rho))
            denominator = velocity - torch.square(average_gradient) + epsilon
        else:
            denominator = velocity + epsilon
        increment = learning_rate * values * torch.rsqrt(denominator[idx])  # (U, ...)
        if momentum is not None:
            momentum.copy_(momentum_coef * momentum)
            momentum.index_add_(0, idx, increment)
            param.add_(-momentum)
        else:
            param.index_add_(0, idx, -increment)
        return
    velocity.copy_(rho * velocity + (1 - rho) * torch.square(grad))
    if average_gradient is not None:
        average_gradient.copy_(rho * average_gradient + (1 - rho) * grad)
        denominator = velocity - torch.square(average_gradient) + epsilon
    else:
        denominator = velocity + epsilon
    increment = learning_rate * grad * torch.rsqrt(denominator)
    if momentum is not None:
        momentum.copy_(momentum_coef * momentum + increment)
        param.add_(-momentum)
    else:
        param.add_(-increment)


class RMSprop(KerasOptimizer):
    """RMSprop with Keras 2's update rule, defaults and argument names (Keras's default ``compile`` optimizer).

    State per parameter (``optimizer.state[p]``), named after the Keras slots a converter fills them from:
    ``velocity``; ``momentum`` (only with ``momentum > 0``); ``average_gradient`` (only when ``centered``);
    ``step`` (Keras's ``iterations``); ``average`` (only with ``use_ema``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``rho``, ``momentum``, ``epsilon``,
            ``centered``, ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        rho: decay of the running means, in [0, 1].
        momentum: momentum coefficient, >= 0 (0: no momentum slot).
        epsilon: added to the denominator inside the inverse square root, >= 0.
        centered: divide by the estimated variance (``velocity - average_gradient**2``) instead.
        weight_decay: decoupled weight decay ``p -= p * weight_decay * lr`` before the update, or ``None``.
        clipnorm: clip each gradient to this L2 norm.
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (ignored if a norm clip is set).
        global_clipnorm: clip all gradients together to this global L2 norm.
        use_ema: keep an exponential moving average of the parameters.
        ema_momentum: weight of the old average.
        ema_overwrite_frequency: copy the averages into the parameters every this many steps (Keras: 100).
        jit_compile: accepted for Keras compatibility, no effect.
        name: Keras name of the optimizer.
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = RMSprop([p], learning_rate=0.01)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p  # 1 - 0.01 * 2 / sqrt(0.1 * 4 + 1e-7)
    Parameter containing:
    tensor([0.9684], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(RMSPROP_LEARNING_RATE),
        rho: float = RMSPROP_RHO,
        momentum: float = 0.0,
        epsilon: float = KERAS_EPSILON,
        centered: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = RMSPROP_EMA_OVERWRITE_FREQUENCY,
        jit_compile: bool = True,
        name: str = "RMSprop",
        *,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "rho": rho,
            "momentum": momentum,
            "epsilon": epsilon,
            "centered": bool(centered),
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
        check_unit_interval("rho", group["rho"], closed=True)
        check_non_negative("momentum", group["momentum"])
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        keys = ["velocity"]
        if group["momentum"] > 0:
            keys.append("momentum")
        if group["centered"]:
            keys.append("average_gradient")
        for key in keys:
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        rmsprop_update(
            param,
            grad,
            state["velocity"],
            state["momentum"] if group["momentum"] > 0 else None,
            state["average_gradient"] if group["centered"] else None,
            learning_rate=group["lr"],
            rho=group["rho"],
            momentum_coef=group["momentum"],
            epsilon=group["epsilon"],
        )
