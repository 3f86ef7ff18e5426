"""Ranking metrics: tfr semantics by hand, torchmetrics where the definitions coincide, Keras AUC / accuracy."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torchmetrics.functional.retrieval import (
    retrieval_average_precision,
    retrieval_normalized_dcg,
    retrieval_reciprocal_rank,
)

from torchrs.metrics.ranking import (
    AUC,
    BinaryAccuracy,
    MAPMetric,
    MeanAveragePrecisionMetric,
    MRRMetric,
    NDCGMetric,
)

INV_LOG2_3 = 1 / math.log2(3)  # discount at rank 2: 0.630930
# tfr's "ragged" docstring example, padded with label -1 (list 1 has two items).
PADDED_TRUE = torch.tensor([[0.0, 1.0, -1.0], [1.0, 2.0, 0.0]])
PADDED_PRED = torch.tensor([[2.0, 1.0, 0.0], [2.0, 5.0, 4.0]])


# ----------------------------------------------------------------------------------------------- NDCG
def test_ndcg_tfr_docstring_value() -> None:
    # Sorted by score (3, 2, 1) the labels are (0, 1, 1): DCG = 1/log2(3) + 1/log2(4) = 1.130930;
    # ideal (1, 1, 0): 1 + 1/log2(3) = 1.630930; NDCG = 0.693426 (tfr's docstring: 0.6934264).
    m = NDCGMetric()
    m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    assert m.result().item() == pytest.approx((INV_LOG2_3 + 0.5) / (1 + INV_LOG2_3), rel=1e-6)
    assert m.name == "ndcg_metric"


def test_ndcg_padding_topn_and_list_weights() -> None:
    # List 1 (labels 0, 1; pad): sorted labels (0, 1): DCG 1/log2(3), ideal 1 -> 0.630930.
    # List 2 (labels 1, 2, 0; scores 2, 5, 4): sorted labels (2, 0, 1): gains 3, 0, 1 -> DCG 3 + 1/2 = 3.5;
    # ideal (2, 1, 0): 3 + 1/log2(3) = 3.630930 -> 0.963947. Mean 0.797438 (tfr's docstring: 0.7974351).
    ndcg1, ndcg2 = INV_LOG2_3, 3.5 / (3 + INV_LOG2_3)
    m = NDCGMetric()
    m.update_state(PADDED_TRUE, PADDED_PRED)
    assert m.result().item() == pytest.approx((ndcg1 + ndcg2) / 2, rel=1e-6)
    # topn=1: list 1 tops label 0 -> 0; list 2 tops label 2 = its ideal -> 1; mean 0.5.
    top1 = NDCGMetric(topn=1)
    top1.update_state(PADDED_TRUE, PADDED_PRED)
    assert top1.result().item() == pytest.approx(0.5)
    # Per-list weights (1, 3): (ndcg1 + 3 ndcg2) / 4.
    weighted = NDCGMetric()
    weighted.update_state(PADDED_TRUE, PADDED_PRED, sample_weight=torch.tensor([[1.0], [3.0]]))
    assert weighted.result().item() == pytest.approx((ndcg1 + 3 * ndcg2) / 4, rel=1e-6)


def test_ndcg_list_without_relevance_counts_as_zero() -> None:
    # List 1: labels (1, 0) ranked (0, 1) by scores (1, 2): 1/log2(3) / 1. List 2 has no relevant item:
    # NDCG 0 with tfr's fallback weight (the average, 1), so the mean is 0.630930 / 2.
    m = NDCGMetric()
    m.update_state(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    assert m.result().item() == pytest.approx(INV_LOG2_3 / 2, rel=1e-6)


def test_ties_keep_input_order() -> None:
    # Equal scores: tfr would shuffle; torchrs ranks the first listed item first -> labels (0, 1): 1/log2(3).
    m = NDCGMetric()
    m.update_state(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
    assert m.result().item() == pytest.approx(INV_LOG2_3, rel=1e-6)


def test_accumulates_over_batches_and_resets() -> None:
    both, split = NDCGMetric(), NDCGMetric()
    both.update_state(PADDED_TRUE, PADDED_PRED)
    split.update_state(PADDED_TRUE[:1], PADDED_PRED[:1])
    split.update_state(PADDED_TRUE[1:], PADDED_PRED[1:])
    assert split.result().item() == pytest.approx(both.result().item(), rel=1e-6)
    split.reset_states()
    assert split.result().item() == 0.0  # Keras's divide_no_nan before any update, silently


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("topn", [None, 3])
def test_matches_torchmetrics_where_definitions_coincide(seed: int, topn: int | None) -> None:
    # Binary labels (so 2^y - 1 == y, torchmetrics' linear gain) and distinct scores (no tie rule involved):
    # tfr's NDCG / MRR / AP equal torchmetrics' retrieval_* per list; all lists weigh 1.
    # Scores are positive: torchmetrics' average precision counts items scored <= 0 as not retrieved.
    # Tolerance 1e-6: the same float32 sums in a different order (measured <= 9.4e-8 over 10 seeds).
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.rand(8, 6, generator=generator) < 0.4).float()
    labels[0] = 0.0  # a list without relevant items
    scores = torch.rand(8, 6, generator=generator) + 0.01
    pairs = [
        (NDCGMetric(topn=topn), lambda p, t: retrieval_normalized_dcg(p, t, top_k=topn)),
        (MRRMetric(topn=topn), lambda p, t: retrieval_reciprocal_rank(p, t, top_k=topn)),
        (MAPMetric(), retrieval_average_precision),
    ]
    for metric, reference in pairs:
        metric.update_state(labels, scores)
        expected = torch.stack(
            [reference(p, t.long()) for p, t in zip(scores, labels, strict=True)]
        ).mean()
        assert metric.result().item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-7), type(
            metric
        )


# ------------------------------------------------------------------------------------------ MRR and MAP
def test_mrr_values() -> None:
    # tfr docstring: labels (0, 1, 1) ranked (0, 1, 1) -> first relevant at rank 2: 0.5.
    m = MRRMetric()
    m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    assert m.result().item() == pytest.approx(0.5)
    # Padded example: list 1 ranks (0, 1) -> 1/2; list 2 ranks (2, 0, 1) -> 1; mean 0.75 (tfr: 0.75).
    padded = MRRMetric()
    padded.update_state(PADDED_TRUE, PADDED_PRED)
    assert padded.result().item() == pytest.approx(0.75)
    # topn=1: list 1 has no relevant item in its top 1 -> 0; list 2 -> 1; mean 0.5.
    top1 = MRRMetric(topn=1)
    top1.update_state(PADDED_TRUE, PADDED_PRED)
    assert top1.result().item() == pytest.approx(0.5)


def test_mrr_per_item_weights_become_list_weights() -> None:
    # List A: labels (1, 0), scores (1, 2) -> MRR 1/2; weights (4, 1) -> list weight Σ w·rel / Σ rel = 4.
    # List B: labels (0, 1), scores (1, 2) -> MRR 1; weights (1, 2) -> list weight 2.
    # Weighted mean: (4 * 0.5 + 2 * 1) / 6 = 2/3.
    m = MRRMetric()
    m.update_state(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        torch.tensor([[1.0, 2.0], [1.0, 2.0]]),
        sample_weight=torch.tensor([[4.0, 1.0], [1.0, 2.0]]),
    )
    assert m.result().item() == pytest.approx(2 / 3, rel=1e-6)


def test_map_values() -> None:
    # tfr docstring, topn=2: ranked labels (0, 1 | 1): P@2 * rel = 1/2 over 2 relevant items -> 0.25.
    m = MeanAveragePrecisionMetric(topn=2)
    m.update_state(torch.tensor([[0.0, 1.0, 1.0]]), torch.tensor([[3.0, 1.0, 2.0]]))
    assert m.result().item() == pytest.approx(0.25)
    assert m.name == "mean_average_precision_metric" and MAPMetric is MeanAveragePrecisionMetric
    # Padded example, topn=2: list 1 ranks (0, 1): 1/2 / 1 = 0.5; list 2 ranks relevance (1, 0 | 1):
    # P@1 = 1 over 2 relevant -> 0.5; mean 0.5 (tfr: 0.5).
    padded = MeanAveragePrecisionMetric(topn=2)
    padded.update_state(PADDED_TRUE, PADDED_PRED)
    assert padded.result().item() == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------- AUC / accuracy
def test_auc_hand_values() -> None:
    # Scores in distinct buckets of the 200 thresholds, so Keras's AUC is the exact one: of the 4
    # (positive, negative) pairs, 3 are ordered correctly -> 0.75.
    m = AUC()
    m.update_state(torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.tensor([0.1, 0.4, 0.35, 0.8]))
    assert m.result().item() == pytest.approx(0.75)
    assert m.name == "auc"
    # Weighting the (0.35, positive) item by 3: pairs weigh w_pos * w_neg; correct pairs
    # (0.35>0.1: 3), (0.8>0.1: 1), (0.8>0.4: 1) out of 3+3+1+1 = 8 -> 5/8.
    weighted = AUC()
    weighted.update_state(
        torch.tensor([[0.0], [0.0], [1.0], [1.0]]),
        torch.tensor([[0.1], [0.4], [0.35], [0.8]]),
        sample_weight=torch.tensor([1.0, 1.0, 3.0, 1.0]),
    )
    assert weighted.result().item() == pytest.approx(5 / 8)
    # from_logits applies a sigmoid first: the logit of each probability gives the same 0.75.
    logits = torch.logit(torch.tensor([0.1, 0.4, 0.35, 0.8]))
    from_logits = AUC(from_logits=True)
    from_logits.update_state(torch.tensor([0.0, 0.0, 1.0, 1.0]), logits)
    assert from_logits.result().item() == pytest.approx(0.75)


def test_binary_accuracy() -> None:
    # (0.9 > 0.5) == 1, (0.6 > 0.5) != 0, (0.5 > 0.5 is False) != 1, (0.1) == 0 -> 2/4; weights (1, 1, 1, 2)
    # -> (1 + 2) / 5.
    m = BinaryAccuracy()
    m.update_state(torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.9, 0.6, 0.5, 0.1]))
    assert m.result().item() == pytest.approx(0.5)
    w = BinaryAccuracy(threshold=0.5)
    w.update_state(
        torch.tensor([1.0, 0.0, 1.0, 0.0]),
        torch.tensor([0.9, 0.6, 0.5, 0.1]),
        torch.tensor([1.0, 1, 1, 2]),
    )
    assert w.result().item() == pytest.approx(3 / 5)


# ------------------------------------------------------------------------------------------------ errors
def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"shape \(batch_size, list_size\), got shape \(3,\)"):
        NDCGMetric().update_state(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.3, 0.2, 0.1]))
    with pytest.raises(
        ValueError, match=r"same shape, got labels \(1, 2\) and predictions \(1, 3\)"
    ):
        MRRMetric().update_state(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.3, 0.2, 0.1]]))
    with pytest.raises(ValueError, match=r"`sample_weight` must be a scalar.*got shape \(3,\)"):
        MAPMetric().update_state(torch.ones(1, 3), torch.ones(1, 3), sample_weight=torch.ones(3))
    with pytest.raises(ValueError, match="`topn` must be None or a positive int, got 0"):
        NDCGMetric(topn=0)
    with pytest.raises(ValueError, match=r"ragged=True\) is not supported.*label -1"):
        MRRMetric(ragged=True)
    with pytest.raises(ValueError, match="only dtype=None / 'float32'"):
        NDCGMetric(dtype="float64")
    with pytest.raises(
        ValueError, match="`num_thresholds` must be an integer > 1, got num_thresholds=1"
    ):
        AUC(num_thresholds=1)
    with pytest.raises(ValueError, match=r"AUC\(curve='PR'\) is not supported"):
        AUC(curve="PR")
    with pytest.raises(ValueError, match=r"Invalid `summation_method` 'riemann'"):
        AUC(summation_method="riemann")
    with pytest.raises(
        ValueError, match=r"AUC arguments \['multi_label', 'thresholds'\] are not supported"
    ):
        AUC(thresholds=[0.5], multi_label=True)
    with pytest.raises(ValueError, match=r"`sample_weight` of shape \(3,\) cannot be broadcast"):
        AUC().update_state(torch.ones(4), torch.ones(4), sample_weight=torch.ones(3))
    with pytest.raises(ValueError, match=r"AUC expects labels and predictions of the same shape"):
        AUC().update_state(torch.ones(4), torch.ones(3))


# --------------------------------------------------------------------------------------- Keras reference
# Tolerance 1e-6 relative: Keras accumulates the confusion counts in float32, torchrs in float64; the
# bucket of every prediction is computed identically in float32, so only the sums differ (measured
# <= 4.1e-7 over 10 seeds, the worst with 7 thresholds).
@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_and_accuracy_match_keras(tf, seed: int, weighted: bool) -> None:
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(2):
        labels = rng.integers(0, 2, size=(50, 1)).astype(np.float32)
        preds = rng.uniform(size=(50, 1)).astype(np.float32)
        preds[:3, 0] = [0.0, 1.0, 0.5]  # bucket edges
        weights = rng.uniform(0.1, 2.0, size=(50,)).astype(np.float32) if weighted else None
        batches.append((labels, preds, weights))
    for keras_metric, metric in [
        (tf.keras.metrics.AUC(), AUC()),
        (
            tf.keras.metrics.AUC(num_thresholds=7, summation_method="minoring"),
            AUC(num_thresholds=7, summation_method="minoring"),
        ),
        (tf.keras.metrics.AUC(from_logits=True), AUC(from_logits=True)),
        (tf.keras.metrics.BinaryAccuracy(), BinaryAccuracy()),
    ]:
        for labels, preds, weights in batches:
            keras_metric.update_state(labels, preds, sample_weight=weights)
            metric.update_state(
                torch.from_numpy(labels),
                torch.from_numpy(preds),
                sample_weight=None if weights is None else torch.from_numpy(weights),
            )
        expected = float(keras_metric.result().numpy())
        assert metric.result().item() == pytest.approx(expected, rel=1e-6), keras_metric.name


# ------------------------------------------------------------------------------- tensorflow-ranking reference
def _random_ranking_batch(rng: np.random.Generator, batch: int = 16, list_size: int = 7) -> dict:
    """Graded labels 0..4 (ties within lists), -1 padding of random lengths, continuous scores, weights.

    Row 0 has no relevant item (tfr's per-list weight fallback), row 1 a zero item weight (tfr masks items
    with weight <= 0). Scores are continuous, so no two are equal: tfr breaks score ties at random, torchrs by
    input order (see test_tied_scores_give_one_of_tfrs_outcomes).
    """
    lengths = rng.integers(1, list_size + 1, size=batch)
    labels = rng.integers(0, 5, size=(batch, list_size)).astype(np.float32)
    labels[np.arange(list_size) >= lengths[:, None]] = -1.0
    labels[0] = np.where(labels[0] >= 0, 0.0, -1.0)
    item_weights = rng.uniform(0.2, 2.0, size=(batch, list_size)).astype(np.float32)
    item_weights[1, 0] = 0.0
    return {
        "labels": labels,
        "scores": rng.normal(size=(batch, list_size)).astype(np.float32),
        "none": None,
        "per_list": rng.uniform(0.2, 2.0, size=(batch, 1)).astype(np.float32),
        "per_item": item_weights,
    }


# Tolerance 1e-6 absolute on metrics in [0, 1]: both sides sort identically (no score ties) and sum <= 7
# float32 gains x discounts, then a weighted mean over 32 lists; measured <= 1.8e-7 over 8 seeds. A wrong
# discount, gain, padding rule, topn cutoff or per-list weight is >= 1e-3 off on these lists.
@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighting", ["none", "per_list", "per_item"])
def test_ranking_metrics_match_tfr(tfr, seed: int, weighting: str) -> None:
    rng = np.random.default_rng(seed)
    batches = [_random_ranking_batch(rng) for _ in range(2)]  # running mean over two updates
    pairs = [(tfr.metrics.NDCGMetric, NDCGMetric), (tfr.metrics.MRRMetric, MRRMetric)]
    pairs.append((tfr.metrics.MeanAveragePrecisionMetric, MeanAveragePrecisionMetric))
    for tfr_cls, cls in pairs:
        for topn in (None, 1, 3, 10):  # 10 > list size: the whole list
            reference, metric = tfr_cls(topn=topn), cls(topn=topn)
            # Same default names in the logs (Keras appends _1, _2, ... to repeated default names).
            assert metric.name == re.sub(r"_\d+$", "", reference.name)
            for b in batches:
                weights = b[weighting]
                reference.update_state(b["labels"], b["scores"], sample_weight=weights)
                metric.update_state(
                    torch.from_numpy(b["labels"]),
                    torch.from_numpy(b["scores"]),
                    sample_weight=None if weights is None else torch.from_numpy(weights),
                )
            expected = float(reference.result().numpy())
            assert metric.result().item() == pytest.approx(expected, abs=1e-6), (cls, topn)


@pytest.mark.tf
def test_tied_scores_give_one_of_tfrs_outcomes(tf, tfr) -> None:
    # All three scores equal: tfr orders the items at random on every call, torchrs keeps the input order
    # (labels 0, 1, 2 at ranks 1, 2, 3: DCG = 1/log2(3) + 3/2 = 2.130930, ideal 3 + 1/log2(3) = 3.630930,
    # NDCG = 0.586883). Over 30 seeded tfr draws that outcome must be among tfr's (6 orders, each drawn with
    # probability 1/6: missing it 30 times would have probability (5/6)^30 = 0.4%, and the seeds fix it).
    labels, scores = np.array([[0.0, 1.0, 2.0]], np.float32), np.zeros((1, 3), np.float32)
    outcomes = set()
    for seed in range(30):
        tf.random.set_seed(seed)
        outcomes.add(round(float(tfr.metrics.NDCGMetric()(labels, scores).numpy()), 5))
    metric = NDCGMetric()
    metric.update_state(torch.from_numpy(labels), torch.from_numpy(scores))
    assert metric.result().item() == pytest.approx(2.130930 / 3.630930, rel=1e-6)
    assert len(outcomes) > 1 and round(metric.result().item(), 5) in outcomes
