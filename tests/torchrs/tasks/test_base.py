"""tasks.Task.metrics: Keras's ``Layer.metrics`` on Retrieval and Ranking (list them, reset them), against TFRS."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import torchrs as trs


def _ranking() -> trs.tasks.Ranking:
    return trs.tasks.Ranking(
        loss=trs.losses.MeanSquaredError(),
        metrics=[trs.metrics.RootMeanSquaredError(), trs.metrics.MeanAbsoluteError()],
        prediction_metrics=[trs.metrics.Mean(name="prediction_mean")],
        label_metrics=[trs.metrics.Mean(name="label_mean")],
        loss_metrics=[trs.metrics.Mean(name="loss_mean")],
    )


def test_ranking_metrics_list_and_reset() -> None:
    task = _ranking()
    task(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [3.0]]))
    names = [m.name for m in task.metrics]
    assert names == [
        "root_mean_squared_error",
        "mean_absolute_error",
        "prediction_mean",
        "label_mean",
        "loss_mean",
    ]
    assert task.metrics[0].result().item() == pytest.approx(0.5**0.5)
    for metric in task.metrics:
        metric.reset_states()
    assert all(m.result().item() == 0.0 for m in task.metrics)


def test_retrieval_metrics_include_factorized_batch_and_loss_metrics() -> None:
    candidates = torch.randn(10, 4)
    task = trs.tasks.Retrieval(
        metrics=trs.metrics.FactorizedTopK(candidates=candidates, ks=(1, 5)),
        batch_metrics=[trs.metrics.Mean(name="batch_mean")],
        loss_metrics=[trs.metrics.Mean(name="loss_mean")],
    )
    # Keras's order: the task's own metrics, then the FactorizedTopK layer's.
    assert [type(m).__name__ for m in task.metrics] == ["Mean", "Mean", "FactorizedTopK"]
    assert trs.tasks.Retrieval().metrics == []


@pytest.mark.tf
def test_names_match_tfrs(tf, tfrs) -> None:
    keras_ranking = tfrs.tasks.Ranking(
        loss=tf.keras.losses.MeanSquaredError(),
        metrics=[tf.keras.metrics.RootMeanSquaredError(), tf.keras.metrics.MeanAbsoluteError()],
        prediction_metrics=[tf.keras.metrics.Mean(name="prediction_mean")],
        label_metrics=[tf.keras.metrics.Mean(name="label_mean")],
        loss_metrics=[tf.keras.metrics.Mean(name="loss_mean")],
    )
    assert [m.name for m in _ranking().metrics] == [
        re.sub(r"_\d+$", "", m.name) for m in keras_ranking.metrics
    ]
    labels = np.array([[1.0], [3.0]], np.float32)
    preds = np.array([[2.0], [3.0]], np.float32)
    keras_ranking(labels, preds)
    task = _ranking()
    task(torch.from_numpy(labels), torch.from_numpy(preds))
    for keras_metric, metric in zip(keras_ranking.metrics, task.metrics, strict=True):
        assert metric.result().item() == pytest.approx(float(keras_metric.result()), rel=1e-6)

    keras_retrieval = tfrs.tasks.Retrieval(
        metrics=tfrs.metrics.FactorizedTopK(
            candidates=tf.data.Dataset.from_tensor_slices(np.zeros((10, 4), np.float32)).batch(5),
            ks=(1, 5),
        ),
        batch_metrics=[tf.keras.metrics.Mean(name="batch_mean")],
        loss_metrics=[tf.keras.metrics.Mean(name="loss_mean")],
    )
    # TFRS's FactorizedTopK is a layer with one Mean per k, listed after the task's own metrics; torchrs's is one
    # metric reporting the same names, in the same place.
    expected = [m.name for m in keras_retrieval.metrics]
    assert expected == [
        "batch_mean",
        "loss_mean",
        "factorized_top_k/top_1_categorical_accuracy",
        "factorized_top_k/top_5_categorical_accuracy",
    ]
    task = trs.tasks.Retrieval(
        metrics=trs.metrics.FactorizedTopK(candidates=torch.zeros(10, 4), ks=(1, 5)),
        batch_metrics=[trs.metrics.Mean(name="batch_mean")],
        loss_metrics=[trs.metrics.Mean(name="loss_mean")],
    )
    names = [n for m in task.metrics for n in getattr(m, "metric_names", lambda m=m: [m.name])()]
    assert names == expected
