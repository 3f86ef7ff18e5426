"""Metrics, as ``tfrs.metrics``, plus the Keras metrics TFRS models use (``tf.keras.metrics``)."""

from torchrs.metrics.classification import Precision, Recall, TopKCategoricalAccuracy
from torchrs.metrics.factorized_top_k import Factorized, FactorizedTopK
from torchrs.metrics.keras_metric import (
    KerasMetric,
    Mean,
    MeanAbsoluteError,
    MeanMetricWrapper,
    MeanSquaredError,
    RootMeanSquaredError,
)
from torchrs.metrics.ranking import (
    AUC,
    BinaryAccuracy,
    MAPMetric,
    MeanAveragePrecisionMetric,
    MRRMetric,
    NDCGMetric,
)

__all__ = [
    "AUC",
    "BinaryAccuracy",
    "Factorized",
    "FactorizedTopK",
    "KerasMetric",
    "MAPMetric",
    "MRRMetric",
    "Mean",
    "MeanAbsoluteError",
    "MeanAveragePrecisionMetric",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "NDCGMetric",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "TopKCategoricalAccuracy",
]
