"""torchrs: the TensorFlow Recommenders API in PyTorch, with the same numbers.

``import torchrs as trs`` and find every TFRS symbol at the same path: ``trs.tasks.Retrieval``,
``trs.metrics.FactorizedTopK``, ``trs.layers.factorized_top_k.BruteForce``, ``trs.Model``.
Sub-packages load on first use; TensorFlow is never imported by this package.
"""

from __future__ import annotations

import importlib
from typing import Any

from torchrs import config as _config

__version__ = "0.1.0"

# OpenMP reads its wait policy once, when torch loads it: set before any torchrs module imports torch
# (a no-op when torch came first, or with TORCHRS_NUM_THREADS=keep). See torchrs.config.
_config.set_wait_policy()
_config.apply_cpu_limit()  # imports torch only where a cgroup quota or TORCHRS_NUM_THREADS needs it

_SUBMODULES = (
    "activations",
    "config",
    "data",
    "examples",
    "experimental",
    "functional",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optim",
    "preprocessing",
    "regularizers",
    "tasks",
)

__all__ = ["Model", "load", "save", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"torchrs.{name}")
    if name in ("load", "save"):
        from torchrs import io

        return getattr(io, name)
    if name == "Model":
        from torchrs.models import Model

        return Model
    raise AttributeError(f"module 'torchrs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
