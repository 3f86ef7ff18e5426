"""optim.SGD, and the Keras 2 machinery every optimizer shares (clipping, weight decay, EMA, iterations).

SGD with ``learning_rate=1`` moves a parameter by exactly minus its (clipped) gradient, which makes the shared
steps of ``apply_gradients`` easy to derive by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.torchrs.optim._reference import (
    COUPLING,
    SEEDS,
    STEPS,
    dense_problem,
    max_abs_diff,
    run_dense_keras,
    run_dense_torch,
)
from torchrs.optim._keras import clip_by_norm, clip_gradients, deduplicate_sparse_grad, global_norm
from torchrs.optim.sgd import SGD

#: Max abs difference allowed between Keras and torchrs parameters after 100 float32 steps. SGD runs the very same
#: float32 operations as Keras; measured: <= 9e-8 (dense), <= 1.2e-7 (sparse), 0 for most configurations.
TOLERANCE = 1e-5


def _run_keras(tf, kwargs: dict, seed: int) -> list[np.ndarray]:
    opt = tf.keras.optimizers.SGD(**kwargs)
    assert (
        type(opt).__module__ == "tf_keras.src.optimizers.sgd"
    )  # the Keras 2 optimizer, not legacy
    return run_dense_keras(tf, opt, seed, finalize=bool(kwargs.get("use_ema")))


def _sgd_move(grads: list[torch.Tensor], **kwargs) -> list[torch.Tensor]:
    """One SGD step with lr 1 from zeros: returns each parameter's move, i.e. minus the processed gradient."""
    params = [
        torch.nn.Parameter(torch.zeros_like(g.to_dense() if g.is_sparse else g)) for g in grads
    ]
    opt = SGD(params, learning_rate=1.0, **kwargs)
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    opt.step()
    return [p.detach() for p in params]


# ----------------------------------------------------------------------------------------- hand-derived values


def test_momentum_velocity_contains_the_learning_rate() -> None:
    # m = 0.9 * 0 - 0.1 * 1 = -0.1, p = 0.9; m = 0.9 * -0.1 - 0.1 * 1 = -0.19, p = 0.71.
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = SGD([p], learning_rate=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = torch.tensor([1.0])
        opt.step()
    assert opt.state[p]["momentum"].item() == pytest.approx(-0.19, rel=1e-6)
    assert p.item() == pytest.approx(0.71, rel=1e-6)


def test_nesterov() -> None:
    # m = -0.1; p += -0.1 * 1 + 0.9 * m = -0.19. Step 2: m = -0.19; p += -0.1 + 0.9 * -0.19 = -0.271 -> -0.461.
    p = torch.nn.Parameter(torch.tensor([0.0]))
    opt = SGD([p], learning_rate=0.1, momentum=0.9, nesterov=True)
    p.grad = torch.tensor([1.0])
    opt.step()
    assert p.item() == pytest.approx(-0.19, rel=1e-6)
    opt.step()
    assert p.item() == pytest.approx(-0.461, rel=1e-6)


def test_zero_momentum_still_keeps_the_keras_slot() -> None:
    # Keras always creates `m`: with momentum 0 it holds -lr * g.
    p = torch.nn.Parameter(torch.tensor([0.0]))
    opt = SGD([p])
    p.grad = torch.tensor([2.0])
    opt.step()
    assert opt.state[p]["momentum"].item() == pytest.approx(-0.02)
    assert p.item() == pytest.approx(-0.02)
    assert opt.param_groups[0]["lr"] == 0.01  # Keras's SGD default


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1.0}, r"`learning_rate` must be >= 0 \(got -1.0\)"),
        ({"learning_rate": 0.5, "lr": 0.1}, r"learning_rate=0.5 and lr=0.1"),
        ({"momentum": 1.5}, r"`momentum` must be in \[0, 1\] \(got 1.5\)"),
        ({"momentum": -0.5}, r"`momentum` must be in \[0, 1\]"),
        ({"clipnorm": -1.0}, r"`clipnorm` must be >= 0"),
        (
            {"global_clipnorm": 0.0, "clipnorm": 1.0},
            r"At most one of `clipnorm` and `global_clipnorm`",
        ),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SGD([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_learning_rate_property_and_torch_scheduler() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGD([p], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = torch.ones(1)
    opt.step()
    scheduler.step()
    assert opt.learning_rate == pytest.approx(0.05)
    opt.step()  # -0.1 - 0.05
    assert p.item() == pytest.approx(-0.15)
    opt.learning_rate = 1.0
    assert opt.param_groups[0]["lr"] == 1.0
    with pytest.raises(ValueError, match=r"`learning_rate` must be >= 0 \(got -1.0\)"):
        opt.learning_rate = -1.0


def test_iterations_setter() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGD([p])
    opt.iterations = 41
    p.grad = torch.ones(1)
    opt.step()
    assert opt.iterations == 42 and set(opt.state[p]) == {"step", "momentum"}
    with pytest.raises(ValueError, match=r"`iterations` must be an integer >= 0 \(got -1\)"):
        opt.iterations = -1


# Clipping: Keras applies ONE of clipnorm, global_clipnorm, clipvalue (in that priority), on raw sparse rows.


def test_clip_functions() -> None:
    # ||[3, 4]|| = 5 -> scaled by 1/5; a norm below the threshold leaves the values unchanged.
    torch.testing.assert_close(
        clip_by_norm(torch.tensor([3.0, 4.0]), 1.0), torch.tensor([0.6, 0.8])
    )
    torch.testing.assert_close(
        clip_by_norm(torch.tensor([0.3, 0.4]), 1.0), torch.tensor([0.3, 0.4])
    )
    torch.testing.assert_close(clip_by_norm(torch.zeros(2), 1.0), torch.zeros(2))
    assert global_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]).item() == pytest.approx(5.0)
    # A non-finite global norm makes the scale NaN, as tf.clip_by_global_norm does.
    clipped = clip_gradients(
        [torch.tensor([float("inf")]), torch.tensor([1.0])], global_clipnorm=1.0
    )
    assert torch.isnan(clipped[1]).all()
    # clipnorm = 0 counts as "not set" (Keras tests `if self.clipnorm and self.clipnorm > 0`).
    assert torch.equal(clip_gradients([torch.tensor([3.0])], clipnorm=0.0)[0], torch.tensor([3.0]))


def test_clipnorm_is_per_tensor() -> None:
    # [3, 4] has norm 5 -> [0.6, 0.8]; [0.1] is under 1 and stays.
    moves = _sgd_move([torch.tensor([3.0, 4.0]), torch.tensor([0.1])], clipnorm=1.0)
    torch.testing.assert_close(moves[0], torch.tensor([-0.6, -0.8]))
    torch.testing.assert_close(moves[1], torch.tensor([-0.1]))


def test_global_clipnorm_scales_all_tensors_together() -> None:
    # Global norm of [3] and [4] is 5: both scaled by 1/5.
    moves = _sgd_move([torch.tensor([3.0]), torch.tensor([4.0])], global_clipnorm=1.0)
    torch.testing.assert_close(torch.cat(moves), torch.tensor([-0.6, -0.8]))


def test_clipvalue_is_ignored_when_a_norm_clip_is_set() -> None:
    # clipvalue 0.1 alone: [0.3, -0.4] -> [0.1, -0.1]. With clipnorm 1 (norm 0.5, no-op) Keras returns
    # after the norm clip and never applies clipvalue.
    torch.testing.assert_close(
        _sgd_move([torch.tensor([0.3, -0.4])], clipvalue=0.1)[0], torch.tensor([-0.1, 0.1])
    )
    torch.testing.assert_close(
        _sgd_move([torch.tensor([0.3, -0.4])], clipnorm=1.0, clipvalue=0.1)[0],
        torch.tensor([-0.3, 0.4]),
    )
    torch.testing.assert_close(
        _sgd_move([torch.tensor([0.3, -0.4])], global_clipnorm=1.0, clipvalue=0.1)[0],
        torch.tensor([-0.3, 0.4]),
    )


def test_sparse_rows_are_clipped_before_repeats_are_summed() -> None:
    # Two lookups of row 1 with gradients 3 and 4. Raw-row norm = 5, so clipnorm 1 gives 0.6 + 0.8 = 1.4
    # (the dense gradient 7 would clip to 1). clipvalue 0.5 gives 0.5 + 0.5 = 1.0 (dense: 0.5).
    sparse = torch.sparse_coo_tensor([[1, 1]], [[3.0], [4.0]], (3, 1), check_invariants=True)
    assert _sgd_move([sparse], clipnorm=1.0)[0][:, 0].tolist() == pytest.approx([0.0, -1.4, 0.0])
    assert _sgd_move([sparse], clipvalue=0.5)[0][:, 0].tolist() == pytest.approx([0.0, -1.0, 0.0])
    assert _sgd_move([sparse.to_dense()], clipnorm=1.0)[0][:, 0].tolist() == pytest.approx(
        [0.0, -1.0, 0.0]
    )


def test_deduplicate_sparse_grad() -> None:
    from torchrs.optim._keras import SparseGrad

    g = deduplicate_sparse_grad(
        SparseGrad(torch.tensor([4, 1, 4, 4]), torch.tensor([[1.0], [2.0], [3.0], [4.0]]))
    )
    assert g.indices.tolist() == [1, 4] and g.values[:, 0].tolist() == [2.0, 8.0]


def test_weight_decay_is_decoupled_and_applied_first() -> None:
    # p = 2, wd = 0.1, lr = 0.5, g = 1: p -= 2 * 0.1 * 0.5 -> 1.9; then p -= 0.5 * 1 -> 1.4.
    p = torch.nn.Parameter(torch.tensor([2.0]))
    opt = SGD([p], learning_rate=0.5, weight_decay=0.1)
    p.grad = torch.tensor([1.0])
    opt.step()
    assert p.item() == pytest.approx(1.4)


def test_weight_decay_skips_parameters_without_gradient_and_excluded_ones() -> None:
    # Only `a` decays (2 -> 1.9 -> 1.4 with g = 1): `b` has no gradient, `c` is excluded by name, `d` by identity.
    model = torch.nn.ParameterDict(
        {name: torch.nn.Parameter(torch.tensor([2.0])) for name in "abcd"}
    )
    opt = SGD(model.named_parameters(), learning_rate=0.5, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_list=[model["d"]], var_names=["^c$"])
    for name in "acd":
        model[name].grad = torch.tensor([1.0])
    opt.step()
    assert [model[n].item() for n in "abcd"] == pytest.approx([1.4, 2.0, 1.5, 1.5])
    with pytest.raises(ValueError, match=r"before the optimizer's first step"):
        opt.exclude_from_weight_decay(var_names=["a"])


def test_exclude_by_name_needs_named_parameters() -> None:
    opt = SGD([torch.nn.Parameter(torch.zeros(1))], weight_decay=0.1)
    with pytest.raises(ValueError, match=r"`var_names=\['bias'\]` needs parameter names"):
        opt.exclude_from_weight_decay(var_names=["bias"])


def test_ema_average_and_overwrite() -> None:
    # lr 1, g = 1, ema_momentum 0.5, overwrite every 2 steps. The average starts at the initial value 1.
    # Step 1: p = 0, avg = 0.5 * 1 + 0.5 * 0 = 0.5. Step 2: p = -1, avg = 0.5 * 0.5 + 0.5 * -1 = -0.25, and
    # since (iterations + 1) % 2 == 0, p is overwritten with -0.25.
    p = torch.nn.Parameter(torch.tensor([1.0]))
    opt = SGD([p], learning_rate=1.0, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)
    p.grad = torch.tensor([1.0])
    opt.step()
    assert (p.item(), opt.state[p]["average"].item()) == pytest.approx((0.0, 0.5))
    opt.step()
    assert (p.item(), opt.state[p]["average"].item()) == pytest.approx((-0.25, -0.25))
    opt.step()  # p = -1.25, avg = 0.5 * -0.25 + 0.5 * -1.25 = -0.75; finalize copies the average in.
    opt.finalize_variable_values()
    assert p.item() == pytest.approx(-0.75)


def test_sparse_momentum_moves_every_row_like_dense() -> None:
    ids = [torch.tensor([1, 3, 1]), torch.tensor([0, 0]), torch.tensor([4])]
    tables = []
    for sparse in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 2, sparse=sparse)
        opt = SGD(emb.parameters(), learning_rate=0.1, momentum=0.9, nesterov=True)
        for batch in ids:
            opt.zero_grad()
            emb(batch).square().sum().backward()
            opt.step()
        tables.append(emb.weight.detach())
    torch.testing.assert_close(tables[1], tables[0], rtol=0, atol=1e-7)


def test_resume_from_state_dict_continues_the_trajectory() -> None:
    def grads(t: int) -> torch.Tensor:
        return torch.sin(torch.arange(3.0) * t)  # (3,)

    def run(params: list[torch.nn.Parameter], opt: SGD, steps: range) -> None:
        for t in steps:
            params[0].grad = grads(t)
            opt.step()

    straight = [torch.nn.Parameter(torch.ones(3))]
    run(straight, SGD(straight, learning_rate=0.1, momentum=0.9, use_ema=True), range(100))
    resumed = [torch.nn.Parameter(torch.ones(3))]
    first = SGD(resumed, learning_rate=0.1, momentum=0.9, use_ema=True)
    run(resumed, first, range(50))
    second = SGD(resumed, learning_rate=0.1, momentum=0.9, use_ema=True)
    second.load_state_dict(first.state_dict())
    assert set(second.state[resumed[0]]) == {"step", "momentum", "average"}
    run(resumed, second, range(50, 100))
    assert torch.equal(resumed[0].detach(), straight[0].detach())


# ---------------------------------------------------------------------------------------- tf_keras reference


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.05, "momentum": 0.9},
        {
            "learning_rate": 0.05,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 0.2,
            "clipvalue": 0.2,
        },
        {
            "learning_rate": 0.1,
            "clipnorm": 0.3,
            "clipvalue": 0.01,  # ignored by Keras when clipnorm is set
            "use_ema": True,
            "ema_momentum": 0.8,
            "ema_overwrite_frequency": 7,
        },
    ],
    ids=["momentum", "nesterov-wd-clipvalue", "clipnorm-clipvalue-ema"],
)
def test_matches_keras(tf, seed: int, kwargs: dict) -> None:
    expected = _run_keras(tf, kwargs, seed)
    got = run_dense_torch(lambda ps: SGD(ps, **kwargs), seed, finalize=bool(kwargs.get("use_ema")))
    assert max_abs_diff(got, expected) <= TOLERANCE


@pytest.mark.tf
def test_exclude_from_weight_decay_matches_keras(tf) -> None:
    # Keras matches `var_names` against variable names; torch names come from named_parameters().
    init, target, noise = dense_problem(0)
    variables = [tf.Variable(x, name=f"w{i}") for i, x in enumerate(init)]
    tf_opt = tf.keras.optimizers.SGD(learning_rate=0.1, weight_decay=0.5)
    tf_opt.exclude_from_weight_decay(var_list=[variables[0]], var_names=["w2"])
    params = torch.nn.ParameterDict(
        {f"w{i}": torch.nn.Parameter(torch.from_numpy(x.copy())) for i, x in enumerate(init)}
    )
    opt = SGD(params.named_parameters(), learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[params["w0"]], var_names=["w2"])
    for t in range(STEPS):
        tf_opt.apply_gradients(
            (COUPLING * (v - c) + n, v) for v, c, n in zip(variables, target, noise[t], strict=True)
        )
        for p, c, n in zip(params.values(), target, noise[t], strict=True):
            p.grad = COUPLING * (p.detach() - torch.from_numpy(c)) + torch.from_numpy(n)
        opt.step()
    got = [p.detach().numpy() for p in params.values()]
    assert max_abs_diff(got, [v.numpy() for v in variables]) <= TOLERANCE


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
def test_embedding_table_matches_keras_indexed_slices(tf, seed: int) -> None:
    # Momentum on tf.IndexedSlices: Keras decays the whole velocity and adds every row of it.
    rng = np.random.default_rng(seed)
    vocab, dim, batch = 12, 3, 16
    table = rng.uniform(-0.05, 0.05, size=(vocab, dim)).astype(np.float32)
    ids = [rng.integers(0, vocab - 2, size=batch) for _ in range(STEPS)]
    upstream = [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(STEPS)]
    kwargs = {"learning_rate": 0.02, "momentum": 0.9, "nesterov": seed == 1, "clipvalue": 0.5}

    variable = tf.Variable(table)
    tf_opt = tf.keras.optimizers.SGD(**kwargs)
    for t in range(STEPS):
        with tf.GradientTape() as tape:
            rows = tf.gather(variable, ids[t])
            loss = tf.reduce_sum(rows * upstream[t]) + 0.25 * tf.reduce_sum(rows * rows)
        grad = tape.gradient(loss, variable)
        assert isinstance(grad, tf.IndexedSlices)
        tf_opt.apply_gradients([(grad, variable)])

    emb = torch.nn.Embedding(vocab, dim, sparse=True)
    emb.weight.data.copy_(torch.from_numpy(table))
    opt = SGD(emb.parameters(), **kwargs)
    for t in range(STEPS):
        opt.zero_grad()
        rows = emb(torch.from_numpy(ids[t]))  # (B, D)
        (torch.sum(rows * torch.from_numpy(upstream[t])) + 0.25 * torch.sum(rows * rows)).backward()
        opt.step()

    assert np.max(np.abs(emb.weight.detach().numpy() - variable.numpy())) <= TOLERANCE
