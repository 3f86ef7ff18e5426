"""The package: no TensorFlow on import, and TFRS's module map found under torchrs."""

from __future__ import annotations

import subprocess
import sys

import pytest

SUBMODULES = [
    "activations",
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
]


def test_import_never_imports_tensorflow() -> None:
    code = (
        "import sys, importlib, torchrs\n"
        f"for name in {SUBMODULES!r}: importlib.import_module('torchrs.' + name)\n"
        "import torchrs.layers.factorized_top_k, torchrs.layers.feature_interaction, torchrs.layers.scann\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# The TFRS 0.7.7 public symbols a migrating user reaches for, each expected at the same path under torchrs.
TFRS_SYMBOLS = [
    "Model",
    "models.Model",
    "tasks.Task",
    "tasks.Retrieval",
    "tasks.Ranking",
    "metrics.Factorized",
    "metrics.FactorizedTopK",
    "layers.factorized_top_k.TopK",
    "layers.factorized_top_k.BruteForce",
    "layers.factorized_top_k.Streaming",
    "layers.factorized_top_k.ScaNN",
    "layers.loss.HardNegativeMining",
    "layers.loss.RemoveAccidentalHits",
    "layers.loss.SamplingProbablityCorrection",
    "layers.feature_interaction.Cross",
    "layers.feature_interaction.DotInteraction",
    "layers.feature_interaction.MultiLayerDCN",
    "layers.dcn.Cross",
    "layers.blocks.MLP",
    "experimental.models.Ranking",
    "experimental.optimizers.CompositeOptimizer",
    "experimental.optimizers.ClippyAdagrad",
    "examples.movielens.evaluate",
    "examples.movielens.sample_listwise",
]


def _resolve(root: object, dotted: str) -> object:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


@pytest.mark.parametrize("dotted", TFRS_SYMBOLS)
def test_tfrs_path_exists_in_torchrs(dotted: str) -> None:
    import torchrs

    assert _resolve(torchrs, dotted) is not None


@pytest.mark.tf
def test_symbol_list_is_real_tfrs(tfrs) -> None:
    # The list above is TFRS's own API: a typo there would make the previous test meaningless.
    for dotted in TFRS_SYMBOLS:
        _resolve(tfrs, dotted)


# The Keras 2 symbols TFRS models are written with, at Keras's own paths with `tf.keras` replaced by `torchrs`.
KERAS_SYMBOLS = [
    "layers.Dense",
    "layers.Embedding",
    "initializers.get",
    "initializers.GlorotUniform",
    "initializers.TruncatedNormal",
    "initializers.RandomUniform",
    "regularizers.get",
    "regularizers.L1",
    "regularizers.L2",
    "regularizers.L1L2",
    "activations.get",
    "activations.gelu",
    "activations.hard_sigmoid",
    "activations.linear",
    "activations.selu",
    "activations.softplus",
]


@pytest.mark.parametrize("dotted", KERAS_SYMBOLS)
def test_keras_path_exists_in_torchrs(dotted: str) -> None:
    import torchrs

    assert _resolve(torchrs, dotted) is not None


@pytest.mark.tf
def test_keras_symbol_list_is_real_keras(tf) -> None:
    for dotted in KERAS_SYMBOLS:
        _resolve(tf.keras, dotted)
