"""``Adagrad``: Keras 2's ``tf.keras.optimizers.Adagrad`` (tf_keras ``optimizers/adagrad.py``) in PyTorch.

Keras's rule differs from ``torch.optim.Adagrad`` in two places, both of which change the trajectory:

* the accumulator starts at ``initial_accumulator_value = 0.1`` (torch: 0);
* epsilon is inside the square root: ``v -= lr * g / sqrt(acc + eps)`` (torch: ``sqrt(acc) + eps``, eps 1e-10).

Sparse gradients (``nn.Embedding(sparse=True)``) update only the rows they touch, after summing repeated rows; the
result equals the dense update of the same gradient (untouched rows have a zero gradient and do not move).
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
    keras_default,
    resolve_learning_rate,
)

#: tf_keras ``Adagrad(learning_rate=0.001)``: Keras's default (torch's is 0.01).
ADAGRAD_LEARNING_RATE = 0.001
#: tf_keras ``Adagrad(initial_accumulator_value=0.1)``: the accumulator's starting value (torch's is 0).
ADAGRAD_INITIAL_ACCUMULATOR_VALUE = 0.1

__all__ = [
    "ADAGRAD_INITIAL_ACCUMULATOR_VALUE",
    "ADAGRAD_LEARNING_RATE",
    "Adagrad",
    "adagrad_update",
]


def adagrad_update(
    param: Tensor, grad: Grad, accumulator: Tensor, *, learning_rate: float, epsilon: float
) -> None:
    """One Keras Adagrad update, in place: ``acc += g**2; param -= lr * g / sqrt(acc + eps)``.

    Args:
        param: the parameter, updated in place.
        grad: its dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        accumulator: the Keras ``accumulator`` slot (same shape as ``param``), updated in place.
        learning_rate: step size.
        epsilon: added to the accumulator inside the square root.

    >>> p, acc = torch.tensor([1.0]), torch.tensor([0.1])
    >>> adagrad_update(p, torch.tensor([1.0]), acc, learning_rate=0.1, epsilon=1e-7)
    >>> acc, p  # acc = 0.1 + 1 = 1.1; p = 1 - 0.1 / sqrt(1.1 + 1e-7) = 0.904654...
    (tensor([1.1000]), tensor([0.9047]))
    """
    if isinstance(grad, SparseGrad):
        accumulator.index_add_(0, grad.indices, grad.values * grad.values)
        denominator = torch.sqrt(accumulator.index_select(0, grad.indices) + epsilon)  # (K, ...)
        param.index_add_(0, grad.indices, -learning_rate * grad.values / denominator)
    else:
        accumulator.add_(grad * grad)
        param.sub_(learning_rate * grad / torch.sqrt(accumulator + epsilon))


class Adagrad(KerasOptimizer):
    """Adagrad with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), and the Keras variable each one is filled from:

    * ``accumulator``: Keras slot ``accumulator/<var>`` (``optimizer._accumulators[i]``), starts at
      ``initial_accumulator_value``;
    * ``step``: int64 scalar, Keras's ``optimizer.iterations`` (``iter`` in checkpoints);
    * ``average`` (only with ``use_ema``): Keras slot ``average/<var>``.

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``initial_accumulator_value``, ``epsilon``,
            ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        initial_accumulator_value: starting value of the accumulator, >= 0.
        epsilon: added to the accumulator inside the square root, >= 0 (Keras accepts 0).
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
    >>> opt = Adagrad([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([1.0])
    >>> opt.step()
    >>> p  # 1 - 0.1 * 1 / sqrt(0.1 + 1 + 1e-7)
    Parameter containing:
    tensor([0.9047], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAGRAD_LEARNING_RATE),
        initial_accumulator_value: float = ADAGRAD_INITIAL_ACCUMULATOR_VALUE,
        epsilon: float = KERAS_EPSILON,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Adagrad",
        *,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "initial_accumulator_value": initial_accumulator_value,
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
        check_non_negative("initial_accumulator_value", group["initial_accumulator_value"])
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "accumulator" not in state:
            state["accumulator"] = torch.full_like(
                param, group["initial_accumulator_value"], memory_format=torch.preserve_format
            )

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        adagrad_update(
            param, grad, state["accumulator"], learning_rate=group["lr"], epsilon=group["epsilon"]
        )
