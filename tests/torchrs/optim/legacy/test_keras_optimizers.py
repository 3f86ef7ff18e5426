"""optim.legacy.RMSprop / Adamax / Nadam / Adadelta / Ftrl: ``tf.keras.optimizers.legacy`` (TF's kernels) as
reference over 100 steps, dense and embedding (``tf.IndexedSlices``) gradients, plus hand values and errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from tests.torchrs.optim.legacy._reference import (
    SEEDS,
    TOLERANCE,
    keras_optimizer,
    max_abs_diff,
    run_dense_keras,
    run_dense_torch,
    run_embedding_keras,
    run_embedding_torch,
)
from torchrs.optim import legacy

# Tolerance: TOLERANCE (1e-5) of _reference.py. Measured max abs differences after 100 float32 steps: <= 6.0e-7
# dense (Ftrl's pow), <= 2.4e-7 embedding; 0 for Adamax.
# (class name, kwargs) run against tf.keras.optimizers.legacy.<same name>(**kwargs): each branch of each rule
# (momentum kernels vs Keras's Python rule, centered, V2 FTRL kernel, decay, clipping) at least once.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("RMSprop", {"learning_rate": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "centered": True, "decay": 0.01}),
    ("RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    (
        "RMSprop",
        {"learning_rate": 0.01, "momentum": 0.5, "centered": True, "rho": 0.8, "clipnorm": 1.0},
    ),
    ("Adamax", {"learning_rate": 0.05}),
    ("Adamax", {"learning_rate": 0.05, "beta_2": 0.9, "decay": 0.02, "clipvalue": 0.5}),
    ("Nadam", {"learning_rate": 0.05}),
    ("Nadam", {"learning_rate": 0.02, "beta_1": 0.8, "schedule_decay": 0.01}),
    ("Adadelta", {"learning_rate": 1.0}),
    ("Adadelta", {"learning_rate": 5.0, "rho": 0.8, "epsilon": 1e-4, "global_clipnorm": 2.0}),
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
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _torch(name: str, kwargs: dict[str, Any]) -> Any:
    return lambda params: getattr(legacy, name)(params, **kwargs)


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS[:1])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_dense_matches_keras(tf, name: str, kwargs: dict[str, Any], seed: int) -> None:
    expected = run_dense_keras(tf, name, kwargs, seed)
    got = run_dense_torch(_torch(name, kwargs), seed)
    start = run_dense_torch(lambda params: torch.optim.SGD(params, lr=0.0), seed)
    assert max_abs_diff(expected, start) > 100 * TOLERANCE  # the parameters really moved
    assert max_abs_diff(expected, got) < TOLERANCE


@pytest.mark.tf
@pytest.mark.parametrize("seed", SEEDS[1:2])
@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_embedding_matches_keras_indexed_slices(
    tf, name: str, kwargs: dict[str, Any], seed: int
) -> None:
    expected = run_embedding_keras(tf, name, kwargs, seed)
    got = run_embedding_torch(_torch(name, kwargs), seed)
    assert max_abs_diff(expected, got) < TOLERANCE


@pytest.mark.tf
@pytest.mark.parametrize("name", ["RMSprop", "Adamax", "Nadam", "Adadelta", "Ftrl"])
def test_keras_defaults(tf, name: str) -> None:
    keras = keras_optimizer(tf, name, {}).get_config()
    group = getattr(legacy, name)([torch.nn.Parameter(torch.zeros(1))]).param_groups[0]
    for key, value in group.items():
        if key == "lr":
            assert value == pytest.approx(keras["learning_rate"], rel=1e-6)
        elif key in keras:
            assert value == pytest.approx(keras[key], rel=1e-6), key


def _scalar(value: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([value], dtype=torch.float64))


def test_rmsprop_epsilon_moves_inside_the_root_with_momentum() -> None:
    # g = 1e-4, lr 1, rho 0.9 (float32 0.9 -> 1 - rho = 0.099999964...), eps 1e-7: ms = 1e-9 (approximately).
    # Without momentum Keras divides by sqrt(ms) + eps; the momentum kernel by sqrt(ms + eps).
    plain, kernel = _scalar(0.0), _scalar(0.0)
    opts = [
        legacy.RMSprop([plain], learning_rate=1.0),
        legacy.RMSprop([kernel], learning_rate=1.0, momentum=0.5),
    ]
    for p, opt in zip((plain, kernel), opts, strict=True):
        p.grad = torch.tensor([1e-4], dtype=torch.float64)
        opt.step()
    ms = (
        float(torch.tensor(1.0, dtype=torch.float32) - torch.tensor(0.9, dtype=torch.float32))
        * 1e-8
    )
    assert -plain.item() == pytest.approx(1e-4 / (math.sqrt(ms) + 1e-7), rel=1e-6)
    assert -kernel.item() == pytest.approx(1e-4 / math.sqrt(ms + 1e-7), rel=1e-6)


def test_nadam_learning_rate_is_not_decayed_and_cache_is_shared() -> None:
    a, b = _scalar(1.0), _scalar(1.0)
    opt = legacy.Nadam([a, b], learning_rate=0.1)
    assert opt.param_groups[0]["decay"] == 0.004  # Keras's config: the schedule decay
    for step in range(3):
        a.grad = torch.tensor([1.0], dtype=torch.float64)
        b.grad = None if step == 1 else torch.tensor([1.0], dtype=torch.float64)
        opt.step()
    beta = float(torch.tensor(0.9, dtype=torch.float32))
    expected = math.prod(beta * (1 - 0.5 * 0.96 ** (0.004 * t)) for t in (1, 2, 3))
    assert opt.state[a]["momentum_cache"].item() == pytest.approx(expected, rel=1e-12)
    assert opt.state[b]["momentum_cache"].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("RMSprop", {"momentum": 1.5}, r"`momentum` must be in \[0, 1\]"),
        ("Adamax", {"beta_1": 1.0}, r"`beta_1` must be in \[0, 1\)"),
        ("Nadam", {"schedule_decay": -1.0}, r"`schedule_decay` must be >= 0"),
        ("Adadelta", {"decay": -0.1}, r"`decay` must be >= 0"),
        ("Ftrl", {"learning_rate_power": 0.1}, r"`learning_rate_power` needs to be negative"),
        ("Ftrl", {"l2_shrinkage_regularization_strength": -1.0}, r"must be >= 0"),
    ],
)
def test_bad_arguments(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        getattr(legacy, name)([torch.nn.Parameter(torch.zeros(1))], **kwargs)


@pytest.mark.parametrize("name", ["RMSprop", "Adamax", "Nadam", "Adadelta"])
def test_epsilon_none_or_zero_is_keras_default(name: str) -> None:
    for epsilon in (None, 0.0):
        opt = getattr(legacy, name)([torch.nn.Parameter(torch.zeros(1))], epsilon=epsilon)
        assert opt.param_groups[0]["epsilon"] == 1e-7
