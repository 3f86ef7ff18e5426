"""Dense ``kernel_regularizer`` / ``bias_regularizer`` through the layer-by-layer converter.

In a plain ``tf.saved_model.save`` export (no Keras config) a regularized Dense's traced call holds
the regularizer's ops (``L2Loss`` / ``Mul``; ``Abs`` / ``Sum`` / ``Mul`` for L1) under
``<layer>/kernel/Regularizer/``: they are read as a torchrs regularizer, not as an activation. The
converted tower must give TF's outputs and Keras's ``sum(model.losses)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import torchrs.io
from converters.tfrs_to_torch.cli import main
from torchrs.layers.dense import Dense
from torchrs.layers.embedding import Embedding

pytestmark = pytest.mark.tf

KINDS = ["l2", "l1", "l1l2"]


def regularization_loss(module: nn.Module) -> torch.Tensor:
    """The penalties of every Embedding and Dense inside ``module`` (Keras's ``sum(model.losses)``)."""
    return sum(
        (m.regularization_loss() for m in module.modules() if isinstance(m, Dense | Embedding)),
        torch.zeros(()),
    )


def _regularizer(tf: Any, kind: str) -> Any:
    return {
        "l2": tf.keras.regularizers.L2(0.01),
        "l1": tf.keras.regularizers.L1(0.02),
        "l1l2": tf.keras.regularizers.L1L2(l1=0.01, l2=0.03),
    }[kind]


@pytest.fixture(scope="session")
def regularized(tf, tmp_path_factory) -> dict[str, tuple[Any, Path, Path]]:
    """``kind -> (keras model, plain SavedModel, Keras SavedModel)``."""
    root = tmp_path_factory.mktemp("regularized")
    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    out = {}
    for kind in KINDS:
        model = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(), dtype=tf.int64),
                tf.keras.layers.Embedding(10, 4, embeddings_regularizer=_regularizer(tf, kind)),
                tf.keras.layers.Dense(
                    3, activation="relu", kernel_regularizer=_regularizer(tf, kind)
                ),
                tf.keras.layers.Dense(2, bias_regularizer=_regularizer(tf, kind)),
            ]
        )
        # Non-zero biases, so the bias regularizer counts.
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
        tf.saved_model.save(model, str(root / f"{kind}_plain"))
        model.save(str(root / f"{kind}_keras"), save_format="tf")
        out[kind] = (model, root / f"{kind}_plain", root / f"{kind}_keras")
    return out


@pytest.mark.parametrize("export", ["plain", "keras"])
@pytest.mark.parametrize("kind", KINDS)
def test_regularized_dense_converts(regularized, tmp_path, capsys, kind, export) -> None:
    model, plain, keras = regularized[kind]
    source = plain if export == "plain" else keras
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--graph", "never", "--json"]) == 0, (
        capsys.readouterr().err
    )
    tower = torchrs.io.load(out)
    inputs = np.random.default_rng(0).integers(0, 10, size=(8,))
    # 1e-6: two float32 matmuls (summation order may differ between TF and torch).
    np.testing.assert_allclose(
        tower(torch.from_numpy(inputs)).detach().numpy(), model(inputs).numpy(), atol=1e-6, rtol=0
    )
    expected = float(sum(float(loss) for loss in model.losses))
    assert expected > 0
    # 1e-6 relative: float32 sums of squares / absolute values over 60 weights; the L2 factor is
    # read back as (2 * l2) / 2 from Keras's float32 constant, which is float32(l2) exactly.
    np.testing.assert_allclose(
        float(regularization_loss(tower).detach()), expected, rtol=1e-6, atol=0
    )
    # Embedding, Dense kernel, Dense bias: each penalty is there (none silently dropped).
    assert len([loss for loss in model.losses if float(loss) > 0]) == 3


def test_custom_regularizer_is_refused_with_the_op(tf, tmp_path, capsys) -> None:
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(2,)),
            tf.keras.layers.Dense(2, kernel_regularizer=lambda w: tf.reduce_max(tf.square(w))),
        ]
    )
    tf.saved_model.save(model, str(tmp_path / "sm"))
    code = main([str(tmp_path / "sm"), "--out", str(tmp_path / "o"), "--graph", "never"])
    err = capsys.readouterr().err
    assert code == 2 and "custom regularizer" in err and "Traceback" not in err


def test_keras_regularizer_torchrs_lacks_is_refused_at_conversion(tf, tmp_path, capsys) -> None:
    regularizer = tf.keras.regularizers.OrthogonalRegularizer(factor=0.01)
    model = tf.keras.Sequential(
        [tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(2, kernel_regularizer=regularizer)]
    )
    model.save(str(tmp_path / "keras"), save_format="tf")
    code = main([str(tmp_path / "keras"), "--out", str(tmp_path / "o"), "--graph", "never"])
    err = capsys.readouterr().err
    assert code == 2 and "kernel_regularizer is not one torchrs rebuilds" in err
    assert "OrthogonalRegularizer" in err and not (tmp_path / "o").exists()


@pytest.fixture(scope="session")
def regularized_blocks(tf, tfrs, tmp_path_factory) -> tuple[Any, Path, Path]:
    """A tower whose regularized Dense layers sit inside a tfrs.layers.blocks.MLP (TFRS's MLP takes no
    regularizer argument; its Dense sublayers carry one when it is set on them before the block is built)
    and inside a nested Sequential: ``(keras model, plain SavedModel, Keras SavedModel)``."""
    root = tmp_path_factory.mktemp("regularized_blocks")
    tf.keras.utils.set_random_seed(9)
    regularizers = tf.keras.regularizers
    mlp = tfrs.layers.blocks.MLP([5, 4])
    mlp._sublayers[0].kernel_regularizer = regularizers.L2(0.01)
    mlp._sublayers[1].kernel_regularizer = regularizers.L1L2(l1=0.01, l2=0.03)
    mlp._sublayers[1].bias_regularizer = regularizers.L1(0.02)
    inner = tf.keras.Sequential(
        [tf.keras.layers.Dense(2, kernel_regularizer=regularizers.L1(0.05), activation="tanh")]
    )
    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), mlp, inner])
    # Non-zero biases, so the bias regularizer counts.
    rng = np.random.default_rng(9)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    tf.saved_model.save(model, str(root / "plain"))
    model.save(str(root / "keras"), save_format="tf")
    return model, root / "plain", root / "keras"


@pytest.mark.parametrize("export", ["plain", "keras"])
def test_regularizers_inside_an_mlp_block_convert(
    regularized_blocks, tmp_path, capsys, export
) -> None:
    """In a plain export only the MLP's call is traced: its sublayers' regularizer ops are read there, each
    tied to its variable by the handle it reads. Every penalty of Keras's model.losses is rebuilt."""
    model, plain, keras = regularized_blocks
    out = tmp_path / "out"
    source = plain if export == "plain" else keras
    assert main([str(source), "--out", str(out), "--graph", "never", "--json"]) == 0, (
        capsys.readouterr().err
    )
    tower = torchrs.io.load(out)
    inputs = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    # 1e-6: three float32 matmuls (summation order may differ between TF and torch).
    np.testing.assert_allclose(
        tower(torch.from_numpy(inputs)).detach().numpy(), model(inputs).numpy(), atol=1e-6, rtol=0
    )
    # MLP kernel 0, MLP kernel 1 (L1L2), MLP bias 1, the nested Sequential's kernel: none dropped.
    assert len([loss for loss in model.losses if float(loss) > 0]) == 4
    expected = float(sum(float(loss) for loss in model.losses))
    # 1e-6 relative: float32 sums of squares / absolute values over ~50 weights (see above).
    np.testing.assert_allclose(
        float(regularization_loss(tower).detach()), expected, rtol=1e-6, atol=0
    )
    config = json.loads((out / "torchrs.json").read_text())["architecture"]["layers"][0]["config"]
    assert [sorted(r) for r in config["sublayer_regularizers"]] == [
        ["kernel_regularizer"],
        ["bias_regularizer", "kernel_regularizer"],
    ]
