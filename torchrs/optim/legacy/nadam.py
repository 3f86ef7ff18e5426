"""``Nadam``: ``tf.keras.optimizers.legacy.Nadam`` (tf_keras ``optimizers/legacy/nadam.py``) in PyTorch.

Keras's legacy rule: the momentum schedule ``m_t = beta_1 * (1 - 0.5 * 0.96**(schedule_decay * t))`` (its
``decay`` is the schedule's, ``schedule_decay=0.004``, and does NOT decay the learning rate), the running product
``momentum_cache`` (one for the optimizer, advanced once per step), then::

    g' = g / (1 - m_schedule_t);  m = beta_1 * m + (1 - beta_1) * g;  m' = m / (1 - m_schedule_t * m_{t+1})
    v = beta_2 * v + (1 - beta_2) * g**2;  v' = v / (1 - beta_2**t)
    var -= lr * ((1 - m_t) * g' + m_{t+1} * m') / (sqrt(v') + eps)

A sparse gradient decays ``m`` and ``v`` on every row, adds the touched rows' terms, and moves the touched rows
only.
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
    check_unit_interval,
    keras_default,
    resolve_learning_rate,
)
from torchrs.optim.legacy.optimizer_v2 import OptimizerV2, hyper, legacy_epsilon
from torchrs.optim.nadam import (
    NADAM_BETA_1,
    NADAM_BETA_2,
    NADAM_LEARNING_RATE,
    NADAM_MOMENTUM_DECAY,
)

#: ``tf.keras.optimizers.legacy.Nadam(schedule_decay=0.004)``: exponent scale of the momentum schedule.
NADAM_SCHEDULE_DECAY = 0.004

__all__ = ["NADAM_SCHEDULE_DECAY", "Nadam", "legacy_nadam_momentum", "legacy_nadam_update"]


def legacy_nadam_momentum(
    beta_1: Tensor, schedule_decay: float, step: int, dtype: torch.dtype
) -> Tensor:
    """``m_t = beta_1 * (1 - 0.5 * 0.96**(schedule_decay * t))`` in ``dtype``, as legacy Keras computes it.

    >>> round(legacy_nadam_momentum(torch.tensor(0.9), 0.004, 1, torch.float32).item(), 6)
    0.450073
    """
    exponent = schedule_decay * torch.tensor(float(step), dtype=dtype)
    return beta_1 * (
        1.0 - 0.5 * torch.pow(torch.tensor(NADAM_MOMENTUM_DECAY, dtype=dtype), exponent)
    )


def legacy_nadam_update(
    param: Tensor,
    grad: Tensor | SparseGrad,
    m: Tensor,
    v: Tensor,
    m_schedule_new: Tensor,
    *,
    learning_rate: Tensor,
    beta_1: Tensor,
    beta_2: Tensor,
    epsilon: float,
    schedule_decay: float,
    step: int,
) -> None:
    """One legacy Keras Nadam update, in place (see the module docstring).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        m: legacy slot ``m``.
        v: legacy slot ``v``.
        m_schedule_new: the momentum cache after this step's factor (``m_1 * ... * m_t``).
        learning_rate: the learning rate (not decayed), in the parameter's dtype.
        beta_1: float32 ``beta_1`` cast to the parameter's dtype.
        beta_2: float32 ``beta_2`` cast to the parameter's dtype.
        epsilon: added to ``sqrt(v')``.
        schedule_decay: exponent scale of the momentum schedule.
        step: ``t = iterations + 1``.
    """
    dtype = param.dtype
    m_t = legacy_nadam_momentum(beta_1, schedule_decay, step, dtype)
    m_t_1 = legacy_nadam_momentum(beta_1, schedule_decay, step + 1, dtype)
    m_schedule_next = m_schedule_new * m_t_1
    v_t_prime_denominator = 1.0 - torch.pow(beta_2, torch.tensor(float(step), dtype=dtype))
    values = grad.values if isinstance(grad, SparseGrad) else grad
    g_prime = values / (1.0 - m_schedule_new)
    if isinstance(grad, SparseGrad):
        idx = grad.indices  # (U,)
        m.copy_(m * beta_1)
        m.index_add_(0, idx, values * (1 - beta_1))
        m_t_prime = m[idx] / (1.0 - m_schedule_next)
        m_t_bar = (1.0 - m_t) * g_prime + m_t_1 * m_t_prime
        v.copy_(v * beta_2)
        v.index_add_(0, idx, (values * values) * (1 - beta_2))
        v_t_prime = v[idx] / v_t_prime_denominator
        param.index_add_(0, idx, -learning_rate * m_t_bar / (torch.sqrt(v_t_prime) + epsilon))
        return
    m.copy_(beta_1 * m + (1 - beta_1) * grad)
    m_t_prime = m / (1.0 - m_schedule_next)
    v.copy_(beta_2 * v + (1 - beta_2) * torch.square(grad))
    v_t_prime = v / v_t_prime_denominator
    m_t_bar = (1.0 - m_t) * g_prime + m_t_1 * m_t_prime
    param.copy_(param - learning_rate * m_t_bar / (torch.sqrt(v_t_prime) + epsilon))


class Nadam(OptimizerV2):
    """Nadam with ``tf.keras.optimizers.legacy.Nadam``'s update rule, defaults and argument names.

    State per parameter: ``m`` and ``v`` (legacy slots), ``momentum_cache`` (Keras's optimizer-wide
    ``momentum_cache`` weight, the same value in every parameter's state) and ``step`` (``iterations``).

    Args:
        params: parameters or parameter groups (per-group ``lr``, ``beta_1``, ``beta_2``, ``epsilon``, and
            ``decay``, which holds the schedule decay as in Keras's config).
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        epsilon: ``None`` or 0 mean 1e-7, as in Keras.
        name: Keras name of the optimizer.
        schedule_decay: exponent scale of the momentum schedule (Keras stores it as ``decay``).
        clipnorm: clip each gradient to this L2 norm (after ``clipvalue``).
        clipvalue: clip gradients element-wise to ``[-clipvalue, clipvalue]`` (first).
        global_clipnorm: clip all gradients together to this global L2 norm (last).
        lr: torch's alias of ``learning_rate``.

    >>> p = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Nadam([p], learning_rate=0.1)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> round(opt.state[p]["momentum_cache"].item(), 6)
    0.450073
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(NADAM_LEARNING_RATE),
        beta_1: float = NADAM_BETA_1,
        beta_2: float = NADAM_BETA_2,
        epsilon: float | None = KERAS_EPSILON,
        name: str = "Nadam",
        *,
        schedule_decay: float = NADAM_SCHEDULE_DECAY,
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
            "decay": check_non_negative("schedule_decay", schedule_decay),
        }
        super().__init__(
            params,
            defaults,
            name=name,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
        )
        self._cache_step: int | None = None

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_unit_interval("beta_1", group["beta_1"])
        check_unit_interval("beta_2", group["beta_2"])
        group["epsilon"] = legacy_epsilon(group["epsilon"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        for key in ("m", "v"):
            if key not in state:
                state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if "momentum_cache" not in state:
            state["momentum_cache"] = torch.ones((), dtype=param.dtype, device=param.device)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.load_state_dict``; the loaded ``momentum_cache`` is the product so far."""
        super().load_state_dict(state_dict)
        self._cache_step = None

    def _momentum_cache(self, param: Tensor, group: dict[str, Any], step: int) -> Tensor:
        """Keras's ``momentum_cache *= m_t``, once per step; every parameter's state keeps the same value."""
        if self._cache_step != step:
            cache = self.state[param]["momentum_cache"]
            m_t = legacy_nadam_momentum(
                hyper(group["beta_1"], cache.dtype), group["decay"], step, cache.dtype
            )
            new = cache * m_t
            for g in self.param_groups:
                for q in g["params"]:
                    if "momentum_cache" in self.state[q]:
                        self.state[q]["momentum_cache"].copy_(new)
            self._cache_step = step
        return self.state[param]["momentum_cache"]

    def _apply(
        self,
        param: Tensor,
        grad: Tensor | SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        step = int(state["step"]) + 1
        legacy_nadam_update(
            param,
            grad,
            state["m"],
            state["v"],
            self._momentum_cache(param, group, step).to(param.dtype),
            learning_rate=hyper(group["lr"], param.dtype),  # Keras's legacy Nadam never decays lr
            beta_1=hyper(group["beta_1"], param.dtype),
            beta_2=hyper(group["beta_2"], param.dtype),
            epsilon=group["epsilon"],
            schedule_decay=group["decay"],
            step=step,
        )
