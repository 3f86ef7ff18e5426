"""Shared test set-up.

TFRS 0.7.7 refuses Keras 3, so ``TF_USE_LEGACY_KERAS=1`` must be set before TensorFlow is first
imported anywhere in the test session. Tests that need TensorFlow take the ``tf`` / ``tfrs``
fixtures (and carry ``@pytest.mark.tf``); plain unit tests never import it.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Before torch loads OpenMP: its threads yield at barriers instead of spinning (torchrs.config).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import pytest
import torch


@pytest.fixture(scope="session")
def tf():
    """TensorFlow with Keras 2 (tf-keras) behind ``tf.keras``."""
    import tensorflow

    return tensorflow


@pytest.fixture(scope="session")
def tfrs(tf):
    """tensorflow_recommenders 0.7.7."""
    import tensorflow_recommenders

    return tensorflow_recommenders


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tfr(tf):
    """tensorflow-ranking 0.5.5's ``tfr.keras`` (losses, metrics), loaded without its estimator-era package init."""
    from parity._tf import import_tfr

    return import_tfr()
