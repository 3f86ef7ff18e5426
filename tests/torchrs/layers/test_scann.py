"""ScaNN (faiss-backed): API of tfrs.layers.factorized_top_k.ScaNN, measured recall against BruteForce."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.layers.factorized_top_k import BruteForce
from torchrs.layers.scann import ScaNN
from torchrs.metrics import FactorizedTopK


def _clustered(num: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(64, dim, generator=g)
    candidates = centers[torch.randint(0, 64, (num,), generator=g)] + 0.3 * torch.randn(
        num, dim, generator=g
    )
    queries = centers[torch.randint(0, 64, (256,), generator=g)] + 0.3 * torch.randn(
        256, dim, generator=g
    )
    return candidates, queries


def _recall(approx_ids: torch.Tensor, exact_ids: torch.Tensor) -> float:
    hits = sum(
        len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx_ids, exact_ids, strict=True)
    )
    return hits / exact_ids.numel()


@pytest.mark.parametrize(
    ("kwargs", "min_recall"),
    [
        # Measured on this data (20k x 32, 64 clusters): IVF 100 leaves / 10 probed 1.000, HNSW 0.9996,
        # IVF 1 probed 0.798 (with or without reordering 50). Bounds leave room for k-means and
        # graph-construction differences across platforms.
        ({"num_leaves": 100, "num_leaves_to_search": 10}, 0.95),
        ({"index_type": "hnsw"}, 0.95),
        ({"num_leaves": 100, "num_leaves_to_search": 1, "num_reordering_candidates": 50}, 0.5),
    ],
)
def test_recall_at_10_against_brute_force(kwargs: dict, min_recall: float) -> None:
    candidates, queries = _clustered(20_000, 32, seed=0)
    _, exact = BruteForce(k=10).index(candidates)(queries)
    scores, approx = ScaNN(k=10, **kwargs).index(candidates)(queries)
    assert _recall(approx, exact) >= min_recall
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())  # sorted, as FactorizedTopK requires


def test_string_identifiers_and_metric_needs_ids() -> None:
    ids = np.array([f"m{i}" for i in range(50)], dtype=object)
    candidates, _ = _clustered(50, 8, seed=1)
    index = ScaNN(k=3, num_leaves=4, num_leaves_to_search=4).index(candidates, ids)
    _, got = index(candidates[:2])
    assert got[:, 0].tolist() == ["m0", "m1"]
    metric = FactorizedTopK(candidates=index, ks=(1,))
    with pytest.raises(ValueError, match="does not return exact results"):
        metric.update(candidates[:2], candidates[:2])
    metric.update(candidates[:2], candidates[:2], true_candidate_ids=ids[:2])
    assert metric.result()[0].item() == 1.0


def test_state_dict_round_trip_rebuilds_index() -> None:
    candidates, queries = _clustered(500, 8, seed=2)
    index = ScaNN(k=5, num_leaves=8, num_leaves_to_search=8).index(candidates)
    fresh = ScaNN(k=5, num_leaves=8, num_leaves_to_search=8)
    fresh.load_state_dict(index.state_dict())
    assert torch.equal(fresh(queries)[1], index(queries)[1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Unknown distance_measure 'cosine'"):
        ScaNN(distance_measure="cosine")
    with pytest.raises(ValueError, match="Unknown index_type 'lsh'"):
        ScaNN(index_type="lsh")
    with pytest.raises(ValueError, match="`num_leaves` must be a positive integer"):
        ScaNN(num_leaves=0)
    with pytest.raises(ValueError, match="must be called first"):
        ScaNN()(torch.zeros(1, 4))
