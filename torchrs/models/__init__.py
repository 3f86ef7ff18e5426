"""Models, as ``tfrs.models``."""

from torchrs.models._nan_guard import NonFiniteLossError
from torchrs.models.base import History, Model

__all__ = ["History", "Model", "NonFiniteLossError"]
