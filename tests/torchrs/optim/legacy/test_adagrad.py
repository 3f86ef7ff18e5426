"""optim.legacy.Adagrad: hand-derived steps, epsilon outside the root, sparse rows, tf.keras.optimizers.legacy as reference.

Measured max |Keras - torchrs| after 100 float32 steps over seeds 0-2 (tolerance 1e-5, see _reference.py):
dense <= 1.2e-7, embedding (IndexedSlices) <= 4.5e-8.
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
from torchrs.optim import Adagrad as NewAdagrad
from torchrs.optim.legacy import Adagrad
from torchrs.optim.legacy.adagrad import legacy_adagrad_update

# ----------------------------------------------------------------------------------------- hand-derived values


def test_one_step_from_default_accumulator() -> None:
    # acc = 0.1 + 1**2 = 1.1; p = 1 - 0.1 * 1 / (sqrt(1.1) + 1e-7) = 1 - 0.1 / 1.0488089 = 0.9046537.
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = Adagrad([p], learning_rate=0.5)
    p.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    lr = float(torch.tensor(0.5, dtype=torch.float32))  # exact in float32
    assert opt.state[p]["accumulator"].item() == pytest.approx(1.1, rel=1e-12)
    assert p.item() == pytest.approx(1 - lr / (math.sqrt(1.1) + 1e-7), rel=1e-12)
    assert opt.iterations == 1 and opt.state[p]["step"].dtype == torch.int64


def test_two_steps_accumulate() -> None:
    # g = 1 then g = 2 at lr 0.5: acc = 1.1 then 5.1; p = 1 - 0.5/(sqrt(1.1)+eps) - 0.5*2/(sqrt(5.1)+eps)
    #   = 1 - 0.4767313 - 0.4428074 = 0.0804613.
    p = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = Adagrad([p], learning_rate=0.5)
    for g in (1.0, 2.0):
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    expected = 1 - 0.5 / (math.sqrt(1.1) + 1e-7) - 1.0 / (math.sqrt(5.1) + 1e-7)
    assert p.item() == pytest.approx(expected, rel=1e-12)


def test_epsilon_is_outside_the_square_root() -> None:
    # acc from 0, g = 1e-4, lr 1: p = -1e-4 / (sqrt(1e-8) + 1e-7) = -1e-4 / 1.001e-4 = -0.999001.
    # The tf_keras 2.x Adagrad (torchrs.optim.Adagrad) gives -1e-4 / sqrt(1e-8 + 1e-7) = -0.301511.
    ps = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in range(2)]
    for p, cls in zip(ps, (Adagrad, NewAdagrad), strict=True):
        opt = cls([p], learning_rate=1.0, initial_accumulator_value=0.0)
        p.grad = torch.tensor([1e-4], dtype=torch.float64)
        opt.step()
    assert ps[0].item() == pytest.approx(-1e-4 / (1e-4 + 1e-7), rel=1e-12)
    assert ps[1].item() == pytest.approx(-1e-4 / math.sqrt(1.1e-7), rel=1e-12)


def test_decay_two_steps() -> None:
    # lr 0.5, decay 1, acc from 0, g = 1 twice: lr_t = 0.5 then 0.5 / (1 + 1) = 0.25; acc = 1 then 2;
    # p = -0.5 / (1 + 1e-7) - 0.25 / (sqrt 2 + 1e-7) = -0.6767767.
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = Adagrad([p], learning_rate=0.5, initial_accumulator_value=0.0, decay=1.0)
    for _ in range(2):
        p.grad = torch.ones(1, dtype=torch.float64)
        opt.step()
    assert p.item() == pytest.approx(-0.5 / (1 + 1e-7) - 0.25 / (math.sqrt(2) + 1e-7), rel=1e-12)


def test_sparse_rows_are_summed_and_only_they_change() -> None:
    # Rows [1, 3, 1] with values 1, 2, 3: row 1 gets 1 + 3 = 4 (acc 0.1 + 16), row 3 gets 2 (acc 4.1);
    # rows 0, 2 keep their value and their accumulator 0.1. p[1] = -0.1 * 4 / (sqrt(16.1) + eps), lr 0.1.
    p = torch.nn.Parameter(torch.zeros(4, 1, dtype=torch.float64))
    opt = Adagrad([p], learning_rate=0.1)
    p.grad = torch.sparse_coo_tensor(
        [[1, 3, 1]],
        torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64),
        (4, 1),
        check_invariants=True,
    )
    opt.step()
    lr = float(torch.tensor(0.1, dtype=torch.float32))  # Keras's float32 learning-rate variable
    expected = [0.0, -lr * 4 / (math.sqrt(16.1) + 1e-7), 0.0, -lr * 2 / (math.sqrt(4.1) + 1e-7)]
    assert p.detach().flatten().tolist() == pytest.approx(expected, rel=1e-12)
    assert opt.state[p]["accumulator"].flatten().tolist() == pytest.approx([0.1, 16.1, 0.1, 4.1])


def test_sparse_equals_dense_for_an_embedding() -> None:
    # For Adagrad a missing row is a zero gradient, so nn.Embedding(sparse=True) equals the dense update.
    ids = [torch.tensor([1, 3, 1, 1]), torch.tensor([0, 3]), torch.tensor([3, 3, 3])]
    tables = []
    for sparse in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 2, sparse=sparse)
        opt = Adagrad(emb.parameters(), learning_rate=0.1)
        for batch in ids:
            opt.zero_grad()
            out = emb(batch)  # (B, 2)
            (out.sum() + 0.5 * out.square().sum()).backward()
            opt.step()
        tables.append(emb.weight.detach().clone())
    torch.testing.assert_close(tables[1], tables[0], rtol=0, atol=1e-6)


def test_update_function_on_a_vector() -> None:
    # The pure function: acc = [0.1 + 1, 0.1 + 4]; p -= 1 * g / (sqrt(acc) + 1e-7).
    p, acc = torch.zeros(2, dtype=torch.float64), torch.full((2,), 0.1, dtype=torch.float64)
    legacy_adagrad_update(
        p, torch.tensor([1.0, 2.0], dtype=torch.float64), acc, learning_rate=1.0, epsilon=1e-7
    )
    assert p.tolist() == pytest.approx(
        [-1 / (math.sqrt(1.1) + 1e-7), -2 / (math.sqrt(4.1) + 1e-7)], rel=1e-12
    )


# ---------------------------------------------------------------------------------------- tf_keras reference

CONFIGS = {
    "lr0.1": {"learning_rate": 0.1},
    "acc0-eps0.1": {"learning_rate": 0.3, "initial_accumulator_value": 0.0, "epsilon": 0.1},
    "decay-clipvalue-clipnorm": {
        "learning_rate": 0.1,
        "decay": 0.05,
        "clipvalue": 0.4,
        "clipnorm": 1.0,
    },
}


@pytest.mark.tf
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_matches_keras_legacy(tf, config: str) -> None:
    kwargs = CONFIGS[config]
    for seed in SEEDS:
        expected = run_dense_keras(tf, "Adagrad", kwargs, seed)
        assert (
            max_abs_diff(run_dense_torch(lambda ps: Adagrad(ps, **kwargs), seed), expected)
            <= TOLERANCE
        )
        expected = run_embedding_keras(tf, "Adagrad", kwargs, seed)
        got = run_embedding_torch(lambda ps: Adagrad(ps, **kwargs), seed)
        assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_new_adagrad_does_not_match_keras_legacy(tf) -> None:
    # The same gradients through torchrs.optim.Adagrad (tf_keras 2.x: epsilon inside the root) end 2.3e-2 away
    # with a large epsilon: the comparison above would catch a rule with epsilon in the wrong place.
    kwargs = CONFIGS["acc0-eps0.1"]
    expected = run_dense_keras(tf, "Adagrad", kwargs, 0)
    assert max_abs_diff(run_dense_torch(lambda ps: Adagrad(ps, **kwargs), 0), expected) <= TOLERANCE
    assert max_abs_diff(run_dense_torch(lambda ps: NewAdagrad(ps, **kwargs), 0), expected) > 1e-2
