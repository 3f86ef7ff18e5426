"""``Adadelta``: Keras 2's ``tf.keras.optimizers.Adadelta`` (tf_keras ``optimizers/adadelta.py``) in PyTorch.

Keras's rule (Zeiler 2012, with a learning rate; ``rms(x) = sqrt(x + eps)``)::

    accumulated_grad = rho * accumulated_grad + (1 - rho) * g * g
    delta = -rms(accumulated_delta_var) * g / rms(accumulated_grad)
    accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * delta * delta
    param += lr * delta

Sparse gradients decay ``accumulated_grad`` on every row (``+= (rho - 1) * accumulated_grad``) and add the
touched rows' ``(1 - rho) * g**2``; the rest uses the gradient densified (Keras multiplies the
``tf.IndexedSlices`` by a tensor, which converts it), so ``accumulated_delta_var`` decays on every row.
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

#: tf_keras ``Adadelta(learning_rate=0.001)``.
ADADELTA_LEARNING_RATE = 0.001
#: tf_keras ``Adadelta(rho=0.95)``: decay of both running averages.
ADADELTA_RHO = 0.95

__all__ = ["ADADELTA_LEARNING_RATE", "ADADELTA_RHO", "Adadelta", "adadelta_update"]


def adadelta_update(
    param: Tensor,
    grad: Grad,
    accumulated_grad: Tensor,
    accumulated_delta_var: Tensor,
    *,
    learning_rate: float,
    rho: float,
    epsilon: float,
) -> None:
    """One Keras Adadelta update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        accumulated_grad: Keras slot ``accumulated_grad``.
        accumulated_delta_var: Keras slot ``accumulated_delta_var``.
        learning_rate: the learning rate.
        rho: decay of the running averages.
        epsilon: added inside both square roots.

    >>> p, ag, ad = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> adadelta_update(p, torch.tensor([2.0]), ag, ad, learning_rate=1.0, rho=0.75, epsilon=0.01)
    >>> ag, p  # ag = 0.25 * 4 = 1; delta = -sqrt(0.01) * 2 / sqrt(1.01) = -0.19901
    (tensor([1.]), tensor([0.8010]))
    """
    lr = torch.tensor(learning_rate, dtype=param.dtype)
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        accumulated_grad.add_((rho - 1) * accumulated_grad)
        accumulated_grad.index_add_(0, idx, (1 - rho) * torch.square(values))
        dense = torch.zeros_like(param).index_add_(
            0, idx, values
        )  # Keras densifies the IndexedSlices
        delta = (
            -torch.sqrt(accumulated_delta_var + epsilon)
            * dense
            / torch.sqrt(accumulated_grad + epsilon)
        )
    else:
        accumulated_grad.copy_(rho * accumulated_grad + (1 - rho) * grad * grad)
        delta = (
            -torch.sqrt(accumulated_delta_var + epsilon)
            * grad
            / torch.sqrt(accumulated_grad + epsilon)
        )
    accumulated_delta_var.copy_(rho * accumulated_delta_var + (1 - rho) * delta * delta)
    param.add_(lr * delta)


class Adadelta(KerasOptimizer):
    """Adadelta with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``), named after the Keras slots: ``accumulated_grad``,
    ``accumulated_delta_var``, ``step`` (Keras's ``iterations``), ``average`` (only with ``use_ema``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``rho``, ``epsilon``, ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        rho: decay of the running averages, in [0, 1].
        epsilon: added inside the square roots, >= 0.
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
    >>> opt = Adadelta([p], learning_rate=1.0)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> opt.state[p]["accumulated_grad"]  # (1 - 0.95) * 4
    tensor([0.2000])
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADADELTA_LEARNING_RATE),
        rho: float = ADADELTA_RHO,
        epsilon: float = KERAS_EPSILON,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Adadelta",
        *,
        lr: float | None = None,
    ) -> None:
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "rho": rho,
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
        check_unit_interval("rho", group["rho"], closed=True)
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("accumulated_grad", "accumulated_delta_var"):
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        adadelta_update(
            param,
            grad,
            state["accumulated_grad"],
            state["accumulated_delta_var"],
            learning_rate=group["lr"],
            rho=group["rho"],
            epsilon=group["epsilon"],
        )
