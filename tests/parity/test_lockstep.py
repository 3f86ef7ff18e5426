"""Lock-step parity of every implemented scenario at a reduced size; fails if any check fails.

The tolerances are those of `parity.tolerances` (the reasons are written there); the harness prints both values
of every failing check.
"""

from __future__ import annotations

import numpy as np
import pytest

from parity.harness import run_scenario


def _failures(result) -> str:
    return "\n".join(
        f"{c.check}: TFRS {c.tfrs!r} vs torchrs {c.torchrs!r} (diff {c.difference!r}, tol {c.tolerance})"
        for c in result.failures()
    )


@pytest.mark.tf
@pytest.mark.parametrize(
    "scenario",
    [
        "basic_retrieval",
        "basic_ranking",
        "dcn",
        "multitask",
        "listwise",
        "context_features",
        "sequential_retrieval",
    ],
)
def test_lockstep_passes(tf_runs, scenario: str) -> None:
    prepared, tf_run = tf_runs[scenario]
    result = run_scenario(scenario, prepared=prepared, tf_run=tf_run)
    assert result.passed, _failures(result)
    # 8,000 examples in batches of 819 -> 10 steps, each checked (context_features: batches of 205 -> 40;
    # sequential_retrieval: 8,109 training sequences from the 10,000 ratings in batches of 1,280 -> 7;
    # listwise: 5 lists per user with >= 5 ratings, 2,950 lists in batches of 819 -> 4).
    steps = {"context_features": 40, "sequential_retrieval": 7, "listwise": 4}.get(scenario, 10)
    assert len(result.torch_run.step_losses) == len(tf_run.step_losses) == steps
    # The losses really moved (a harness comparing two constants would pass trivially).
    assert not np.allclose(tf_run.step_losses[0], tf_run.step_losses[-1], rtol=1e-3)
    names = {c.check.split(" (")[0] for c in result.checks}
    assert any(n.startswith("final weights") for n in names)
    assert any(n.startswith("evaluate") for n in names)


@pytest.mark.tf
def test_retrieval_checks_top_k_for_every_user(tf_runs) -> None:
    prepared, tf_run = tf_runs["basic_retrieval"]
    result = run_scenario("basic_retrieval", prepared=prepared, tf_run=tf_run)
    users = len(prepared.data.unique_user_ids)
    assert tf_run.top_k_ids.shape == (users, 10)
    assert any(c.check.startswith("top-10 ids identical") and c.passed for c in result.checks)


@pytest.mark.tf
def test_multitask_checks_top_k_and_rating_predictions(tf_runs) -> None:
    prepared, tf_run = tf_runs["multitask"]
    result = run_scenario("multitask", prepared=prepared, tf_run=tf_run)
    names = [c.check for c in result.checks if c.passed]
    assert "rating predictions" in names and "top-K scores" in names
    assert any(n.startswith("top-10 ids identical") for n in names)
    assert "evaluate root_mean_squared_error" in names
    assert tf_run.extra_predictions["rating predictions"].shape == (
        len(prepared.data.test["user_id"]),
    )


@pytest.mark.tf
def test_dcn_checks_the_cross_layer(tf_runs) -> None:
    prepared, tf_run = tf_runs["dcn"]
    # The full-rank Cross kernel is square (192 x 192): a missing transpose keeps the shape, only values catch it.
    assert tf_run.weights["cross._dense.kernel"].shape == (192, 192)
    result = run_scenario("dcn", prepared=prepared, tf_run=tf_run)
    assert any(c.check == "final weights cross._dense.kernel" and c.passed for c in result.checks)
    assert "evaluate RMSE" in {c.check for c in result.checks}


def test_long_dcn_runs_use_the_measured_long_run_tolerances() -> None:
    from parity.tolerances import TOLERANCES

    dcn = TOLERANCES["dcn"]
    # The CI size (10 steps) is checked tightly; the tutorial's 80 Adam steps with the measured drift bounds.
    assert dcn.for_steps(10) is dcn and dcn.for_steps(10).final_weights.atol == 5e-3
    assert dcn.for_steps(80).final_weights.atol == 0.25
    assert TOLERANCES["basic_ranking"].for_steps(10_000) is TOLERANCES["basic_ranking"]


def test_gru_conversion_matches_the_keras_equations() -> None:
    """Keras GRU(reset_after=True) computed by hand in NumPy == torch.nn.GRU after `keras_to_torch`."""
    import torch

    from parity.scenarios.sequential_retrieval import LastStateGRU, keras_to_torch, torch_to_keras

    rng = np.random.default_rng(0)
    d, u, t, b = 3, 4, 5, 2
    kernel = rng.normal(size=(d, 3 * u)).astype(np.float32)
    recurrent = rng.normal(size=(u, 3 * u)).astype(np.float32)
    bias = rng.normal(size=(2, 3 * u)).astype(np.float32)
    x = rng.normal(size=(b, t, d)).astype(np.float32)

    def sigmoid(v: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-v))

    # Keras: gates (z, r, h); x-part and h-part each with their own bias; reset applied after the matmul.
    h = np.zeros((b, u), np.float32)
    for step in range(t):
        xk = x[:, step] @ kernel + bias[0]
        hk = h @ recurrent + bias[1]
        z = sigmoid(xk[:, :u] + hk[:, :u])
        r = sigmoid(xk[:, u : 2 * u] + hk[:, u : 2 * u])
        hh = np.tanh(xk[:, 2 * u :] + r * hk[:, 2 * u :])
        h = z * h + (1 - z) * hh
    keras = {
        "query.gru.kernel": kernel,
        "query.gru.recurrent_kernel": recurrent,
        "query.gru.bias": bias,
    }
    converted = keras_to_torch(keras)
    layer = LastStateGRU(d, u)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer.gru, f"{name}_l0").copy_(
                torch.from_numpy(np.ascontiguousarray(converted[f"query.gru.{name}"]))
            )
        got = layer(torch.from_numpy(x)).numpy()
    # float32, 5 recurrent steps of 4-wide tanh/sigmoid: agreement to ~1e-6; a gate-order bug is O(0.1).
    np.testing.assert_allclose(got, h, atol=1e-5)
    back = torch_to_keras(converted)
    for name, value in keras.items():
        np.testing.assert_array_equal(back[name], value)


@pytest.mark.tf
def test_listwise_checks_each_model_and_its_tie_break_has_teeth(tf_runs) -> None:
    from dataclasses import replace

    from parity.harness import Prepared, compare, run_torch_side
    from parity.tolerances import TOLERANCES

    prepared, tf_run = tf_runs["listwise"]
    # The tutorial's three models, each with its NDCG, RMSE and loss in the logs and its test-list scores.
    for name in ("mse", "hinge", "listmle"):
        for metric in ("ndcg_metric", "root_mean_squared_error", "loss"):
            assert f"{name}/{metric}" in tf_run.metrics
    lists = len(prepared.data.test["user_id"])
    assert tf_run.predictions.shape == (lists, 5)  # the ListMLE model's scores
    assert set(tf_run.extra_predictions) == {"mse test-list scores", "hinge test-list scores"}
    # tfr's ListMLE breaks rating ties at random; the scenario breaks them by list position on both sides.
    # A torchrs side that keeps tfr's random tie order (tie_break_step=0) must fail, on the ListMLE model only.
    random_ties = Prepared(
        prepared.scenario,
        prepared.data,
        replace(prepared.config, tie_break_step=0.0),
        prepared.scale,
    )
    torch_run = run_torch_side(random_ties, tf_run.initial_weights)
    failed = {
        c.check
        for c in compare("listwise", tf_run, torch_run, TOLERANCES["listwise"])
        if not c.passed
    }
    assert any(check.startswith("final weights listmle.") for check in failed), failed
    assert not any(
        check.startswith(("final weights mse.", "final weights hinge.")) for check in failed
    )
    assert {"evaluate mse/loss", "evaluate hinge/loss"}.isdisjoint(failed)


def test_listwise_tie_break_orders_tied_ratings_by_position() -> None:
    import math

    import torch

    from parity.scenarios.listwise import TorchTieBreak
    from torchrs.losses.listwise import ListMLELoss

    # Ratings (4, 4, 3) become (4, 3.999, 2.998): items in list order, so ListMLE is that of labels (2, 1, 0):
    # scores (0, 1, 2): [log(1 + e + e^2) - 0] + [log(e + e^2) - 1] + 0 = 2.407606 + 1.313262 = 3.720868.
    loss = TorchTieBreak(ListMLELoss(), 1e-3)(
        torch.tensor([[4.0, 4.0, 3.0]]), torch.tensor([[0.0, 1.0, 2.0]])
    )
    expected = math.log(1 + math.e + math.e**2) + math.log(math.e + math.e**2) - 1
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Padding (-1) is left alone, so the loss still ignores it.
    padded = TorchTieBreak(ListMLELoss(), 1e-3)(
        torch.tensor([[4.0, -1.0]]), torch.tensor([[0.0, 5.0]])
    )
    assert padded.item() == pytest.approx(0.0, abs=1e-6)
