"""tasks.Ranking: hand-derived values, metrics, and TFRS as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchmetrics

from torchrs.losses import BinaryCrossentropy, MeanSquaredError
from torchrs.metrics import Mean, RootMeanSquaredError
from torchrs.tasks import Ranking

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics


def test_default_loss_is_bce_over_batch_size() -> None:
    # p = 0.5 everywhere: every example costs log 2; SUM_OVER_BATCH_SIZE -> log 2.
    loss = Ranking()(torch.tensor([[1.0], [0.0], [1.0]]), torch.full((3, 1), 0.5))
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_weighted_mse_divides_by_batch_size() -> None:
    # squared errors (1, 4), weights (2, 0.5): (2 + 2) / 2 examples = 2 (not / sum of weights).
    task = Ranking(loss=MeanSquaredError())
    loss = task(
        torch.tensor([[0.0], [0.0]]),
        torch.tensor([[1.0], [2.0]]),
        sample_weight=torch.tensor([2.0, 0.5]),
    )
    assert loss.item() == pytest.approx(2.0)


def test_metrics_updated_and_skipped() -> None:
    rmse, pred_mean, label_mean, loss_mean = (
        RootMeanSquaredError(),
        Mean("p"),
        Mean("l"),
        Mean("loss"),
    )
    task = Ranking(
        loss=MeanSquaredError(),
        metrics=[rmse],
        prediction_metrics=[pred_mean],
        label_metrics=[label_mean],
        loss_metrics=[loss_mean],
    )
    task(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.0]]), compute_metrics=False)
    assert rmse.update_count == 0
    loss = task(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.0]]))
    assert rmse.result().item() == pytest.approx(0.5**0.5)
    assert pred_mean.result().item() == pytest.approx(2.5)
    assert label_mean.result().item() == pytest.approx(2.0)
    assert loss_mean.result().item() == pytest.approx(loss.item())


def test_plain_torchmetrics_metric() -> None:
    metric = torchmetrics.MeanSquaredError()
    Ranking(loss=MeanSquaredError(), metrics=[metric])(
        torch.tensor([1.0, 3.0]), torch.tensor([[2.0], [3.0]])
    )
    assert metric.compute().item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="takes no `sample_weight`"):
        Ranking(loss=MeanSquaredError(), metrics=[metric])(
            torch.tensor([[1.0]]), torch.tensor([[2.0]]), sample_weight=torch.ones(1)
        )


# Tolerance: elementwise float32 ops then one mean over 64 values; 1e-6 relative (measured ~1e-7).
@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("loss_name", ["mse", "bce", None])
def test_matches_tfrs(tf, tfrs, seed: int, weighted: bool, loss_name: str | None) -> None:
    rng = np.random.default_rng(seed)
    if loss_name == "mse":
        labels = rng.integers(1, 6, size=(64, 1)).astype(np.float32)
        preds = rng.normal(3.5, 1.0, size=(64, 1)).astype(np.float32)
        tf_loss, loss = tf.keras.losses.MeanSquaredError(), MeanSquaredError()
    else:
        labels = rng.integers(0, 2, size=(64, 1)).astype(np.float32)
        preds = rng.uniform(size=(64, 1)).astype(np.float32)
        preds[:2] = [[0.0], [1.0]]  # clipping at both ends
        tf_loss = tf.keras.losses.BinaryCrossentropy() if loss_name else None
        loss = BinaryCrossentropy() if loss_name else None
    weight = rng.uniform(0.1, 3.0, size=64).astype(np.float32) if weighted else None

    tf_rmse = tf.keras.metrics.RootMeanSquaredError()
    tf_task = tfrs.tasks.Ranking(loss=tf_loss, metrics=[tf_rmse])
    expected = float(tf_task(labels=labels, predictions=preds, sample_weight=weight).numpy())

    rmse = RootMeanSquaredError()
    task = Ranking(loss=loss, metrics=[rmse])
    got = task(
        torch.tensor(labels),
        torch.tensor(preds),
        sample_weight=None if weight is None else torch.tensor(weight),
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert rmse.result().item() == pytest.approx(float(tf_rmse.result().numpy()), rel=1e-6)
