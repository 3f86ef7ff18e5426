"""optim.RMSprop / Adamax / Nadam / Adadelta / Ftrl / AdamW: hand-derived steps, errors, and tf_keras 2 (the
``tf.keras.optimizers`` of ``TF_USE_LEGACY_KERAS=1``) as reference over 100 steps, dense and embedding gradients."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tests.torchrs.optim._reference import (
    SEEDS,
    TOLERANCE,
    max_abs_diff,
    run_dense_keras,
    run_dense_torch,
    run_embedding_keras,
    run_embedding_torch,
)
from torchrs import optim
from torchrs.experimental.optimizers import CompositeOptimizer

# Tolerance: TOLERANCE (1e-5) of _reference.py. Measured max abs differences after 100 float32 steps: <= 6.0e-7
# dense (Ftrl's pow), <= 1.2e-7 embedding; 0 for Adamax.
# (torchrs class name, kwargs) run against tf.keras.optimizers.<same name>(**kwargs). Learning rates are large
# enough that 100 steps move every parameter far from its start, so a wrong rule cannot hide under TOLERANCE.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "rho": 0.8}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    (
        "RMSprop",
        {"learning_rate": 0.02, "use_ema": True, "ema_overwrite_frequency": 30, "clipnorm": 1.0},
    ),
    ("Adamax", {"learning_rate": 0.05}),
    ("Adamax", {"learning_rate": 0.05, "beta_2": 0.9, "epsilon": 1e-4, "global_clipnorm": 2.0}),
    ("Nadam", {"learning_rate": 0.05}),
    ("Nadam", {"learning_rate": 0.02, "beta_1": 0.8, "weight_decay": 0.05}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 5.0, "rho": 0.8, "epsilon": 1e-4}),
    ("Ftrl", {"learning_rate": 0.1}),
    (
        "Ftrl",
        {
            "learning_rate": 0.2,
            "learning_rate_power": -0.7,
            "initial_accumulator_value": 0.05,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.02,
            "l2_shrinkage_regularization_strength": 0.01,
            "beta": 0.1,
        },
    ),
    ("AdamW", {"learning_rate": 0.05}),
    ("AdamW", {"learning_rate": 0.05, "weight_decay": 0.1, "amsgrad": True, "clipvalue": 0.5}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _keras(tf, name: str, kwargs: dict[str, Any]) -> Any:
    opt = getattr(tf.keras.optimizers, name)(**kwargs)
    # The Keras 2 optimizer (tf_keras/src/optimizers/<name>.py), not the legacy one.
    assert (
        type(opt).__module__.startswith("tf_keras.src.optimizers.")
        and "legacy" not in type(opt).__module__
    )
    return opt


def _torch(name: str, kwargs: dict[str, Any]) -> Any:
    return lambda params: getattr(optim, name)(params, **kwargs)


# ------------------------------------------------------------------------------------------ tf.keras reference


# One seed per case (each case runs 100 eager TF steps; the cases, not the seeds, cover the rules).
@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS[:1])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_dense_matches_keras(tf, name: str, kwargs: dict[str, Any], seed: int) -> None:
    finalize = bool(kwargs.get("use_ema"))
    expected = run_dense_keras(tf, _keras(tf, name, kwargs), seed, finalize=finalize)
    got = run_dense_torch(_torch(name, kwargs), seed, finalize=finalize)
    start = run_dense_torch(lambda params: torch.optim.SGD(params, lr=0.0), seed)
    assert max_abs_diff(expected, start) > 100 * TOLERANCE  # the parameters really moved
    assert max_abs_diff(expected, got) < TOLERANCE


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS[1:2])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_embedding_matches_keras_indexed_slices(
    tf, name: str, kwargs: dict[str, Any], seed: int
) -> None:
    expected = run_embedding_keras(tf, _keras(tf, name, kwargs), seed)
    got = run_embedding_torch(_torch(name, kwargs), seed)
    assert max_abs_diff(expected, got) < TOLERANCE


@pytest.mark.tf
@pytest.mark.parametrize("name", ["RMSprop", "Adamax", "Nadam", "Adadelta", "Ftrl", "AdamW"])
def test_keras_defaults(tf, name: str) -> None:
    keras = _keras(tf, name, {}).get_config()
    ours = getattr(optim, name)([torch.nn.Parameter(torch.zeros(1))])
    group = ours.param_groups[0]
    assert group["lr"] == pytest.approx(keras["learning_rate"], rel=1e-6)  # Keras reports float32
    for key, value in group.items():
        if key in keras and key not in ("params", "lr"):
            assert value == keras[key], key
    assert ours.ema_overwrite_frequency == keras["ema_overwrite_frequency"]
    assert ours.name == keras["name"]


# ---------------------------------------------------------------------------------------- hand-derived values


def _scalar(value: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


def test_rmsprop_momentum_and_centered_first_steps() -> None:
    # g = 2, lr 0.1, rho 0.9, eps 0: velocity = 0.4, average_gradient = 0.2, denominator = 0.4 - 0.04 = 0.36,
    # increment = 0.1 * 2 / 0.6 = 1/3; momentum = 1/3; p = -1/3. Step 2, g = 2: velocity = 0.76, avg = 0.38,
    # denominator = 0.76 - 0.1444 = 0.6156, increment = 0.2 / sqrt(0.6156); momentum = 0.5/3 + increment.
    p = _scalar(0.0)
    opt = optim.RMSprop([p], learning_rate=0.1, momentum=0.5, centered=True, epsilon=0.0)
    for _ in range(2):
        p.grad = torch.tensor([2.0], dtype=torch.float64)
        opt.step()
    second = 0.5 / 3 + 0.2 / math.sqrt(0.6156)
    assert opt.state[p]["momentum"].item() == pytest.approx(second, rel=1e-12)
    assert p.item() == pytest.approx(-1 / 3 - second, rel=1e-12)
    assert set(opt.state[p]) == {"step", "velocity", "momentum", "average_gradient"}


def test_rmsprop_epsilon_is_inside_the_root() -> None:
    # g = 1e-4, eps 1e-7: velocity = 1e-9; Keras divides by sqrt(1e-9 + 1e-7), torch.optim.RMSprop by
    # sqrt(1e-9) + 1e-7 (alpha = rho): 1e-4 / sqrt(1.01e-7) = 0.31466 against 1e-4 / 1.3162e-4 = 0.75975.
    ours, theirs = _scalar(0.0), _scalar(0.0)
    keras = optim.RMSprop([ours], learning_rate=1.0)
    torchs = torch.optim.RMSprop([theirs], lr=1.0, alpha=0.9, eps=1e-7)
    for p, opt in ((ours, keras), (theirs, torchs)):
        p.grad = torch.tensor([1e-4], dtype=torch.float64)
        opt.step()
    assert -ours.item() == pytest.approx(1e-4 / math.sqrt(1e-9 + 1e-7), rel=1e-9)
    assert -theirs.item() == pytest.approx(1e-4 / (math.sqrt(1e-9) + 1e-7), rel=1e-9)


def test_adamax_and_adadelta_first_steps() -> None:
    # Adamax, g = -3, lr 0.2, eps 0: m = -0.3, u = 3, p = 0.2 * 0.3 / (0.1 * 3) = 0.2.
    p = _scalar(0.0)
    opt = optim.Adamax([p], learning_rate=0.2, epsilon=0.0)
    p.grad = torch.tensor([-3.0], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.2, rel=1e-12)
    # Adadelta, g = 1, lr 1, rho 0.5, eps 0.01: acc_g = 0.5, delta = -sqrt(0.01) / sqrt(0.51),
    # acc_delta = 0.5 * delta**2.
    q = _scalar(0.0)
    opt2 = optim.Adadelta([q], learning_rate=1.0, rho=0.5, epsilon=0.01)
    q.grad = torch.tensor([1.0], dtype=torch.float64)
    opt2.step()
    delta = -0.1 / math.sqrt(0.51)
    assert q.item() == pytest.approx(delta, rel=1e-12)
    assert opt2.state[q]["accumulated_delta_var"].item() == pytest.approx(0.5 * delta**2, rel=1e-12)


def test_ftrl_l1_gives_exact_zeros() -> None:
    # |linear| <= l1 gives weight 0 (FTRL's sparsity): g = 0.05, acc0 0.1, lr 1, l1 0.1, w = 0:
    # linear = 0.05 - 0 = 0.05 <= 0.1 -> w = 0 exactly.
    p = _scalar(0.0)
    opt = optim.Ftrl([p], learning_rate=1.0, l1_regularization_strength=0.1)
    p.grad = torch.tensor([0.05], dtype=torch.float64)
    opt.step()
    assert p.item() == 0.0
    assert opt.state[p]["accumulator"].item() == pytest.approx(0.1 + 0.0025, rel=1e-12)


def test_nadam_u_product_advances_once_per_step_for_all_parameters() -> None:
    # Keras keeps one product for the optimizer; a parameter without a gradient this step keeps up.
    a, b = _scalar(1.0), _scalar(1.0)
    opt = optim.Nadam([a, b], learning_rate=0.1)
    for step in range(3):
        a.grad = torch.tensor([1.0], dtype=torch.float64)
        b.grad = torch.tensor([1.0], dtype=torch.float64) if step != 1 else None
        opt.step()
    expected = math.prod(0.9 * (1 - 0.5 * 0.96**t) for t in (1, 2, 3))
    assert opt.state[a]["u_product"].item() == pytest.approx(expected, rel=1e-12)
    assert opt.state[b]["u_product"].item() == pytest.approx(expected, rel=1e-12)
    # Reloading the state dict resumes the product.
    fresh = optim.Nadam([a, b], learning_rate=0.1)
    fresh.load_state_dict(opt.state_dict())
    a.grad, b.grad = torch.tensor([1.0], dtype=torch.float64), None
    fresh.step()
    assert fresh.state[a]["u_product"].item() == pytest.approx(
        expected * 0.9 * (1 - 0.5 * 0.96**4), rel=1e-12
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "match"),
    [
        ("RMSprop", {"rho": 1.5}, ValueError, r"`rho` must be in \[0, 1\] \(got 1.5\)"),
        ("RMSprop", {"momentum": -0.1}, ValueError, r"`momentum` must be >= 0"),
        ("RMSprop", {"epsilon": -1.0}, ValueError, r"`epsilon` must be >= 0"),
        ("Adamax", {"beta_1": 1.0}, ValueError, r"`beta_1` must be in \[0, 1\)"),
        ("Nadam", {"beta_2": -0.5}, ValueError, r"`beta_2` must be in \[0, 1\)"),
        ("Adadelta", {"learning_rate": -1.0}, ValueError, r"`learning_rate` must be >= 0"),
        (
            "Ftrl",
            {"learning_rate_power": 0.5},
            ValueError,
            r"`learning_rate_power` needs to be negative",
        ),
        (
            "Ftrl",
            {"initial_accumulator_value": -0.1},
            ValueError,
            r"`initial_accumulator_value` must be >= 0",
        ),
        (
            "Ftrl",
            {"l1_regularization_strength": -1.0},
            ValueError,
            r"`l1_regularization_strength` must be",
        ),
        ("AdamW", {"weight_decay": None}, ValueError, r"Missing value of `weight_decay`"),
        ("AdamW", {"learning_rate": "0.1"}, TypeError, r"`learning_rate` must be a number"),
        ("RMSprop", {"learning_rate": 0.1, "lr": 0.2}, ValueError, r"learning_rate=0.1 and lr=0.2"),
    ],
)
def test_bad_arguments(name: str, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        getattr(optim, name)([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("name", ["RMSprop", "Adamax", "Nadam", "Adadelta", "Ftrl", "AdamW"])
def test_epsilon_zero_and_lr_alias_accepted(name: str) -> None:
    kwargs = {} if name == "Ftrl" else {"epsilon": 0.0}
    opt = getattr(optim, name)([torch.nn.Parameter(torch.zeros(1))], lr=0.5, **kwargs)
    assert opt.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize("name", ["RMSprop", "Adamax", "Nadam", "Adadelta", "Ftrl", "AdamW"])
def test_accepted_by_composite_optimizer(name: str) -> None:
    # TFRS's CompositeOptimizer pairs an optimizer with the variables it owns: here the new one with an
    # embedding, Adagrad with the rest.
    embedding = torch.nn.Embedding(4, 2)
    dense = torch.nn.Linear(2, 1)
    opt = CompositeOptimizer(
        [
            (
                getattr(optim, name)(embedding.parameters(), learning_rate=0.1),
                lambda: list(embedding.parameters()),
            ),
            (
                optim.Adagrad(dense.parameters(), learning_rate=0.1),
                lambda: list(dense.parameters()),
            ),
        ]
    )
    before = embedding.weight.detach().clone()
    dense(embedding(torch.tensor([0, 1]))).sum().backward()
    opt.step()
    assert not torch.equal(before[:2], embedding.weight.detach()[:2])
    assert opt.iterations == 1
