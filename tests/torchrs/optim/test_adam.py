"""optim.Adam: hand-derived steps, errors, Keras's global step, sparse rows, state, and tf_keras 2 as reference."""

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
from torchrs.optim.adam import Adam

#: Max abs difference allowed between Keras and torchrs parameters after 100 float32 steps. Both run the same
#: float32 operations (the bias correction is computed in float32 as TF does); only a few roundings differ in
#: order. Measured: <= 1.2e-7 (dense), <= 9.4e-8 (sparse).
TOLERANCE = 1e-5


def _run_keras(tf, kwargs: dict, seed: int, scale: float = 1.0) -> list[np.ndarray]:
    opt = tf.keras.optimizers.Adam(**kwargs)
    assert (
        type(opt).__module__ == "tf_keras.src.optimizers.adam"
    )  # the Keras 2 optimizer, not legacy
    return run_dense_keras(tf, opt, seed, scale)


def _scalar(value: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


# ----------------------------------------------------------------------------------------- hand-derived values


def test_first_step() -> None:
    # g = 2: m = 0.1 * 2 = 0.2, v = 0.001 * 4 = 0.004, alpha = 0.1 * sqrt(1 - 0.999) / (1 - 0.9) = 0.0316228;
    # p = 1 - 0.0316228 * 0.2 / (sqrt(0.004) + 1e-7) = 1 - 0.00632456 / 0.06324565 = 0.90000016.
    p = _scalar(1.0)
    opt = Adam([p], learning_rate=0.1)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert opt.state[p]["m"].item() == pytest.approx(0.2, rel=1e-12)
    assert opt.state[p]["v"].item() == pytest.approx(0.004, rel=1e-9)
    alpha = 0.1 * math.sqrt(1 - 0.999) / (1 - 0.9)
    assert p.item() == pytest.approx(1 - alpha * 0.2 / (math.sqrt(0.004) + 1e-7), rel=1e-12)


def test_epsilon_is_added_to_the_uncorrected_root() -> None:
    # g = 1e-6, lr = 1: m = 1e-7, sqrt(v) = sqrt(0.001) * 1e-6 = 3.16228e-8, alpha = sqrt(0.001) / 0.1 = 0.316228;
    # Keras: 0.316228 * 1e-7 / (3.16228e-8 + 1e-7) = 0.240253.
    # torch.optim.Adam divides the corrected m_hat = 1e-6 by sqrt(v_hat) + eps = 1e-6 + 1e-7: 0.909091.
    ours, theirs = _scalar(0.0), _scalar(0.0)
    keras = Adam([ours], learning_rate=1.0)
    torchs = torch.optim.Adam([theirs], lr=1.0, eps=1e-7)
    for p, opt in ((ours, keras), (theirs, torchs)):
        p.grad = torch.tensor([1e-6], dtype=torch.float64)
        opt.step()
    root = math.sqrt(0.001) * 1e-6
    assert -ours.item() == pytest.approx(math.sqrt(0.001) / 0.1 * 1e-7 / (root + 1e-7), rel=1e-9)
    assert -ours.item() == pytest.approx(0.240253, rel=1e-5)
    assert -theirs.item() == pytest.approx(1e-6 / (1e-6 + 1e-7), rel=1e-9)


def test_adaptive_epsilon() -> None:
    # adaptive_epsilon: eps_hat = 1e-7 * sqrt(1 - 0.999) = 3.16228e-9, i.e. torch's form:
    # 0.316228 * 1e-7 / (3.16228e-8 + 3.16228e-9) = 1 / 1.1 = 0.909091.
    p = _scalar(0.0)
    opt = Adam([p], learning_rate=1.0, adaptive_epsilon=True)
    p.grad = torch.tensor([1e-6], dtype=torch.float64)
    opt.step()
    assert -p.item() == pytest.approx(1 / 1.1, rel=1e-9)


def test_amsgrad_divides_by_the_running_max() -> None:
    # g = 1 then 0. Step 2: m = 0.09, v = 0.999 * 0.001 = 0.000999 < vhat = 0.001 (from step 1).
    # alpha_2 = lr * sqrt(1 - 0.999^2) / (1 - 0.9^2); update_2 = alpha_2 * 0.09 / (sqrt(0.001) + 1e-7).
    moves = {}
    for amsgrad in (False, True):
        p = _scalar(0.0)
        opt = Adam([p], learning_rate=0.1, amsgrad=amsgrad)
        p.grad = torch.tensor([1.0], dtype=torch.float64)
        opt.step()
        before = p.item()
        p.grad = torch.tensor([0.0], dtype=torch.float64)
        opt.step()
        moves[amsgrad] = before - p.item()
        if amsgrad:
            assert opt.state[p]["vhat"].item() == pytest.approx(0.001, rel=1e-12)
    alpha_2 = 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    assert moves[True] == pytest.approx(alpha_2 * 0.09 / (math.sqrt(0.001) + 1e-7), rel=1e-9)
    assert moves[False] == pytest.approx(alpha_2 * 0.09 / (math.sqrt(0.000999) + 1e-7), rel=1e-9)


def test_bias_correction_uses_the_global_step() -> None:
    # Keras's t is optimizer.iterations + 1, shared by all variables. b gets its first gradient (g = 1) at t = 2:
    # m = 0.1, v = 0.001, alpha = 0.1 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.0235317;
    # move = 0.0235317 * 0.1 / (sqrt(0.001) + 1e-7) = 0.0744136 (a per-parameter count, t = 1, would move 0.1).
    a, b = _scalar(0.0), _scalar(0.0)
    opt = Adam([a, b], learning_rate=0.1)
    a.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    b.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step()
    alpha = 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    assert -b.item() == pytest.approx(alpha * 0.1 / (math.sqrt(0.001) + 1e-7), rel=1e-9)
    assert -b.item() == pytest.approx(0.0744136, rel=1e-5)
    assert int(opt.state[a]["step"]) == int(opt.state[b]["step"]) == opt.iterations == 2


def test_keras_defaults() -> None:
    group = Adam([_scalar(0.0)]).param_groups[0]
    assert (group["lr"], group["beta_1"], group["beta_2"], group["epsilon"]) == (
        0.001,
        0.9,
        0.999,
        1e-7,
    )
    assert group["amsgrad"] is False and group["adaptive_epsilon"] is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1e-3}, r"`learning_rate` must be >= 0 \(got -0.001\)"),
        ({"learning_rate": 0.01, "lr": 0.01}, r"learning_rate=0.01 and lr=0.01"),
        ({"beta_1": 1.0}, r"`beta_1` must be in \[0, 1\) \(got 1.0\)"),
        ({"beta_1": -0.1}, r"`beta_1` must be in \[0, 1\)"),
        ({"beta_2": 1.5}, r"`beta_2` must be in \[0, 1\) \(got 1.5\)"),
        ({"epsilon": -1.0}, r"`epsilon` must be >= 0 \(got -1.0\)"),
        ({"use_ema": True, "ema_momentum": 1.5}, r"`ema_momentum` must be in \[0, 1\] \(got 1.5\)"),
        (
            {"use_ema": True, "ema_overwrite_frequency": 0},
            r"`ema_overwrite_frequency` must be an integer >= 1",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Adam([_scalar(0.0)], **kwargs)


def test_sparse_gradient_is_not_lazy_and_equals_dense() -> None:
    # Keras 2 applies the momentum decay to every row for tf.IndexedSlices, so a row touched at step 1 keeps
    # moving at step 2 when it is not looked up; the result is the dense update of the same gradient.
    ids = [torch.tensor([1, 3, 1]), torch.tensor([0, 0]), torch.tensor([4])]
    tables = []
    for sparse in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 2, sparse=sparse)
        opt = Adam(emb.parameters(), learning_rate=0.1, amsgrad=True)
        history = []
        for batch in ids:
            opt.zero_grad()
            out = emb(batch)  # (B, 2)
            (out.sum() + 0.5 * out.square().sum()).backward()
            opt.step()
            history.append(emb.weight.detach().clone())
        tables.append(history)
    for dense, sparse in zip(*tables, strict=True):
        torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-6)
    sparse_history = tables[1]
    assert not torch.equal(
        sparse_history[1][[1, 3]], sparse_history[0][[1, 3]]
    )  # rows 1, 3 moved at step 2
    assert torch.equal(
        sparse_history[2][[2, 5]], sparse_history[0][[2, 5]]
    )  # never-touched rows never move


def test_resume_from_state_dict_continues_the_trajectory() -> None:
    def grads(t: int) -> torch.Tensor:
        return torch.cos(torch.arange(4.0) * (t + 1))  # (4,)

    straight = torch.nn.Parameter(torch.ones(4))
    opt = Adam([straight], learning_rate=0.05, amsgrad=True)
    for t in range(100):
        straight.grad = grads(t)
        opt.step()

    resumed = torch.nn.Parameter(torch.ones(4))
    first = Adam([resumed], learning_rate=0.05, amsgrad=True)
    for t in range(30):
        resumed.grad = grads(t)
        first.step()
    saved = first.state_dict()
    assert set(saved["state"][0]) == {"step", "m", "v", "vhat"}
    second = Adam([resumed], learning_rate=0.05, amsgrad=True)
    second.load_state_dict(saved)
    for t in range(30, 100):
        resumed.grad = grads(t)
        second.step()
    assert torch.equal(resumed.detach(), straight.detach())


# ---------------------------------------------------------------------------------------- tf_keras reference


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.05},
        {
            "learning_rate": 0.05,
            "beta_1": 0.5,
            "beta_2": 0.9,
            "epsilon": 1e-3,
            "amsgrad": True,
            "weight_decay": 0.1,
            "clipnorm": 0.5,
        },
        {
            "learning_rate": 0.05,
            "adaptive_epsilon": True,
            "epsilon": 1e-2,
            "global_clipnorm": 0.5,
            "clipvalue": 0.01,  # ignored by Keras when a norm clip is set
            "use_ema": True,
            "ema_momentum": 0.9,
            "ema_overwrite_frequency": 7,
        },
    ],
    ids=["lr", "amsgrad-betas-eps-wd-clipnorm", "adaptive-eps-globalclip-clipvalue-ema"],
)
def test_matches_keras(tf, seed: int, kwargs: dict) -> None:
    expected = _run_keras(tf, kwargs, seed)
    got = run_dense_torch(lambda ps: Adam(ps, **kwargs), seed)
    assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_torch_adam_does_not_match_keras_on_small_gradients(tf) -> None:
    # Gradients scaled by 1e-6 make sqrt(v) comparable to eps: Keras's "epsilon hat" (eps added to the uncorrected
    # root) and torch's (eps added to the corrected root) then move differently, even with the same eps.
    kwargs = {"learning_rate": 0.05}
    expected = _run_keras(tf, kwargs, seed=0, scale=1e-6)
    ours = run_dense_torch(lambda ps: Adam(ps, **kwargs), seed=0, scale=1e-6)
    torchs = run_dense_torch(lambda ps: torch.optim.Adam(ps, lr=0.05, eps=1e-7), seed=0, scale=1e-6)
    assert max_abs_diff(ours, expected) <= TOLERANCE
    assert max_abs_diff(torchs, expected) > 1e-2


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
def test_embedding_table_matches_keras_indexed_slices(tf, seed: int) -> None:
    # tf.gather's gradient is tf.IndexedSlices; Keras 2 Adam decays m and v on every row and moves every row.
    rng = np.random.default_rng(seed)
    vocab, dim, batch = 12, 3, 16
    table = rng.uniform(-0.05, 0.05, size=(vocab, dim)).astype(np.float32)
    ids = [rng.integers(0, vocab - 2, size=batch) for _ in range(STEPS)]
    upstream = [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(STEPS)]
    kwargs = {"learning_rate": 0.05, "amsgrad": True, "global_clipnorm": 2.0}

    variable = tf.Variable(table)
    tf_opt = tf.keras.optimizers.Adam(**kwargs)
    for t in range(STEPS):
        with tf.GradientTape() as tape:
            rows = tf.gather(variable, ids[t])
            loss = tf.reduce_sum(rows * upstream[t]) + 0.25 * tf.reduce_sum(rows * rows)
        grad = tape.gradient(loss, variable)
        assert isinstance(grad, tf.IndexedSlices)
        tf_opt.apply_gradients([(grad, variable)])

    emb = torch.nn.Embedding(vocab, dim, sparse=True)
    emb.weight.data.copy_(torch.from_numpy(table))
    opt = Adam(emb.parameters(), **kwargs)
    for t in range(STEPS):
        opt.zero_grad()
        rows = emb(torch.from_numpy(ids[t]))  # (B, D)
        (torch.sum(rows * torch.from_numpy(upstream[t])) + 0.25 * torch.sum(rows * rows)).backward()
        opt.step()

    assert np.max(np.abs(emb.weight.detach().numpy() - variable.numpy())) <= TOLERANCE
