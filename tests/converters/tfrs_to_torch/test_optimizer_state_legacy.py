"""``tf.keras.optimizers.legacy`` (Keras 2's OptimizerV2) state -> ``torchrs.optim.legacy``: training resumes.

Legacy checkpoints keep ``iter`` (not ``_iterations``), the hyperparameters as float32 variables
(``learning_rate``, ``decay``, ``beta_1``, ``momentum``...) and one slot per variable referenced from the
variable itself (``<var>/.OPTIMIZER_SLOT/optimizer/m``). They resume in ``torchrs.optim.legacy``, whose
classes run the legacy TF kernels' rules (checked against them in ``tests/torchrs/optim/legacy/``):

* legacy Adagrad (``ResourceApplyAdagradV2``): ``var -= lr * g / (sqrt(acc) + eps)``, epsilon outside the
  root, where ``torchrs.optim.Adagrad`` (tf_keras 2.x) has ``/ sqrt(acc + eps)``;
* legacy SGD with momentum (``ResourceSparseApplyKerasMomentum``) is lazy on embedding rows: a row without
  gradient keeps its velocity and does not move (the model's Embedding sees 8 of 12 ids per batch, so this
  matters at every step: ``torchrs.optim.SGD`` from the same state ends 2e-2 to 1e-1 away);
* legacy Adam (``ResourceApplyAdam``; sparse rows via ``m * beta_1`` + scatter-add, not lazy);
* ``decay``: ``lr / (1 + decay * iterations)``, so ``iterations`` is state even for slotless plain SGD.

The converter writes the float32 hyperparameter values (``beta_2 = 0.9990000128746033``) to ``torchrs.json``;
what a checkpoint does not store (``nesterov``, ``epsilon``) comes from a Keras SavedModel's config or from the
user. Tolerance 1e-5 as in ``test_optimizer_state.py`` (measured max 1.2e-7 over the cases below, seeds
0-2; 1.5e-8 for default Adagrad, 6e-8 for SGD momentum).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from tests.converters.tfrs_to_torch.test_optimizer_state import (
    LR,
    MORE_STEPS,
    PRE_STEPS,
    TOL,
    batches,
    max_resume_difference,
    optimizer_spec,
    resume,
    tf_model,
    tf_step,
    torch_model,
)
from torchrs.io import load_optimizer_state
from torchrs.optim import SGD, Adagrad
from torchrs.optim import legacy as torch_legacy
from torchrs.optim.adagrad import adagrad_update
from torchrs.optim.legacy.adagrad import legacy_adagrad_update

pytestmark = pytest.mark.tf


def _train(tf, optimizer, seed: int, tmp_path: Path, keras_way: bool):
    """PRE_STEPS steps, then a checkpoint (save_weights or tf.train.Checkpoint); its path."""
    tf.keras.utils.set_random_seed(seed)
    model = tf_model(tf)
    data = batches(seed, PRE_STEPS + MORE_STEPS)
    if keras_way:
        model.compile(optimizer=optimizer, loss="mse")
        for x, y in data[:PRE_STEPS]:
            model.train_on_batch(x, y)
        source = tmp_path / "w" / "ckpt"
        model.save_weights(str(source))
        return model, model.train_on_batch, source, data[PRE_STEPS:]
    for x, y in data[:PRE_STEPS]:
        tf_step(tf, model, optimizer, x, y)
    source = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "c" / "k"))

    def train(x, y) -> None:
        tf_step(tf, model, optimizer, x, y)

    return model, train, Path(source), data[PRE_STEPS:]


# name -> (legacy Keras optimizer, torchrs arguments a checkpoint does not store, save with save_weights)
CASES: dict[str, tuple[Any, dict[str, Any], bool]] = {
    "adagrad": (lambda tf: tf.keras.optimizers.legacy.Adagrad(LR), {}, True),
    "adagrad_acc0_eps": (  # where epsilon's place shows: 1e-1 apart with the tf_keras 2.x rule
        lambda tf: tf.keras.optimizers.legacy.Adagrad(
            LR, initial_accumulator_value=0.0, epsilon=1e-3
        ),
        {"epsilon": 1e-3},
        False,
    ),
    "sgd_momentum": (lambda tf: tf.keras.optimizers.legacy.SGD(LR, momentum=0.9), {}, True),
    "sgd_nesterov_decay": (
        lambda tf: tf.keras.optimizers.legacy.SGD(LR, momentum=0.9, nesterov=True, decay=0.05),
        {"nesterov": True},
        False,
    ),
    "adam": (lambda tf: tf.keras.optimizers.legacy.Adam(LR), {}, True),
    "amsgrad_decay": (
        lambda tf: tf.keras.optimizers.legacy.Adam(LR, amsgrad=True, decay=0.05),
        {},
        False,
    ),
}
# Two seeds for the optimizers that only torchrs.optim.legacy resumes, one for the others (test time).
RUNS = [("adagrad", 0), ("adagrad", 1), ("sgd_momentum", 0), ("sgd_momentum", 1)] + [
    (case, 0) for case in ("adagrad_acc0_eps", "sgd_nesterov_decay", "adam", "amsgrad_decay")
]


@pytest.mark.parametrize(("case", "seed"), RUNS)
def test_legacy_training_resumes_in_torch(tf, tmp_path: Path, case: str, seed: int) -> None:
    make, extra, keras_way = CASES[case]
    model, train, source, more = _train(tf, make(tf), seed, tmp_path, keras_way)
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    module = torch_model()
    assert load_weights(module, out).ok
    torch_opt, spec = resume(out, module, **extra)  # hyperparameters from torchrs.json + `extra`
    assert spec["module"] == "torchrs.optim.legacy"
    assert spec["keras_class"] == f"legacy.{spec['class_name']}"
    assert type(torch_opt).__module__.startswith("torchrs.optim.legacy.")
    diff = max_resume_difference(model, module, torch_opt, train, more)
    assert diff <= TOL, f"legacy {case}: TF and torchrs differ by {diff:.3g} after {MORE_STEPS}"


def test_new_sgd_would_not_resume_legacy_momentum(tf, tmp_path: Path) -> None:
    # The same slots and iterations in torchrs.optim.SGD (tf_keras 2.x: every Embedding row's velocity decays and
    # every row moves) end 2e-2 to 1e-1 from TF; load_optimizer_state refuses that class for legacy state.
    make, _, keras_way = CASES["sgd_momentum"]
    model, train, source, more = _train(tf, make(tf), 0, tmp_path, keras_way)
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    module = torch_model()
    assert load_weights(module, out).ok
    with pytest.raises(ValueError, match=r"holds torchrs\.optim\.legacy\.SGD state"):
        load_optimizer_state(SGD(module.parameters(), learning_rate=LR, momentum=0.9), module, out)
    legacy_opt, spec = resume(out, module)
    new_opt = SGD(
        module.parameters(), learning_rate=LR, momentum=spec["hyperparameters"]["momentum"]
    )
    for p in module.parameters():
        new_opt.state[p] = {k: v.clone() for k, v in legacy_opt.state[p].items()}
    assert new_opt.iterations == PRE_STEPS
    assert max_resume_difference(model, module, new_opt, train, more) > 1e-3


def test_legacy_sgd_without_momentum_nor_decay_has_no_state(tf, tmp_path: Path, capsys) -> None:
    model, train, source, more = _train(
        tf, tf.keras.optimizers.legacy.SGD(LR), 1, tmp_path, keras_way=True
    )
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out)]) == 0
    assert (
        "keeps no state to resume: continue with a fresh torchrs.optim.legacy.SGD"
        in capsys.readouterr().out
    )
    assert "optimizer" not in json.loads((out / "torchrs.json").read_text())["architecture"]
    module = torch_model()
    assert load_weights(module, out).ok
    fresh = torch_legacy.SGD(module.parameters(), learning_rate=LR)  # what the note says
    assert max_resume_difference(model, module, fresh, train, more) <= TOL


def test_legacy_sgd_with_decay_resumes_its_iterations(tf, tmp_path: Path) -> None:
    # No slot, but lr / (1 + decay * iterations) needs the iterations: torchrs.json names the class with no
    # variables, and load_optimizer_state sets `step` on every parameter. A fresh optimizer (iterations 0) would
    # step with lr 0.05 instead of 0.05 / (1 + 0.2 * 5) = 0.025, and end far away.
    make = lambda tf: tf.keras.optimizers.legacy.SGD(LR, decay=0.2)  # noqa: E731
    model, train, source, more = _train(tf, make(tf), 2, tmp_path, keras_way=True)
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    spec = optimizer_spec(out)
    assert spec["variables"] == {} and spec["iterations"] == PRE_STEPS
    assert spec["hyperparameters"]["decay"] == float(np.float32(0.2))
    module = torch_model()
    assert load_weights(module, out).ok
    torch_opt, _ = resume(out, module)
    assert max_resume_difference(model, module, torch_opt, train, more) <= TOL

    model, train, _, more = _train(tf, make(tf), 2, tmp_path / "again", keras_way=True)
    module = torch_model()
    assert load_weights(module, out).ok
    fresh = torch_legacy.SGD(module.parameters(), learning_rate=LR, decay=0.2)
    assert max_resume_difference(model, module, fresh, train, more) > 1e-3


def test_legacy_hyperparameters_are_the_float32_values(tf, tmp_path: Path) -> None:
    _, _, source, _ = _train(
        tf, tf.keras.optimizers.legacy.Adam(LR, beta_1=0.8), 2, tmp_path, keras_way=True
    )
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    hyper = optimizer_spec(out)["hyperparameters"]
    # float32(0.999) == 0.9990000128746033: what TF's kernel subtracts from 1; decay 0 is left out (the default)
    assert hyper == {
        "learning_rate": float(np.float32(LR)),
        "beta_1": float(np.float32(0.8)),
        "beta_2": float(np.float32(0.999)),
        "amsgrad": False,
    }


SAVED_MODEL_CASES = {
    # what only a SavedModel's config gives: epsilon, nesterov
    "adam_epsilon": (
        lambda tf: tf.keras.optimizers.legacy.Adam(LR, epsilon=1e-4),
        {"epsilon": 1e-4},
    ),
    "sgd_nesterov_decay": (
        lambda tf: tf.keras.optimizers.legacy.SGD(LR, momentum=0.9, nesterov=True, decay=0.05),
        {"nesterov": True, "decay": float(np.float32(0.05))},
    ),
}


@pytest.mark.parametrize("case", sorted(SAVED_MODEL_CASES))
def test_legacy_keras_saved_model_resumes(tf, tmp_path: Path, case: str) -> None:
    make, expected = SAVED_MODEL_CASES[case]
    tf.keras.utils.set_random_seed(3)
    model = tf_model(tf)
    model.compile(optimizer=make(tf), loss="mse")
    data = batches(3, PRE_STEPS + MORE_STEPS)
    for x, y in data[:PRE_STEPS]:
        model.train_on_batch(x, y)
    model.save(str(tmp_path / "sm"), save_format="tf")
    out = tmp_path / "out"
    assert main([str(tmp_path / "sm"), "--out", str(out), "--json"]) == 0
    spec = optimizer_spec(out)
    assert spec["module"] == "torchrs.optim.legacy"
    assert expected.items() <= spec["hyperparameters"].items()
    import torchrs

    module = torchrs.io.load(out).train()
    if case.startswith("sgd"):  # lazy momentum needs sparse embedding gradients, as the note says
        notes = json.loads((out / "torchrs.json").read_text())["notes"]
        assert any("build the Embedding layers with sparse=True" in n for n in notes)
        with pytest.raises(
            ValueError, match=r"updates embedding rows lazily.*\['0'\].*sparse = True"
        ):
            resume(out, module)  # dense embedding gradients would move untouched rows: refused
        module[0].sparse = True
    torch_opt, _ = resume(out, module)
    assert (
        max_resume_difference(model, module, torch_opt, model.train_on_batch, data[PRE_STEPS:])
        <= TOL
    )


def test_legacy_optimizer_in_a_keras_archive_has_no_state_and_says_so(tf, tmp_path: Path) -> None:
    """tf_keras writes no variable of a legacy optimizer into a .keras archive (its model.weights.h5 has no
    `optimizer` group, unlike a tf_keras 2.x optimizer's): the conversion says so in its notes and in
    report.json, and writes no optimizer state."""
    import h5py

    tf.keras.utils.set_random_seed(4)
    model = tf_model(tf)
    model.compile(optimizer=tf.keras.optimizers.legacy.Adam(LR), loss="mse")
    for x, y in batches(4, PRE_STEPS):
        model.train_on_batch(x, y)
    archive = tmp_path / "model.keras"
    model.save(str(archive))
    with zipfile.ZipFile(archive) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5"))) as h5:
        assert "optimizer" not in h5  # the Keras fact the note states
    out = tmp_path / "out"
    assert main([str(archive), "--out", str(out), "--json"]) == 0
    meta = json.loads((out / "torchrs.json").read_text())
    assert "optimizer" not in meta["architecture"]
    (note,) = [n for n in meta["notes"] if "legacy" in n]
    assert "tf.keras.optimizers.legacy.Adam" in note and "no optimizer state" in note
    report = json.loads((out / "report.json").read_text())["entries"]
    (entry,) = [e for e in report if e["source"] == "optimizer"]
    assert entry["status"] == "skipped" and entry["reason"] == note


def test_legacy_adagrad_kernel_is_torchrs_legacy_not_torchrs(tf) -> None:
    # One dense step from acc = 0 with g = 1e-4, lr = 1, eps = 1e-7:
    #   legacy (TF kernel) and torchrs.optim.legacy: var -= g / (sqrt(g**2) + eps) = 1e-4 / (1e-4 + 1e-7) = 0.999001
    #   torchrs.optim / tf_keras 2.x:                var -= g / sqrt(g**2 + eps) = 1e-4 / sqrt(1.1e-7) = 0.301511
    var, acc = tf.Variable([1.0]), tf.Variable([0.0])
    tf.raw_ops.ResourceApplyAdagradV2(
        var=var.handle, accum=acc.handle, lr=1.0, epsilon=1e-7, grad=tf.constant([1e-4])
    )
    legacy_param, new_param = torch.tensor([1.0]), torch.tensor([1.0])
    legacy_adagrad_update(
        legacy_param, torch.tensor([1e-4]), torch.zeros(1), learning_rate=1.0, epsilon=1e-7
    )
    adagrad_update(new_param, torch.tensor([1e-4]), torch.zeros(1), learning_rate=1.0, epsilon=1e-7)
    assert legacy_param.item() == var.numpy()[0]
    assert 1.0 - var.numpy()[0] == pytest.approx(0.999001, abs=1e-5)
    assert 1.0 - new_param.item() == pytest.approx(0.301511, abs=1e-5)


def test_legacy_state_is_refused_by_the_new_class(tf, tmp_path: Path) -> None:
    _, _, source, _ = _train(
        tf, tf.keras.optimizers.legacy.Adagrad(LR), 0, tmp_path, keras_way=True
    )
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    module = torch_model()
    with pytest.raises(ValueError, match=r"holds torchrs\.optim\.legacy\.Adagrad state"):
        load_optimizer_state(Adagrad(module.parameters()), module, out)


def test_legacy_refused(tf, tmp_path: Path, capsys) -> None:
    # What cannot be told apart is still refused, saved the Keras way too: a renamed legacy Adamax keeps
    # legacy Adam's slots and hyperparameters, and the two resume in different torchrs classes.
    make = lambda tf: tf.keras.optimizers.legacy.Adamax(LR, name="my_opt")  # noqa: E731
    _, _, source, _ = _train(tf, make(tf), 0, tmp_path, keras_way=True)
    assert main([str(source), "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    label = "legacy optimizer named 'my_opt'"
    assert f"Unsupported optimizer state: Keras {label} at 'optimizer'" in err
    assert "['legacy.Adam', 'legacy.Adamax']" in err and "--no-strict" in err
    assert "Traceback" not in err and not (tmp_path / "strict").exists()

    out = tmp_path / "lenient"
    assert main([str(source), "--out", str(out), "--no-strict", "--json"]) == 0
    meta = json.loads((out / "torchrs.json").read_text())
    assert "optimizer" not in meta["architecture"]
    entries = json.loads((out / "report.json").read_text())["entries"]
    unsupported = [e for e in entries if e["status"] == "unsupported"]
    assert [e["source"] for e in unsupported] == ["optimizer"]
    assert unsupported[0]["reason"].startswith(f"Keras {label}: ")
    slots = [
        e for e in entries if ".OPTIMIZER_SLOT" in e["source"] or e["source"] == "optimizer/iter"
    ]
    assert slots and all(
        e["reason"] == f"state of unsupported optimizer Keras {label}" for e in slots
    )
    module = torch_model()
    assert load_weights(module, out).ok  # the weights are converted all the same
