"""``Adagrad``: ``tf.keras.optimizers.legacy.Adagrad`` (tf_keras ``optimizers/legacy/adagrad.py``) in PyTorch.

The legacy optimizer runs TF's ``ResourceApplyAdagradV2`` kernel, which puts epsilon OUTSIDE the square root::

    acc += g**2
    param -= lr * g / (sqrt(acc) + eps)

where :class:`torchrs.optim.Adagrad` (the tf_keras 2.x optimizer) divides by ``sqrt(acc + eps)``. With the default
``initial_accumulator_value=0.1`` the two stay within ~1e-7 of each other; from ``initial_accumulator_value=0`` or
with a large epsilon they part (a first step of ``g = 1e-4`` at lr 1 moves 0.999 here, 0.30 there).

Sparse gradients (``nn.Embedding(sparse=True)``) go through ``ResourceSparseApplyAdagradV2`` after the repeated rows
are summed: only the rows present are touched, which is also what the dense rule does with a zero gradient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    KERAS_EPSILON,
    SparseGrad,
    check_non_negative,
    keras_default,
    resolve_learning_rate,
)
from torchrs.optim.adagrad import ADAGRAD_INITIAL_ACCUMULATOR_VALUE, ADAGRAD_LEARNING_RATE
from torchrs.optim.legacy.optimizer_v2 import LEGACY_DECAY, OptimizerV2, legacy_epsilon

__all__ = ["Adagrad", "legacy_adagrad_update"]


def legacy_adagrad_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    accumulator: Tensor,
    *,
    learning_rate: float | Tensor,
    epsilon: float,
) -> None:
    """One legacy Keras Adagrad update, in place: ``acc += g**2; param -= lr * g / (sqrt(acc) + eps)``.

    Coefficients are cast to the parameter's dtype, as the TF kernel receives them.

    Args:
        param: the parameter, updated in place.
        grad: its dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices (only those
            rows of ``param`` and ``accumulator`` change).
        accumulator: the Keras ``accumulator`` slot (same shape as ``param``), updated in place.
        learning_rate: step size (already decayed).
        epsilon: added to ``sqrt(acc)``.

    >>> p, acc = torch.tensor([1.0]), torch.tensor([0.0])
    >>> legacy_adagrad_update(p, torch.tensor([1e-4]), acc, learning_rate=1.0, epsilon=1e-7)
    >>> p  # 1 - 1e-4 / (sqrt(1e-8) + 1e-7) = 1 - 0.999001
    tensor([0.0010])
    """
    lr_t = torch.as_tensor(learning_rate, dtype=param.dtype)  # ()
    epsilon_t = torch.as_tensor(epsilon, dtype=param.dtype)  # ()
    if isinstance(grad, SparseGrad):
        rows = accumulator.index_select(0, grad.indices) + grad.values * grad.values  # (K, ...)
        accumulator.index_copy_(0, grad.indices, rows)
        param.index_add_(0, grad.indices, -(lr_t * grad.values / (torch.sqrt(rows) + epsilon_t)))
    else:
        accumulator.add_(torch.square(grad))
        param.sub_(grad * lr_t / (torch.sqrt(accumulator) + epsilon_t))


class Adagrad(OptimizerV2):
    """Adagrad with ``tf.keras.optimizers.legacy.Adagrad``'s update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), and the Keras variable each one is filled from:

    * ``accumulator``: legacy slot ``<var>/.OPTIMIZER_SLOT/optimizer/accumulator``, starts at
      ``initial_accumulator_value``;
    * ``step``: int64 scalar, Keras's ``optimizer.iterations`` (``optimizer/iter`` in checkpoints).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``initial_accumulator_value``, ``epsilon``,
            ``decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        initial_accumulator_value: starting value of the accumulator, >= 0.
        epsilon: added to ``sqrt(accumulator)``; ``None`` or 0 mean 1e-7, as in Keras (``epsilon or 1e-7``).
        name: Keras name of the optimizer.
        decay: inverse-time decay, ``lr / (1 + decay * iterations)``.
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adagrad([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([1.0])
    >>> opt.step()
    >>> p  # 1 - 0.1 * 1 / (sqrt(0.1 + 1) + 1e-7)
    Parameter containing:
    tensor([0.9047], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAGRAD_LEARNING_RATE),
        initial_accumulator_value: float = ADAGRAD_INITIAL_ACCUMULATOR_VALUE,
        epsilon: float | None = KERAS_EPSILON,
        name: str = "Adagrad",
        *,
        decay: float = LEGACY_DECAY,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "initial_accumulator_value": initial_accumulator_value,
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
        check_non_negative("initial_accumulator_value", group["initial_accumulator_value"])
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "accumulator" not in state:
            state["accumulator"] = torch.full_like(
                param, group["initial_accumulator_value"], memory_format=torch.preserve_format
            )

    def _apply(
        self,
        param: Tensor,
        grad: Tensor | SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        legacy_adagrad_update(
            param, grad, state["accumulator"], learning_rate=lr_t, epsilon=group["epsilon"]
        )
