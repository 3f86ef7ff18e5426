"""``Adamax``: Keras 2's ``tf.keras.optimizers.Adamax`` (tf_keras ``optimizers/adamax.py``) in PyTorch.

Keras's rule (Kingma & Ba, section 7.1), epsilon added to the infinity norm::

    m += (g - m) * (1 - beta_1)
    u = max(beta_2 * u, |g|)
    param -= lr * m / ((1 - beta_1**t) * (u + eps))

Sparse gradients decay ``m`` and ``u`` on every row, then take the touched rows' terms; every row moves (the
update is dense over ``m`` and ``u``), as in Keras.
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

#: tf_keras ``Adamax(learning_rate=0.001)``.
ADAMAX_LEARNING_RATE = 0.001
#: tf_keras ``Adamax(beta_1=0.9)``: decay of the first moment.
ADAMAX_BETA_1 = 0.9
#: tf_keras ``Adamax(beta_2=0.999)``: decay of the infinity norm.
ADAMAX_BETA_2 = 0.999

__all__ = ["ADAMAX_BETA_1", "ADAMAX_BETA_2", "ADAMAX_LEARNING_RATE", "Adamax", "adamax_update"]


def adamax_update(
    param: Tensor,
    grad: Grad,
    m: Tensor,
    u: Tensor,
    *,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
) -> None:
    """One Keras Adamax update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: Keras slot ``m`` (first moment).
        u: Keras slot ``u`` (exponentially weighted infinity norm).
        learning_rate: the learning rate.
        beta_1: first-moment decay.
        beta_2: infinity-norm decay.
        epsilon: added to ``u``.
        step: ``t = iterations + 1``.

    >>> p, m, u = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> adamax_update(p, torch.tensor([2.0]), m, u, learning_rate=0.1, beta_1=0.9, beta_2=0.999, epsilon=0.0,
    ...               step=1)
    >>> m, u, p  # m = 0.2, u = 2, p = 1 - 0.1 * 0.2 / (0.1 * 2) = 0.9
    (tensor([0.2000]), tensor([2.]), tensor([0.9000]))
    """
    dtype = param.dtype
    beta_1_power = torch.pow(
        torch.tensor(beta_1, dtype=dtype), torch.tensor(float(step), dtype=dtype)
    )
    lr = torch.tensor(learning_rate, dtype=dtype)
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        m.add_(-m * (1 - beta_1))
        m.index_add_(0, idx, values * (1 - beta_1))
        u.copy_(u * beta_2)
        u_slice = u[idx]  # (U, ...)
        u.index_add_(0, idx, torch.maximum(u_slice, torch.abs(values)) - u_slice)
    else:
        m.add_((grad - m) * (1 - beta_1))
        u.copy_(torch.maximum(beta_2 * u, torch.abs(grad)))
    param.sub_((lr * m) / ((1 - beta_1_power) * (u + epsilon)))


class Adamax(KerasOptimizer):
    """Adamax with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), named after the Keras slots: ``m``, ``u``, ``step`` (Keras's
    ``iterations``), ``average`` (only with ``use_ema``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``,
            ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: infinity-norm decay in [0, 1].
        epsilon: added to the infinity norm, >= 0.
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

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adamax([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p  # the first step moves by lr * sign(g) (up to epsilon)
    Parameter containing:
    tensor([0.9000], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAMAX_LEARNING_RATE),
        beta_1: float = ADAMAX_BETA_1,
        beta_2: float = ADAMAX_BETA_2,
        epsilon: float = KERAS_EPSILON,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Adamax",
        *,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "beta_1": beta_1,
            "beta_2": beta_2,
            "epsilon": epsilon,
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
        check_unit_interval("beta_1", group["beta_1"])
        check_unit_interval("beta_2", group["beta_2"], closed=True)
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "u"):
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        adamax_update(
            param,
            grad,
            state["m"],
            state["u"],
            learning_rate=group["lr"],
            beta_1=group["beta_1"],
            beta_2=group["beta_2"],
            epsilon=group["epsilon"],
            step=step,
        )
