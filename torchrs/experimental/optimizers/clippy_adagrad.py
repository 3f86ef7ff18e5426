"""``ClippyAdagrad``: ``tfrs.experimental.optimizers.ClippyAdagrad`` (Adagrad with adaptive clipping) in PyTorch.

Reference: Tang et al., "Improving Training Stability for Multitask Ranking Models in Recommender Systems"
(https://arxiv.org/abs/2302.09178). Per parameter and step, TFRS 0.7.7 computes::

    precondition = rsqrt(acc + eps)                  # acc BEFORE this step's gradient, unless
                                                     # use_standard_accumulator_update (then acc += g**2 first)
    delta = lr * g * precondition
    scale = min(1, min_i (|w_i| * variable_relative_threshold
                          + precondition_i * accumulator_relative_threshold + absolute_threshold) / |delta_i|)
    w -= delta * scale
    acc += (g * scale if clip_accumulator_update else g) ** 2     # the delayed update (default)

``scale`` is ONE scalar per parameter tensor (per embedding table, not per row); with a sparse gradient only the
touched rows take part, which gives the same scalar as the dense gradient (untouched rows have ``delta = 0``).
The Keras 2 optimizer machinery around the rule (clipnorm, weight decay, EMA, ``iterations``) is
:class:`torchrs.optim._keras.KerasOptimizer`'s, as ``ClippyAdagrad`` subclasses ``tf.keras.optimizers.Optimizer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
from torchrs.optim.adagrad import ADAGRAD_INITIAL_ACCUMULATOR_VALUE, ADAGRAD_LEARNING_RATE

#: TFRS ``ClippyAdagrad(variable_relative_threshold=0.1)``: a step may change |w| by at most 10% (plus the rest).
CLIPPY_VARIABLE_RELATIVE_THRESHOLD = 0.1
#: TFRS ``ClippyAdagrad(accumulator_relative_threshold=0.0)``: no bound relative to ``rsqrt(acc)`` by default.
CLIPPY_ACCUMULATOR_RELATIVE_THRESHOLD = 0.0
#: TFRS ``ClippyAdagrad(absolute_threshold=1e-7)``: lets a zero weight move a little.
CLIPPY_ABSOLUTE_THRESHOLD = 1e-7

__all__ = ["ClippyAdagrad", "clippy_adagrad_update", "shrink_by_references"]


def shrink_by_references(
    tensor: Tensor,
    references: Sequence[Tensor],
    relative_factors: Sequence[float],
    absolute_factor: float,
) -> tuple[Tensor, Tensor]:
    """Scales ``tensor`` by the largest ``0 <= s <= 1`` with ``s * |tensor_i| <= sum_j |ref_j,i| * f_j + a``.

    Args:
        tensor: the tensor to shrink.
        references: tensors broadcastable to ``tensor``.
        relative_factors: one non-negative factor per reference.
        absolute_factor: non-negative constant added to the bound.

    Returns:
        ``(tensor * scale, scale)``; ``scale`` is a 0-d tensor in [0, 1] (1 when ``tensor`` is all zeros).

    Raises:
        ValueError: on a negative factor, or when references and factors differ in length.

    >>> shrink_by_references(torch.tensor([2.0]), [torch.tensor([4.0])], [0.1], 0.02)  # bound 0.42
    (tensor([0.4200]), tensor(0.2100))
    """
    if any(factor < 0 for factor in relative_factors):
        raise ValueError(
            f"`relative_factors` must all be non-negative (got {list(relative_factors)})."
        )
    if absolute_factor < 0:
        raise ValueError(f"`absolute_factor` must be non-negative (got {absolute_factor}).")
    if len(references) != len(relative_factors):
        raise ValueError(
            "`references` and `relative_factors` must have the same length "
            f"(got {len(references)} and {len(relative_factors)})."
        )
    tensor = torch.as_tensor(tensor)
    max_delta: Tensor | float = absolute_factor
    for reference, factor in zip(references, relative_factors, strict=True):
        max_delta = max_delta + torch.abs(torch.as_tensor(reference)) * factor
    max_delta = torch.as_tensor(max_delta, dtype=tensor.dtype)
    magnitude = torch.abs(tensor)
    ratio = torch.where(
        magnitude == 0, torch.zeros_like(magnitude), max_delta / magnitude
    )  # divide_no_nan
    per_element = torch.where(tensor == 0, torch.ones_like(ratio), ratio)
    scale = torch.ones((), dtype=tensor.dtype, device=tensor.device)
    if per_element.numel():
        scale = torch.minimum(scale, per_element.min())
    return tensor * scale, scale


def clippy_adagrad_update(
    param: Tensor,
    grad: Grad,
    accumulator: Tensor,
    *,
    learning_rate: float,
    epsilon: float,
    variable_relative_threshold: float,
    accumulator_relative_threshold: float,
    absolute_threshold: float,
    clip_accumulator_update: bool,
    use_standard_accumulator_update: bool,
) -> Tensor:
    """One ClippyAdagrad update in place (see the module docstring); returns the clipping factor (0-d).

    Args:
        param: the parameter, updated in place.
        grad: dense gradient, or a :class:`~torchrs.optim._keras.SparseGrad` with unique indices.
        accumulator: the Keras ``accumulator`` slot, updated in place.
        learning_rate: step size.
        epsilon: added to the accumulator inside the inverse square root.
        variable_relative_threshold: bound factor on ``|w|``.
        accumulator_relative_threshold: bound factor on ``rsqrt(acc + eps)``.
        absolute_threshold: constant bound.
        clip_accumulator_update: add the clipped gradient's square to the accumulator.
        use_standard_accumulator_update: add ``g**2`` before computing the step (classical Adagrad).

    Returns:
        The scalar clipping factor in (0, 1].

    >>> w, acc = torch.tensor([1.0]), torch.tensor([0.0])
    >>> clippy_adagrad_update(w, torch.tensor([1.0]), acc, learning_rate=1.0, epsilon=1.0,
    ...     variable_relative_threshold=0.1, accumulator_relative_threshold=0.0, absolute_threshold=0.0,
    ...     clip_accumulator_update=False, use_standard_accumulator_update=False)
    tensor(0.1000)
    >>> w, acc  # delta = 1 * 1 * rsqrt(0 + 1) = 1, clipped to 0.1 * |w| = 0.1; acc += 1
    (tensor([0.9000]), tensor([1.]))
    """
    values = grad.values if isinstance(grad, SparseGrad) else grad  # (K, ...) or param.shape
    if use_standard_accumulator_update:
        if isinstance(grad, SparseGrad):
            accumulator.index_add_(0, grad.indices, torch.square(values))
        else:
            accumulator.add_(torch.square(values))
    if isinstance(grad, SparseGrad):
        accumulator_values = accumulator.index_select(0, grad.indices)
        variable_values = param.index_select(0, grad.indices)
    else:
        accumulator_values, variable_values = accumulator, param
    precondition = torch.rsqrt(accumulator_values + epsilon)
    delta = learning_rate * values * precondition
    clipped_delta, clipping_factor = shrink_by_references(
        delta,
        references=[variable_values, precondition],
        relative_factors=[variable_relative_threshold, accumulator_relative_threshold],
        absolute_factor=absolute_threshold,
    )
    if not use_standard_accumulator_update:
        update = values * clipping_factor if clip_accumulator_update else values
        if isinstance(grad, SparseGrad):
            accumulator.index_add_(0, grad.indices, torch.square(update))
        else:
            accumulator.add_(torch.square(update))
    if isinstance(grad, SparseGrad):
        param.index_add_(0, grad.indices, -clipped_delta)
    else:
        param.sub_(clipped_delta)
    return clipping_factor


class ClippyAdagrad(KerasOptimizer):
    """Adagrad with adaptive clipping, TFRS 0.7.7's ``ClippyAdagrad`` with the same arguments and defaults.

    State per parameter (``optimizer.state[p]``), and the TF variable each one is filled from:

    * ``accumulator``: slot ``accumulator/<var>`` (``optimizer._accumulators[i]``), starts at
      ``initial_accumulator_value``;
    * ``clipping_factor`` (only with ``export_clipping_factors``): slot ``clipping_factor/<var>``, 0-d, the last
      scale applied (0 before the first step, as in TFRS);
    * ``step``: int64 scalar, Keras's ``optimizer.iterations``;
    * ``average`` (only with ``use_ema``): slot ``average/<var>``.

    Args:
        params: parameters or parameter groups.
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        initial_accumulator_value: starting value of the accumulators, >= 0.
        variable_relative_threshold: clipping bound factor on ``|w|``, >= 0.
        accumulator_relative_threshold: clipping bound factor on ``rsqrt(acc + eps)``, >= 0.
        absolute_threshold: constant clipping bound, >= 0.
        epsilon: added to the accumulator inside the inverse square root, >= 0 (Keras accepts 0).
        export_clipping_factors: keep each parameter's last clipping factor (see :attr:`clipping_factors`).
        clip_accumulator_update: add the clipped gradient to the accumulator (not with the next flag).
        use_standard_accumulator_update: update the accumulator before the step, as classical Adagrad.
        name: the optimizer name.
        lr: torch's alias of ``learning_rate``.
        weight_decay: Keras base optimizer option, see :class:`torchrs.optim.Adagrad`.
        clipnorm: Keras base optimizer option.
        clipvalue: Keras base optimizer option.
        global_clipnorm: Keras base optimizer option.
        use_ema: Keras base optimizer option.
        ema_momentum: Keras base optimizer option.
        ema_overwrite_frequency: Keras base optimizer option.
        jit_compile: accepted for Keras compatibility, no effect.

    Raises:
        ValueError: if both ``clip_accumulator_update`` and ``use_standard_accumulator_update`` are set.

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = ClippyAdagrad([w], learning_rate=1.0)
    >>> w.grad = torch.tensor([1.0])
    >>> opt.step()
    >>> w  # delta = 1 / sqrt(0.1) = 3.16 is clipped to 0.1 * |w| + 1e-7
    Parameter containing:
    tensor([0.9000], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAGRAD_LEARNING_RATE),
        initial_accumulator_value: float = ADAGRAD_INITIAL_ACCUMULATOR_VALUE,
        variable_relative_threshold: float = CLIPPY_VARIABLE_RELATIVE_THRESHOLD,
        accumulator_relative_threshold: float = CLIPPY_ACCUMULATOR_RELATIVE_THRESHOLD,
        absolute_threshold: float = CLIPPY_ABSOLUTE_THRESHOLD,
        epsilon: float = KERAS_EPSILON,
        export_clipping_factors: bool = False,
        clip_accumulator_update: bool = False,
        use_standard_accumulator_update: bool = False,
        name: str = "ClippyAdagrad",
        *,
        lr: float | None = None,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
    ) -> None:
        if clip_accumulator_update and use_standard_accumulator_update:
            raise ValueError(
                "clip_accumulator_update and use_standard_accumulator_update cannot both be set to True: "
                "the clipped gradient is only known after the step, the standard update happens before it."
            )
        self.export_clipping_factors = bool(export_clipping_factors)
        defaults = {
            "lr": resolve_learning_rate(learning_rate, lr),
            "initial_accumulator_value": initial_accumulator_value,
            "variable_relative_threshold": variable_relative_threshold,
            "accumulator_relative_threshold": accumulator_relative_threshold,
            "absolute_threshold": absolute_threshold,
            "epsilon": epsilon,
            "clip_accumulator_update": bool(clip_accumulator_update),
            "use_standard_accumulator_update": bool(use_standard_accumulator_update),
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

    @property
    def clipping_factors(self) -> list[Tensor]:
        """TFRS's ``clipping_factors``: each parameter's last clipping factor, or ``[]`` unless exported."""
        if not self.export_clipping_factors:
            return []
        return [
            self.state[p]["clipping_factor"]
            for group in self.param_groups
            for p in group["params"]
            if "clipping_factor" in self.state[p]
        ]

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_non_negative("initial_accumulator_value", group["initial_accumulator_value"])
        check_non_negative("variable_relative_threshold", group["variable_relative_threshold"])
        check_non_negative(
            "accumulator_relative_threshold", group["accumulator_relative_threshold"]
        )
        check_non_negative("absolute_threshold", group["absolute_threshold"])
        check_non_negative("epsilon", group["epsilon"])
        if group["clip_accumulator_update"] and group["use_standard_accumulator_update"]:
            raise ValueError(
                "clip_accumulator_update and use_standard_accumulator_update cannot both be set to True."
            )

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "accumulator" not in state:
            state["accumulator"] = torch.full_like(
                param, group["initial_accumulator_value"], memory_format=torch.preserve_format
            )
        if self.export_clipping_factors and "clipping_factor" not in state:
            state["clipping_factor"] = torch.zeros((), dtype=param.dtype, device=param.device)

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        factor = clippy_adagrad_update(
            param,
            grad,
            state["accumulator"],
            learning_rate=group["lr"],
            epsilon=group["epsilon"],
            variable_relative_threshold=group["variable_relative_threshold"],
            accumulator_relative_threshold=group["accumulator_relative_threshold"],
            absolute_threshold=group["absolute_threshold"],
            clip_accumulator_update=group["clip_accumulator_update"],
            use_standard_accumulator_update=group["use_standard_accumulator_update"],
        )
        if self.export_clipping_factors:
            state["clipping_factor"].copy_(factor)
