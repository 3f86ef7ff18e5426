"""``Adamax``: ``tf.keras.optimizers.legacy.Adamax`` (tf_keras ``optimizers/legacy/adamax.py``) in PyTorch.

Dense gradients run TF's ``ResourceApplyAdaMax`` kernel::

    m += (g - m) * (1 - beta_1);  v = max(beta_2 * v, |g|)
    var -= lr / (1 - beta_1**t) * (m / (v + eps))

Sparse gradients (Keras's Python rule) update the touched rows only (lazy): ``m_rows = m_rows * beta_1 + g *
(1 - beta_1)``, ``v_rows = max(v_rows * beta_2, |g|)``, ``var_rows += -lr / (1 - beta_1**t) * (m_rows / (v_rows +
eps))``. ``beta_1``, ``beta_2`` and the learning rate live in float32 variables.
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
from torchrs.optim.adamax import ADAMAX_BETA_1, ADAMAX_BETA_2, ADAMAX_LEARNING_RATE
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper, legacy_epsilon

__all__ = ["Adamax", "legacy_adamax_update"]


def legacy_adamax_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    m: Tensor,
    v: Tensor,
    *,
    learning_rate: Tensor,
    beta_1: Tensor,
    beta_2: Tensor,
    epsilon: float,
    step: int,
) -> None:
    """One legacy Keras Adamax update, in place (see the module docstring).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: legacy slot ``m``.
        v: legacy slot ``v`` (the infinity norm ``u``).
        learning_rate: the (decayed) learning rate, in the parameter's dtype.
        beta_1: float32 ``beta_1`` cast to the parameter's dtype.
        beta_2: float32 ``beta_2`` cast to the parameter's dtype.
        epsilon: added to ``v``.
        step: ``t = iterations + 1``.

    >>> p, m, v = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> legacy_adamax_update(p, torch.tensor([2.0]), m, v, learning_rate=torch.tensor(0.1),
    ...                      beta_1=torch.tensor(0.9), beta_2=torch.tensor(0.999), epsilon=0.0, step=1)
    >>> p
    tensor([0.9000])
    """
    beta_1_power = torch.pow(beta_1, torch.tensor(float(step), dtype=param.dtype))
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        m_rows = m[idx] * beta_1 + values * (1 - beta_1)
        m[idx] = m_rows
        v_rows = torch.maximum(v[idx] * beta_2, torch.abs(values))
        v[idx] = v_rows
        neg_scaled_lr = -learning_rate / (1 - beta_1_power)
        param.index_add_(0, idx, neg_scaled_lr * (m_rows / (v_rows + epsilon)))
        return
    m.add_((grad - m) * (1 - beta_1))
    v.copy_(torch.maximum(beta_2 * v, torch.abs(grad)))
    param.sub_(learning_rate / (1 - beta_1_power) * (m / (v + epsilon)))


class Adamax(OptimizerV2):
    """Adamax with ``tf.keras.optimizers.legacy.Adamax``'s update rules, defaults and argument names.

    State per parameter, named after the legacy slots: ``m``, ``v``, ``step`` (``iterations``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``,
            ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: infinity-norm decay in [0, 1].
        epsilon: ``None`` or 0 mean 1e-7, as in Keras.
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adamax([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p
    Parameter containing:
    tensor([0.9000], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAMAX_LEARNING_RATE),
        beta_1: float = ADAMAX_BETA_1,
        beta_2: float = ADAMAX_BETA_2,
        epsilon: float | None = KERAS_EPSILON,
        name: str = "Adamax",
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
        check_unit_interval("beta_2", group["beta_2"], closed=True)
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "v"):
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
        legacy_adamax_update(
            param,
            grad,
            state["m"],
            state["v"],
            learning_rate=lr_t,
            beta_1=hyper(group["beta_1"], param.dtype),
            beta_2=hyper(group["beta_2"], param.dtype),
            epsilon=group["epsilon"],
            step=int(state["step"]) + 1,
        )
