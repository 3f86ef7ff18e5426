"""The optimizer mapping of sharded tables: FBGEMM's fused update against Keras itself, and every refusal.

FBGEMM's table-batched embedding (the kernel TorchRec's sharded tables run, single process here) is built from
``FusedOptimizer.fused_params()`` with its state set from the mapping, and trained next to the same table in
Keras 2 on the same batches (duplicate ids included). Tolerance 1e-6 absolute on weights of magnitude ~0.1 after
20 steps: both apply the same float32 rule; FBGEMM stores ``acc + eps`` instead of ``acc`` (one rounding per
step) and sums duplicate rows in another order (measured ~2e-8).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchrs as trs
from torchrs.distributed.optimizer import (
    FUSED_ADAGRAD,
    FUSED_SGD,
    FusedOptimizer,
    UnsupportedShardedOptimizerError,
    fused_optimizer_for,
)

ROWS, DIM, BATCH, STEPS = 12, 4, 9, 20
TOL = 1e-6  # see module docstring


def _param() -> list[nn.Parameter]:
    return [nn.Parameter(torch.zeros(1))]


def test_keras_adagrad_moves_epsilon_under_the_root() -> None:
    fused = fused_optimizer_for(
        trs.optim.Adagrad(_param(), learning_rate=0.3, initial_accumulator_value=0.2, epsilon=1e-3),
        ["t"],
    )
    # sqrt(acc + eps) = sqrt(m) + 0 with m = acc + eps: state from 0.2 + 1e-3, FBGEMM eps 0.
    assert fused == FusedOptimizer(
        FUSED_ADAGRAD, 0.3, 0.0, pytest.approx(0.201), pytest.approx(1e-3)
    )


def test_legacy_adagrad_keeps_epsilon_outside() -> None:
    fused = fused_optimizer_for(
        trs.optim.legacy.Adagrad(_param(), learning_rate=0.3, epsilon=1e-3), ["t"]
    )
    # Legacy Keras: sqrt(acc) + eps, FBGEMM's own form.
    assert fused == FusedOptimizer(FUSED_ADAGRAD, 0.3, 1e-3, pytest.approx(0.1), 0.0)


def test_sgd_without_momentum_is_exact_sgd() -> None:
    assert fused_optimizer_for(trs.optim.SGD(_param(), learning_rate=0.5), ["t"]) == FusedOptimizer(
        FUSED_SGD, 0.5, 0.0, None
    )


@pytest.mark.parametrize(
    ("optimizer", "reason"),
    [
        (lambda p: trs.optim.Adam(p), "exact Adagrad and exact SGD"),
        (lambda p: torch.optim.Adagrad(p), "exact Adagrad and exact SGD"),
        (lambda p: trs.optim.SGD(p, momentum=0.9), "momentum moves every row"),
        (lambda p: trs.optim.legacy.SGD(p, momentum=0.5), "momentum moves every row"),
        (lambda p: trs.optim.Adagrad(p, weight_decay=0.1), "weight decay"),
        (lambda p: trs.optim.Adagrad(p, clipnorm=1.0), "clipnorm clips with the whole gradient"),
        (lambda p: trs.optim.SGD(p, global_clipnorm=1.0), "global_clipnorm"),
        (lambda p: trs.optim.Adagrad(p, use_ema=True), "use_ema"),
        (lambda p: trs.optim.legacy.Adagrad(p, decay=0.01), "learning-rate decay"),
    ],
)
def test_refusals_name_the_table_and_the_reason(optimizer, reason: str) -> None:
    with pytest.raises(UnsupportedShardedOptimizerError, match=r"\['user_model.1'\]") as info:
        fused_optimizer_for(optimizer(_param()), ["user_model.1"])
    assert reason in str(info.value)


def test_groups_with_different_rules_are_refused() -> None:
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    optimizer = trs.optim.Adagrad([{"params": [a]}, {"params": [b], "lr": 0.5}], learning_rate=0.1)
    with pytest.raises(UnsupportedShardedOptimizerError, match="differ in 'lr'"):
        fused_optimizer_for(optimizer, ["t"])


# ------------------------------------------------------------------------------ FBGEMM against Keras
def _fbgemm_table(fused: FusedOptimizer, initial: np.ndarray):
    fbgemm = pytest.importorskip(
        "fbgemm_gpu.split_table_batched_embeddings_ops_training",
        reason="FBGEMM is not installed (optional: `make torchrec`)",
    )
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode

    params = fused.fused_params()
    table = fbgemm.SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[(ROWS, DIM, EmbeddingLocation.HOST, fbgemm.ComputeDevice.CPU)],
        optimizer=params["optimizer"],
        learning_rate=params["learning_rate"],
        eps=params["eps"],
        pooling_mode=PoolingMode.SUM,  # bags of one id: a plain lookup
    )
    with torch.no_grad():
        table.split_embedding_weights()[0].copy_(torch.from_numpy(initial))
        if fused.initial_state is not None:
            table.split_optimizer_states()[0][0].fill_(fused.initial_state)
    return table


@pytest.mark.tf
@pytest.mark.parametrize(
    ("keras_name", "torchrs_optimizer"),
    [
        (
            "Adagrad",
            lambda p: trs.optim.Adagrad(
                p, learning_rate=0.2, initial_accumulator_value=0.05, epsilon=1e-2
            ),
        ),
        ("legacy.Adagrad", lambda p: trs.optim.legacy.Adagrad(p, learning_rate=0.2, epsilon=1e-4)),
        ("SGD", lambda p: trs.optim.SGD(p, learning_rate=0.2)),
    ],
)
def test_fbgemm_fused_update_follows_keras(tf, keras_name: str, torchrs_optimizer) -> None:
    # A large epsilon (1e-2): where it sits (under the root or not) then moves weights by ~1e-3.
    rng = np.random.default_rng(0)
    initial = rng.uniform(-0.05, 0.05, (ROWS, DIM)).astype(np.float32)
    fused = fused_optimizer_for(torchrs_optimizer(_param()), ["t"])
    table = _fbgemm_table(fused, initial)
    keras_class = {
        "Adagrad": lambda: tf.keras.optimizers.Adagrad(
            learning_rate=0.2, initial_accumulator_value=0.05, epsilon=1e-2
        ),
        "legacy.Adagrad": lambda: tf.keras.optimizers.legacy.Adagrad(
            learning_rate=0.2, epsilon=1e-4
        ),
        "SGD": lambda: tf.keras.optimizers.SGD(learning_rate=0.2),
    }[keras_name]
    keras_optimizer = keras_class()
    variable = tf.Variable(initial)
    for _ in range(STEPS):
        ids = rng.integers(0, ROWS // 2, BATCH)  # half the rows never move; duplicates every step
        weights = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        out = table(torch.from_numpy(ids), torch.arange(BATCH + 1))  # (B, D)
        (out * torch.from_numpy(weights)).sum().backward()  # the fused update runs here
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(variable, ids) * weights)
        keras_optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
    got = table.split_embedding_weights()[0].detach().numpy()
    np.testing.assert_allclose(got, variable.numpy(), rtol=0, atol=TOL)
    assert np.abs(got - initial).max() > 0.1  # it trained
    np.testing.assert_array_equal(
        got[ROWS // 2 :], initial[ROWS // 2 :]
    )  # untouched rows did not move
