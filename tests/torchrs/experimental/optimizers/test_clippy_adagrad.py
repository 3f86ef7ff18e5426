"""experimental.optimizers.ClippyAdagrad: hand-derived values, errors, sparse rows, and TFRS 0.7.7 as reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.torchrs.optim._reference import COUPLING, SEEDS, STEPS, dense_problem, max_abs_diff
from torchrs.experimental.optimizers.clippy_adagrad import ClippyAdagrad, shrink_by_references

#: Max abs difference allowed between TFRS and torchrs parameters after 100 float32 steps: the same float32
#: operations in the same order, up to a few roundings. Measured: <= 2.4e-7 (dense parameters), <= 9e-8
#: (clipping factors), <= 7.5e-9 (sparse).
TOLERANCE = 1e-5


def _scalar(value: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


def _f64(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64)


# ----------------------------------------------------------------------------------------- shrink_by_references


@pytest.mark.parametrize(
    ("tensor", "references", "factors", "absolute", "expected"),
    [
        # bound = |4| * 0.1 + 0.02 = 0.42 < |2|: scale 0.21, the sign of the tensor is kept.
        (2.0, [4.0], [0.1], 0.02, (0.42, 0.21)),
        (2.0, [-4.0], [0.1], 0.02, (0.42, 0.21)),
        (-2.0, [4.0], [0.1], 0.02, (-0.42, 0.21)),
        (-2.0, [4.0], [0.1], 0.0, (-0.4, 0.2)),
        (-2.0, [0.0], [0.1], 0.0, (0.0, 0.0)),  # zero bound: everything is clipped away
        (2.0, [20.0], [0.1], 0.1, (2.0, 1.0)),  # bound 2.1 >= 2: no clipping
        (0.0, [0.0], [0.0], 0.0, (0.0, 1.0)),  # zero tensor: scale 1
        # Two references: bound = 4 * 0.1 + 5 * 0.2 + 0.02 = 1.42, scale 0.71.
        (2.0, [4.0, -5.0], [0.1, 0.2], 0.02, (1.42, 0.71)),
        (2.0, [], [], 0.02, (0.02, 0.01)),  # no reference: the absolute bound alone
    ],
)
def test_shrink_by_references_scalars(
    tensor: float,
    references: list[float],
    factors: list[float],
    absolute: float,
    expected: tuple[float, float],
) -> None:
    clipped, scale = shrink_by_references(
        torch.tensor(tensor, dtype=torch.float64),
        [torch.tensor(r, dtype=torch.float64) for r in references],
        factors,
        absolute,
    )
    assert (clipped.item(), scale.item()) == pytest.approx(expected, abs=1e-12)


def test_shrink_by_references_uses_one_scale_for_the_tensor() -> None:
    # Bounds per element: [1 * 0.1 + 0.01, 0.1 * 0.1 + 0.01] = [0.11, 0.02]; tensor [1, 1]: the min ratio 0.02
    # scales both elements.
    clipped, scale = shrink_by_references(
        torch.tensor([1.0, 1.0]), [torch.tensor([1.0, 0.1])], [0.1], 0.01
    )
    torch.testing.assert_close(clipped, torch.tensor([0.02, 0.02]))
    assert scale.item() == pytest.approx(0.02)
    # An empty tensor (a sparse gradient with no rows) is not scaled.
    assert shrink_by_references(torch.zeros(0), [torch.zeros(0)], [0.1], 0.0)[1].item() == 1.0


@pytest.mark.parametrize(
    ("factors", "absolute", "match"),
    [
        ([-0.1], 0.0, r"`relative_factors` must all be non-negative \(got \[-0.1\]\)"),
        ([0.1], -1.0, r"`absolute_factor` must be non-negative \(got -1.0\)"),
        ([0.1, 0.2], 0.0, r"same length \(got 1 and 2\)"),
    ],
)
def test_shrink_by_references_errors(factors: list[float], absolute: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        shrink_by_references(torch.ones(1), [torch.ones(1)], factors, absolute)


# ----------------------------------------------------------------------------------------- optimizer, by hand


def test_first_step_is_clipped_to_ten_percent_of_the_weight() -> None:
    # acc = 0.1: delta = 1 * 1 / sqrt(0.1 + 1e-7) = 3.1623; bound = 0.1 * |2| + 1e-7 = 0.2000001 -> w = 1.7999999.
    # The accumulator is updated after the step with the unclipped gradient: 0.1 + 1 = 1.1.
    w = _scalar(2.0)
    opt = ClippyAdagrad([w], learning_rate=1.0, export_clipping_factors=True)
    w.grad = _f64(1.0)
    opt.step()
    assert w.item() == pytest.approx(2.0 - 0.2000001, rel=1e-12)
    assert opt.state[w]["accumulator"].item() == pytest.approx(1.1, rel=1e-12)
    assert opt.clipping_factors[0].item() == pytest.approx(
        0.2000001 / (1 / math.sqrt(0.1 + 1e-7)), rel=1e-12
    )


def test_small_steps_are_not_clipped() -> None:
    # delta = 0.001 * 1 / sqrt(0.1 + 1e-7) = 0.0031623 < 0.1 * 2: plain Adagrad with the accumulator before g.
    w = _scalar(2.0)
    opt = ClippyAdagrad([w])
    w.grad = _f64(1.0)
    opt.step()
    assert w.item() == pytest.approx(2.0 - 0.001 / math.sqrt(0.1 + 1e-7), rel=1e-12)


def test_clip_accumulator_update() -> None:
    # Same first step as above; the accumulator now gets the clipped gradient: 0.1 + (1 * scale)^2.
    w = _scalar(2.0)
    opt = ClippyAdagrad([w], learning_rate=1.0, clip_accumulator_update=True)
    w.grad = _f64(1.0)
    opt.step()
    scale = 0.2000001 * math.sqrt(0.1 + 1e-7)
    assert opt.state[w]["accumulator"].item() == pytest.approx(0.1 + scale**2, rel=1e-12)


def test_standard_accumulator_update() -> None:
    # acc = 0.1 + 4 = 4.1 first; delta = 0.1 * 2 / sqrt(4.1 + 1e-7) = 0.098773 < 0.1 * |5|: not clipped.
    w = _scalar(5.0)
    opt = ClippyAdagrad([w], learning_rate=0.1, use_standard_accumulator_update=True)
    w.grad = _f64(2.0)
    opt.step()
    assert w.item() == pytest.approx(5.0 - 0.2 / math.sqrt(4.1 + 1e-7), rel=1e-12)
    assert opt.state[w]["accumulator"].item() == pytest.approx(4.1, rel=1e-12)


def test_accumulator_relative_threshold() -> None:
    # w = 0: the bound is 0.5 * rsqrt(0.1 + 1e-7) + 1e-7 = 1.5811389; delta = 1 * 1 * rsqrt(0.1 + 1e-7) = 3.1622775.
    w = _scalar(0.0)
    opt = ClippyAdagrad([w], learning_rate=1.0, accumulator_relative_threshold=0.5)
    w.grad = _f64(1.0)
    opt.step()
    assert -w.item() == pytest.approx(0.5 / math.sqrt(0.1 + 1e-7) + 1e-7, rel=1e-12)


def test_clipping_factors_only_when_exported() -> None:
    w = _scalar(1.0)
    opt = ClippyAdagrad([w])
    w.grad = _f64(1.0)
    opt.step()
    assert opt.clipping_factors == [] and "clipping_factor" not in opt.state[w]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"clip_accumulator_update": True, "use_standard_accumulator_update": True},
            r"clip_accumulator_update and use_standard_accumulator_update cannot both be set to True",
        ),
        (
            {"variable_relative_threshold": -0.1},
            r"`variable_relative_threshold` must be >= 0 \(got -0.1\)",
        ),
        (
            {"accumulator_relative_threshold": -1.0},
            r"`accumulator_relative_threshold` must be >= 0",
        ),
        ({"absolute_threshold": -1e-7}, r"`absolute_threshold` must be >= 0"),
        ({"epsilon": -1e-7}, r"`epsilon` must be >= 0"),
        ({"learning_rate": -0.1}, r"`learning_rate` must be >= 0"),
        ({"learning_rate": 0.1, "lr": 0.2}, r"learning_rate=0.1 and lr=0.2"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClippyAdagrad([_scalar(0.0)], **kwargs)


def test_sparse_embedding_gradient_equals_dense() -> None:
    # One clipping scale per table, computed on the touched rows only: untouched rows have delta 0, so the dense
    # gradient gives the same scale.
    ids = [torch.tensor([1, 3, 1, 1]), torch.tensor([0, 3]), torch.tensor([3, 5, 3])]
    results = []
    for sparse in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(6, 2, sparse=sparse)
        opt = ClippyAdagrad(emb.parameters(), learning_rate=0.5, export_clipping_factors=True)
        for batch in ids:
            opt.zero_grad()
            out = emb(batch)  # (B, 2)
            (out.sum() + 0.5 * out.square().sum()).backward()
            opt.step()
        results.append((emb.weight.detach().clone(), opt.clipping_factors[0].clone()))
    (dense, dense_factor), (sparse, sparse_factor) = results
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-6)
    assert sparse_factor.item() == pytest.approx(dense_factor.item(), rel=1e-6)
    assert sparse_factor.item() < 1.0  # the clipping was active


def test_resume_from_state_dict_continues_the_trajectory() -> None:
    def grads(t: int) -> torch.Tensor:
        return torch.sin(torch.arange(4.0) + t)  # (4,)

    kwargs = {"learning_rate": 0.5, "export_clipping_factors": True}
    straight = torch.nn.Parameter(torch.ones(4))
    opt = ClippyAdagrad([straight], **kwargs)
    for t in range(60):
        straight.grad = grads(t)
        opt.step()
    resumed = torch.nn.Parameter(torch.ones(4))
    first = ClippyAdagrad([resumed], **kwargs)
    for t in range(25):
        resumed.grad = grads(t)
        first.step()
    second = ClippyAdagrad([resumed], **kwargs)
    second.load_state_dict(first.state_dict())
    assert set(second.state[resumed]) == {"step", "accumulator", "clipping_factor"}
    for t in range(25, 60):
        resumed.grad = grads(t)
        second.step()
    assert torch.equal(resumed.detach(), straight.detach())


# ---------------------------------------------------------------------------------------------- TFRS reference


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.3},
        {
            "learning_rate": 0.5,
            "accumulator_relative_threshold": 1e-2,
            "absolute_threshold": 1e-3,
            "clip_accumulator_update": True,
            "clipnorm": 2.0,
        },
        {
            "learning_rate": 0.3,
            "variable_relative_threshold": 0.02,
            "use_standard_accumulator_update": True,
            "weight_decay": 0.1,
        },
        # TFRS's own test_single_step_clip arguments (epsilon=0.0, accepted as in TFRS).
        {
            "learning_rate": 0.2,
            "initial_accumulator_value": 0.01,
            "variable_relative_threshold": 0.4,
            "accumulator_relative_threshold": 0.01,
            "absolute_threshold": 0.1,
            "epsilon": 0.0,
        },
    ],
    ids=["lr", "acc-threshold-clip-acc-clipnorm", "standard-acc-wd", "tfrs-single-step-eps0"],
)
def test_matches_tfrs(tf, tfrs, seed: int, kwargs: dict) -> None:
    init, target, noise = dense_problem(seed)
    variables = [tf.Variable(x) for x in init]
    tf_opt = tfrs.experimental.optimizers.ClippyAdagrad(export_clipping_factors=True, **kwargs)
    params = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = ClippyAdagrad(params, export_clipping_factors=True, **kwargs)
    factors_below_one = 0
    for t in range(STEPS):
        tf_opt.apply_gradients(
            [
                (COUPLING * (v - c) + n, v)
                for v, c, n in zip(variables, target, noise[t], strict=True)
            ]
        )
        for p, c, n in zip(params, target, noise[t], strict=True):
            p.grad = COUPLING * (p.detach() - torch.from_numpy(c)) + torch.from_numpy(n)
        opt.step()
        factors_below_one += sum(float(f) < 1.0 for f in opt.clipping_factors)
        got_factors = np.array([float(f) for f in opt.clipping_factors])
        want_factors = np.array([float(f.numpy()) for f in tf_opt.clipping_factors])
        assert np.max(np.abs(got_factors - want_factors)) <= TOLERANCE
    assert (
        max_abs_diff([p.detach().numpy() for p in params], [v.numpy() for v in variables])
        <= TOLERANCE
    )
    assert factors_below_one > 0  # the adaptive clipping was exercised


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
def test_embedding_table_matches_tfrs_indexed_slices(tf, tfrs, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vocab, dim, batch = 12, 3, 16
    table = rng.uniform(-0.05, 0.05, size=(vocab, dim)).astype(np.float32)
    ids = [rng.integers(0, vocab - 2, size=batch) for _ in range(STEPS)]
    upstream = [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(STEPS)]
    kwargs = {"learning_rate": 0.3, "clip_accumulator_update": seed == 1}

    variable = tf.Variable(table)
    tf_opt = tfrs.experimental.optimizers.ClippyAdagrad(**kwargs)
    for t in range(STEPS):
        with tf.GradientTape() as tape:
            rows = tf.gather(variable, ids[t])
            loss = tf.reduce_sum(rows * upstream[t]) + 0.25 * tf.reduce_sum(rows * rows)
        grad = tape.gradient(loss, variable)
        assert isinstance(grad, tf.IndexedSlices)
        tf_opt.apply_gradients([(grad, variable)])

    emb = torch.nn.Embedding(vocab, dim, sparse=True)
    emb.weight.data.copy_(torch.from_numpy(table))
    opt = ClippyAdagrad(emb.parameters(), **kwargs)
    for t in range(STEPS):
        opt.zero_grad()
        rows = emb(torch.from_numpy(ids[t]))  # (B, D)
        (torch.sum(rows * torch.from_numpy(upstream[t])) + 0.25 * torch.sum(rows * rows)).backward()
        opt.step()

    assert np.max(np.abs(emb.weight.detach().numpy() - variable.numpy())) <= TOLERANCE
