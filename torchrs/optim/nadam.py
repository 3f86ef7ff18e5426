"""``Nadam``: Keras 2's ``tf.keras.optimizers.Nadam`` (tf_keras ``optimizers/nadam.py``) in PyTorch.

Keras's rule (Dozat's Nesterov Adam with the momentum schedule ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``)::

    u_product_t = u_product_{t-1} * u_t           # one running product for the whole optimizer, starts at 1
    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    m_hat = u_{t+1} * m / (1 - u_product_t * u_{t+1}) + (1 - u_t) * g / (1 - u_product_t)
    param -= m_hat * lr / (sqrt(v / (1 - beta_2**t)) + eps)

``beta_1`` and ``beta_2`` are cast to the parameter's dtype before ``1 - beta`` (float32 ``1 - 0.9`` is
0.100000024), unlike Adam's Python-float ``1 - beta``; this class does the same.

Sparse gradients decay ``m`` and ``v`` on every row, then add the touched rows' terms; ``m_hat`` uses the gradient
densified (Keras multiplies the ``tf.IndexedSlices`` by a tensor, which converts it), so every row moves.

Keras keeps the running product in a Python counter plus a variable; eagerly (``apply_gradients`` outside
``tf.function``) it advances once per step, which is what this class does. Inside a traced ``tf.function``
(``model.fit``) Keras's Python counter is frozen at trace time and the product can advance once per *variable*
instead; that tracing artefact is not reproduced.
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

#: tf_keras ``Nadam(learning_rate=0.001)``.
NADAM_LEARNING_RATE = 0.001
#: tf_keras ``Nadam(beta_1=0.9)``: decay of the first moment.
NADAM_BETA_1 = 0.9
#: tf_keras ``Nadam(beta_2=0.999)``: decay of the second moment.
NADAM_BETA_2 = 0.999
#: tf_keras Nadam's ``decay = 0.96``: base of the momentum schedule ``u_t = beta_1 * (1 - 0.5 * 0.96**t)``.
NADAM_MOMENTUM_DECAY = 0.96

__all__ = [
    "NADAM_BETA_1",
    "NADAM_BETA_2",
    "NADAM_LEARNING_RATE",
    "NADAM_MOMENTUM_DECAY",
    "Nadam",
    "nadam_momentum",
    "nadam_update",
]


def nadam_momentum(beta_1: float, step: int, dtype: torch.dtype) -> Tensor:
    """``u_t = beta_1 * (1 - 0.5 * 0.96**t)`` in ``dtype``, as Keras computes it.

    >>> nadam_momentum(0.9, 1, torch.float64).item()  # 0.9 * (1 - 0.48)
    0.468
    """
    decay = torch.tensor(NADAM_MOMENTUM_DECAY, dtype=dtype)
    return torch.tensor(beta_1, dtype=dtype) * (
        1.0 - 0.5 * torch.pow(decay, torch.tensor(float(step), dtype=dtype))
    )


def nadam_update(
    param: Tensor,
    grad: Grad,
    m: Tensor,
    v: Tensor,
    u_product_t: Tensor,
    *,
    learning_rate: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
) -> None:
    """One Keras Nadam update, in place (see the module docstring for the rule).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: Keras slot ``m`` (first moment).
        v: Keras slot ``v`` (second moment).
        u_product_t: 0-d product of the momentum schedule ``u_1 * ... * u_t`` (this step's included).
        learning_rate: the learning rate.
        beta_1: first-moment decay.
        beta_2: second-moment decay.
        epsilon: added to ``sqrt(v_hat)``.
        step: ``t = iterations + 1``.

    >>> p, m, v = torch.tensor([1.0]), torch.zeros(1), torch.zeros(1)
    >>> nadam_update(p, torch.tensor([2.0]), m, v, nadam_momentum(0.9, 1, torch.float32), learning_rate=0.1,
    ...              beta_1=0.9, beta_2=0.999, epsilon=0.0, step=1)
    >>> m, p  # u_2 = 0.48528; m_hat = 0.48528 * 0.2 / (1 - 0.468 * 0.48528) + 2 = 2.12558; v_hat = 4
    (tensor([0.2000]), tensor([0.8937]))
    """
    dtype = param.dtype
    lr = torch.tensor(learning_rate, dtype=dtype)
    beta_1_t = torch.tensor(beta_1, dtype=dtype)
    beta_2_t = torch.tensor(beta_2, dtype=dtype)
    u_t = nadam_momentum(beta_1, step, dtype)
    u_t_1 = nadam_momentum(beta_1, step + 1, dtype)
    u_product_t = u_product_t.to(dtype)
    u_product_t_1 = u_product_t * u_t_1
    beta_2_power = torch.pow(beta_2_t, torch.tensor(float(step), dtype=dtype))
    if isinstance(grad, SparseGrad):
        idx, values = grad.indices, grad.values  # (U,), (U, ...)
        m.add_(-m * (1 - beta_1_t))
        m.index_add_(0, idx, values * (1 - beta_1_t))
        v.add_(-v * (1 - beta_2_t))
        v.index_add_(0, idx, torch.square(values) * (1 - beta_2_t))
        dense = torch.zeros_like(param).index_add_(
            0, idx, values
        )  # Keras densifies the IndexedSlices
    else:
        dense = grad
        m.add_((grad - m) * (1 - beta_1_t))
        v.add_((torch.square(grad) - v) * (1 - beta_2_t))
    m_hat = u_t_1 * m / (1 - u_product_t_1) + (1 - u_t) * dense / (1 - u_product_t)
    v_hat = v / (1 - beta_2_power)
    param.sub_((m_hat * lr) / (torch.sqrt(v_hat) + epsilon))


class Nadam(KerasOptimizer):
    """Nadam with Keras 2's update rule, defaults and argument names.

    State per parameter (``optimizer.state[p]``): ``m`` and ``v`` (Keras slots ``m`` / ``v``), ``u_product``
    (Keras's optimizer-wide ``_u_product`` variable, the same value in every parameter's state), ``step``
    (Keras's ``iterations``), ``average`` (only with ``use_ema``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``,
            ``weight_decay``).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        epsilon: added to ``sqrt(v_hat)``, >= 0.
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
    >>> opt = Nadam([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> opt.state[p]["u_product"]
    tensor(0.4680)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(NADAM_LEARNING_RATE),
        beta_1: float = NADAM_BETA_1,
        beta_2: float = NADAM_BETA_2,
        epsilon: float = KERAS_EPSILON,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "Nadam",
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
        self._u_product_step: int | None = None

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_unit_interval("beta_1", group["beta_1"])
        check_unit_interval("beta_2", group["beta_2"])
        check_non_negative("epsilon", group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "v"):
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if "u_product" not in state:
            state["u_product"] = torch.ones((), dtype=param.dtype, device=param.device)

    def _advance_u_product(self, param: Tensor, step: int) -> Tensor:
        """Keras's optimizer-wide ``_u_product *= u_t``, once per step whichever parameters have gradients;
        every parameter's state keeps the same value (so a state dict carries it)."""
        if self._u_product_step != step:
            new = self.state[param]["u_product"] * nadam_momentum(
                self.param_groups[0]["beta_1"], step, self.state[param]["u_product"].dtype
            )
            for group in self.param_groups:
                for q in group["params"]:
                    self.state[q]["u_product"].copy_(new)
            self._u_product_step = step
        return self.state[param]["u_product"]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.load_state_dict``; the loaded ``u_product`` is the product so far."""
        super().load_state_dict(state_dict)
        self._u_product_step = None

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        nadam_update(
            param,
            grad,
            state["m"],
            state["v"],
            self._advance_u_product(param, step),
            learning_rate=group["lr"],
            beta_1=group["beta_1"],
            beta_2=group["beta_2"],
            epsilon=group["epsilon"],
            step=step,
        )
