"""Optimizer state ``torchrs.optim`` cannot resume: one clear error, or with ``--no-strict`` a report entry.

Every Keras optimizer below is stepped twice on the tiny model of ``test_optimizer_state.py`` and
saved with ``tf.train.Checkpoint(model=..., optimizer=...)``. Strict conversion must exit 2 with a
message naming the Keras class and listing what is supported, and leave nothing behind;
``--no-strict`` must convert the weights, write no optimizer state, and list the optimizer as
``unsupported`` in ``report.json`` (its variables as skipped, with the class in the reason).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchrs
from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from converters.tfrs_to_torch.optimizer_layouts import SUPPORTED
from tests.converters.tfrs_to_torch.test_optimizer_state import (
    LR,
    batches,
    optimizer_spec,
    tf_model,
    tf_step,
    torch_model,
)

pytestmark = pytest.mark.tf

_MODEL: list[Any] = []  # the model _checkpoint trains, for CompositeOptimizer's variable groups


def _composite(tf):
    from tensorflow_recommenders.experimental.optimizers import CompositeOptimizer

    return CompositeOptimizer(
        [
            (tf.keras.optimizers.legacy.Adagrad(LR), lambda: _MODEL[0].trainable_variables[:1]),
            (tf.keras.optimizers.legacy.Adam(LR), lambda: _MODEL[0].trainable_variables[1:]),
        ]
    )


def _renamed_clippy(tf):
    from tensorflow_recommenders.experimental.optimizers import ClippyAdagrad

    return ClippyAdagrad(LR, name="my_opt")


# name -> (Keras optimizer, the class the message names, a word of the reason)
UNSUPPORTED = {
    "adafactor": (lambda tf: tf.keras.optimizers.Adafactor(LR), "Adafactor", "no Adafactor"),
    "lion": (lambda tf: tf.keras.optimizers.Lion(LR), "Lion", "sign"),
    "renamed_lion": (
        # Lion and SGD both keep one `m` per variable: only the default name tells them apart
        lambda tf: tf.keras.optimizers.Lion(LR, name="my_opt"),
        "optimizer named 'my_opt'",
        "['SGD', 'Lion']",
    ),
    "legacy_renamed_adamax": (
        lambda tf: tf.keras.optimizers.legacy.Adamax(LR, name="my_opt"),
        "legacy optimizer named 'my_opt'",
        "['legacy.Adam', 'legacy.Adamax']",
    ),
    "renamed_clippy": (
        # ClippyAdagrad keeps Adagrad's slots and resumes in another torchrs class
        _renamed_clippy,
        "optimizer named 'my_opt'",
        "['Adagrad', 'ClippyAdagrad']",
    ),
    "composite": (_composite, "CompositeOptimizer", "one per variable group"),
    "loss_scale": (
        lambda tf: tf.keras.mixed_precision.LossScaleOptimizer(tf.keras.optimizers.Adam(LR)),
        "LossScaleOptimizer",
        "no loss scaling",
    ),
}


def _checkpoint(tf, optimizer: Any, root: Path) -> str:
    tf.keras.utils.set_random_seed(0)
    model = tf_model(tf)
    _MODEL[:] = [model]
    for x, y in batches(0, 2):
        tf_step(tf, model, optimizer, x, y)
    return tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(root / "c" / "ckpt"))


def _check_lenient(out: Path, class_name: str) -> list[dict[str, Any]]:
    """--no-strict output: no optimizer in torchrs.json, one unsupported entry, slots skipped."""
    assert "optimizer" not in json.loads((out / "torchrs.json").read_text())["architecture"]
    entries = json.loads((out / "report.json").read_text())["entries"]
    unsupported = [e for e in entries if e["status"] == "unsupported"]
    assert [e["source"] for e in unsupported] == ["optimizer"]
    assert unsupported[0]["reason"].startswith(f"Keras {class_name}: ")
    state = [e for e in entries if e["source"].startswith("optimizer/")]
    assert state and all(
        e["status"] == "skipped"
        and e["reason"] == f"state of unsupported optimizer Keras {class_name}"
        for e in state
    )
    return entries


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_optimizer(tf, tmp_path: Path, case: str, capsys) -> None:
    make, class_name, why = UNSUPPORTED[case]
    source = _checkpoint(tf, make(tf), tmp_path)
    assert main([source, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Unsupported optimizer state: Keras {class_name} at 'optimizer'")
    assert why in err and SUPPORTED in err and "--no-strict" in err
    assert "Traceback" not in err and not (tmp_path / "strict").exists()

    out = tmp_path / "lenient"
    assert main([source, "--out", str(out), "--no-strict", "--json"]) == 0
    _check_lenient(out, class_name)
    module = torch_model()
    assert load_weights(module, out).ok  # the weights are converted all the same


def test_optimizer_of_another_model(tf, tmp_path: Path, capsys) -> None:
    # The optimizer trained a 3-layer model but is saved next to a 4-layer one: its slots name
    # variables the saved model does not have, and their count matches nothing.
    optimizer = tf.keras.optimizers.Adam(LR)
    _checkpoint(tf, optimizer, tmp_path / "first")
    other = tf_model(tf)
    other.add(tf.keras.layers.Dense(1))
    other(np.zeros(2, dtype=np.int64))
    source = tf.train.Checkpoint(model=other, optimizer=optimizer).save(str(tmp_path / "c"))
    assert main([source, "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert "holds 5 'm' slots but the model has 7 trainable variables" in err
    assert "--no-strict" in err and not (tmp_path / "strict").exists()
    out = tmp_path / "lenient"
    assert main([source, "--out", str(out), "--no-strict", "--json"]) == 0
    entries = _check_lenient(out, "Adam")
    assert "holds 5 'm' slots" in next(e for e in entries if e["status"] == "unsupported")["reason"]


@pytest.mark.parametrize("keras_class", ["Adam", "AdamW"])
def test_renamed_adam_is_still_adam(tf, tmp_path: Path, keras_class: str) -> None:
    # Adam and AdamW keep the same slots and AdamW is Adam with weight_decay: a renamed one resumes as
    # torchrs Adam, and a note says to pass the weight decay if it was an AdamW.
    make = getattr(tf.keras.optimizers, keras_class)
    source = _checkpoint(tf, make(LR, name="my_adam"), tmp_path)
    out = tmp_path / "out"
    assert main([source, "--out", str(out), "--json"]) == 0
    assert optimizer_spec(out)["class_name"] == "Adam"
    notes = json.loads((out / "torchrs.json").read_text())["notes"]
    assert any("renamed 'my_adam'" in n and "if it was a Keras AdamW" in n for n in notes)


def test_unsupported_optimizer_in_keras_saved_model(tf, tmp_path: Path, capsys) -> None:
    tf.keras.utils.set_random_seed(0)
    model = tf_model(tf)
    model.compile(optimizer=tf.keras.optimizers.Lion(LR), loss="mse")
    x, y = batches(0, 1)[0]
    model.train_on_batch(x, y)
    model.save(str(tmp_path / "sm"), save_format="tf")
    assert main([str(tmp_path / "sm"), "--out", str(tmp_path / "strict")]) == 2
    assert "Unsupported optimizer state: Keras Lion" in capsys.readouterr().err
    out = tmp_path / "lenient"
    assert main([str(tmp_path / "sm"), "--out", str(out), "--no-strict", "--json"]) == 0
    _check_lenient(out, "Lion")
    assert torchrs.io.load(out) is not None  # the tower is rebuilt without the optimizer
