"""optim.legacy.SGD: momentum, Nesterov, LAZY sparse rows, plain descent, tf.keras.optimizers.legacy as reference.

Measured max |Keras - torchrs| after 100 float32 steps over seeds 0-2 (tolerance 1e-5, see _reference.py):
0 for every configuration without clipping (the same float32 operations), <= 1.2e-7 with clipping.
"""

from __future__ import annotations

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
from torchrs.optim import SGD as NewSGD
from torchrs.optim.legacy import SGD

# ----------------------------------------------------------------------------------------- hand-derived values


def test_dense_momentum_two_steps() -> None:
    # m = 0.9 * m - 0.1 * g: -0.1, then -0.19; p = 1 - 0.1 - 0.19 = 0.71.
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = SGD([p], learning_rate=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
    assert opt.state[p]["momentum"].item() == pytest.approx(-0.19, rel=1e-7)
    assert p.item() == pytest.approx(0.71, rel=1e-7)


def test_dense_nesterov_one_step() -> None:
    # m = -0.1; p += 0.9 * m - 0.1 * g = -0.19 -> 0.81.
    p = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = SGD([p], learning_rate=0.1, momentum=0.9, nesterov=True)
    p.grad = torch.ones(1, dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.81, rel=1e-7)


def test_embedding_rows_without_gradient_keep_their_velocity_and_stay() -> None:
    # nn.Embedding(sparse=True), 3 rows of 1.0, lr 0.1, momentum 0.9, gradient 1 per looked-up row.
    # Step 1, ids [0, 1]: m = [-0.1, -0.1, 0], p = [0.9, 0.9, 1].
    # Step 2, ids [0]:    row 0: m = 0.9 * -0.1 - 0.1 = -0.19, p = 0.71; row 1 keeps m = -0.1 and p = 0.9 (lazy).
    # The tf_keras 2.x SGD (torchrs.optim.SGD) decays row 1 too: m = -0.09, p = 0.81.
    results = []
    for cls in (SGD, NewSGD):
        emb = torch.nn.Embedding(3, 1, sparse=True)
        emb.weight.data.fill_(1.0)
        opt = cls(emb.parameters(), learning_rate=0.1, momentum=0.9)
        for ids in ([0, 1], [0]):
            opt.zero_grad()
            emb(torch.tensor(ids)).sum().backward()
            opt.step()
        results.append((emb.weight.detach().flatten(), opt.state[emb.weight]["momentum"].flatten()))
    (p, m), (new_p, new_m) = results
    torch.testing.assert_close(p, torch.tensor([0.71, 0.9, 1.0]))
    torch.testing.assert_close(m, torch.tensor([-0.19, -0.1, 0.0]))
    torch.testing.assert_close(new_p, torch.tensor([0.71, 0.81, 1.0]))
    torch.testing.assert_close(new_m, torch.tensor([-0.19, -0.09, 0.0]))


def test_sparse_nesterov_sums_repeated_rows() -> None:
    # ids [0, 0] with gradient 1 each: summed to 2; m = -0.1 * 2 = -0.2; p += 0.9 * -0.2 - 0.2 = -0.38.
    p = torch.nn.Parameter(torch.ones(2, 1, dtype=torch.float64))
    opt = SGD([p], learning_rate=0.1, momentum=0.9, nesterov=True)
    p.grad = torch.sparse_coo_tensor(
        [[0, 0]], torch.ones(2, 1, dtype=torch.float64), (2, 1), check_invariants=True
    )
    opt.step()
    lr = float(torch.tensor(0.1, dtype=torch.float32))
    momentum = float(
        torch.tensor(0.9, dtype=torch.float32)
    )  # Keras's float32 hyperparameter variables
    assert p.detach().flatten().tolist() == pytest.approx(
        [1 + momentum * -2 * lr - 2 * lr, 1.0], rel=1e-12
    )


def test_no_momentum_keeps_no_slot_and_adds_repeated_rows_one_by_one() -> None:
    # momentum 0: Keras creates no slot; sparse rows [0, 0] of 1 and 2 are scatter-added: 1 - 0.1 - 0.2 = 0.7.
    p = torch.nn.Parameter(torch.ones(2, 1))
    opt = SGD([p], learning_rate=0.1)
    p.grad = torch.sparse_coo_tensor([[0, 0]], [[1.0], [2.0]], (2, 1), check_invariants=True)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([[0.7], [1.0]]))
    assert set(opt.state[p]) == {"step"}


# ---------------------------------------------------------------------------------------- tf_keras reference

CONFIGS = {
    "plain": {"learning_rate": 0.05},
    "momentum": {"learning_rate": 0.05, "momentum": 0.9},
    "nesterov-decay": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "decay": 0.01},
    "clipvalue-globalnorm": {
        "learning_rate": 0.05,
        "momentum": 0.5,
        "clipvalue": 0.3,
        "global_clipnorm": 1.0,
    },
}


@pytest.mark.tf
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_matches_keras_legacy(tf, config: str) -> None:
    kwargs = CONFIGS[config]
    for seed in SEEDS:
        expected = run_dense_keras(tf, "SGD", kwargs, seed)
        assert (
            max_abs_diff(run_dense_torch(lambda ps: SGD(ps, **kwargs), seed), expected) <= TOLERANCE
        )
        expected = run_embedding_keras(tf, "SGD", kwargs, seed)
        got = run_embedding_torch(lambda ps: SGD(ps, **kwargs), seed)
        assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_new_sgd_does_not_match_keras_legacy(tf) -> None:
    # torchrs.optim.SGD (tf_keras 2.x) on the same embedding gradients: every row's velocity decays and every row
    # moves, 0.94 away after 100 steps; with clipvalue + global_clipnorm it applies only the norm clip, 1.1 away.
    kwargs = CONFIGS["momentum"]
    expected = run_embedding_keras(tf, "SGD", kwargs, 0)
    assert max_abs_diff(run_embedding_torch(lambda ps: SGD(ps, **kwargs), 0), expected) <= TOLERANCE
    assert max_abs_diff(run_embedding_torch(lambda ps: NewSGD(ps, **kwargs), 0), expected) > 1e-1
    kwargs = CONFIGS["clipvalue-globalnorm"]
    expected = run_dense_keras(tf, "SGD", kwargs, 0)
    assert max_abs_diff(run_dense_torch(lambda ps: NewSGD(ps, **kwargs), 0), expected) > 1e-1
