"""Sharded tables (torchrs.distributed, TorchRec, 2 gloo ranks) follow unsharded torchrs step by step.

One torchrun launch (session-scoped) runs every check of ``sharded_worker.py``; each test here compares one
check's output with the unsharded model trained in this process on the same data. The unsharded reference
takes, at each step, the mean of the two ranks' losses on their halves of the global batch: that is the loss
whose gradient DDP and TorchRec average (TorchRec divides the sharded gradients by the world size).

Tolerances: float32 everywhere, the same Keras Adagrad rule; FBGEMM and torch differ only in summation order
(duplicate ids' gradients, the 2-term rank average) and in ``sqrt(m) + 0`` vs ``sqrt(acc + eps)`` with ``m``
stored as ``acc + eps`` (one rounding of ``acc + eps`` per step). Measured: losses within ~2e-7 relative,
weights within ~1e-7 after 8 steps; the bar is the issue's 1e-6 (relative for losses of magnitude ~80,
absolute for weights of magnitude ~0.1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from sharded_model import (
    CONFIG,
    LEARNING_RATE,
    adagrad,
    global_batches,
    make_data,
    make_model,
    reference_steps,
    uneven,
)

import torchrs as trs
from torchrs.distributed import torchrec_available
from torchrs.io import load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torchrec_available(),
        reason="TorchRec is not installed (optional: `make torchrec`; `make test`'s setup installs it)",
    ),
]

LOSS_RTOL = 1e-6  # see module docstring
WEIGHT_ATOL = 1e-6
TABLES = ("user_model.1", "movie_model.1")
#: Seconds for the whole launch (7-8 checks, 2 ranks, each rank importing TorchRec) on a loaded 2-core machine.
LAUNCH_TIMEOUT = 600


def _converted_checkpoint(root: Path) -> str:
    """The tutorial's TFRS model trained 2 steps with Keras Adagrad, saved with its optimizer, converted."""
    try:
        from parity._tf import import_tf
    except ImportError:
        return "-"
    tf, _ = import_tf()
    from converters.tfrs_to_torch.cli import main
    from parity.scenarios.basic_retrieval import build_tf

    data = make_data()
    model = build_tf(data, CONFIG)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=LEARNING_RATE))
    first = 2 * CONFIG.batch_size
    examples = {
        "user_id": data.train_user_ids[:first],
        "movie_title": data.train_movie_titles[:first],
    }
    dataset = tf.data.Dataset.from_tensor_slices({k: v.astype(str) for k, v in examples.items()})
    model.fit(dataset.batch(CONFIG.batch_size), epochs=1, verbose=0)  # 2 steps
    model.save_weights(str(root / "tf" / "ckpt"))
    out = root / "converted"
    if main([str(root / "tf"), "--out", str(out), "--json"]) != 0:
        raise RuntimeError("conversion of the TF checkpoint failed")
    return str(out)


@pytest.fixture(scope="session")
def launched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("sharded")
    converted = _converted_checkpoint(root)
    worker = Path(__file__).with_name("sharded_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(worker),
            str(root / "out"),
            converted,
        ],
        capture_output=True,
        text=True,
        timeout=LAUNCH_TIMEOUT,
        env=env,
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    return root / "out", converted, output


def _check(launched: tuple[Path, str, str], name: str) -> Path:
    out, _, output = launched
    assert (out / name / "done").is_file(), f"check {name!r} did not finish:\n{output}"
    return out / name


def _exported(directory: Path) -> dict[str, torch.Tensor]:
    tensors = load(directory)
    return {k: v for k, v in tensors.items() if v.dtype.is_floating_point}


def _assert_weights(exported: dict[str, torch.Tensor], reference: torch.nn.Module) -> None:
    expected = {k: v for k, v in reference.state_dict().items() if v.dtype.is_floating_point}
    assert exported.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(exported[name], value, rtol=0, atol=WEIGHT_ATOL, msg=name)


def _assert_losses(got: list[float], expected: list[float]) -> None:
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a == pytest.approx(b, rel=LOSS_RTOL), f"step {step}: sharded {a} vs unsharded {b}"


@pytest.mark.parametrize("kind", ["row_wise", "table_wise", "column_wise"])
def test_sharded_follows_unsharded(launched: tuple[Path, str, str], kind: str) -> None:
    out = _check(launched, kind)
    model = make_model()
    losses = reference_steps(model, global_batches() * 2, adagrad(list(model.parameters())))
    _assert_losses(json.loads((out / "losses.json").read_text()), losses)
    _assert_weights(_exported(out / "export"), model)
    # It trained: the tables left Keras's init range.
    assert float(model.user_model[1].weight.detach().abs().max()) > 0.06


def test_sgd_without_momentum_is_exact_sgd(launched: tuple[Path, str, str]) -> None:
    out = _check(launched, "sgd")
    model = make_model()
    optimizer = trs.optim.SGD(list(model.parameters()), learning_rate=0.5)
    losses = reference_steps(model, global_batches() * 2, optimizer)
    _assert_losses(json.loads((out / "losses.json").read_text()), losses)
    _assert_weights(_exported(out / "export"), model)


def test_ranks_with_different_numbers_of_ids(launched: tuple[Path, str, str]) -> None:
    out = _check(launched, "uneven")
    model = make_model()
    optimizer = adagrad(list(model.parameters()))
    losses = reference_steps(model, global_batches(), optimizer, split=uneven)
    _assert_losses(json.loads((out / "losses.json").read_text()), losses)
    _assert_weights(_exported(out / "export"), model)


def test_fit_and_evaluate_on_a_sharded_model(launched: tuple[Path, str, str]) -> None:
    # The query tower has a Dense layer: it stays replicated under DDP while the tables are sharded.
    out = _check(launched, "fit")
    logs = json.loads((out / "logs.json").read_text())
    model = make_model(dense=True)
    losses = reference_steps(model, global_batches() * 2, adagrad(list(model.parameters())))
    _assert_weights(_exported(out / "export"), model)
    # Keras's history["loss"] is the epoch's last step: the mean of the ranks' losses there.
    per_epoch = [losses[len(global_batches()) - 1], losses[-1]]
    _assert_losses(logs["history"]["loss"], per_epoch)
    data = make_data()
    test = [
        {
            "user_id": data.test_user_ids[i : i + 32],
            "movie_title": data.test_movie_titles[i : i + 32],
        }
        for i in range(0, len(data.test_user_ids), 32)
    ]
    # Top-K metrics are synced over ranks: counts over all test queries, as one process sees them. Compared
    # on the sharded run's own final weights: after 8 steps at lr 0.1 the scores are ~1e-3 apart and a 1e-7
    # weight difference flips near-ties of the top-k (measured: 2 of 64 queries at k=5).
    twin = make_model(dense=True)
    twin.load_state_dict(load(out / "export"))
    expected = twin.evaluate(test, return_dict=True, verbose=0)
    assert isinstance(expected, dict)
    for name, value in expected.items():
        if name.startswith("factorized_top_k/"):
            assert logs["evaluate"][name] == pytest.approx(value, abs=1e-7), name


def test_dcp_resume_reshards_row_wise_into_table_wise(launched: tuple[Path, str, str]) -> None:
    out = _check(launched, "dcp")
    saved, restored = _exported(out / "saved"), _exported(out / "restored")
    reloaded = _exported(
        out / "reloaded"
    )  # export_unsharded -> load_sharded (column-wise) -> export
    assert saved.keys() == restored.keys() == reloaded.keys()
    for name, value in saved.items():
        torch.testing.assert_close(restored[name], value, rtol=0, atol=0, msg=name)  # copies, exact
        torch.testing.assert_close(reloaded[name], value, rtol=0, atol=0, msg=name)
    # The accumulators came back too: both go on identically (a fresh accumulator would not).
    losses = json.loads((out / "losses.json").read_text())
    _assert_losses(losses["second"], losses["first"])
    first, second = _exported(out / "first_after"), _exported(out / "second_after")
    for name, value in first.items():
        torch.testing.assert_close(second[name], value, rtol=0, atol=WEIGHT_ATOL, msg=name)
    # And they match an unsharded run of all the steps.
    model = make_model()
    reference = reference_steps(model, global_batches(), adagrad(list(model.parameters())))
    _assert_losses(losses["before"] + losses["first"], reference)
    _assert_weights(first, model)


def test_auto_plan_shards_both_tables(launched: tuple[Path, str, str]) -> None:
    plan = json.loads((_check(launched, "auto") / "plan.json").read_text())
    assert set(plan["kinds"]) == set(TABLES)
    assert set(plan["kinds"].values()) <= {"row_wise", "table_wise", "column_wise"}
    model = make_model()
    reference = reference_steps(model, global_batches()[:2], adagrad(list(model.parameters())))
    _assert_losses(plan["losses"], reference)


@pytest.mark.tf
def test_converted_tf_checkpoint_loads_by_slices_and_fits_like_unsharded(
    launched: tuple[Path, str, str],
) -> None:
    _, converted, _ = launched
    if converted == "-":
        pytest.skip("TensorFlow is not installed: no TF checkpoint to convert")
    out = _check(launched, "converted")
    result: dict[str, Any] = json.loads((out / "losses.json").read_text())
    assert result["loaded"] == {table: ["weight", "accumulator"] for table in TABLES}
    from converters.tfrs_to_torch import load_weights
    from torchrs.io import load_optimizer_state

    model = make_model(seed=0)
    load_weights(model, converted)
    optimizer = adagrad(list(model.parameters()))
    load_optimizer_state(optimizer, model, converted)
    reference = reference_steps(model, global_batches(), optimizer)
    _assert_losses(result["losses"], reference)
    _assert_weights(_exported(out / "export"), model)
