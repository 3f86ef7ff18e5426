"""Which FBGEMM fused optimizer reproduces a torchrs (Keras) optimizer on a sharded table, or why none does.

Sharded tables are updated inside the backward pass by FBGEMM ("fused"), only on the rows of the batch. Two
Keras rules survive that exactly:

* Keras Adagrad ``acc += g**2; p -= lr * g / sqrt(acc + eps)``, acc from ``initial_accumulator_value``:
  FBGEMM's exact Adagrad computes ``m += g**2; p -= lr * g / (sqrt(m) + eps')`` from a state we choose, so
  ``m0 = initial_accumulator_value + eps`` and ``eps' = 0`` give ``sqrt(acc + eps)`` at every step (untouched
  rows have a zero gradient in Keras too, so they do not move there either). The legacy
  (``tf.keras.optimizers.legacy``) Adagrad puts eps outside the root: ``m0 = initial_accumulator_value``,
  ``eps' = eps``.
* SGD without momentum: ``p -= lr * g``, FBGEMM's exact SGD.

Everything else changes the numbers and is refused: Adam and momentum (Keras moves every row by its moments;
FBGEMM only the batch's rows), weight decay (applied to every row by Keras), gradient clipping (needs the global
gradient, which no rank holds), EMA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

#: FBGEMM's exact Adagrad and SGD (``EmbOptimType.EXACT_ADAGRAD`` / ``EXACT_SGD``) by name.
FUSED_ADAGRAD = "exact_adagrad"
FUSED_SGD = "exact_sgd"


class UnsupportedShardedOptimizerError(ValueError):
    """The optimizer cannot be reproduced on a sharded table; the message names the table and the reason."""


@dataclass(frozen=True)
class FusedOptimizer:
    """What a sharded table's fused update runs with.

    Attributes:
        kind: :data:`FUSED_ADAGRAD` or :data:`FUSED_SGD`.
        learning_rate: step size.
        eps: FBGEMM's epsilon, added to ``sqrt(m)``.
        initial_state: starting value of FBGEMM's ``momentum1`` (Adagrad's accumulator), or ``None`` for SGD.
        accumulator_offset: ``momentum1 - keras accumulator`` (Keras's eps moved under the root; 0 if legacy).
    """

    kind: str
    learning_rate: float
    eps: float
    initial_state: float | None
    accumulator_offset: float = 0.0

    def fused_params(self) -> dict[str, Any]:
        """The ``fused_params`` of a TorchRec sharder."""
        from torchrs.distributed._torchrec import require

        configs = require("fbgemm_gpu.split_embedding_configs")
        kind = {
            FUSED_ADAGRAD: configs.EmbOptimType.EXACT_ADAGRAD,
            FUSED_SGD: configs.EmbOptimType.EXACT_SGD,
        }[self.kind]
        return {"optimizer": kind, "learning_rate": self.learning_rate, "eps": self.eps}


def _refuse(tables: list[str], optimizer: torch.optim.Optimizer, reason: str) -> None:
    raise UnsupportedShardedOptimizerError(
        f"Cannot shard table(s) {tables} with {type(optimizer).__module__}.{type(optimizer).__name__}: "
        f"{reason}. Use torchrs.optim.Adagrad or torchrs.optim.SGD (no momentum) for sharded tables, or keep "
        "these tables replicated with plan={path: 'data_parallel'} (DDP, any optimizer)."
    )


def fused_optimizer_for(optimizer: torch.optim.Optimizer, tables: list[str]) -> FusedOptimizer:
    """Maps a torchrs optimizer to the FBGEMM update that reproduces it on ``tables``, or refuses.

    Args:
        optimizer: a ``torchrs.optim.Adagrad`` / ``SGD`` (or their ``legacy`` versions).
        tables: module paths of the tables it would update (named in errors).

    Returns:
        The :class:`FusedOptimizer`.

    Raises:
        UnsupportedShardedOptimizerError: FBGEMM cannot follow this optimizer's numbers; says why.

    >>> import torchrs as trs
    >>> opt = trs.optim.Adagrad([torch.nn.Parameter(torch.zeros(1))], learning_rate=0.1)
    >>> fused = fused_optimizer_for(opt, ["user_model.1"])
    >>> fused.kind, fused.eps, round(fused.initial_state, 10)  # FBGEMM state starts at 0.1 + 1e-7
    ('exact_adagrad', 0.0, 0.1000001)
    >>> fused_optimizer_for(trs.optim.Adam([torch.nn.Parameter(torch.zeros(1))]), ["user_model.1"])
    Traceback (most recent call last):
    ...
    torchrs.distributed.optimizer.UnsupportedShardedOptimizerError: Cannot shard table(s) ['user_model.1'] ...
    """
    from torchrs.optim import SGD, Adagrad
    from torchrs.optim.legacy import SGD as LegacySGD
    from torchrs.optim.legacy import Adagrad as LegacyAdagrad

    if not isinstance(optimizer, (Adagrad, SGD, LegacyAdagrad, LegacySGD)):
        _refuse(
            tables,
            optimizer,
            "FBGEMM's fused updates on CPU are exact Adagrad and exact SGD; other rules (Adam's moments, "
            "torch's own optimizers) would give different numbers",
        )
    groups = optimizer.param_groups
    group = groups[0]
    for key in ("lr", "weight_decay", "momentum", "nesterov", "decay", "epsilon"):
        if len({repr(g.get(key)) for g in groups}) > 1:
            _refuse(
                tables, optimizer, f"its parameter groups differ in {key!r}; a table has one rule"
            )
    for name in ("clipnorm", "clipvalue", "global_clipnorm"):
        if getattr(optimizer, name, None) is not None:
            _refuse(
                tables,
                optimizer,
                f"{name} clips with the whole gradient, which no rank holds for a sharded table",
            )
    if getattr(optimizer, "use_ema", False):
        _refuse(tables, optimizer, "use_ema keeps averages of every row, FBGEMM has none")
    if group.get("weight_decay"):
        _refuse(
            tables,
            optimizer,
            "weight decay moves every row each step, FBGEMM only the batch's rows",
        )
    if group.get("decay"):
        _refuse(
            tables,
            optimizer,
            "the legacy learning-rate decay needs the step count FBGEMM does not keep",
        )
    lr = float(group["lr"])
    if isinstance(optimizer, (SGD, LegacySGD)):
        if group.get("momentum") or group.get("nesterov"):
            _refuse(
                tables,
                optimizer,
                "momentum moves every row by its velocity, FBGEMM only the batch's rows",
            )
        return FusedOptimizer(FUSED_SGD, lr, 0.0, None)
    initial = float(group["initial_accumulator_value"])
    epsilon = float(group["epsilon"])
    if isinstance(optimizer, LegacyAdagrad):  # p -= lr * g / (sqrt(acc) + eps): FBGEMM's form as is
        return FusedOptimizer(FUSED_ADAGRAD, lr, epsilon, initial, 0.0)
    # Keras: p -= lr * g / sqrt(acc + eps). Keeping m = acc + eps makes FBGEMM's sqrt(m) + 0 that root.
    return FusedOptimizer(FUSED_ADAGRAD, lr, 0.0, initial + epsilon, epsilon)
