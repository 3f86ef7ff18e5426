"""``Adadelta``: ``tf.keras.optimizers.legacy.Adadelta`` (tf_keras ``optimizers/legacy/adadelta.py``) in PyTorch.

TF's ``ResourceApplyAdadelta`` kernel (and, row by row, ``ResourceSparseApplyAdadelta``, which leaves the rows
without a gradient alone)::

    accum_grad = accum_grad * rho + g**2 * (1 - rho)
    update = sqrt(accum_var + eps) * rsqrt(accum_grad + eps) * g
    var -= update * lr
    accum_var = accum_var * rho + update**2 * (1 - rho)
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
from torchrs.optim.adadelta import ADADELTA_LEARNING_RATE, ADADELTA_RHO
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper, legacy_epsilon

__all__ = ["Adadelta", "legacy_adadelta_update"]


def _adadelta_rows(
    var: Tensor,
    accum_grad: Tensor,
    accum_var: Tensor,
    grad: Tensor,
    learning_rate: Tensor,
    rho: Tensor,
    epsilon: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel's arithmetic on (rows of) the tensors; returns the new ``(var, accum_grad, accum_var)``."""
    new_accum_grad = accum_grad * rho + torch.square(grad) * (1 - rho)
    update = torch.sqrt(accum_var + epsilon) * torch.rsqrt(new_accum_grad + epsilon) * grad
    new_var = var - update * learning_rate
    new_accum_var = accum_var * rho + torch.square(update) * (1 - rho)
    return new_var, new_accum_grad, new_accum_var


def legacy_adadelta_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    accum_grad: Tensor,
    accum_var: Tensor,
    *,
    learning_rate: Tensor,
    rho: Tensor,
    epsilon: float,
) -> None:
    """One legacy Keras Adadelta update, in place (see the module docstring).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        accum_grad: legacy slot ``accum_grad``.
        accum_var: legacy slot ``accum_var``.
        learning_rate: the (decayed) learning rate, in the parameter's dtype.
        rho: float32 ``rho`` cast to the parameter's dtype.
        epsilon: added inside both square roots.

    >>> p, ag, av = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> legacy_adadelta_update(p, torch.tensor([2.0]), ag, av, learning_rate=torch.tensor(1.0),
    ...                        rho=torch.tensor(0.75), epsilon=0.01)
    >>> ag, p  # ag = 0.25 * 4 = 1; update = sqrt(0.01) / sqrt(1.01) * 2 = 0.19901
    (tensor([1.]), tensor([0.8010]))
    """
    if isinstance(grad, SparseGrad):
        idx = grad.indices
        new_var, new_ag, new_av = _adadelta_rows(
            param[idx], accum_grad[idx], accum_var[idx], grad.values, learning_rate, rho, epsilon
        )
        param[idx], accum_grad[idx], accum_var[idx] = new_var, new_ag, new_av
        return
    new_var, new_ag, new_av = _adadelta_rows(
        param, accum_grad, accum_var, grad, learning_rate, rho, epsilon
    )
    param.copy_(new_var)
    accum_grad.copy_(new_ag)
    accum_var.copy_(new_av)


class Adadelta(OptimizerV2):
    """Adadelta with ``tf.keras.optimizers.legacy.Adadelta``'s update rule, defaults and argument names.

    State per parameter, named after the legacy slots: ``accum_grad``, ``accum_var``, ``step`` (``iterations``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``rho``, ``epsilon``, ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        rho: decay rate, in [0, 1].
        epsilon: ``None`` or 0 mean 1e-7, as in Keras.
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adadelta([p], learning_rate=1.0)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> opt.state[p]["accum_grad"]  # 4 * float32(1 - 0.95)
    tensor([0.2000])
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADADELTA_LEARNING_RATE),
        rho: float = ADADELTA_RHO,
        epsilon: float | None = KERAS_EPSILON,
        name: str = "Adadelta",
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
        check_unit_interval("rho", group["rho"], closed=True)
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("accum_grad", "accum_var"):
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
        legacy_adadelta_update(
            param,
            grad,
            state["accum_grad"],
            state["accum_var"],
            learning_rate=lr_t,
            rho=hyper(group["rho"], param.dtype),
            epsilon=group["epsilon"],
        )
