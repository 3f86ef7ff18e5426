"""Keras 2 optimizers (``tf.keras.optimizers.*``) as ``torch.optim.Optimizer``s, update rules exact.

``Adadelta``, ``Adagrad``, ``Adam``, ``Adamax``, ``AdamW``, ``Ftrl``, ``Nadam``, ``RMSprop`` and ``SGD``, plus
``torchrs.optim.legacy`` for ``tf.keras.optimizers.legacy``.
"""

from torchrs.optim.adadelta import Adadelta
from torchrs.optim.adagrad import Adagrad
from torchrs.optim.adam import Adam
from torchrs.optim.adamax import Adamax
from torchrs.optim.adamw import AdamW
from torchrs.optim.ftrl import Ftrl
from torchrs.optim.nadam import Nadam
from torchrs.optim.rmsprop import RMSprop
from torchrs.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Nadam",
    "RMSprop",
    "legacy",
]


def __getattr__(name: str) -> object:
    if name == "legacy":  # tf.keras.optimizers.legacy, loaded on first use
        import torchrs.optim.legacy

        return torchrs.optim.legacy
    raise AttributeError(f"module 'torchrs.optim' has no attribute {name!r}")
