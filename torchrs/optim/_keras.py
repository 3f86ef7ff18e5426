"""What every Keras 2 optimizer does around its update rule, as a ``torch.optim.Optimizer`` base class.

``tf.keras.optimizers.Adagrad`` / ``Adam`` / ``SGD`` under ``TF_USE_LEGACY_KERAS=1`` are the tf_keras 2.x
"new" optimizers (``tf_keras/src/optimizers/optimizer.py``, formerly ``optimizer_experimental``), not the
``tf.keras.optimizers.legacy`` ones. Their ``apply_gradients`` runs, in this order:

1. drop the variables whose gradient is ``None``;
2. clip: ``clipnorm`` (each gradient on its own), else ``global_clipnorm``, else ``clipvalue``. Only ONE of the
   three is applied: when ``clipnorm`` or ``global_clipnorm`` is set, ``clipvalue`` is ignored. Sparse gradients
   (``tf.IndexedSlices``) are clipped on their raw values, duplicated rows included;
3. sum the duplicated rows of sparse gradients (``_deduplicate_sparse_grad``);
4. decoupled weight decay on the variables that have a gradient: ``v -= v * weight_decay * lr``;
5. the optimizer's ``update_step`` for each variable, with ``local_step = iterations + 1``;
6. exponential moving average of the variables (``use_ema``), optionally copied into them every
   ``ema_overwrite_frequency`` steps;
7. ``iterations += 1``.

:class:`KerasOptimizer` runs the same steps in :meth:`KerasOptimizer.step`; subclasses only provide the slots and
the update rule. A sparse gradient is what ``nn.Embedding(sparse=True)`` produces: an uncoalesced
``sparse_coo`` tensor with one row per lookup, which is exactly what ``tf.gather``'s gradient is in TF.

State (``optimizer.state[p]``) holds one ``step`` per parameter (an int64 scalar, Keras's ``iterations``; all
parameters share the same value) plus the optimizer's slots, named so that a converter can fill them from a
Keras checkpoint (``accumulator``, ``m``, ``v``, ``vhat``, ``momentum``, ``average``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

#: tf_keras's default ``epsilon`` for Adagrad / Adam (``backend.epsilon()``); torch's defaults are 1e-10 / 1e-8.
KERAS_EPSILON = 1e-7
#: Keras's default ``ema_momentum`` (the weight of the old average when ``use_ema=True``).
KERAS_EMA_MOMENTUM = 0.99

__all__ = [
    "KERAS_EMA_MOMENTUM",
    "KERAS_EPSILON",
    "KerasOptimizer",
    "SparseGrad",
    "clip_by_norm",
    "clip_gradients",
    "deduplicate_sparse_grad",
    "global_norm",
]


class _KerasDefault(float):
    """A float default that can tell "not passed" from "passed the same value" (for the ``lr=`` alias)."""

    __slots__ = ()


def keras_default(value: float) -> float:
    """Marks ``value`` as the untouched default of ``learning_rate`` (it still behaves as a float).

    >>> keras_default(0.001) == 0.001
    True
    """
    return _KerasDefault(value)


def resolve_learning_rate(learning_rate: float, lr: float | None) -> float:
    """Returns the learning rate from Keras's ``learning_rate=`` or torch's ``lr=`` alias.

    Args:
        learning_rate: the Keras-named argument (its untouched default is made by :func:`keras_default`).
        lr: torch's name for the same thing, or ``None``.

    Returns:
        The learning rate as a plain float.

    Raises:
        ValueError: when both are given.

    >>> resolve_learning_rate(keras_default(0.001), 0.1)
    0.1
    """
    if lr is None:
        return float(learning_rate) if isinstance(learning_rate, _KerasDefault) else learning_rate
    if not isinstance(learning_rate, _KerasDefault):
        raise ValueError(
            f"Pass the learning rate once: got learning_rate={learning_rate!r} and lr={lr!r}. "
            "`lr` is torch's alias of Keras's `learning_rate`; keep only one of them."
        )
    return lr


@dataclass(frozen=True)
class SparseGrad:
    """A row-sparse gradient, Keras's ``tf.IndexedSlices``: ``values[k]`` is the gradient of row ``indices[k]``.

    Before :func:`deduplicate_sparse_grad`, ``indices`` may repeat (one entry per lookup).

    Attributes:
        indices: ``(K,)`` int64 row indices into the parameter's first dimension.
        values: ``(K, *param.shape[1:])`` gradient rows.
    """

    indices: Tensor
    values: Tensor


Grad = Tensor | SparseGrad


def as_keras_grad(param: Tensor, grad: Tensor) -> Grad:
    """Turns ``param.grad`` into a dense tensor or a :class:`SparseGrad` (duplicated rows kept, like TF).

    Args:
        param: the parameter, for error messages.
        grad: its gradient; dense, or a ``sparse_coo`` tensor sparse along dimension 0 only (what
            ``nn.Embedding(sparse=True)`` produces).

    Returns:
        The dense tensor unchanged, or a :class:`SparseGrad` of the raw (uncoalesced) rows.

    >>> g = torch.sparse_coo_tensor([[1, 1]], [[1.0], [2.0]], (3, 1), check_invariants=True)
    >>> as_keras_grad(torch.zeros(3, 1), g).indices.tolist()
    [1, 1]
    """
    if not grad.is_sparse:
        return grad
    if grad.sparse_dim() != 1:
        raise ValueError(
            "Keras optimizers take sparse gradients that are sparse along the first dimension only "
            f"(tf.IndexedSlices rows), like nn.Embedding(sparse=True); got sparse_dim={grad.sparse_dim()} "
            f"for a parameter of shape {tuple(param.shape)}. Densify the gradient (`grad.to_dense()`) first."
        )
    return SparseGrad(indices=grad._indices()[0], values=grad._values())


def deduplicate_sparse_grad(grad: SparseGrad) -> SparseGrad:
    """Sums the values of repeated indices, as Keras's ``_deduplicate_sparse_grad`` does before each update.

    Args:
        grad: a sparse gradient whose ``indices`` may repeat.

    Returns:
        A sparse gradient with unique ``indices`` (in increasing order; the order does not change any update).

    >>> g = deduplicate_sparse_grad(SparseGrad(torch.tensor([2, 0, 2]), torch.tensor([[1.0], [5.0], [2.0]])))
    >>> g.indices.tolist(), g.values.tolist()
    ([0, 2], [[5.0], [3.0]])
    """
    unique, inverse = torch.unique(grad.indices, return_inverse=True)  # (U,), (K,)
    summed = grad.values.new_zeros((unique.numel(), *grad.values.shape[1:]))  # (U, ...)
    summed.index_add_(0, inverse, grad.values)
    return SparseGrad(indices=unique, values=summed)


def _values(grad: Grad) -> Tensor:
    return grad.values if isinstance(grad, SparseGrad) else grad


def _with_values(grad: Grad, values: Tensor) -> Grad:
    return SparseGrad(grad.indices, values) if isinstance(grad, SparseGrad) else values


def clip_by_norm(values: Tensor, clip_norm: float) -> Tensor:
    """``tf.clip_by_norm``: ``values * clip_norm / max(||values||_2, clip_norm)``, in TF's operation order.

    >>> clip_by_norm(torch.tensor([3.0, 4.0]), 1.0)
    tensor([0.6000, 0.8000])
    """
    l2norm = torch.sqrt(torch.sum(values * values))  # ()
    return values * clip_norm / torch.clamp(l2norm, min=clip_norm)


def global_norm(values: Sequence[Tensor]) -> Tensor:
    """``tf.linalg.global_norm``: ``sqrt(2 * sum(l2_loss(t)))`` with ``l2_loss(t) = sum(t**2) / 2``.

    >>> global_norm([torch.tensor([3.0]), torch.tensor([4.0])])
    tensor(5.)
    """
    half_squared = torch.stack([torch.sum(v * v) / 2 for v in values])  # (N,)
    return torch.sqrt(torch.sum(half_squared) * 2.0)


def clip_gradients(
    grads: Sequence[Grad],
    *,
    clipnorm: float | None = None,
    global_clipnorm: float | None = None,
    clipvalue: float | None = None,
) -> list[Grad]:
    """Keras 2's ``_clip_gradients``: the first of clipnorm / global_clipnorm / clipvalue that is set and > 0.

    Sparse gradients are clipped on their raw rows (before duplicates are summed), as TF clips
    ``IndexedSlices.values``.

    Args:
        grads: the gradients of the variables that have one.
        clipnorm: clip each gradient to this L2 norm.
        global_clipnorm: clip all gradients together to this global L2 norm (non-finite norm gives NaN, like TF).
        clipvalue: clip each element to ``[-clipvalue, clipvalue]``; ignored when one of the norms is set.

    Returns:
        The clipped gradients, in the same order.

    >>> clip_gradients([torch.tensor([3.0, 4.0])], clipnorm=1.0, clipvalue=0.1)
    [tensor([0.6000, 0.8000])]
    """
    if clipnorm and clipnorm > 0:
        return [_with_values(g, clip_by_norm(_values(g), clipnorm)) for g in grads]
    if global_clipnorm and global_clipnorm > 0:
        use_norm = global_norm([_values(g) for g in grads])  # ()
        # tf.clip_by_global_norm: clip_norm * min(1 / norm, 1 / clip_norm), plus (norm - norm) to turn inf into NaN.
        scale = global_clipnorm * torch.minimum(
            1.0 / use_norm, 1.0 / use_norm.new_tensor(global_clipnorm)
        )
        scale = scale + (use_norm - use_norm)
        return [_with_values(g, _values(g) * scale.to(_values(g).dtype)) for g in grads]
    if clipvalue and clipvalue > 0:
        return [_with_values(g, torch.clamp(_values(g), -clipvalue, clipvalue)) for g in grads]
    return list(grads)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"`{name}` must be a number (got {value!r} of type {type(value).__name__}). "
            "Learning-rate schedules are torch's: wrap the optimizer in a torch.optim.lr_scheduler."
        )
    if math.isnan(value):
        raise ValueError(f"`{name}` must not be NaN (got {value!r}).")
    return float(value)


def check_number(name: str, value: Any) -> float:
    """Raises unless ``value`` is a real number (not a bool, not NaN); returns it as a float.

    >>> check_number("beta", -0.5)
    -0.5
    """
    return _check_number(name, value)


def check_non_negative(name: str, value: Any) -> float:
    """Raises unless ``value`` is a number >= 0; returns it as a float.

    >>> check_non_negative("learning_rate", 0.1)
    0.1
    """
    value = _check_number(name, value)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0 (got {value!r}).")
    return value


def check_positive(name: str, value: Any) -> float:
    """Raises unless ``value`` is a number > 0; returns it as a float.

    >>> check_positive("epsilon", 1e-7)
    1e-07
    """
    value = _check_number(name, value)
    if value <= 0:
        raise ValueError(
            f"`{name}` must be > 0 (got {value!r}); Keras's default is {KERAS_EPSILON}."
        )
    return value


def check_clipping(
    clipnorm: float | None, clipvalue: float | None, global_clipnorm: float | None
) -> None:
    """Raises ValueError for a negative (or non-numeric) clipping argument; ``None`` means no clipping."""
    for name, value in (
        ("clipnorm", clipnorm),
        ("clipvalue", clipvalue),
        ("global_clipnorm", global_clipnorm),
    ):
        if value is not None:
            check_non_negative(name, value)


def check_unit_interval(name: str, value: Any, *, closed: bool = False) -> float:
    """Raises unless ``0 <= value < 1`` (``<= 1`` when ``closed``); returns it as a float.

    >>> check_unit_interval("beta_1", 0.9)
    0.9
    """
    value = _check_number(name, value)
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"`{name}` must be in {interval} (got {value!r}).")
    return value


class KerasOptimizerAPI(torch.optim.Optimizer):
    """What every Keras optimizer shows besides ``step``: ``iterations``, ``learning_rate``, and parameter groups
    checked on arrival (``_check_group``). Shared by the Keras 2 optimizers and the legacy ``OptimizerV2`` ones."""

    def _check_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a parameter group (``torch.optim.Optimizer.add_param_group``) after checking its hyperparameters."""
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    @property
    def iterations(self) -> int:
        """Keras's ``optimizer.iterations``: the number of steps taken (the ``step`` held in each state)."""
        return max((int(s["step"]) for s in self.state.values() if "step" in s), default=0)

    @iterations.setter
    def iterations(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`iterations` must be an integer >= 0 (got {value!r}).")
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"] = torch.tensor(value, dtype=torch.int64)

    @staticmethod
    def _closure_loss(closure: Callable[[], Any] | None) -> Any:
        """The loss of torch's optional ``step(closure)``, evaluated with gradients enabled."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _keras_gradients(self) -> tuple[list[tuple[dict[str, Any], Tensor]], list[Grad]]:
        """The ``(group, parameter)`` pairs that have a ``.grad``, and those gradients as Keras sees them."""
        work: list[tuple[dict[str, Any], Tensor]] = []
        grads: list[Grad] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    work.append((group, p))
                    grads.append(as_keras_grad(p, p.grad))
        return work, grads

    def _record_step(self, step: int) -> None:
        """Sets every parameter's ``step``: Keras keeps one ``iterations`` for all variables, updated or not."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["step"].fill_(step)

    @property
    def learning_rate(self) -> float:
        """Keras's ``optimizer.learning_rate`` (before a legacy ``decay``): the first group's ``lr``; setting it sets
        every group's."""
        return self.param_groups[0]["lr"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        value = check_non_negative("learning_rate", value)
        for group in self.param_groups:
            group["lr"] = value


class KerasOptimizer(KerasOptimizerAPI):
    """Base class of the Keras 2 optimizers: clipping, sparse rows, weight decay, EMA and ``iterations``.

    Subclasses set ``defaults`` (per-group hyperparameters; the learning rate is under torch's ``"lr"`` key so
    ``torch.optim.lr_scheduler`` works), and implement :meth:`_init_slots`, :meth:`_update_step` and
    :meth:`_check_group`.

    Args:
        params: parameters or parameter groups (named parameters are accepted; their names serve
            :meth:`exclude_from_weight_decay`).
        defaults: per-group hyperparameters, with ``"lr"`` and ``"weight_decay"``.
        clipnorm: see :func:`clip_gradients`.
        clipvalue: see :func:`clip_gradients`.
        global_clipnorm: see :func:`clip_gradients`.
        use_ema: keep an exponential moving average of each parameter (state slot ``average``).
        ema_momentum: weight of the old average: ``average = m * average + (1 - m) * param``.
        ema_overwrite_frequency: every this many steps, copy the averages into the parameters.
        jit_compile: accepted for Keras compatibility; it only changes how TF compiles the update.
        name: the Keras name of the optimizer.
    """

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        *,
        clipnorm: float | None,
        clipvalue: float | None,
        global_clipnorm: float | None,
        use_ema: bool,
        ema_momentum: float,
        ema_overwrite_frequency: int | None,
        jit_compile: bool,
        name: str,
    ) -> None:
        check_clipping(clipnorm, clipvalue, global_clipnorm)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                "At most one of `clipnorm` and `global_clipnorm` can be set "
                f"(got clipnorm={clipnorm}, global_clipnorm={global_clipnorm})."
            )
        if use_ema:
            check_unit_interval("ema_momentum", ema_momentum, closed=True)
            if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, int)
                or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    f"`ema_overwrite_frequency` must be an integer >= 1 or None (got {ema_overwrite_frequency!r})."
                )
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = bool(use_ema)
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.jit_compile = jit_compile
        self.name = name
        self._built = False
        self._exclude_ids: set[int] = set()
        self._exclude_names: list[str] = []
        super().__init__(params, defaults)

    # ----------------------------------------------------------------------------------------- subclass hooks
    def _check_group(self, group: dict[str, Any]) -> None:
        """Raises ValueError / TypeError on a bad hyperparameter of ``group``."""
        check_non_negative("learning_rate", group["lr"])
        if group["weight_decay"] is not None:
            check_non_negative("weight_decay", group["weight_decay"])

    def _init_slots(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Creates the slots missing from ``state`` (Keras's ``build``)."""
        raise NotImplementedError

    def _update_step(
        self, param: Tensor, grad: Grad, state: dict[str, Any], group: dict[str, Any], step: int
    ) -> None:
        """Keras's ``update_step`` for one parameter; ``step`` is ``iterations + 1``."""
        raise NotImplementedError

    def exclude_from_weight_decay(
        self, var_list: Iterable[Tensor] | None = None, var_names: Sequence[str] | None = None
    ) -> None:
        """Keras's ``exclude_from_weight_decay``: no decay for these parameters. Call it before the first step.

        Args:
            var_list: parameters to exclude.
            var_names: regular expressions; a parameter whose name matches one (``re.search``) is excluded.
                Names come from the ``param_names`` of groups built from ``model.named_parameters()``.
        """
        if self._built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before the optimizer's first step, "
                "as in Keras (it is called after the optimizer was built)."
            )
        if var_names and not all("param_names" in g for g in self.param_groups):
            raise ValueError(
                f"`var_names={list(var_names)}` needs parameter names: build the optimizer from "
                "`model.named_parameters()`, or pass the parameters themselves as `var_list`."
            )
        self._exclude_ids = {id(p) for p in var_list} if var_list else set()
        self._exclude_names = list(var_names or [])

    def finalize_variable_values(self) -> None:
        """Keras's ``finalize_variable_values``: with ``use_ema``, copy the moving averages into the parameters."""
        if not self.use_ema:
            return
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if "average" in self.state[p]:
                        p.copy_(self.state[p]["average"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Applies the parameters' ``.grad`` once, in Keras's order (see the module docstring).

        Args:
            closure: re-evaluates the model and returns the loss (torch convention), optional.

        Returns:
            The closure's loss, or ``None``.
        """
        loss = self._closure_loss(closure)
        self._build()
        work, raw_grads = self._keras_gradients()
        if not work:  # Keras raises "No gradients provided"; torch's convention is a no-op.
            return loss
        grads = clip_gradients(
            raw_grads,
            clipnorm=self.clipnorm,
            global_clipnorm=self.global_clipnorm,
            clipvalue=self.clipvalue,
        )
        grads = [deduplicate_sparse_grad(g) if isinstance(g, SparseGrad) else g for g in grads]
        for group, p in work:
            if group["weight_decay"] is not None and self._use_weight_decay(p, group):
                p.sub_(p * group["weight_decay"] * group["lr"])
        step = self.iterations + 1
        for (group, p), grad in zip(work, grads, strict=True):
            self._update_step(p, grad, self.state[p], group, step)
        if self.use_ema:
            for _, p in work:
                average = self.state[p]["average"]
                average.copy_(self.ema_momentum * average + (1 - self.ema_momentum) * p)
            if self.ema_overwrite_frequency and step % self.ema_overwrite_frequency == 0:
                for _, p in work:
                    p.copy_(self.state[p]["average"])
        self._record_step(step)
        return loss

    # ------------------------------------------------------------------------------------------ internals
    def _build(self) -> None:
        """Creates the missing state of every parameter (Keras builds all slots at the first step)."""
        iterations = self.iterations
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "step" not in state:
                    state["step"] = torch.tensor(iterations, dtype=torch.int64)
                self._init_slots(p, state, group)
                if self.use_ema and "average" not in state:
                    state["average"] = p.detach().clone(memory_format=torch.preserve_format)
        self._built = True

    def _use_weight_decay(self, param: Tensor, group: dict[str, Any]) -> bool:
        if id(param) in self._exclude_ids:
            return False
        if self._exclude_names and "param_names" in group:
            name = next(
                n for q, n in zip(group["params"], group["param_names"], strict=True) if q is param
            )
            if any(re.search(pattern, name) is not None for pattern in self._exclude_names):
                return False
        return True
