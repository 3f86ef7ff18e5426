"""``SGD``: ``tf.keras.optimizers.legacy.SGD`` (tf_keras ``optimizers/legacy/gradient_descent.py``) in PyTorch.

Dense gradients follow TF's ``ResourceApplyKerasMomentum`` (the same rule as :class:`torchrs.optim.SGD`)::

    m = m * momentum - g * lr
    param += m                                   # nesterov: param += m * momentum - g * lr

Sparse gradients (``nn.Embedding(sparse=True)``) are where the two differ. The legacy optimizer sums the repeated
rows and runs ``ResourceSparseApplyKerasMomentum``, which is LAZY: only the rows present in the gradient update
their velocity and move; every other row keeps its velocity, undecayed, and stays where it is. The tf_keras 2.x
``SGD`` decays every row's velocity and moves every row. With ``momentum == 0`` there is no slot at all (Keras
creates it only when ``momentum > 0``): dense ``param -= g * lr``, and sparse rows are scatter-added as
``-g * lr`` one lookup at a time, without summing the repeats first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    SparseGrad,
    check_unit_interval,
    keras_default,
    resolve_learning_rate,
)
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, hyper
from torchrs.optim.sgd import SGD_LEARNING_RATE

__all__ = ["SGD", "legacy_sgd_update"]


def legacy_sgd_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    velocity: Tensor | None,
    *,
    learning_rate: float | Tensor,
    momentum: float | Tensor,
    nesterov: bool,
) -> None:
    """One legacy Keras SGD update, in place (see the module docstring for the rule).

    Coefficients are cast to the parameter's dtype, as the TF kernel receives them.

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad`: with ``velocity``, its indices
            must be unique (only those rows change); without, repeated rows are added one after the other.
        velocity: legacy slot ``momentum`` (same shape as ``param``), updated in place; ``None`` for plain
            gradient descent (Keras's ``momentum == 0``).
        learning_rate: step size (already decayed).
        momentum: velocity decay (unused without ``velocity``).
        nesterov: ``param += m * momentum - g * lr`` instead of ``param += m``.

    >>> p, m = torch.tensor([[1.0], [1.0]]), torch.tensor([[-0.1], [-0.1]])
    >>> g = SparseGrad(torch.tensor([0]), torch.tensor([[1.0]]))
    >>> legacy_sgd_update(p, g, m, learning_rate=0.1, momentum=0.9, nesterov=False)
    >>> m.flatten(), p.flatten()  # row 0: m = 0.9 * -0.1 - 0.1 = -0.19; row 1 untouched (lazy)
    (tensor([-0.1900, -0.1000]), tensor([0.8100, 1.0000]))
    """
    lr_t = torch.as_tensor(learning_rate, dtype=param.dtype)  # ()
    if velocity is None:
        if isinstance(grad, SparseGrad):  # ResourceScatterAdd of -g * lr, one row at a time
            param.index_add_(0, grad.indices, -grad.values * lr_t)
        else:  # ResourceApplyGradientDescent
            param.sub_(grad * lr_t)
        return
    momentum_t = torch.as_tensor(momentum, dtype=param.dtype)  # ()
    if isinstance(grad, SparseGrad):
        rows = velocity.index_select(0, grad.indices) * momentum_t - grad.values * lr_t  # (K, ...)
        velocity.index_copy_(0, grad.indices, rows)
        step = rows * momentum_t - grad.values * lr_t if nesterov else rows  # (K, ...)
        param.index_add_(0, grad.indices, step)
    else:
        velocity.copy_(velocity * momentum_t - grad * lr_t)
        param.add_(velocity * momentum_t - grad * lr_t if nesterov else velocity)


class SGD(OptimizerV2):
    """Gradient descent with ``tf.keras.optimizers.legacy.SGD``'s rule (lazy sparse momentum), defaults and names.

    State per parameter (``optimizer.state[p]``), and the Keras variable each one is filled from:

    * ``momentum`` (only when the group's ``momentum > 0``): legacy slot
      ``<var>/.OPTIMIZER_SLOT/optimizer/momentum``, the velocity ``m * momentum - g * lr``;
    * ``step``: int64 scalar, Keras's ``optimizer.iterations`` (``optimizer/iter`` in checkpoints).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``momentum``, ``nesterov``, ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        momentum: velocity decay in [0, 1]; 0 is plain gradient descent without a slot.
        nesterov: use Nesterov momentum.
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD([p], learning_rate=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     p.grad = torch.tensor([1.0])
    ...     opt.step()
    >>> p  # steps of 0.1, then 0.9 * 0.1 + 0.1 = 0.19
    Parameter containing:
    tensor([0.7100], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(SGD_LEARNING_RATE),
        momentum: float = 0.0,
        nesterov: bool = False,
        name: str = "SGD",
        *,
        decay: float = LEGACY_DECAY,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "momentum": momentum,
            "nesterov": bool(nesterov),
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
        check_unit_interval("momentum", group["momentum"], closed=True)

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["momentum"] > 0 and "momentum" not in state:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _apply(
        self,
        param: Tensor,
        grad: Tensor | SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        """One SGD step on dense or sparse rows: the same update, as in Keras."""
        velocity = state["momentum"] if group["momentum"] > 0 else None
        legacy_sgd_update(
            param,
            grad,
            velocity,
            learning_rate=lr_t,
            momentum=hyper(group["momentum"], param.dtype),
            nesterov=group["nesterov"],
        )

    def _apply_sparse_duplicate_indices(
        self,
        param: Tensor,
        grad: SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        if group["momentum"] > 0:  # lazy momentum on the summed rows
            super()._apply_sparse_duplicate_indices(param, grad, state, group, lr_t)
        else:  # plain scatter-add of every lookup's row, repeats included
            self._apply(param, grad, state, group, lr_t)
