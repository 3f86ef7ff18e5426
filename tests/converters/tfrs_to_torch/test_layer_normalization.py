"""A Keras ``LayerNormalization`` converts from every format the converter takes, and its numbers match TF.

The layer kind was added with one rule (``rules.RULES``: gamma / beta -> weight / bias) and one builder
(``torchrs.io.registry``); these tests go through the CLI, ``torchrs.load`` and ``load_weights``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import torchrs
from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import EXIT_VERIFICATION_FAILED, main
from torchrs.layers import LayerNormalization
from torchrs.layers.dense import KerasDense

pytestmark = pytest.mark.tf

# float32 Dense + layer normalization: summation orders differ by a few ulps (~1e-6 on outputs of unit scale);
# a wrong epsilon, axis or a swapped gamma / beta is off by >= 1e-3 here.
TOL = 1e-5
FEATURES = 6


def _tower(tf, epsilon: float = 1e-3) -> object:
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(FEATURES,)),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.LayerNormalization(epsilon=epsilon),
            tf.keras.layers.Dense(3),
        ]
    )
    norm = model.layers[1]
    rng = np.random.default_rng(7)  # not Keras's ones / zeros: gamma and beta are checked
    norm.gamma.assign(rng.normal(size=norm.gamma.shape).astype(np.float32))
    norm.beta.assign(rng.normal(size=norm.beta.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def ln_exports(tf, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("layer_norm")
    model = _tower(tf)
    tf.saved_model.save(model, str(root / "saved_model"))
    model.save(str(root / "keras_sm"), save_format="tf")
    model.save(str(root / "model.keras"))
    model.save_weights(str(root / "weights" / "w"))
    tf.saved_model.save(_tower(tf, epsilon=0.3), str(root / "saved_model_eps"))
    return {"model": model, "root": root}  # type: ignore[dict-item]


def _inputs() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(9, FEATURES)).astype(np.float32)


@pytest.mark.parametrize("source", ["saved_model", "keras_sm", "model.keras"])
def test_converts_and_matches_tf(ln_exports, tf, tmp_path, capsys, source: str) -> None:
    out = tmp_path / "out"
    assert main([str(ln_exports["root"] / source), "--out", str(out)]) == 0, capsys.readouterr().err
    tower = torchrs.load(out)
    assert isinstance(tower[1], LayerNormalization) and tower[1].epsilon == pytest.approx(1e-3)
    expected = ln_exports["model"](tf.constant(_inputs())).numpy()
    got = tower(torch.from_numpy(_inputs())).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_checkpoint_loads_into_a_torchrs_twin(ln_exports, tf) -> None:
    twin = nn.Sequential(
        KerasDense(4, activation="relu", input_dim=FEATURES),
        LayerNormalization(input_dim=4),
        KerasDense(3, input_dim=4),
    )
    info = load_weights(twin, ln_exports["root"] / "weights")
    assert info.ok and {"1.weight", "1.bias"} <= set(info.matched)
    expected = ln_exports["model"](tf.constant(_inputs())).numpy()
    np.testing.assert_allclose(
        twin(torch.from_numpy(_inputs())).detach().numpy(), expected, atol=TOL, rtol=0
    )


def test_plain_saved_model_with_another_epsilon_fails_verification(
    ln_exports, tmp_path, capsys
) -> None:
    # tf.saved_model.save keeps no config: Keras's default epsilon is assumed, and the forward comparison
    # catches an export whose epsilon was not the default.
    out = tmp_path / "out"
    code = main(
        [str(ln_exports["root"] / "saved_model_eps"), "--out", str(out), "--graph", "never"]
    )
    err = capsys.readouterr().err
    assert (
        code == EXIT_VERIFICATION_FAILED and "the TF forward comparison" in err and not out.exists()
    )


def test_plain_saved_model_with_another_epsilon_converts_as_a_translated_graph(
    ln_exports, tmp_path, capsys, tf
) -> None:
    # By default the failed layer-by-layer rebuild falls back to the traced signature, which holds the
    # real epsilon: the translated graph reproduces TF.
    out = tmp_path / "out"
    assert main([str(ln_exports["root"] / "saved_model_eps"), "--out", str(out)]) == 0
    assert "the exported signatures were translated instead" in capsys.readouterr().err
    model = torchrs.load(out)
    (name,) = model.signatures["serving_default"].input_names
    got = model.signatures["serving_default"](**{name: _inputs()})
    (value,) = got.values()
    loaded = tf.saved_model.load(str(ln_exports["root"] / "saved_model_eps"))
    (expected,) = loaded.signatures["serving_default"](tf.constant(_inputs())).values()
    np.testing.assert_allclose(value.detach().numpy(), expected.numpy(), atol=TOL, rtol=0)
