"""The shared optimizer problems (``tests/torchrs/optim/_reference.py``) run with ``tf.keras.optimizers.legacy``."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.torchrs.optim import _reference as shared
from tests.torchrs.optim._reference import (  # noqa: F401  (re-exported for the legacy tests)
    SEEDS,
    TOLERANCE,
    max_abs_diff,
    run_dense_torch,
    run_embedding_torch,
)


def keras_optimizer(tf, name: str, kwargs: dict[str, Any]):
    """``tf.keras.optimizers.legacy.<name>(**kwargs)``, checked to be the legacy OptimizerV2 class."""
    opt = getattr(tf.keras.optimizers.legacy, name)(**kwargs)
    assert type(opt).__module__.startswith("tf_keras.src.optimizers.legacy.")
    return opt


def run_dense_keras(tf, name: str, kwargs: dict[str, Any], seed: int) -> list[np.ndarray]:
    return shared.run_dense_keras(tf, keras_optimizer(tf, name, kwargs), seed)


def run_embedding_keras(tf, name: str, kwargs: dict[str, Any], seed: int) -> list[np.ndarray]:
    return shared.run_embedding_keras(tf, keras_optimizer(tf, name, kwargs), seed)
