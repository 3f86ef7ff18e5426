"""What every ``tf.keras.optimizers.legacy`` optimizer does around its update rule, as a torch base class.

The legacy optimizers (tf_keras ``optimizers/legacy/optimizer_v2.py``, Keras's ``OptimizerV2``; the only Keras
optimizers before TF 2.11) differ from the tf_keras 2.x ones of :mod:`torchrs.optim` in their
``apply_gradients``, which runs, in this order:

1. drop the variables whose gradient is ``None``;
2. clip: ``clipvalue`` first, then ``clipnorm`` (each gradient on its own), then ``global_clipnorm``; EVERY one
   that is set (``is not None``, even 0) is applied, where the 2.x optimizers apply only one. Sparse gradients
   (``tf.IndexedSlices``) are clipped on their raw rows, duplicated rows included;
3. the learning rate: the float32 ``learning_rate`` variable, divided by ``1 + decay * iterations`` when
   ``decay > 0`` (inverse-time decay, ``iterations`` counted before this step);
4. for each variable, the optimizer's TF kernel: ``_resource_apply_dense``, or for a sparse gradient
   ``_resource_apply_sparse_duplicate_indices``, which by default sums the duplicated rows and calls
   ``_resource_apply_sparse``; what the sparse kernel does with the rows not in the gradient is the
   optimizer's own business (Adagrad and momentum SGD leave them alone, Adam decays them);
5. ``iterations += 1``.

There is no weight decay (the ``weight_decay`` of the 2.x optimizers) and no EMA.

Hyperparameters set with ``_set_hyper`` (``learning_rate``, ``momentum``, ``beta_1``, ``beta_2``) live in float32
variables and are cast to the variable's dtype: :func:`hyper` reproduces that. ``epsilon`` and ``decay`` are
Python floats cast straight to the variable's dtype.

State (``optimizer.state[p]``) holds one ``step`` per parameter (an int64 scalar, Keras's ``iterations``, saved as
``iter``; all parameters share it) plus the slots under the legacy slot names (``accumulator``, ``momentum``,
``m``, ``v``, ``vhat``), so that a converter fills them from ``<var>/.OPTIMIZER_SLOT/optimizer/<slot>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from torchrs.optim._keras import (
    KERAS_EPSILON,
    Grad,
    KerasOptimizerAPI,
    SparseGrad,
    check_clipping,
    check_non_negative,
    clip_by_norm,
    deduplicate_sparse_grad,
    global_norm,
)

#: ``OptimizerV2(decay=0.0)``: no inverse-time decay of the learning rate.
LEGACY_DECAY = 0.0

__all__ = [
    "LEGACY_DECAY",
    "OptimizerV2",
    "decayed_learning_rate",
    "hyper",
    "legacy_clip_gradients",
    "legacy_epsilon",
]


def hyper(value: float | Tensor, dtype: torch.dtype) -> Tensor:
    """``OptimizerV2._get_hyper``: the value as stored in a float32 variable, cast to ``dtype``.

    Args:
        value: a hyperparameter (``learning_rate``, ``momentum``, ``beta_1``, ``beta_2``).
        dtype: the parameter's dtype.

    Returns:
        A 0-d tensor; for a float64 parameter, ``float64(float32(value))`` as Keras computes it.

    >>> hyper(0.1, torch.float64).item()  # float32(0.1), not 0.1
    0.10000000149011612
    """
    return torch.as_tensor(value, dtype=torch.float32).to(dtype)


def decayed_learning_rate(
    learning_rate: float, decay: float, iterations: int, dtype: torch.dtype
) -> Tensor:
    """``OptimizerV2._decayed_lr``: ``lr / (1 + decay * iterations)``, in ``dtype`` as Keras computes it.

    Args:
        learning_rate: the learning rate (held in a float32 variable by Keras).
        decay: the inverse-time decay; 0 leaves the learning rate alone.
        iterations: the steps taken before this one.
        dtype: the parameter's dtype.

    Returns:
        A 0-d tensor.

    >>> decayed_learning_rate(0.1, 0.5, 2, torch.float32)  # 0.1 / (1 + 0.5 * 2)
    tensor(0.0500)
    """
    lr_t = hyper(learning_rate, dtype)
    if decay > 0.0:
        local_step = torch.tensor(float(iterations), dtype=dtype)
        decay_t = torch.tensor(decay, dtype=dtype)
        lr_t = lr_t / (1.0 + decay_t * local_step)
    return lr_t


def _values(grad: Grad) -> Tensor:
    return grad.values if isinstance(grad, SparseGrad) else grad


def _with_values(grad: Grad, values: Tensor) -> Grad:
    return SparseGrad(grad.indices, values) if isinstance(grad, SparseGrad) else values


def legacy_clip_gradients(
    grads: Sequence[Grad],
    *,
    clipvalue: float | None = None,
    clipnorm: float | None = None,
    global_clipnorm: float | None = None,
) -> list[Grad]:
    """``OptimizerV2._transform_gradients``: clip by value, then by norm, then by global norm, each if set.

    Unlike the tf_keras 2.x optimizers, every clip that is not ``None`` applies (0 included: ``clipvalue=0``
    zeroes the gradients, as in Keras). Sparse gradients are clipped on their raw rows.

    Args:
        grads: the gradients of the variables that have one.
        clipvalue: clip each element to ``[-clipvalue, clipvalue]``.
        clipnorm: then clip each gradient to this L2 norm (``tf.clip_by_norm``).
        global_clipnorm: then clip all gradients together to this global L2 norm (``tf.clip_by_global_norm``).

    Returns:
        The clipped gradients, in the same order.

    >>> legacy_clip_gradients([torch.tensor([3.0, 4.0])], clipvalue=3.0, clipnorm=3.0)  # [3, 3] -> norm 3
    [tensor([2.1213, 2.1213])]
    """
    out = list(grads)
    if clipvalue is not None:
        out = [_with_values(g, torch.clamp(_values(g), -clipvalue, clipvalue)) for g in out]
    if clipnorm is not None:
        out = [_with_values(g, clip_by_norm(_values(g), clipnorm)) for g in out]
    if global_clipnorm is not None and out:
        use_norm = global_norm([_values(g) for g in out])  # ()
        # tf.clip_by_global_norm: clip_norm * min(1 / norm, 1 / clip_norm), plus (norm - norm) to turn inf into NaN.
        scale = global_clipnorm * torch.minimum(
            1.0 / use_norm, 1.0 / use_norm.new_tensor(global_clipnorm)
        )
        scale = scale + (use_norm - use_norm)
        out = [_with_values(g, _values(g) * scale.to(_values(g).dtype)) for g in out]
    return out


def legacy_epsilon(epsilon: float | None) -> float:
    """Legacy Adagrad / Adam's ``self.epsilon = epsilon or backend.epsilon()``: ``None`` or 0 become 1e-7.

    Args:
        epsilon: the ``epsilon`` argument.

    Returns:
        The epsilon the update uses.

    Raises:
        ValueError: a negative epsilon.
        TypeError: not a number.

    >>> legacy_epsilon(0.0), legacy_epsilon(None), legacy_epsilon(1e-3)
    (1e-07, 1e-07, 0.001)
    """
    if epsilon is None:
        return KERAS_EPSILON
    value = check_non_negative("epsilon", epsilon)
    return value or KERAS_EPSILON


class OptimizerV2(KerasOptimizerAPI):
    """Base class of the legacy Keras optimizers: clipping, ``decay``, sparse rows and ``iterations``.

    Subclasses set ``defaults`` (per-group hyperparameters; the learning rate under torch's ``"lr"`` key so
    ``torch.optim.lr_scheduler`` works, and ``"decay"``) and implement :meth:`_init_slots` and :meth:`_apply`
    (or Keras's pair :meth:`_apply_dense` / :meth:`_apply_sparse` where they differ); they may override
    :meth:`_apply_sparse_duplicate_indices` (legacy SGD without momentum does) and :meth:`_check_group`.

    Args:
        params: parameters or parameter groups.
        defaults: per-group hyperparameters, with ``"lr"`` and ``"decay"``.
        name: the Keras name of the optimizer.
        clipnorm: see :func:`legacy_clip_gradients`.
        clipvalue: see :func:`legacy_clip_gradients`.
        global_clipnorm: see :func:`legacy_clip_gradients`.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        name: str,
        clipnorm: float | None,
        clipvalue: float | None,
        global_clipnorm: float | None,
    ) -> None:
        check_clipping(clipnorm, clipvalue, global_clipnorm)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm` "
                f"(got clipnorm={clipnorm}, global_clipnorm={global_clipnorm}); keep one of them."
            )
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name
        super().__init__(params, defaults)

    # ----------------------------------------------------------------------------------------- subclass hooks
    def _check_group(self, group: dict[str, Any]) -> None:
        """Raises ValueError / TypeError on a bad hyperparameter of ``group`` (and may normalise one)."""
        check_non_negative("learning_rate", group["lr"])
        check_non_negative("decay", group["decay"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Creates the slots missing from ``state`` (Keras's ``_create_slots``)."""
        raise NotImplementedError

    def _apply(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], lr_t: Tensor
    ) -> None:
        """One update of ``param`` by a dense gradient or unique sparse rows; ``lr_t`` is the decayed learning
        rate in the parameter's dtype. Adagrad, Adam and SGD run the same math on both, as Keras's kernels do."""
        raise NotImplementedError

    def _apply_dense(
        self,
        param: Tensor,
        grad: Tensor,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        """Keras's ``_resource_apply_dense``."""
        self._apply(param, grad, state, group, lr_t)

    def _apply_sparse(
        self,
        param: Tensor,
        grad: SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        """Keras's ``_resource_apply_sparse``: ``grad.indices`` are unique."""
        self._apply(param, grad, state, group, lr_t)

    def _apply_sparse_duplicate_indices(
        self,
        param: Tensor,
        grad: SparseGrad,
        state: dict[str, Any],
        group: dict[str, Any],
        lr_t: Tensor,
    ) -> None:
        """Keras's ``_resource_apply_sparse_duplicate_indices``: sum the repeated rows, then apply."""
        self._apply_sparse(param, deduplicate_sparse_grad(grad), state, group, lr_t)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Applies the parameters' ``.grad`` once, in legacy Keras's order (see the module docstring).

        Args:
            closure: re-evaluates the model and returns the loss (torch convention), optional.

        Returns:
            The closure's loss, or ``None``.
        """
        loss = self._closure_loss(closure)
        work, raw_grads = self._keras_gradients()
        if not work:  # Keras raises "No gradients provided"; torch's convention is a no-op.
            return loss
        iterations = self.iterations
        self._build(iterations)
        grads = legacy_clip_gradients(
            raw_grads,
            clipvalue=self.clipvalue,
            clipnorm=self.clipnorm,
            global_clipnorm=self.global_clipnorm,
        )
        for (group, p), grad in zip(work, grads, strict=True):
            lr_t = decayed_learning_rate(group["lr"], group["decay"], iterations, p.dtype)  # ()
            if isinstance(grad, SparseGrad):
                self._apply_sparse_duplicate_indices(p, grad, self.state[p], group, lr_t)
            else:
                self._apply_dense(p, grad, self.state[p], group, lr_t)
        self._record_step(iterations + 1)
        return loss

    # ------------------------------------------------------------------------------------------ internals
    def _build(self, iterations: int) -> None:
        """Creates the missing state of every parameter (slots start at their initial values)."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.tensor(iterations, dtype=torch.int64)
                self._init_slots(p, state, group)
