"""``Adam``: Keras 2's ``tf.keras.optimizers.Adam`` (tf_keras ``optimizers/adam.py``) in PyTorch.

Keras folds both bias corrections into the step size and adds epsilon to the *uncorrected* ``sqrt(v)``
("epsilon hat" of Kingma & Ba, just before their section 2.1)::

    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    param -= alpha * m / (sqrt(v) + eps)              # amsgrad: vhat = max(vhat, v), sqrt(vhat)

``torch.optim.Adam`` divides by ``sqrt(v / (1 - beta_2**t)) + eps`` instead: the same up to epsilon, which
Keras effectively scales by ``1 / sqrt(1 - beta_2**t)`` (x31.6 at the first step), and torch's default eps is 1e-8.

Sparse gradients (``tf.IndexedSlices``) are NOT lazy in Keras 2: ``m`` and ``v`` decay on every row and every row
moves (``m -= m * (1 - beta_1)``, then the touched rows get ``g * (1 - beta_1)`` added). That is the dense update
with zero gradient on the untouched rows; only the floating-point operation order differs, and this class
follows Keras's order for each case. ``torch.optim.SparseAdam`` (lazy) is a different algorithm.
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

#: tf_keras ``Adam(learning_rate=0.001)``.
ADAM_LEARNING_RATE = 0.001
#: tf_keras ``Adam(beta_1=0.9)``: decay of the first moment.
ADAM_BETA_1 = 0.9
#: tf_keras ``Adam(beta_2=0.999)``: decay of the second moment.
ADAM_BETA_2 = 0.999

__all__ = [
    "ADAM_BETA_1",
    "ADAM_BETA_2",
    "ADAM_LEARNING_RATE",
    "Adam",
    "adam_step_size",
    "adam_update",
]


def adam_step_size(
    learning_rate: float, beta_1: float, beta_2: float, step: int, dtype: torch.dtype
) -> Tensor:
    """Keras's ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``, computed in ``dtype`` as TF does.

    Keras casts ``lr``, ``t`` and the betas to the variable's dtype (float32) before ``tf.pow``; in float32
    ``1 - 0.999**1`` is 0.00099998713, not 0.001, a 1e-5 relative difference that doubles would not reproduce.

    Args:
        learning_rate: the learning rate.
        beta_1: first-moment decay.
        beta_2: second-moment decay.
        step: ``t = iterations + 1``.
        dtype: the parameter's dtype.

    Returns:
        A 0-d tensor.

    >>> adam_step_size(0.001, 0.9, 0.999, 1, torch.float64)  # 0.001 * sqrt(0.001) / 0.1
    tensor(0.0003, dtype=torch.float64)
    """
    t = torch.tensor(float(step), dtype=dtype)
    beta_1_power = torch.pow(torch.tensor(beta_1, dtype=dtype), t)
    beta_2_power = torch.pow(torch.tensor(beta_2, dtype=dtype), t)
    return (
        torch.tensor(learning_rate, dtype=dtype) * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    )


def adam_update(
    param: Tensor,
    grad: Grad,
    m: Tensor,
    v: Tensor,
    vhat: Tensor | None,
    *,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
    adaptive_epsilon: bool = False,
) -> None:
    """One Keras Adam update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: Keras slot ``m`` (first moment), in place.
        v: Keras slot ``v`` (second moment), in place.
        vhat: Keras slot ``vhat`` (running max of ``v``) for AMSGrad, else ``None``.
        learning_rate: the learning rate.
        beta_1: first-moment decay.
        beta_2: second-moment decay.
        epsilon: Keras's "epsilon hat", added to ``sqrt(v)``.
        step: ``t = iterations + 1``.
        adaptive_epsilon: use ``epsilon * sqrt(1 - beta_2**t)`` (Algorithm 1's epsilon) instead.

    >>> p, m, v = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> adam_update(p, torch.tensor([2.0]), m, v, None, learning_rate=0.1, beta_1=0.9, beta_2=0.999,
    ...             epsilon=1e-7, step=1)
    >>> m, p  # m = 0.2, v = 0.004, p = 1 - 0.1 * sqrt(0.001) / 0.1 * 0.2 / (sqrt(0.004) + 1e-7) = 0.9
    (tensor([0.2000]), tensor([0.9000]))
    """
    alpha = adam_step_size(learning_rate, beta_1, beta_2, step, param.dtype)  # ()
    if adaptive_epsilon:
        t = torch.tensor(float(step), dtype=param.dtype)
        beta_2_power = torch.pow(torch.tensor(beta_2, dtype=param.dtype), t)
        epsilon_hat: Tensor | float = epsilon * torch.sqrt(1 - beta_2_power)
    else:
        epsilon_hat = epsilon
    if isinstance(grad, SparseGrad):
        m.add_(-m * (1 - beta_1))
        m.index_add_(0, grad.indices, grad.values * (1 - beta_1))
        v.add_(-v * (1 - beta_2))
        v.index_add_(0, grad.indices, torch.square(grad.values) * (1 - beta_2))
    else:
        m.add_((grad - m) * (1 - beta_1))
        v.add_((torch.square(grad) - v) * (1 - beta_2))
    if vhat is not None:
        torch.maximum(vhat, v, out=vhat)
        v = vhat
    param.sub_((m * alpha) / (torch.sqrt(v) + epsilon_hat))


class Adam(KerasOptimizer):
    """Adam with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), and the Keras variable each one is filled from:

    * ``m``: Keras slot ``m/<var>`` (``optimizer._momentums[i]``), zeros at start;
    * ``v``: Keras slot ``v/<var>`` (``optimizer._velocities[i]``), zeros at start;
    * ``vhat`` (only with ``amsgrad``): Keras slot ``vhat/<var>`` (``optimizer._velocity_hats[i]``);
    * ``step``: int64 scalar, Keras's ``optimizer.iterations`` (``iter`` in checkpoints); the bias correction
      uses ``t = step + 1``, shared by all parameters as in Keras (not a per-parameter count);
    * ``average`` (only with ``use_ema``): Keras slot ``average/<var>``.

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``,
            ``adaptive_epsilon``, ``amsgrad``, ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        epsilon: "epsilon hat", added to ``sqrt(v)``, >= 0 (Keras accepts 0).
        adaptive_epsilon: use ``epsilon * sqrt(1 - beta_2**t)`` instead (new in tf_keras 2.16+).
        amsgrad: keep the running maximum of ``v`` (slot ``vhat``) and divide by its square root.
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
    >>> opt = Adam([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p  # the first Adam step moves by lr * sign(g) (up to epsilon)
    Parameter containing:
    tensor([0.9000], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAM_LEARNING_RATE),
        beta_1: float = ADAM_BETA_1,
        beta_2: float = ADAM_BETA_2,
        epsilon: float = KERAS_EPSILON,
        adaptive_epsilon: bool = False,
        amsgrad: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Adam",
        *,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "beta_1": beta_1,
            "beta_2": beta_2,
            "epsilon": epsilon,
            "adaptive_epsilon": bool(adaptive_epsilon),
            "amsgrad": bool(amsgrad),
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
        check_unit_interval("beta_2", group["beta_2"])
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "v") + (("vhat",) if group["amsgrad"] else ()):
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        adam_update(
            param,
            grad,
            state["m"],
            state["v"],
            state["vhat"] if group["amsgrad"] else None,
            learning_rate=group["lr"],
            beta_1=group["beta_1"],
            beta_2=group["beta_2"],
            epsilon=group["epsilon"],
            step=step,
            adaptive_epsilon=group["adaptive_epsilon"],
        )
