"""optim.legacy's shared machinery: clipping order, ``decay``, float32 hyperparameters, iterations, errors, resume.

Plain legacy SGD with ``learning_rate=1`` moves a parameter by exactly minus its (clipped) gradient, which makes the
shared steps of ``OptimizerV2.apply_gradients`` easy to derive by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from torchrs.optim import legacy
from torchrs.optim._keras import clip_gradients
from torchrs.optim.legacy.optimizer_v2 import (
    decayed_learning_rate,
    hyper,
    legacy_clip_gradients,
    legacy_epsilon,
)

# ------------------------------------------------------------------------------------------------ clipping


def test_clipvalue_then_clipnorm_both_apply() -> None:
    # [3, 4] clipped by value 3 -> [3, 3] (norm 3 * sqrt 2), then by norm 3 -> [3, 3] / sqrt 2 = [2.1213, 2.1213].
    # The tf_keras 2.x optimizers apply only the norm clip: [3, 4] * 3 / 5 = [1.8, 2.4].
    (got,) = legacy_clip_gradients([torch.tensor([3.0, 4.0])], clipvalue=3.0, clipnorm=3.0)
    torch.testing.assert_close(got, torch.full((2,), 3 / math.sqrt(2)))
    (new,) = clip_gradients([torch.tensor([3.0, 4.0])], clipvalue=3.0, clipnorm=3.0)
    torch.testing.assert_close(new, torch.tensor([1.8, 2.4]))


def test_clipvalue_then_global_clipnorm() -> None:
    # [3], [4] clipped by value 3.5 -> [3], [3.5]; global norm sqrt(9 + 12.25) = 4.60977;
    # scaled by 1 / 4.60977 -> [0.650791], [0.759257].
    a, b = legacy_clip_gradients(
        [torch.tensor([3.0]), torch.tensor([4.0])], clipvalue=3.5, global_clipnorm=1.0
    )
    norm = math.sqrt(9 + 3.5**2)
    assert a.item() == pytest.approx(3 / norm, rel=1e-6)
    assert b.item() == pytest.approx(3.5 / norm, rel=1e-6)


def test_zero_clipvalue_applies() -> None:
    # Keras tests `clipvalue is not None`: clipvalue=0 clips every gradient to 0 (the 2.x optimizers skip it).
    p = torch.nn.Parameter(torch.ones(2))
    opt = legacy.SGD([p], learning_rate=1.0, clipvalue=0.0)
    p.grad = torch.tensor([5.0, -5.0])
    opt.step()
    assert torch.equal(p.detach(), torch.ones(2))


def test_sparse_gradient_is_clipped_on_its_raw_rows() -> None:
    # Rows [0, 0] with values 3 and 4: the norm is that of the raw rows, 5 (not of their sum, 7); clipnorm 1 makes
    # them 0.6 and 0.8, which plain SGD (lr 1) scatter-adds: p[0] = 1 - 0.6 - 0.8 = -0.4.
    p = torch.nn.Parameter(torch.ones(2, 1))
    opt = legacy.SGD([p], learning_rate=1.0, clipnorm=1.0)
    p.grad = torch.sparse_coo_tensor([[0, 0]], [[3.0], [4.0]], (2, 1), check_invariants=True)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([[-0.4], [1.0]]))


def test_the_optimizer_applies_the_clips_in_order() -> None:
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = legacy.SGD([p, q], learning_rate=1.0, clipvalue=3.5, global_clipnorm=1.0)
    p.grad, q.grad = torch.tensor([3.0]), torch.tensor([4.0])
    opt.step()  # see test_clipvalue_then_global_clipnorm
    norm = math.sqrt(9 + 3.5**2)
    assert (p.item(), q.item()) == pytest.approx((-3 / norm, -3.5 / norm), rel=1e-6)


# ------------------------------------------------------------------------------------ decay, hyperparameters


def test_decayed_learning_rate() -> None:
    # lr / (1 + decay * iterations), iterations counted before the step: 0.1, 0.1 / 1.5, 0.1 / 2.
    got = [decayed_learning_rate(0.1, 0.5, k, torch.float64).item() for k in range(3)]
    assert got == pytest.approx([0.1, 0.1 / 1.5, 0.1 / 2.0], rel=1e-7)
    # decay 0 is the float32 learning rate itself
    assert decayed_learning_rate(0.1, 0.0, 5, torch.float32).item() == hyper(0.1, torch.float32)


def test_decay_in_the_optimizer() -> None:
    # Plain SGD, lr 0.1, decay 0.5, g = 1 three times: 1 - 0.1 - 0.1 / 1.5 - 0.1 / 2 = 0.7833333.
    p = torch.nn.Parameter(torch.ones(1))
    opt = legacy.SGD([p], learning_rate=0.1, decay=0.5)
    for _ in range(3):
        p.grad = torch.ones(1)
        opt.step()
    assert p.item() == pytest.approx(1 - 0.1 - 0.1 / 1.5 - 0.05, rel=1e-6)
    assert opt.learning_rate == 0.1  # the base rate; the decay is applied at each step


def test_hyperparameters_are_float32_variables_even_for_float64_parameters() -> None:
    # Keras keeps learning_rate / momentum / betas in float32 variables and casts them: a float64 parameter moves
    # by float32(0.1) = 0.10000000149011612, not 0.1.
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = legacy.SGD([p], learning_rate=0.1)
    p.grad = torch.ones(1, dtype=torch.float64)
    opt.step()
    assert p.item() == -0.10000000149011612


def test_epsilon_none_or_zero_is_keras_epsilon() -> None:
    # Legacy Adagrad / Adam: `self.epsilon = epsilon or backend.epsilon()`.
    assert legacy_epsilon(None) == legacy_epsilon(0.0) == 1e-7
    assert legacy.Adagrad([torch.nn.Parameter(torch.zeros(1))], epsilon=0).param_groups[0][
        "epsilon"
    ] == pytest.approx(1e-7)
    assert legacy.Adam([torch.nn.Parameter(torch.zeros(1))], epsilon=None).param_groups[0][
        "epsilon"
    ] == pytest.approx(1e-7)


# ------------------------------------------------------------------------------------------------- errors


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(1))


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    [
        (
            legacy.SGD,
            {"clipnorm": 1.0, "global_clipnorm": 1.0},
            ValueError,
            r"clipnorm=1.0, global_clipnorm=1.0",
        ),
        (legacy.SGD, {"clipvalue": -1.0}, ValueError, r"`clipvalue` must be >= 0 \(got -1.0\)"),
        (legacy.SGD, {"decay": -0.1}, ValueError, r"`decay` must be >= 0 \(got -0.1\)"),
        (legacy.SGD, {"learning_rate": -0.1}, ValueError, r"`learning_rate` must be >= 0"),
        (
            legacy.SGD,
            {"learning_rate": "0.1"},
            TypeError,
            r"`learning_rate` must be a number \(got '0.1'",
        ),
        (
            legacy.SGD,
            {"learning_rate": 0.1, "lr": 0.2},
            ValueError,
            r"learning_rate=0.1 and lr=0.2",
        ),
        (legacy.SGD, {"momentum": 1.5}, ValueError, r"`momentum` must be in \[0, 1\] \(got 1.5\)"),
        (
            legacy.Adagrad,
            {"initial_accumulator_value": -0.1},
            ValueError,
            r"`initial_accumulator_value` must be >= 0",
        ),
        (legacy.Adagrad, {"epsilon": -1e-7}, ValueError, r"`epsilon` must be >= 0 \(got -1e-07\)"),
        (legacy.Adam, {"beta_1": 1.0}, ValueError, r"`beta_1` must be in \[0, 1\) \(got 1.0\)"),
        (legacy.Adam, {"beta_2": -0.5}, ValueError, r"`beta_2` must be in \[0, 1\)"),
    ],
)
def test_bad_arguments(cls: type, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        cls([_param()], **kwargs)


def test_bad_param_group_is_rejected() -> None:
    opt = legacy.Adam([_param()])
    with pytest.raises(ValueError, match=r"`beta_1` must be in \[0, 1\) \(got 2.0\)"):
        opt.add_param_group({"params": [_param()], "beta_1": 2.0})


def test_bad_iterations_and_learning_rate() -> None:
    opt = legacy.SGD([_param()])
    with pytest.raises(ValueError, match=r"`iterations` must be an integer >= 0 \(got -1\)"):
        opt.iterations = -1
    with pytest.raises(ValueError, match=r"`learning_rate` must be >= 0 \(got -1.0\)"):
        opt.learning_rate = -1.0


def test_sparse_gradient_must_be_row_sparse() -> None:
    p = torch.nn.Parameter(torch.zeros(3, 2))
    opt = legacy.Adagrad([p])
    p.grad = torch.zeros(3, 2).to_sparse(2)
    with pytest.raises(ValueError, match=r"sparse_dim=2 for a parameter of shape \(3, 2\)"):
        opt.step()


# ---------------------------------------------------------------------------------------------- iterations


def test_defaults_and_names() -> None:
    sgd, adagrad, adam = legacy.SGD([_param()]), legacy.Adagrad([_param()]), legacy.Adam([_param()])
    assert (sgd.learning_rate, sgd.param_groups[0]["momentum"], sgd.name) == (0.01, 0.0, "SGD")
    group = adagrad.param_groups[0]
    assert (group["lr"], group["initial_accumulator_value"], group["epsilon"]) == (0.001, 0.1, 1e-7)
    group = adam.param_groups[0]
    assert (group["lr"], group["beta_1"], group["beta_2"], group["amsgrad"]) == (
        0.001,
        0.9,
        0.999,
        False,
    )
    assert all(o.param_groups[0]["decay"] == 0.0 for o in (sgd, adagrad, adam))
    assert (sgd.clipnorm, sgd.clipvalue, sgd.global_clipnorm) == (None, None, None)
    assert legacy.SGD([_param()], lr=0.5).learning_rate == 0.5


def test_no_gradient_is_a_no_op_and_a_parameter_without_gradient_stays() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = legacy.SGD([a, b], learning_rate=0.1, momentum=0.9)
    opt.step()
    assert opt.iterations == 0 and torch.equal(a.detach(), torch.ones(2))
    a.grad = torch.ones(2)
    opt.step()
    assert opt.iterations == 1 and torch.equal(b.detach(), torch.ones(2))
    assert torch.equal(opt.state[b]["momentum"], torch.zeros(2))


@pytest.mark.parametrize(
    ("cls", "kwargs", "slots"),
    [
        (legacy.Adagrad, {"learning_rate": 0.1, "decay": 0.02}, {"accumulator"}),
        (legacy.SGD, {"learning_rate": 0.05, "momentum": 0.9, "decay": 0.02}, {"momentum"}),
        (legacy.SGD, {"learning_rate": 0.05, "decay": 0.02}, set()),
        (legacy.Adam, {"learning_rate": 0.05, "amsgrad": True, "decay": 0.02}, {"m", "v", "vhat"}),
    ],
    ids=["adagrad", "sgd-momentum", "sgd", "adam"],
)
def test_resume_from_state_dict_continues_the_trajectory(
    cls: type, kwargs: dict, slots: set
) -> None:
    # 40 steps, save, a fresh optimizer loads the state, 60 more steps == 100 uninterrupted steps, bit for bit;
    # `decay` and Adam's bias correction depend on the restored iterations, embedding rows on the restored slots.
    def grads(t: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([t % 5, (3 * t) % 5, t % 5])  # (3,)
        rows = torch.cos(torch.arange(3.0)[:, None] + t).expand(3, 2)  # (3, 2)
        return torch.sin(torch.arange(6.0).view(2, 3) + t), torch.sparse_coo_tensor(
            ids[None], rows, (6, 2), check_invariants=True
        )

    def params() -> list[torch.nn.Parameter]:
        return [torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(6, 2))]

    def run(opt: torch.optim.Optimizer, ps: list[torch.nn.Parameter], steps: range) -> None:
        for t in steps:
            ps[0].grad, ps[1].grad = grads(t)
            opt.step()

    straight = params()
    run(cls(straight, **kwargs), straight, range(100))
    resumed = params()
    first = cls(resumed, **kwargs)
    run(first, resumed, range(40))
    saved = first.state_dict()
    assert set(saved["state"][0]) == {"step"} | slots
    second = cls(resumed, **kwargs)
    second.load_state_dict(saved)
    assert second.iterations == 40
    run(second, resumed, range(40, 100))
    for a, b in zip(resumed, straight, strict=True):
        assert torch.equal(a.detach(), b.detach())
