"""Keras optimizer state in TF checkpoints -> ``torchrs.optim``: training resumes in torch where TF left off.

A tiny Embedding -> Dense(relu) -> Dense model is trained for a few steps in TF (through
``compile``/``train_on_batch`` + ``model.save_weights``, or a GradientTape loop +
``tf.train.Checkpoint(model=..., optimizer=...)``), converted with the CLI, loaded into the torchrs
twin with ``load_weights`` + ``torchrs.io.load_optimizer_state``, and both frameworks run 20 more
steps on identical batches. The torchrs optimizer is built from the hyperparameters the converter
wrote to ``torchrs.json`` plus what a checkpoint cannot store (epsilon, momentum, weight decay).

Tolerance 1e-5 (the issue's bar): both run the same float32 update rules; the only differences are
summation orders in matmuls and gradient reductions (~1e-7 per step), which 20 steps at lr 0.05 do
not amplify past a few 1e-7 (measured max 1.2e-7 over the cases below).

The other files: ``test_optimizer_state_saved_model.py`` (SavedModel / ModelCheckpoint formats),
``test_optimizer_state_legacy.py`` (``tf.keras.optimizers.legacy``),
``test_optimizer_state_unsupported.py`` (what is refused, strict and ``--no-strict``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from torchrs.io import load_optimizer_state
from torchrs.layers.dense import KerasDense
from torchrs.layers.embedding import Embedding
from torchrs.optim import SGD, Adagrad, Adam, legacy

pytestmark = pytest.mark.tf

TOL = 1e-5  # see module docstring
VOCAB, DIM, BATCH = 12, 4, 8
PRE_STEPS, MORE_STEPS = 5, 20
LR = 0.05


# ------------------------------------------------------------------------------ shared helpers
# (imported by the other test_optimizer_state_*.py files)


def batches(seed: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, VOCAB, BATCH), rng.normal(size=(BATCH, 1)).astype(np.float32))
        for _ in range(n)
    ]


def tf_model(tf):
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.int64),
            tf.keras.layers.Embedding(VOCAB, DIM),
            tf.keras.layers.Dense(3, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )


def torch_model() -> nn.Sequential:
    return nn.Sequential(
        Embedding(VOCAB, DIM, sparse=True),
        KerasDense(3, activation="relu", input_dim=DIM),
        KerasDense(1, input_dim=3),
    )


def tf_step(tf, model, optimizer, x, y) -> None:
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(tf.constant(x)) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


def torch_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> None:
    optimizer.zero_grad()
    loss = torch.mean((model(torch.as_tensor(x)) - torch.as_tensor(y)) ** 2)  # Keras MSE, mean
    loss.backward()
    optimizer.step()


def optimizer_spec(out: Path) -> dict[str, Any]:
    return json.loads((out / "torchrs.json").read_text())["architecture"]["optimizer"]


def resume(
    out: Path, module: nn.Module, **extra: Any
) -> tuple[torch.optim.Optimizer, dict[str, Any]]:
    """The torchrs optimizer of ``torchrs.json``'s class and hyperparameters (+ ``extra``), filled."""
    spec = optimizer_spec(out)
    optimizer = getattr(importlib.import_module(spec["module"]), spec["class_name"])(
        module.parameters(), **{**spec["hyperparameters"], **extra}
    )
    loaded = load_optimizer_state(optimizer, module, out)
    assert len(loaded) == len(list(module.parameters()))
    assert optimizer.iterations == spec["iterations"]
    return optimizer, spec


def max_resume_difference(
    model, module: nn.Module, torch_opt, tf_train: Callable[[Any, Any], None], more
) -> float:
    """Runs ``more`` batches on both sides; the largest |TF - torch| over the trainable weights (inf where
    either side went NaN: a wrongly mapped ``v`` < 0 does)."""
    for x, y in more:
        tf_train(x, y)
        torch_step(module, torch_opt, x, y)
    worst = 0.0
    tf_weights = [v.numpy() for v in model.trainable_variables]
    torch_weights = [p.detach().numpy() for p in module.parameters()]
    for tf_w, torch_w in zip(tf_weights, torch_weights, strict=True):
        expected = tf_w.T if tf_w.ndim == 2 and tf_w.shape != torch_w.shape else tf_w
        assert torch_w.shape == expected.shape
        gap = float(np.abs(torch_w - expected).max())
        worst = max(worst, gap if np.isfinite(gap) else np.inf)  # max(0.0, nan) would be 0.0
    return worst


# ------------------------------------------------------------------------------------ resumes


def _tfrs():
    import tensorflow_recommenders

    return tensorflow_recommenders


# name -> (Keras optimizer, torchrs arguments a checkpoint does not store, save with save_weights)
CASES: dict[str, tuple[Callable[[Any], Any], dict[str, Any], bool]] = {
    "adagrad": (lambda tf: tf.keras.optimizers.Adagrad(LR), {}, True),
    "adam": (lambda tf: tf.keras.optimizers.Adam(LR), {}, False),
    "amsgrad": (lambda tf: tf.keras.optimizers.Adam(LR, amsgrad=True), {}, False),
    "adamw": (
        lambda tf: tf.keras.optimizers.AdamW(LR, weight_decay=0.01),
        {"weight_decay": 0.01},
        False,
    ),
    "sgd_nesterov": (
        lambda tf: tf.keras.optimizers.SGD(LR, momentum=0.9, nesterov=True),
        {"momentum": 0.9, "nesterov": True},
        True,
    ),
    "clippy_adagrad": (  # tfrs.experimental.optimizers.ClippyAdagrad: Adagrad's slots + factors
        lambda tf: _tfrs().experimental.optimizers.ClippyAdagrad(LR, export_clipping_factors=True),
        {"export_clipping_factors": True},
        True,
    ),
    "adam_ema": (
        lambda tf: tf.keras.optimizers.Adam(LR, use_ema=True, ema_overwrite_frequency=7),
        {"ema_overwrite_frequency": 7},
        False,
    ),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_resumes_in_torch(tf, tmp_path: Path, case: str, seed: int) -> None:
    make_tf, extra, keras_way = CASES[case]
    tf.keras.utils.set_random_seed(seed)
    model = tf_model(tf)
    optimizer = make_tf(tf)
    data = batches(seed, PRE_STEPS + MORE_STEPS)
    if keras_way:  # compile + fit-style steps, then save_weights
        model.compile(optimizer=optimizer, loss="mse")
        for x, y in data[:PRE_STEPS]:
            model.train_on_batch(x, y)
        source = tmp_path / "ckpt" / "weights"
        model.save_weights(str(source))
    else:  # a custom loop with tf.train.Checkpoint
        for x, y in data[:PRE_STEPS]:
            tf_step(tf, model, optimizer, x, y)
        source = Path(
            tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "c" / "ckpt"))
        )
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0

    module = torch_model()
    assert load_weights(module, out).ok
    torch_opt, _ = resume(out, module, **extra)
    assert torch_opt.iterations == PRE_STEPS

    def tf_train(x, y) -> None:
        model.train_on_batch(x, y) if keras_way else tf_step(tf, model, optimizer, x, y)

    if case == "clippy_adagrad":  # the exported clipping factors are monitoring output only
        entries = json.loads((out / "report.json").read_text())["entries"]
        factors = [e for e in entries if "export_clipping_factors output" in e.get("reason", "")]
        assert len(factors) == 5 and all(e["status"] == "skipped" for e in factors)
    diff = max_resume_difference(model, module, torch_opt, tf_train, data[PRE_STEPS:])
    assert diff <= TOL, f"{case}: TF and torchrs differ by {diff:.3g} after {MORE_STEPS} steps"
    assert int(optimizer.iterations.numpy()) == torch_opt.iterations == PRE_STEPS + MORE_STEPS


def test_slots_are_found_by_name_not_position(tf, tmp_path: Path) -> None:
    # The optimizer is built on the model's variables in reverse order, so slot i does NOT belong
    # to trainable variable i: only the slots' names (`Adam/m/dense/kernel`) place them right.
    tf.keras.utils.set_random_seed(4)
    model = tf_model(tf)
    optimizer = tf.keras.optimizers.Adam(LR)
    optimizer.build(model.trainable_variables[::-1])
    data = batches(4, PRE_STEPS + MORE_STEPS)
    for x, y in data[:PRE_STEPS]:
        tf_step(tf, model, optimizer, x, y)
    source = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "c"))
    out = tmp_path / "out"
    assert main([source, "--out", str(out), "--json"]) == 0
    module = torch_model()
    assert load_weights(module, out).ok
    torch_opt, _ = resume(out, module)
    diff = max_resume_difference(
        model, module, torch_opt, lambda x, y: tf_step(tf, model, optimizer, x, y), data[PRE_STEPS:]
    )
    assert diff <= TOL


# ---------------------------------------------------------------------------- layout / errors


@pytest.fixture(scope="module")
def adam_out(tf, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("adam_state")
    tf.keras.utils.set_random_seed(3)
    model = tf_model(tf)
    optimizer = tf.keras.optimizers.Adam(LR)
    for x, y in batches(3, 2):
        tf_step(tf, model, optimizer, x, y)
    source = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(root / "c" / "ckpt"))
    out = root / "out"
    assert main([source, "--out", str(out), "--json"]) == 0
    return out


def test_layout_and_report(adam_out: Path) -> None:
    meta = optimizer_spec(adam_out)
    assert meta["class_name"] == "Adam" and meta["keras_class"] == "Adam"
    assert meta["iterations"] == 2 and not meta["amsgrad"]
    # the float32 learning-rate variable, read back as a Python float
    assert meta["hyperparameters"] == {"learning_rate": float(np.float32(LR)), "amsgrad": False}
    kernel = meta["variables"]["model/layer_with_weights-1/kernel"]
    assert kernel == {"key": "model.#1.weight", "transpose": True, "slots": ["m", "v"]}
    from safetensors import safe_open

    with safe_open(str(adam_out / "model.safetensors"), framework="numpy") as handle:
        assert handle.get_tensor("optimizer/model/layer_with_weights-1/kernel/m").shape == (DIM, 3)
        assert int(handle.get_tensor("optimizer/iterations")) == 2
    report = json.loads((adam_out / "report.json").read_text())["entries"]
    slots = [e for e in report if e.get("torch_name", "").startswith("optimizer/")]
    assert len(slots) == 11 and all(e["status"] == "converted" for e in slots)  # 5 x (m, v) + it.
    notes = json.loads((adam_out / "torchrs.json").read_text())["notes"]
    assert any("torchrs.optim.Adam(module.parameters(), **hyperparameters)" in n for n in notes)
    assert any("does not store beta_1, beta_2, epsilon, clipping" in n for n in notes)


def test_wrong_optimizer_class_is_refused(adam_out: Path) -> None:
    module = torch_model()
    with pytest.raises(ValueError, match=r"holds torchrs\.optim\.Adam state"):
        load_optimizer_state(Adagrad(module.parameters()), module, adam_out)
    # the legacy twin has the same name and slots, and not the same rules
    with pytest.raises(ValueError, match=r"optimizer is a torchrs\.optim\.legacy\.adam\.Adam but"):
        load_optimizer_state(legacy.Adam(module.parameters()), module, adam_out)
    with pytest.raises(ValueError, match="amsgrad=True"):
        load_optimizer_state(Adam(module.parameters(), amsgrad=True), module, adam_out)


def test_module_that_does_not_mirror_is_refused(adam_out: Path) -> None:
    module = nn.Sequential(Embedding(VOCAB, DIM), KerasDense(1, input_dim=DIM))
    with pytest.raises(ValueError, match="does not match the module"):
        load_optimizer_state(Adam(module.parameters()), module, adam_out)


def test_no_optimizer_state(exports, tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert main([str(exports.weights), "--out", str(out), "--json"]) == 0
    module = torch_model()
    with pytest.raises(ValueError, match="holds no optimizer state"):
        load_optimizer_state(SGD(module.parameters()), module, out)
    with pytest.raises(ValueError, match="not a torchrs checkpoint"):
        load_optimizer_state(SGD(module.parameters()), module, tmp_path)


def test_optimizer_that_never_stepped_is_a_note(tf, tmp_path: Path, capsys) -> None:
    model = tf_model(tf)
    model.compile(optimizer=tf.keras.optimizers.Adam(LR), loss="mse")
    source = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "c"))
    out = tmp_path / "out"
    assert main([source, "--out", str(out)]) == 0
    assert "never took a step" in capsys.readouterr().out
    assert "optimizer" not in json.loads((out / "torchrs.json").read_text())["architecture"]
