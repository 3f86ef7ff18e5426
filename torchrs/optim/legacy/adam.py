"""``Adam``: ``tf.keras.optimizers.legacy.Adam`` (tf_keras ``optimizers/legacy/adam.py``) in PyTorch.

Dense gradients run TF's ``ResourceApplyAdam`` / ``ResourceApplyAdamWithAmsgrad`` kernels, the same "epsilon hat"
rule as :class:`torchrs.optim.Adam`, computed in the parameter's dtype from the float32 hyperparameter variables::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    param -= (m * alpha) / (sqrt(v) + eps)             # amsgrad: vhat = max(vhat, v), sqrt(vhat)

Sparse gradients are NOT lazy in legacy Keras either (``_resource_apply_sparse`` reads, in Python)::

    m = m * beta_1;  m[rows] += g * (1 - beta_1)        # every row decays, the rows present get their gradient
    v = v * beta_2;  v[rows] += g**2 * (1 - beta_2)
    param -= lr * (sqrt(1 - beta_2**t) / (1 - beta_1**t)) * m / (sqrt(v) + eps)   # every row moves

which is the dense rule with a zero gradient on the missing rows, in another floating-point order (``m * beta_1``
rather than ``m - m * (1 - beta_1)``); this class follows each order. ``torch.optim.SparseAdam`` (lazy) is a
different algorithm.
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
from torchrs.optim.adam import ADAM_BETA_1, ADAM_BETA_2, ADAM_LEARNING_RATE
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper, legacy_epsilon

__all__ = ["Adam", "legacy_adam_update"]


def legacy_adam_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    m: Tensor,
    v: Tensor,
    vhat: Tensor | None,
    *,
    learning_rate: float | Tensor,
    beta_1: float | Tensor,
    beta_2: float | Tensor,
    epsilon: float,
    step: int,
) -> None:
    """One legacy Keras Adam update, in place (see the module docstring for both rules).

    Coefficients are cast to the parameter's dtype, as the TF kernels receive them.

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: legacy slot ``m`` (first moment), in place.
        v: legacy slot ``v`` (second moment), in place.
        vhat: legacy slot ``vhat`` (running max of ``v``) for AMSGrad, else ``None``.
        learning_rate: the learning rate (already decayed).
        beta_1: first-moment decay.
        beta_2: second-moment decay.
        epsilon: "epsilon hat", added to ``sqrt(v)``.
        step: ``t = iterations + 1``.

    >>> p, m, v = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> legacy_adam_update(p, torch.tensor([2.0]), m, v, None, learning_rate=0.1, beta_1=0.9,
    ...                    beta_2=0.999, epsilon=1e-7, step=1)
    >>> m, p  # m = 0.2, v = 0.004, p = 1 - 0.1 * sqrt(0.001) / 0.1 * 0.2 / (sqrt(0.004) + 1e-7) = 0.9
    (tensor([0.2000]), tensor([0.9000]))
    """
    dtype = param.dtype
    lr_t = torch.as_tensor(learning_rate, dtype=dtype)  # ()
    beta_1_t = torch.as_tensor(beta_1, dtype=dtype)  # ()
    beta_2_t = torch.as_tensor(beta_2, dtype=dtype)  # ()
    epsilon_t = torch.as_tensor(epsilon, dtype=dtype)  # ()
    local_step = torch.tensor(float(step), dtype=dtype)  # ()
    beta_1_power = torch.pow(beta_1_t, local_step)  # ()
    beta_2_power = torch.pow(beta_2_t, local_step)  # ()
    if isinstance(grad, SparseGrad):
        lr = lr_t * (torch.sqrt(1 - beta_2_power) / (1 - beta_1_power))  # ()
        m.copy_(m * beta_1_t)
        m.index_add_(0, grad.indices, grad.values * (1 - beta_1_t))
        v.copy_(v * beta_2_t)
        v.index_add_(0, grad.indices, (grad.values * grad.values) * (1 - beta_2_t))
        if vhat is not None:
            vhat.copy_(torch.maximum(vhat, v))
            v = vhat
        param.sub_(lr * m / (torch.sqrt(v) + epsilon_t))
    else:
        alpha = lr_t * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)  # ()
        m.add_((grad - m) * (1 - beta_1_t))
        v.add_((torch.square(grad) - v) * (1 - beta_2_t))
        if vhat is not None:
            vhat.copy_(torch.maximum(vhat, v))
            v = vhat
        param.sub_((m * alpha) / (torch.sqrt(v) + epsilon_t))


class Adam(OptimizerV2):
    """Adam with ``tf.keras.optimizers.legacy.Adam``'s update rules, defaults and argument names.

    State per parameter (``optimizer.state[p]``), and the Keras variable each one is filled from:

    * ``m``, ``v``: legacy slots ``<var>/.OPTIMIZER_SLOT/optimizer/m`` and ``.../v``, zeros at start;
    * ``vhat`` (only with ``amsgrad``): legacy slot ``.../vhat``;
    * ``step``: int64 scalar, Keras's ``optimizer.iterations`` (``optimizer/iter`` in checkpoints); the bias
      correction uses ``t = step + 1``.

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``,
            ``amsgrad``, ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        epsilon: "epsilon hat", added to ``sqrt(v)``; ``None`` or 0 mean 1e-7, as in Keras (``epsilon or 1e-7``).
        amsgrad: keep the running maximum of ``v`` (slot ``vhat``) and divide by its square root.
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
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
        epsilon: float | None = KERAS_EPSILON,
        amsgrad: bool = False,
        name: str = "Adam",
        *,
        decay: float = LEGACY_DECAY,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "beta_1": beta_1,
            "beta_2": beta_2,
            "epsilon": epsilon,
            "amsgrad": bool(amsgrad),
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
        check_unit_interval("beta_1", group["beta_1"])
        check_unit_interval("beta_2", group["beta_2"])
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "v") + (("vhat",) if group["amsgrad"] else ()):
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
        legacy_adam_update(
            param,
            grad,
            state["m"],
            state["v"],
            state["vhat"] if group["amsgrad"] else None,
            learning_rate=lr_t,
            beta_1=hyper(group["beta_1"], param.dtype),
            beta_2=hyper(group["beta_2"], param.dtype),
            epsilon=group["epsilon"],
            step=int(state["step"]) + 1,
        )
