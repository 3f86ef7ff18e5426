"""``AdamW``: Keras 2's ``tf.keras.optimizers.AdamW`` (tf_keras ``optimizers/adamw.py``) in PyTorch.

Keras's AdamW is its Adam update (epsilon hat, bias corrections folded into the step size; see
:mod:`torchrs.optim.adam`) after the base optimizer's decoupled weight decay ``param -= param * weight_decay *
lr``, with ``weight_decay=0.004`` by default and required (``None`` raises, as in Keras). Its slots are Adam's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch  # noqa: F401  (the doctest uses it)

from torchrs.optim._keras import KERAS_EMA_MOMENTUM, KERAS_EPSILON, keras_default
from torchrs.optim.adam import ADAM_BETA_1, ADAM_BETA_2, ADAM_LEARNING_RATE, Adam

#: tf_keras ``AdamW(weight_decay=0.004)``.
ADAMW_WEIGHT_DECAY = 0.004

__all__ = ["ADAMW_WEIGHT_DECAY", "AdamW"]


class AdamW(Adam):
    """AdamW with Keras 2's update rule, defaults and argument order (``weight_decay`` second).

    State per parameter: Adam's (``m``, ``v``, ``vhat`` with ``amsgrad``, ``step``, ``average`` with ``use_ema``),
    filled from the Keras slots of the same names.

    Args:
        params: parameters or parameter groups.
        learning_rate: step size (also accepted as torch's ``lr=``, not both).
        weight_decay: decoupled weight decay, >= 0 (required: ``None`` raises, as in Keras).
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        epsilon: "epsilon hat", added to ``sqrt(v)``, >= 0.
        amsgrad: keep the running maximum of ``v`` (slot ``vhat``) and divide by its square root.
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
    >>> opt = AdamW([p], learning_rate=0.1, weight_decay=0.5)
    >>> p.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> p  # decay: 1 - 1 * 0.5 * 0.1 = 0.95; then Adam's first step: - 0.1
    Parameter containing:
    tensor([0.8500], requires_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        learning_rate: float = keras_default(ADAM_LEARNING_RATE),
        weight_decay: float = ADAMW_WEIGHT_DECAY,
        beta_1: float = ADAM_BETA_1,
        beta_2: float = ADAM_BETA_2,
        epsilon: float = KERAS_EPSILON,
        amsgrad: bool = False,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = KERAS_EMA_MOMENTUM,
        ema_overwrite_frequency: int | None = None,
        jit_compile: bool = True,
        name: str = "AdamW",
        *,
        lr: float | None = None,
    ) -> None:
        if weight_decay is None:
            raise ValueError(
                "Missing value of `weight_decay`, which AdamW requires (Keras's default is "
                f"{ADAMW_WEIGHT_DECAY}); use torchrs.optim.Adam for no weight decay."
            )
        super().__init__(
            params,
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            jit_compile=jit_compile,
            name=name,
            lr=lr,
        )
