"""optim.Adagrad: hand-derived steps, errors, sparse rows, state round trip, and tf_keras 2 as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.torchrs.optim._reference import (
    SEEDS,
    STEPS,
    max_abs_diff,
    run_dense_keras,
    run_dense_torch,
)
from torchrs.optim.adagrad import Adagrad

#: Max abs difference allowed between Keras and torchrs parameters after 100 float32 steps. Both run the same
#: float32 operations; only the order of a few roundings differs. Measured: <= 1.8e-7 (dense), <= 6e-8 (sparse).
TOLERANCE = 1e-5


def _run_keras(tf, kwargs: dict, seed: int) -> list[np.ndarray]:
    opt = tf.keras.optimizers.Adagrad(**kwargs)
    assert (
        type(opt).__module__ == "tf_keras.src.optimizers.adagrad"
    )  # the Keras 2 optimizer, not legacy
    return run_dense_keras(tf, opt, seed)


# ----------------------------------------------------------------------------------------- hand-derived values


def test_one_step_from_default_accumulator() -> None:
    # acc = 0.1 + 1**2 = 1.1; p = 1 - 0.1 * 1 / sqrt(1.1 + 1e-7) = 1 - 0.0953462546 = 0.9046537454.
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = Adagrad([p], learning_rate=0.1)
    p.grad = torch.tensor([1.0])
    opt.step()
    assert opt.state[p]["accumulator"].item() == pytest.approx(1.1, rel=1e-7)
    assert p.item() == pytest.approx(1 - 0.1 / math.sqrt(1.1 + 1e-7), rel=1e-7)
    assert opt.iterations == 1 and opt.state[p]["step"].dtype == torch.int64


def test_two_steps_accumulate() -> None:
    # g = 1 then g = 2: acc = 0.1 + 1 = 1.1, then 1.1 + 4 = 5.1.
    # p = 1 - 0.1/sqrt(1.1) - 0.1*2/sqrt(5.1) = 1 - 0.0953463 - 0.0885615 = 0.8160922 (eps 1e-7 is negligible).
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = Adagrad([p], learning_rate=0.1)
    for g in (1.0, 2.0):
        p.grad = torch.tensor([g])
        opt.step()
    assert opt.state[p]["accumulator"].item() == pytest.approx(5.1, rel=1e-6)
    assert p.item() == pytest.approx(1 - 0.1 / math.sqrt(1.1) - 0.2 / math.sqrt(5.1), rel=1e-6)


def test_epsilon_is_inside_the_square_root() -> None:
    # acc starts at 0, g = 1e-4: acc = 1e-8; step = 1 * 1e-4 / sqrt(1e-8 + 1e-7) = 1e-4 / 3.3166e-4 = 0.30151.
    # With epsilon outside (torch's form) the step would be 1e-4 / (1e-4 + 1e-7) = 0.999.
    p = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    opt = Adagrad([p], learning_rate=1.0, initial_accumulator_value=0.0)
    p.grad = torch.tensor([1e-4], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(-1e-4 / math.sqrt(1.1e-7), rel=1e-12)


def test_keras_defaults() -> None:
    opt = Adagrad([torch.nn.Parameter(torch.zeros(1))])
    group = opt.param_groups[0]
    assert (group["lr"], group["initial_accumulator_value"], group["epsilon"]) == (0.001, 0.1, 1e-7)
    assert group["weight_decay"] is None and opt.name == "Adagrad"


def test_lr_alias() -> None:
    assert Adagrad([torch.nn.Parameter(torch.zeros(1))], lr=0.5).learning_rate == 0.5
    # The default stays usable and equal to Keras's when neither is given.
    assert Adagrad([torch.nn.Parameter(torch.zeros(1))]).learning_rate == 0.001


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"learning_rate": -0.1}, ValueError, r"`learning_rate` must be >= 0 \(got -0.1\)"),
        ({"lr": -1.0}, ValueError, r"`learning_rate` must be >= 0"),
        ({"learning_rate": 0.1, "lr": 0.1}, ValueError, r"learning_rate=0.1 and lr=0.1"),
        ({"learning_rate": 0.001, "lr": 0.1}, ValueError, r"keep only one"),
        ({"epsilon": -1e-7}, ValueError, r"`epsilon` must be >= 0"),
        (
            {"initial_accumulator_value": -0.1},
            ValueError,
            r"`initial_accumulator_value` must be >= 0",
        ),
        ({"learning_rate": "0.1"}, TypeError, r"`learning_rate` must be a number \(got '0.1'"),
        ({"weight_decay": -0.01}, ValueError, r"`weight_decay` must be >= 0"),
        (
            {"clipnorm": 1.0, "global_clipnorm": 1.0},
            ValueError,
            r"At most one of `clipnorm` and `global_clipnorm`",
        ),
        ({"clipvalue": -1.0}, ValueError, r"`clipvalue` must be >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Adagrad([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_bad_param_group_is_rejected() -> None:
    opt = Adagrad([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match=r"`epsilon` must be >= 0 \(got -1.0\)"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "epsilon": -1.0})


def test_param_groups_keep_their_hyperparameters() -> None:
    # Group 2 uses lr 1 and acc0 0: one step of g = 1 moves it by 1/sqrt(1 + 1e-7); group 1 by 0.1/sqrt(1.1).
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = Adagrad(
        [{"params": [a]}, {"params": [b], "lr": 1.0, "initial_accumulator_value": 0.0}],
        learning_rate=0.1,
    )
    a.grad, b.grad = torch.ones(1), torch.ones(1)
    opt.step()
    assert a.item() == pytest.approx(-0.1 / math.sqrt(1.1), rel=1e-6)
    assert b.item() == pytest.approx(-1.0, rel=1e-6)


def test_no_gradient_is_a_no_op() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = Adagrad([p])
    opt.step()
    assert opt.iterations == 0 and torch.equal(p.detach(), torch.ones(2))


def test_parameter_without_gradient_keeps_its_value_and_state() -> None:
    # Keras builds every slot at the first step but only updates variables that have a gradient.
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = Adagrad([a, b], learning_rate=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2))
    assert torch.equal(opt.state[b]["accumulator"], torch.full((2,), 0.1))
    assert int(opt.state[b]["step"]) == 1


def test_sparse_embedding_gradient_equals_dense() -> None:
    # Repeated ids are summed before the update (Keras's _deduplicate_sparse_grad), so the sparse update is the
    # dense one; untouched rows keep their value and their accumulator at 0.1.
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
        tables.append((emb.weight.detach().clone(), opt.state[emb.weight]["accumulator"]))
    (dense, dense_acc), (sparse, sparse_acc) = tables
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-6)
    torch.testing.assert_close(sparse_acc, dense_acc, rtol=0, atol=1e-6)
    assert torch.equal(sparse_acc[[2, 4, 5]], torch.full((3, 2), 0.1))


def test_sparse_gradient_must_be_row_sparse() -> None:
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = Adagrad([p])
    p.grad = torch.zeros(3, 2).to_sparse(2)
    with pytest.raises(ValueError, match=r"sparse_dim=2 for a parameter of shape \(3, 2\)"):
        opt.step()


def test_resume_from_state_dict_continues_the_trajectory() -> None:
    # 40 steps, save, a fresh optimizer loads the state, 60 more steps == 100 uninterrupted steps, bit for bit.
    def grads(t: int) -> torch.Tensor:
        return torch.sin(torch.arange(6.0).view(2, 3) + t)  # (2, 3)

    straight = torch.nn.Parameter(torch.ones(2, 3))
    opt = Adagrad([straight], learning_rate=0.1)
    for t in range(100):
        straight.grad = grads(t)
        opt.step()

    resumed = torch.nn.Parameter(torch.ones(2, 3))
    first = Adagrad([resumed], learning_rate=0.1)
    for t in range(40):
        resumed.grad = grads(t)
        first.step()
    saved = first.state_dict()
    assert set(saved["state"][0]) == {"step", "accumulator"}
    second = Adagrad([resumed], learning_rate=0.1)
    second.load_state_dict(saved)
    assert second.iterations == 40
    for t in range(40, 100):
        resumed.grad = grads(t)
        second.step()
    assert torch.equal(resumed.detach(), straight.detach())


def test_state_filled_by_a_converter_is_used() -> None:
    # A converter writes Keras's slots: accumulator 4, iterations 7. Then g = 2: acc = 8, p = -0.1*2/sqrt(8).
    p = torch.nn.Parameter(torch.zeros(1))
    opt = Adagrad([p], learning_rate=0.1)
    opt.load_state_dict(
        {
            "state": {0: {"accumulator": torch.tensor([4.0]), "step": torch.tensor(7)}},
            "param_groups": opt.state_dict()["param_groups"],
        }
    )
    p.grad = torch.tensor([2.0])
    opt.step()
    assert p.item() == pytest.approx(-0.2 / math.sqrt(8.0), rel=1e-6)
    assert opt.iterations == 8


# ---------------------------------------------------------------------------------------- tf_keras reference


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.1},
        {"learning_rate": 0.3, "initial_accumulator_value": 0.0, "epsilon": 1e-3},
        {"learning_rate": 0.1, "weight_decay": 0.05, "clipnorm": 0.5},
    ],
    ids=["lr0.1", "acc0-eps1e-3", "wd-clipnorm"],
)
def test_matches_keras(tf, seed: int, kwargs: dict) -> None:
    expected = _run_keras(tf, kwargs, seed)
    got = run_dense_torch(lambda ps: Adagrad(ps, **kwargs), seed)
    assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_torch_adagrad_does_not_match_keras(tf) -> None:
    # The same gradients through torch.optim.Adagrad (accumulator from 0, eps outside the sqrt) end far away:
    # its first step is a full lr * sign(g), Keras's is lr * g / sqrt(0.1 + g^2). This gives the test above teeth.
    expected = _run_keras(tf, {"learning_rate": 0.1}, seed=0)
    ours = run_dense_torch(lambda ps: Adagrad(ps, learning_rate=0.1), seed=0)
    torchs = run_dense_torch(lambda ps: torch.optim.Adagrad(ps, lr=0.1), seed=0)
    assert max_abs_diff(ours, expected) <= TOLERANCE
    assert max_abs_diff(torchs, expected) > 1e-2


@pytest.mark.tf
@pytest.mark.parametrize(
    ("seed", "kwargs"),
    [
        (0, {"learning_rate": 0.1}),
        (1, {"learning_rate": 0.1, "clipnorm": 1.0}),
        (2, {"learning_rate": 0.3}),
    ],
)
def test_embedding_table_matches_keras_indexed_slices(tf, seed: int, kwargs: dict) -> None:
    # TF: tf.gather on a tf.Variable gives tf.IndexedSlices (one row per lookup, repeats included).
    # torch: nn.Embedding(sparse=True) gives an uncoalesced sparse gradient with the same rows.
    # Loss per step: sum(rows * upstream_t) + 0.25 * sum(rows^2), so the gradient depends on the table.
    # With clipnorm, both clip the norm of the raw rows (repeats counted separately) before summing repeats.
    rng = np.random.default_rng(seed)
    vocab, dim, batch = 12, 3, 16
    table = rng.uniform(-0.05, 0.05, size=(vocab, dim)).astype(np.float32)
    ids = [
        rng.integers(0, vocab // 2, size=batch) for _ in range(STEPS)
    ]  # half the rows, many repeats
    upstream = [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(STEPS)]

    variable = tf.Variable(table)
    tf_opt = tf.keras.optimizers.Adagrad(**kwargs)
    for t in range(STEPS):
        with tf.GradientTape() as tape:
            rows = tf.gather(variable, ids[t])
            loss = tf.reduce_sum(rows * upstream[t]) + 0.25 * tf.reduce_sum(rows * rows)
        grad = tape.gradient(loss, variable)
        assert isinstance(grad, tf.IndexedSlices)
        tf_opt.apply_gradients([(grad, variable)])

    emb = torch.nn.Embedding(vocab, dim, sparse=True)
    emb.weight.data.copy_(torch.from_numpy(table))
    opt = Adagrad(emb.parameters(), **kwargs)
    for t in range(STEPS):
        opt.zero_grad()
        rows = emb(torch.from_numpy(ids[t]))  # (B, D)
        (torch.sum(rows * torch.from_numpy(upstream[t])) + 0.25 * torch.sum(rows * rows)).backward()
        assert emb.weight.grad.is_sparse
        opt.step()

    diff = np.max(np.abs(emb.weight.detach().numpy() - variable.numpy()))
    assert diff <= TOLERANCE
    # Rows never looked up (ids are drawn from the first half) did not move in either framework.
    np.testing.assert_array_equal(emb.weight.detach().numpy()[vocab // 2 :], table[vocab // 2 :])
