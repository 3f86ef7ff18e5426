"""Optimizer state saved inside SavedModels and by ``ModelCheckpoint`` -> ``torchrs.optim``.

Keras ``model.save(dir, save_format="tf")`` (``include_optimizer=True``, the default),
``ModelCheckpoint(save_weights_only=False)`` and ``tf.saved_model.save`` of a compiled model keep the
optimizer in the SavedModel's ``variables/variables`` checkpoint under ``optimizer``;
``ModelCheckpoint(save_weights_only=True)`` writes a plain checkpoint; a ``.keras`` archive keeps it
in ``model.weights.h5`` (``optimizer/vars/N``), restored when the archive is loaded compiled. Each is trained with ``fit``,
converted with the CLI, reloaded with ``torchrs.io.load`` (SavedModels) or ``load_weights``
(checkpoints), and resumed for 20 steps next to TF.

A Keras SavedModel stores the optimizer's config, so the torchrs optimizer is built from
``torchrs.json``'s hyperparameters alone: these tests also prove nothing is missing from them.

Tolerance 1e-5, as in ``test_optimizer_state.py`` (same update rules in float32; measured <= 1.2e-7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchrs
from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from tests.converters.tfrs_to_torch.test_optimizer_state import (
    BATCH,
    LR,
    MORE_STEPS,
    PRE_STEPS,
    TOL,
    batches,
    max_resume_difference,
    optimizer_spec,
    resume,
    tf_model,
    torch_model,
)
from torchrs.io import load_optimizer_state
from torchrs.optim import Adam

pytestmark = pytest.mark.tf

OPTIMIZERS = {
    "adagrad": lambda tf: tf.keras.optimizers.Adagrad(LR, initial_accumulator_value=0.2),
    "amsgrad": lambda tf: tf.keras.optimizers.Adam(LR, beta_2=0.99, amsgrad=True),
    "sgd_momentum": lambda tf: tf.keras.optimizers.SGD(LR, momentum=0.8),
}


def _fit(tf, optimizer: Any, seed: int, **fit_kwargs: Any) -> tuple[Any, list[Any]]:
    """A model compiled with ``optimizer`` and fitted for PRE_STEPS batches; the remaining batches."""
    tf.keras.utils.set_random_seed(seed)
    model = tf_model(tf)
    model.compile(optimizer=optimizer, loss="mse")
    data = batches(seed, PRE_STEPS + MORE_STEPS)
    x = np.concatenate([b[0] for b in data[:PRE_STEPS]])
    y = np.concatenate([b[1] for b in data[:PRE_STEPS]])
    model.fit(x, y, batch_size=BATCH, shuffle=False, epochs=1, verbose=0, **fit_kwargs)
    assert int(model.optimizer.iterations.numpy()) == PRE_STEPS
    return model, data[PRE_STEPS:]


def _resume_saved_model(model, out: Path, more: list[Any]) -> float:
    module = torchrs.io.load(out).train()
    torch_opt, _ = resume(out, module)
    return max_resume_difference(model, module, torch_opt, model.train_on_batch, more)


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_keras_saved_model_resumes(tf, tmp_path: Path, case: str) -> None:
    model, more = _fit(tf, OPTIMIZERS[case](tf), seed=0)
    source = tmp_path / "keras_sm"
    model.save(str(source), save_format="tf")
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    spec = optimizer_spec(out)
    assert (
        spec["keras_class"]
        == {"adagrad": "Adagrad", "amsgrad": "Adam", "sgd_momentum": "SGD"}[case]
    )
    diff = _resume_saved_model(model, out, more)
    assert diff <= TOL, f"{case}: TF and torchrs differ by {diff:.3g} after {MORE_STEPS} steps"


def test_keras_saved_model_config_gives_the_hyperparameters(tf, tmp_path: Path) -> None:
    model, _ = _fit(tf, OPTIMIZERS["amsgrad"](tf), seed=1)
    model.save(str(tmp_path / "sm"), save_format="tf")
    out = tmp_path / "out"
    assert main([str(tmp_path / "sm"), "--out", str(out), "--json"]) == 0
    hyper = optimizer_spec(out)["hyperparameters"]
    # learning_rate is the float32 variable's value; the rest come from the saved Keras config.
    assert hyper["learning_rate"] == pytest.approx(LR, rel=1e-7)
    assert hyper["beta_2"] == 0.99 and hyper["amsgrad"] is True and hyper["epsilon"] == 1e-7
    assert "jit_compile" not in hyper and "is_legacy_optimizer" not in hyper


def test_model_checkpoint_saved_model_resumes(tf, tmp_path: Path) -> None:
    source = tmp_path / "mc"
    callback = tf.keras.callbacks.ModelCheckpoint(str(source), save_weights_only=False)
    model, more = _fit(tf, tf.keras.optimizers.Adam(LR), seed=2, callbacks=[callback])
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    assert optimizer_spec(out)["iterations"] == PRE_STEPS
    assert _resume_saved_model(model, out, more) <= TOL


def test_model_checkpoint_weights_only_resumes(tf, tmp_path: Path) -> None:
    source = tmp_path / "mcw" / "ckpt"
    callback = tf.keras.callbacks.ModelCheckpoint(str(source), save_weights_only=True)
    model, more = _fit(tf, tf.keras.optimizers.Adagrad(LR), seed=3, callbacks=[callback])
    out = tmp_path / "out"
    assert main([str(source.parent), "--out", str(out), "--json"]) == 0  # the directory
    module = torch_model()
    assert load_weights(module, out).ok
    torch_opt, _ = resume(out, module)
    assert max_resume_difference(model, module, torch_opt, model.train_on_batch, more) <= TOL


def test_tf_saved_model_of_a_compiled_model_resumes(tf, tmp_path: Path) -> None:
    model, more = _fit(tf, tf.keras.optimizers.Adam(LR), seed=4)
    source = tmp_path / "sm"
    tf.saved_model.save(model, str(source))  # no Keras config: class from the slots' names
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    assert optimizer_spec(out)["keras_class"] == "Adam"
    assert _resume_saved_model(model, out, more) <= TOL


def test_keras_archive_resumes(tf, tmp_path: Path) -> None:
    # A tf_keras `.keras` archive keeps the optimizer's variables in model.weights.h5; loaded
    # compiled, tf_keras restores them and the converter's SavedModel re-save keeps them.
    model, more = _fit(tf, tf.keras.optimizers.Adagrad(LR), seed=6)
    model.save(str(tmp_path / "model.keras"))
    out = tmp_path / "out"
    assert main([str(tmp_path / "model.keras"), "--out", str(out), "--json"]) == 0
    assert optimizer_spec(out)["iterations"] == PRE_STEPS
    assert _resume_saved_model(model, out, more) <= TOL


def test_saved_model_without_optimizer(tf, tmp_path: Path) -> None:
    model, _ = _fit(tf, tf.keras.optimizers.Adam(LR), seed=5)
    model.save(str(tmp_path / "sm"), save_format="tf", include_optimizer=False)
    out = tmp_path / "out"
    assert main([str(tmp_path / "sm"), "--out", str(out), "--json"]) == 0
    module = torchrs.io.load(out)
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_optimizer_state(Adam(module.parameters()), module, out)
