"""Keras 2 optimizers (``tf.keras.optimizers.Adagrad/Adam/SGD``) as ``torch.optim.Optimizer``s, update rules exact."""

from torchrs.optim.adagrad import Adagrad
from torchrs.optim.adam import Adam
from torchrs.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "legacy"]


def __getattr__(name: str) -> object:
    if name == "legacy":  # tf.keras.optimizers.legacy, loaded on first use
        import torchrs.optim.legacy

        return torchrs.optim.legacy
    raise AttributeError(f"module 'torchrs.optim' has no attribute {name!r}")
