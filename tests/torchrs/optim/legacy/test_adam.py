"""optim.legacy.Adam: hand-derived steps, NON-lazy sparse rows, AMSGrad, decay, tf.keras.optimizers.legacy as reference.

Measured max |Keras - torchrs| after 100 float32 steps over seeds 0-2 (tolerance 1e-5, see _reference.py):
dense <= 2.4e-7, embedding (IndexedSlices) <= 1.2e-7.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.torchrs.optim.legacy._reference import (
    SEEDS,
    TOLERANCE,
    max_abs_diff,
    run_dense_keras,
    run_dense_torch,
    run_embedding_keras,
    run_embedding_torch,
)
from torchrs.optim import Adam as NewAdam
from torchrs.optim.legacy import Adam

# Keras's float32 hyperparameter variables, as the float64 tests below see them.
LR = float(torch.tensor(0.1, dtype=torch.float32))
BETA_1 = float(torch.tensor(0.9, dtype=torch.float32))
BETA_2 = float(torch.tensor(0.999, dtype=torch.float32))
EPS = 1e-7


def _f64(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# ----------------------------------------------------------------------------------------- hand-derived values


def test_one_step_moves_by_the_learning_rate() -> None:
    # m = 0.1 * 2 = 0.2, v = 0.001 * 4 = 0.004; alpha = lr * sqrt(1 - 0.999) / (1 - 0.9) = lr * 0.316228;
    # p = 1 - alpha * 0.2 / (0.0632456 + 1e-7) = 1 - lr * (1 - 1.6e-6) = 0.9000002.
    p = torch.nn.Parameter(_f64([1.0]))
    opt = Adam([p], learning_rate=0.1)
    p.grad = _f64([2.0])
    opt.step()
    m, v = (1 - BETA_1) * 2, (1 - BETA_2) * 4
    alpha = LR * math.sqrt(1 - BETA_2) / (1 - BETA_1)
    assert opt.state[p]["m"].item() == pytest.approx(m, rel=1e-12)
    assert p.item() == pytest.approx(1 - alpha * m / (math.sqrt(v) + EPS), rel=1e-12)


def test_sparse_rows_are_not_lazy() -> None:
    # Two rows of 1.0, lr 0.1. Step 1: both rows g = 1 -> each moves by ~lr: 0.9.
    # Step 2: only row 0 (g = 1). Row 1 still decays and moves (legacy Keras decays every row):
    #   m1 = 0.1 * 0.9 = 0.09, v1 = 0.001 * 0.999 = 0.000999,
    #   lr_2 = 0.1 * sqrt(1 - 0.999**2) / (1 - 0.9**2) = 0.0235317,
    #   p1 = 0.9 - 0.0235317 * 0.09 / sqrt(0.000999) = 0.9 - 0.0670058 = 0.8329942; row 0 moves by ~lr again: 0.8.
    p = torch.nn.Parameter(torch.ones(2, 1, dtype=torch.float64))
    opt = Adam([p], learning_rate=0.1)
    for ids in ([0, 1], [0]):
        p.grad = torch.sparse_coo_tensor(
            [ids], torch.ones(len(ids), 1, dtype=torch.float64), (2, 1), check_invariants=True
        )
        opt.step()
    m, v = [1 - BETA_1] * 2, [1 - BETA_2] * 2
    expected = [1 - LR * math.sqrt(1 - BETA_2) / (1 - BETA_1) * m[0] / (math.sqrt(v[0]) + EPS)] * 2
    m = [m[0] * BETA_1 + (1 - BETA_1), m[1] * BETA_1]
    v = [v[0] * BETA_2 + (1 - BETA_2), v[1] * BETA_2]
    lr_2 = LR * (math.sqrt(1 - BETA_2**2) / (1 - BETA_1**2))
    expected = [
        e - lr_2 * mi / (math.sqrt(vi) + EPS) for e, mi, vi in zip(expected, m, v, strict=True)
    ]
    assert p.detach().flatten().tolist() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx([0.8, 0.8329942], abs=1e-6)


def test_sparse_equals_dense_with_zero_rows() -> None:
    # Not lazy: the sparse update is the dense one with a zero gradient on the missing rows (float32, up to the
    # operation order: m * beta_1 for sparse rows, m + (0 - m) * (1 - beta_1) for dense ones). Row 1 is looked up
    # only in the first batch, and still moves at the two later steps (its m decays but is not 0).
    ids = [torch.tensor([1, 3, 1, 1]), torch.tensor([0, 3]), torch.tensor([3, 3, 3])]
    tables, snapshots = [], []
    for sparse in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 2, sparse=sparse)
        opt = Adam(emb.parameters(), learning_rate=0.1, amsgrad=True)
        for batch in ids:
            opt.zero_grad()
            out = emb(batch)  # (B, 2)
            (out.sum() + 0.5 * out.square().sum()).backward()
            opt.step()
            snapshots.append(emb.weight.detach().clone())
        tables.append(emb.weight.detach().clone())
    torch.testing.assert_close(tables[1], tables[0], rtol=0, atol=1e-6)
    moved = (tables[1][1] - snapshots[3][1]).abs()  # sparse run: row 1 from step 1 to step 3
    assert bool((moved > 0.05).all())


def test_amsgrad_divides_by_the_running_max() -> None:
    # g = 2 then 0 (float64): v = 0.004 then 0.003996; vhat stays 0.004.
    p = torch.nn.Parameter(_f64([0.0]))
    opt = Adam([p], learning_rate=0.1, amsgrad=True)
    for g in (2.0, 0.0):
        p.grad = _f64([g])
        opt.step()
    assert opt.state[p]["vhat"].item() == pytest.approx((1 - BETA_2) * 4, rel=1e-12)
    assert opt.state[p]["v"].item() == pytest.approx((1 - BETA_2) * 4 * BETA_2, rel=1e-12)


# ---------------------------------------------------------------------------------------- tf_keras reference

CONFIGS = {
    "lr0.05": {"learning_rate": 0.05},
    "amsgrad-decay": {"learning_rate": 0.05, "amsgrad": True, "decay": 0.02},
    "beta1-eps-clips": {
        "learning_rate": 0.05,
        "beta_1": 0.8,
        "epsilon": 1e-3,
        "clipvalue": 0.3,
        "clipnorm": 0.5,
    },
}


@pytest.mark.tf
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_matches_keras_legacy(tf, config: str) -> None:
    kwargs = CONFIGS[config]
    for seed in SEEDS:
        expected = run_dense_keras(tf, "Adam", kwargs, seed)
        assert (
            max_abs_diff(run_dense_torch(lambda ps: Adam(ps, **kwargs), seed), expected)
            <= TOLERANCE
        )
        expected = run_embedding_keras(tf, "Adam", kwargs, seed)
        got = run_embedding_torch(lambda ps: Adam(ps, **kwargs), seed)
        assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_adam_without_decay_does_not_match_keras_legacy(tf) -> None:
    # torchrs.optim.Adam has no `decay`: without it the trajectory ends far from legacy Adam(decay=0.02), so the
    # comparison above checks the decay (and the new Adam is no substitute for a legacy one that used it).
    kwargs = dict(CONFIGS["amsgrad-decay"])
    expected = run_embedding_keras(tf, "Adam", kwargs, 0)
    kwargs.pop("decay")
    assert max_abs_diff(run_embedding_torch(lambda ps: NewAdam(ps, **kwargs), 0), expected) > 1e-2
