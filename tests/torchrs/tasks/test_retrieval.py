"""tasks.Retrieval: hand-derived values, error paths, and TFRS 0.7.7 as the reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from torchrs.functional.retrieval import MIN_FLOAT
from torchrs.losses import CategoricalCrossentropy
from torchrs.metrics import Mean, MeanSquaredError
from torchrs.tasks import Retrieval

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics


def test_identity_scores_hand_derived() -> None:
    # q = c = I2: scores = I2, row loss = -log(e / (e + 1)) = log(1 + e^-1); SUM over the 2 rows.
    q = torch.eye(2)
    expected = 2 * math.log(1 + math.exp(-1))
    assert Retrieval()(q, q).item() == pytest.approx(expected, rel=1e-6)


def test_sum_reduction_not_mean() -> None:
    # Four identical rows of zero scores: each row is log(4); SUM gives 4 log 4 (mean would give log 4).
    loss = Retrieval()(torch.zeros(4, 3), torch.zeros(4, 3))
    assert loss.item() == pytest.approx(4 * math.log(4), rel=1e-6)


def test_sample_weight_and_temperature() -> None:
    # scores = [[1, 0], [0, 1]] / 0.5 = [[2, 0], [0, 2]]; row loss log(1 + e^-2); weights 1 and 3 -> 4x.
    q = torch.eye(2)
    loss = Retrieval(temperature=0.5)(q, q, sample_weight=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx(4 * math.log(1 + math.exp(-2)), rel=1e-6)


def test_accidental_hits_removed() -> None:
    # Candidates 0 and 1 share id 7: row 0's negative (col 1) and row 1's negative (col 0) vanish,
    # so each row's softmax has only its positive left: loss 0.
    loss = Retrieval(remove_accidental_hits=True)(
        torch.zeros(2, 2), torch.zeros(2, 2), candidate_ids=torch.tensor([7, 7])
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_string_candidate_ids() -> None:
    a = Retrieval(remove_accidental_hits=True)(
        torch.eye(3), torch.eye(3), candidate_ids=np.array(["x", "y", "x"])
    )
    b = Retrieval(remove_accidental_hits=True)(
        torch.eye(3), torch.eye(3), candidate_ids=torch.tensor([1, 2, 1])
    )
    assert a.item() == b.item()


def test_hard_negatives_keep_positive() -> None:
    # One hard negative: row 0 keeps [pos 0, neg 5] -> log(1 + e^5); row 1 keeps [pos 0, neg 2] -> log(1 + e^2).
    q = torch.tensor([[1.0], [1.0]])
    c = torch.tensor([[0.0], [0.0], [5.0]])
    scores_row0 = [0.0, 0.0, 5.0]
    del scores_row0
    loss = Retrieval(num_hard_negatives=1)(q, c)
    assert loss.item() == pytest.approx(2 * math.log(1 + math.exp(5.0)), rel=1e-6)


def test_score_mask_excludes_candidates() -> None:
    # Masking every negative leaves each row's positive alone: loss 0.
    loss = Retrieval()(
        torch.zeros(3, 2), torch.zeros(3, 2), score_mask=torch.eye(3, dtype=torch.bool)
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_multi_head_queries_take_max() -> None:
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # one query, two heads
    c = torch.tensor([[2.0, 3.0], [4.0, 1.0]])  # head max: [3, 4]
    # loss = -log softmax([3, 4])[0] = log(1 + e)
    assert Retrieval()(q, c).item() == pytest.approx(math.log(1 + math.e), rel=1e-6)


def test_custom_loss_gets_dense_labels() -> None:
    q, c = torch.randn(4, 3), torch.randn(6, 3)
    fused = Retrieval()(q, c)
    keras_style = Retrieval(loss=CategoricalCrossentropy(from_logits=True, reduction="sum"))(q, c)
    torch.testing.assert_close(fused, keras_style)


def test_loss_metrics_updated() -> None:
    metric = Mean(name="loss_mean")
    task = Retrieval(loss_metrics=[metric])
    loss = task(torch.eye(2), torch.eye(2))
    torch.testing.assert_close(metric.result(), loss.detach())


def test_batch_metrics_not_computed_means_fused() -> None:
    # Batch metrics configured but not requested for this call: nothing reads the scores, so the loss runs fused
    # (its autograd node says so) and equals the step-by-step loss of the call that does update them
    # (1e-6 relative: the same sums in another order); the batch metric is left untouched.
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 4, generator=g, requires_grad=True)
    c = torch.randn(8, 4, generator=g)
    metric = (
        MeanSquaredError()
    )  # a (labels, scores) metric: mean of (eye - scores)^2 over the batch
    task = Retrieval(batch_metrics=[metric])
    fused = task(q, c, compute_batch_metrics=False)
    assert type(fused.grad_fn).__name__ == "_InBatchSoftmaxLossBackward"
    assert float(metric.result()) == 0.0
    step_by_step = task(q, c, compute_batch_metrics=True)
    assert type(step_by_step.grad_fn).__name__ != "_InBatchSoftmaxLossBackward"
    assert float(metric.result()) != 0.0
    assert fused.item() == pytest.approx(step_by_step.item(), rel=1e-6)


def test_min_float_value() -> None:
    assert MIN_FLOAT == pytest.approx(-3.4028234663852886e36)


@pytest.mark.parametrize(
    ("kwargs", "call", "match"),
    [
        ({"remove_accidental_hits": True}, {}, "candidate ids must be supplied"),
        ({}, {"sample_weight": torch.ones(3)}, r"one weight per query \(2\)"),
        ({}, {"score_mask": torch.ones(3, 3, dtype=torch.bool)}, r"score_mask.*\(2, 4\)"),
        ({}, {"candidate_sampling_probability": torch.ones(2)}, r"\(num_candidates,\) = \(4,\)"),
        (
            {"remove_accidental_hits": True},
            {"candidate_ids": torch.ones(3)},
            "3 identifiers for 4 candidates",
        ),
    ],
)
def test_bad_call_arguments(kwargs: dict, call: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Retrieval(**kwargs)(torch.randn(2, 5), torch.randn(4, 5), **call)


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"same last dimension.*\(2, 5\).*\(4, 3\)"):
        Retrieval()(torch.randn(2, 5), torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"candidate_embeddings` must be 2-D"):
        Retrieval()(torch.randn(2, 5), torch.randn(4))
    with pytest.raises(ValueError, match=r"query_embeddings` must be 2-D .* or 3-D"):
        Retrieval()(torch.randn(5), torch.randn(4, 5))
    with pytest.raises(ValueError, match="num_hard_negatives"):
        Retrieval(num_hard_negatives=-1)


# --------------------------------------------------------------------------- TFRS reference
# float32 softmax-CE over <= 12 candidates: TF and torch sum in different orders, so the loss agrees to a few
# ulps; 1e-5 relative (the bar) leaves ~100x headroom. Gradients: 1e-5 relative + 1e-6 absolute.

OPTIONS = list(
    itertools.product(
        [None, 0.3],  # temperature
        [None, 2],  # num_hard_negatives
        [False, True],  # remove_accidental_hits
        [False, True],  # sample_weight
        [False, True],  # candidate_sampling_probability
        [False, True],  # score_mask
    )
)


def _inputs(seed: int, num_queries: int, num_candidates: int, dim: int, heads: int | None):
    rng = np.random.default_rng(seed)
    shape = (num_queries, heads, dim) if heads else (num_queries, dim)
    q = rng.normal(size=shape).astype(np.float32)
    c = rng.normal(size=(num_candidates, dim)).astype(np.float32)
    ids = rng.integers(0, max(2, num_candidates // 2), size=num_candidates)  # guaranteed duplicates
    weight = rng.uniform(0.1, 2.0, size=num_queries).astype(np.float32)
    prob = rng.uniform(0.0, 0.5, size=num_candidates).astype(np.float32)
    mask = rng.uniform(size=(num_queries, num_candidates)) > 0.2
    return q, c, ids, weight, prob, mask


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("heads", [None, 3])
def test_loss_and_gradients_match_tfrs(tf, tfrs, seed: int, heads: int | None) -> None:
    worst = 0.0
    for i, (temperature, hard, accidental, weighted, corrected, masked) in enumerate(OPTIONS):
        num_queries, num_candidates = (6, 6) if i % 2 else (5, 9)
        q, c, ids, weight, prob, mask = _inputs(
            seed * 1000 + i, num_queries, num_candidates, 4, heads
        )
        call = dict(
            sample_weight=weight if weighted else None,
            candidate_sampling_probability=prob if corrected else None,
            candidate_ids=ids if accidental else None,
            score_mask=mask if masked else None,
        )
        tf_task = tfrs.tasks.Retrieval(
            temperature=temperature, num_hard_negatives=hard, remove_accidental_hits=accidental
        )
        tq, tc = tf.Variable(q), tf.Variable(c)
        with tf.GradientTape() as tape:
            tf_loss = tf_task(
                tq, tc, **{k: (tf.constant(v) if v is not None else None) for k, v in call.items()}
            )
        tf_gq, tf_gc = tape.gradient(tf_loss, [tq, tc])

        task = Retrieval(
            temperature=temperature, num_hard_negatives=hard, remove_accidental_hits=accidental
        )
        pq = torch.tensor(q, requires_grad=True)
        pc = torch.tensor(c, requires_grad=True)
        loss = task(
            pq, pc, **{k: (torch.as_tensor(v) if v is not None else None) for k, v in call.items()}
        )
        loss.backward()

        expected = float(tf_loss.numpy())
        assert loss.item() == pytest.approx(expected, rel=1e-5), (i, loss.item(), expected)
        np.testing.assert_allclose(
            pq.grad.numpy(), tf_gq.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(i)
        )
        np.testing.assert_allclose(
            pc.grad.numpy(), tf_gc.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(i)
        )
        worst = max(worst, abs(loss.item() - expected) / max(abs(expected), 1e-12))
    assert worst < 1e-5
