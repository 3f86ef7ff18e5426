"""Keras 2's ``tf.keras.optimizers.legacy.*`` (``OptimizerV2``) as ``torch.optim.Optimizer``s: ``Adadelta``,
``Adagrad``, ``Adam``, ``Adamax``, ``Ftrl``, ``Nadam``, ``RMSprop`` and ``SGD``.

The optimizers of models trained with TF < 2.11 (and of ``tf.keras.optimizers.legacy.*`` since): TF's kernels'
update rules (Adagrad's epsilon outside the square root, lazy momentum on embedding rows), ``decay``, and the
legacy order of gradient clipping. See :mod:`torchrs.optim.legacy.optimizer_v2`. (Keras has no legacy AdamW.)
"""

from torchrs.optim.legacy.adadelta import Adadelta
from torchrs.optim.legacy.adagrad import Adagrad
from torchrs.optim.legacy.adam import Adam
from torchrs.optim.legacy.adamax import Adamax
from torchrs.optim.legacy.ftrl import Ftrl
from torchrs.optim.legacy.gradient_descent import SGD
from torchrs.optim.legacy.nadam import Nadam
from torchrs.optim.legacy.optimizer_v2 import OptimizerV2
from torchrs.optim.legacy.rmsprop import RMSprop

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adamax",
    "Ftrl",
    "Nadam",
    "OptimizerV2",
    "RMSprop",
]
