"""Keras 2's ``tf.keras.optimizers.legacy.Adagrad/Adam/SGD`` (``OptimizerV2``) as ``torch.optim.Optimizer``s.

The optimizers of models trained with TF < 2.11 (and of ``tf.keras.optimizers.legacy.*`` since): TF's kernels'
update rules (Adagrad's epsilon outside the square root, lazy momentum on embedding rows), ``decay``, and the
legacy order of gradient clipping. See :mod:`torchrs.optim.legacy.optimizer_v2`.
"""

from torchrs.optim.legacy.adagrad import Adagrad
from torchrs.optim.legacy.adam import Adam
from torchrs.optim.legacy.gradient_descent import SGD
from torchrs.optim.legacy.optimizer_v2 import OptimizerV2

__all__ = ["SGD", "Adagrad", "Adam", "OptimizerV2"]
