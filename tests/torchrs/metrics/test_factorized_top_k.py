"""metrics.FactorizedTopK: hand-derived hits, both matching paths, and TFRS as the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.functional.top_k_metrics import id_based_hits, score_based_hits
from torchrs.layers.factorized_top_k import BruteForce, Streaming
from torchrs.metrics import FactorizedTopK

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics


def test_score_based_ties_are_hits() -> None:
    # Positive score 2; retrieved [3, 2, 1]: one strictly greater -> miss at k=1, hit at k=2 (tie counts).
    hits = score_based_hits(torch.tensor([2.0]), torch.tensor([[3.0, 2.0, 1.0]]), (1, 2, 3))
    assert hits.tolist() == [[0.0, 1.0, 1.0]]


def test_score_based_non_finite_misses() -> None:
    hits = score_based_hits(
        torch.tensor([5.0, float("nan")]), torch.tensor([[float("inf"), 1.0], [1.0, 0.0]]), (2,)
    )
    assert hits.tolist() == [[0.0], [0.0]]


def test_id_based_padding_never_matches() -> None:
    scores = torch.tensor([[2.0, float("nan")]])
    assert id_based_hits(scores, torch.tensor([[1, 9]]), torch.tensor([9]), (2,)).tolist() == [
        [0.0]
    ]


def test_id_based_requires_sorted() -> None:
    with pytest.raises(ValueError, match="must be sorted"):
        id_based_hits(torch.tensor([[1.0, 2.0]]), torch.tensor([[1, 2]]), torch.tensor([1]), (1,))


def test_weighted_mean_hand_derived() -> None:
    # Candidates e0, e1, e2; queries hit at k=1 for rows 0 and 1, miss for row 2 (its positive e0 scores 0
    # against a retrieved 1). Weights (1, 1, 2): top-1 = (1 + 1 + 0) / 4 = 0.5.
    metric = FactorizedTopK(candidates=torch.eye(3), ks=(1, 3))
    q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    true = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    metric.update_state(q, true, sample_weight=torch.tensor([1.0, 1.0, 2.0]))
    top1, top3 = metric.result()
    assert top1.item() == pytest.approx(0.5)
    assert top3.item() == pytest.approx(
        1.0
    )  # ties: e0 scores 0 like two others; none strictly above 1 of 3


def test_string_ids_and_reset() -> None:
    index = BruteForce(k=2).index(torch.eye(3), np.array([b"a", b"b", b"c"], dtype=object))
    metric = FactorizedTopK(candidates=index, ks=(1, 2))
    metric.update(torch.eye(3)[:2], torch.eye(3)[:2], true_candidate_ids=np.array(["a", "c"]))
    assert [v.item() for v in metric.result()] == [0.5, 0.5]
    metric.reset_states()
    assert [v.item() for v in metric.result()] == [0.0, 0.0]


def test_iterable_candidates_use_streaming() -> None:
    batches = [torch.eye(4)[:3], torch.eye(4)[3:]]
    metric = FactorizedTopK(candidates=batches, ks=(1,))
    assert isinstance(metric.candidates, Streaming)
    metric.update(torch.eye(4), torch.eye(4))
    assert metric.result()[0].item() == 1.0


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        FactorizedTopK(candidates=torch.eye(3), ks=(0,))
    with pytest.raises(TypeError, match="`candidates` must be"):
        FactorizedTopK(candidates=3)  # type: ignore[arg-type]
    metric = FactorizedTopK(candidates=torch.eye(3), ks=(1,))
    with pytest.raises(ValueError, match=r"\(num_queries, dim\) \(got \(2, 3\) and \(3, 3\)\)"):
        metric.update(torch.eye(3)[:2], torch.eye(3))
    with pytest.raises(ValueError, match=r"one identifier per query \(2\)"):
        metric.update(
            torch.eye(3)[:2], torch.eye(3)[:2], true_candidate_ids=torch.tensor([0, 1, 2])
        )


# ----------------------------------------------------------------------------- TFRS reference
# Id-based hits depend only on the retrieved identifiers, which agree exactly; the accuracies are then
# identical (both are float32 ratios of the same integer-valued sums, computed in float64 here).


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_id_based_matches_tfrs(tf, tfrs, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d, q = 300, 8, 64
    cand = rng.normal(size=(n, d)).astype(np.float32)
    ids = np.array([f"m{i}".encode() for i in range(n)], dtype=object)
    true_rows = rng.integers(0, n, size=q)
    # Queries near their true candidate, so that some (not all) hits happen at every k.
    queries = (cand[true_rows] + rng.normal(size=(q, d)) * 1.5).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, size=q).astype(np.float32)
    ks = (1, 5, 10, 50)

    tf_index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks))
    tf_index.index(tf.constant(cand), tf.constant(ids.astype(bytes)))
    tf_metric = tfrs.metrics.FactorizedTopK(candidates=tf_index, ks=ks)
    tf_metric.update_state(
        tf.constant(queries),
        tf.constant(cand[true_rows]),
        true_candidate_ids=tf.constant(ids[true_rows].astype(bytes)),
        sample_weight=tf.constant(weight),
    )
    expected = [float(v.numpy()) for v in tf_metric.result()]

    metric = FactorizedTopK(candidates=BruteForce(k=max(ks)).index(torch.tensor(cand), ids), ks=ks)
    metric.update(
        torch.tensor(queries),
        torch.tensor(cand[true_rows]),
        true_candidate_ids=ids[true_rows],
        sample_weight=torch.tensor(weight),
    )
    got = [float(v) for v in metric.result()]
    assert got == pytest.approx(expected, rel=1e-6, abs=0)
    assert got[1] > 0  # the case is not degenerate


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_based_matches_tfrs(tf, tfrs, seed: int) -> None:
    # Positives drawn from outside the corpus: no positive is also retrieved, so no ulp-level tie between
    # the retrieved copy and the reduce_sum score can flip a hit. Hits are then identical.
    rng = np.random.default_rng(seed)
    n, d, q = 400, 8, 128
    cand = rng.normal(size=(n, d)).astype(np.float32)
    queries = rng.normal(size=(q, d)).astype(np.float32)
    positives = (rng.normal(size=(q, d)) * 1.3).astype(np.float32)
    ks = (1, 5, 10, 50, 100)
    tf_metric = tfrs.metrics.FactorizedTopK(
        candidates=tf.data.Dataset.from_tensor_slices(cand).batch(64), ks=ks
    )
    tf_metric.update_state(tf.constant(queries), tf.constant(positives))
    expected = [float(v.numpy()) for v in tf_metric.result()]

    batches = [torch.tensor(cand[i : i + 64]) for i in range(0, n, 64)]
    metric = FactorizedTopK(candidates=batches, ks=ks)
    metric.update(torch.tensor(queries), torch.tensor(positives))
    got = [float(v) for v in metric.result()]
    assert got == pytest.approx(expected, rel=1e-6, abs=0)
    assert 0 < got[2] < 1


def test_evaluation_snapshot_tracks_weight_changes() -> None:
    # In evaluation the mapped corpus is embedded once and reused while the weights are unchanged; an in-place
    # weight change (an optimizer step) makes the next update re-embed, exactly as re-reading would.
    from torchrs.data import map_batches

    tower = torch.nn.Embedding(4, 4)
    with torch.no_grad():
        tower.weight.copy_(torch.eye(4))
    calls = []

    def embed(ids: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return tower(ids)

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tower = tower

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return embed(ids)

    metric = FactorizedTopK(
        candidates=map_batches([torch.tensor([0, 1]), torch.tensor([2, 3])], Counting()), ks=(1,)
    )
    with torch.no_grad():
        metric.update(torch.eye(4), torch.eye(4))
        metric.update(torch.eye(4), torch.eye(4))
        assert len(calls) == 2  # one pass over the two batches, reused by the second update
        tower.weight.mul_(-1.0)  # every query's positive is now its worst candidate
        metric.update(torch.eye(4), -torch.eye(4))
    assert len(calls) == 4
    assert metric.result()[0].item() == pytest.approx(2 / 3)
    metric.update(
        torch.eye(4).requires_grad_(), -torch.eye(4)
    )  # training: Streaming re-reads, like TFRS
    assert len(calls) == 6


def _title_tower(vocabulary: list[str], seed: int = 0) -> torch.nn.Module:
    from torchrs.layers import Embedding
    from torchrs.preprocessing import StringLookup

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        StringLookup(vocabulary=vocabulary, mask_token=None), Embedding(len(vocabulary) + 1, 4)
    )


def test_corpus_snapshot_tracks_vocabulary_changes() -> None:
    # A lookup's vocabulary is not a tensor (StringLookup keeps a dict): without `vocabulary_version` in the
    # corpus state, set_vocabulary would leave the snapshot mapping every title to its old row. The snapshot
    # metric must report what a metric re-reading the corpus at every update (Streaming, as TFRS) reports.
    from torchrs.data import map_batches

    titles = ["a", "b", "c", "d", "e", "f"]
    batches = [np.array(titles[:4]), np.array(titles[4:])]
    tower = _title_tower(titles)
    g = torch.Generator().manual_seed(3)
    queries, positives = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    metric = FactorizedTopK(candidates=map_batches(batches, tower), ks=(1, 3))
    reference = FactorizedTopK(candidates=map_batches(batches, tower), ks=(1, 3))
    with torch.no_grad():
        metric.update(queries, positives)
        first = metric.corpus_snapshot
        assert first is not None
        metric.update(queries, positives)
        assert metric.corpus_snapshot is first  # unchanged corpus: reused
    for _ in range(2):  # grad-requiring queries: re-read at every update, never a snapshot
        reference.update(queries.clone().requires_grad_(), positives)
    assert reference.corpus_snapshot is None
    before = [float(v) for v in metric.result()]
    assert before == [float(v) for v in reference.result()]

    tower[0].set_vocabulary(titles[::-1])  # same size, every title now maps to another row
    with torch.no_grad():
        metric.update(queries, -positives)
    reference.update(queries.clone().requires_grad_(), -positives)
    assert metric.corpus_snapshot is not None and metric.corpus_snapshot is not first
    # Hit rates are counts over the same queries compared through the same scores: equal, not merely close.
    assert [float(v) for v in metric.result()] == [float(v) for v in reference.result()]
    stale = first.index(queries, k=3)[1]
    fresh = metric.corpus_snapshot.index(queries, k=3)[1]
    assert not torch.equal(
        stale, fresh
    )  # the change did move the retrieved rows: the test can fail


def test_corpus_snapshot_tracks_replaced_weights_batches_and_mode() -> None:
    from torchrs.data import map_batches

    titles = ["a", "b", "c", "d"]
    batches = [np.array(titles[:2]), np.array(titles[2:])]
    tower = _title_tower(titles)
    metric = FactorizedTopK(candidates=map_batches(batches, tower), ks=(1,))
    queries = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))

    def snapshot() -> object:
        with torch.no_grad():
            metric.update(queries, queries)
        return metric.corpus_snapshot

    first = snapshot()
    assert snapshot() is first
    tower[1].weight = torch.nn.Parameter(torch.randn(5, 4))  # replaced, not modified in place
    second = snapshot()
    assert second is not first
    with torch.no_grad():
        tower[1].weight.add_(1.0)  # in place: the version counter moves
    third = snapshot()
    assert third is not second
    batches[1][0] = "a"  # the corpus itself changes in place
    fourth = snapshot()
    assert fourth is not third
    tower.eval()  # a mode switch can change outputs (dropout, batch norm)
    assert snapshot() is not fourth


def test_corpus_snapshot_is_not_kept_for_unknowable_sources() -> None:
    from torchrs.data import map_batches

    metric = FactorizedTopK(candidates=map_batches([object()], lambda b: torch.eye(2)), ks=(1,))
    with torch.no_grad():
        metric.update(torch.eye(2), torch.eye(2))
    assert metric.corpus_snapshot is None
    metric.update(torch.eye(2), torch.eye(2))
    assert [float(v) for v in metric.result()] == [1.0]


def test_corpus_snapshot_dropped_by_copies() -> None:
    import copy

    metric = FactorizedTopK(candidates=[torch.eye(3)], ks=(1,))
    with torch.no_grad():
        metric.update(torch.eye(3), torch.eye(3))
    assert metric.corpus_snapshot is not None
    assert copy.deepcopy(metric).corpus_snapshot is None
