"""metrics.TopKCategoricalAccuracy / Precision / Recall, Mean(name=, dtype=): hand values, errors, and tf.keras."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from torchrs.metrics import (
    AUC,
    BinaryAccuracy,
    Mean,
    MeanAbsoluteError,
    MeanSquaredError,
    Precision,
    Recall,
    RootMeanSquaredError,
    TopKCategoricalAccuracy,
)


def test_top_k_ties_are_hits_and_non_finite_rows_miss() -> None:
    # Row 0: target class 1 ties with class 0 at the top -> a hit at k=1 (no score strictly greater).
    # Row 1: a NaN in the row -> TF's in_top_k "cannot say": a miss. Row 2: target third -> miss at k=2.
    m = TopKCategoricalAccuracy(k=2)
    y = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    p = torch.tensor([[0.5, 0.5, 0.1], [0.9, float("nan"), 0.0], [0.5, 0.4, 0.3]])
    m.update_state(y, p)
    assert m.result().item() == pytest.approx(1 / 3)


def test_precision_recall_thresholds_and_class_id() -> None:
    # thresholds [0.3, 0.7]: predictions > 0.3 = {0.4, 0.8, 0.9}: tp 2 (0.8, 0.9), fp 1 (0.4), fn 1 (0.2).
    # > 0.7 = {0.8, 0.9}: tp 2, fp 0, fn 1.
    y, p = torch.tensor([0.0, 1.0, 1.0, 1.0]), torch.tensor([0.4, 0.8, 0.9, 0.2])
    precision, recall = Precision(thresholds=[0.3, 0.7]), Recall(thresholds=[0.3, 0.7])
    precision.update_state(y, p)
    recall.update_state(y, p)
    torch.testing.assert_close(precision.result(), torch.tensor([2 / 3, 1.0]))
    torch.testing.assert_close(recall.result(), torch.tensor([2 / 3, 2 / 3]))
    by_class = Precision(class_id=1)
    by_class.update_state(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.9, 0.8], [0.1, 0.7]])
    )
    assert by_class.result().item() == pytest.approx(0.5)
    assert Precision().result().item() == 0.0  # divide_no_nan before any update


def test_mean_dtype_and_name() -> None:
    m = Mean(name="my_mean", dtype="float64")
    m.update_state(torch.tensor([1.0, 2.0]))
    assert m.name == "my_mean"
    assert m.result().dtype == torch.float64
    assert Mean(dtype=torch.float32).result().dtype == torch.float32


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Precision(top_k=2), r"top_k=2\) is not supported"),
        (lambda: Recall(thresholds=1.5), r"must be in \[0, 1\]"),
        (lambda: TopKCategoricalAccuracy(k=0), r"`k` must be a positive integer"),
        (lambda: Mean(dtype="int32"), r"`dtype` must be None or a floating dtype"),
    ],
)
def test_bad_arguments(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


# Tolerance 1e-6 relative: Keras accumulates float32 counts, torchrs float64, over <= 100 values; the matches
# themselves are exact comparisons on identical float32 inputs.
@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_match_tf_keras(tf, seed: int, weighted: bool) -> None:
    rng = np.random.default_rng(seed)
    pairs = [
        (tf.keras.metrics.Precision(), Precision()),
        (tf.keras.metrics.Recall(), Recall()),
        (
            tf.keras.metrics.Precision(thresholds=[0.2, 0.5, 0.9]),
            Precision(thresholds=[0.2, 0.5, 0.9]),
        ),
        (tf.keras.metrics.Recall(thresholds=0.3, name="r"), Recall(thresholds=0.3, name="r")),
        (tf.keras.metrics.AUC(num_thresholds=200), AUC(num_thresholds=200)),
        (tf.keras.metrics.BinaryAccuracy(threshold=0.4), BinaryAccuracy(threshold=0.4)),
        (tf.keras.metrics.Mean(name="m", dtype="float64"), Mean(name="m", dtype="float64")),
        (tf.keras.metrics.MeanSquaredError(), MeanSquaredError()),
        (tf.keras.metrics.RootMeanSquaredError(), RootMeanSquaredError()),
        (tf.keras.metrics.MeanAbsoluteError(), MeanAbsoluteError()),
    ]
    for _ in range(3):
        labels = rng.integers(0, 2, size=(40, 1)).astype(np.float32)
        preds = rng.uniform(size=(40, 1)).astype(np.float32)
        preds[:2, 0] = [0.5, 0.3]  # exactly on a threshold: not positive (strict >)
        weights = rng.uniform(0.1, 2.0, size=(40,)).astype(np.float32) if weighted else None
        w = None if weights is None else torch.from_numpy(weights)
        for keras_metric, metric in pairs:
            if keras_metric.name == "m":
                keras_metric.update_state(preds, sample_weight=weights)
                metric.update_state(torch.from_numpy(preds), sample_weight=w)
            else:
                keras_metric.update_state(labels, preds, sample_weight=weights)
                metric.update_state(
                    torch.from_numpy(labels), torch.from_numpy(preds), sample_weight=w
                )
    for keras_metric, metric in pairs:
        expected = np.asarray(keras_metric.result().numpy())
        got = metric.result().numpy()
        assert got.shape == expected.shape, keras_metric.name
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=keras_metric.name)
        # Keras suffixes a repeated default name within a session ("precision_1"); the default itself matches.
        assert metric.name == re.sub(r"_\d+$", "", keras_metric.name)


@pytest.mark.tf
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_top_k_categorical_accuracy_matches_tf_keras(tf, k: int, weighted: bool) -> None:
    rng = np.random.default_rng(k)
    keras_metric, metric = (
        tf.keras.metrics.TopKCategoricalAccuracy(k=k),
        TopKCategoricalAccuracy(k=k),
    )
    for _ in range(3):
        labels = np.eye(8, dtype=np.float32)[rng.integers(0, 8, size=30)]
        preds = rng.normal(size=(30, 8)).astype(np.float32)
        preds[:5] = np.round(preds[:5])  # ties
        weights = rng.uniform(0.1, 2.0, size=(30,)).astype(np.float32) if weighted else None
        keras_metric.update_state(labels, preds, sample_weight=weights)
        metric.update_state(
            torch.from_numpy(labels),
            torch.from_numpy(preds),
            sample_weight=None if weights is None else torch.from_numpy(weights),
        )
    assert metric.result().item() == pytest.approx(float(keras_metric.result().numpy()), rel=1e-6)
    assert metric.name == keras_metric.name == "top_k_categorical_accuracy"
