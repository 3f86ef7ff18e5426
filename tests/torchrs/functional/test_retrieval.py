"""functional.retrieval: each step on hand-derived values; the fused loss against the step-by-step path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrs.functional import retrieval as F


def test_accidental_hits_more_queries_than_candidates() -> None:
    # Row 2 has no positive (argmax of a zero row is column 0, as in TF): columns sharing id[0] are hits.
    hits = F.accidental_hits(None, torch.tensor([4, 4]), num_queries=3)
    assert hits.tolist() == [[False, True], [True, False], [True, True]]


def test_sampling_correction_clips() -> None:
    # p = 0 is clipped to 1e-6: -log(1e-6) = 13.8155...
    out = F.sampling_probability_correction(torch.zeros(1, 2), torch.tensor([0.0, 2.0]))
    assert out[0].tolist() == pytest.approx([6 * math.log(10), 0.0], rel=1e-6)


def test_hard_negative_mining_caps_at_num_candidates() -> None:
    logits, labels = F.hard_negative_mining(
        torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]]), 10
    )
    assert logits.shape == (1, 2) and labels.sum().item() == 1.0


def test_as_id_tensor_strings_and_bytes_agree() -> None:
    assert (
        F.as_id_tensor(["é", "a"]).tolist()
        == F.as_id_tensor(np.array(["é".encode(), b"a"], dtype=object)).tolist()
    )
    with pytest.raises(ValueError, match=r"must be 1-D.*\(2, 2\)"):
        F.as_id_tensor(torch.zeros(2, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("num_queries", "num_candidates"), [(1, 1), (7, 7), (130, 300), (300, 300)]
)
def test_fused_equals_step_by_step(seed: int, num_queries: int, num_candidates: int) -> None:
    # Same math, different summation order: 1e-5 relative on the loss, 1e-5 of the largest gradient entry.
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(num_queries, 16, generator=g, requires_grad=True)
    c = torch.randn(num_candidates, 16, generator=g, requires_grad=True)
    options = dict(
        sample_weight=torch.rand(num_queries, generator=g),
        temperature=0.7,
        candidate_sampling_probability=torch.rand(num_candidates, generator=g),
    )
    fused = F.in_batch_softmax_loss(q, c, chunk=64, **options)
    fused_grads = torch.autograd.grad(2.0 * fused, [q, c])
    scores, labels = F.retrieval_logits(
        q,
        c,
        temperature=0.7,
        candidate_sampling_probability=options["candidate_sampling_probability"],
    )
    reference = F.retrieval_loss(scores, labels, sample_weight=options["sample_weight"])
    reference_grads = torch.autograd.grad(2.0 * reference, [q, c])
    assert fused.item() == pytest.approx(reference.item(), rel=1e-5)
    for got, want in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_fused_loss_of_a_positive_whose_probability_underflows() -> None:
    # Row 0's positive scores 200 below the row's best: softmax gives it probability exp(-200), 0 in float32,
    # where -log p would be inf. The fused loss redoes such rows with logsumexp from the scores; rows 1-2 keep
    # -log p. Hand-derived: row 0 is 200 + log(1 + 2 e^-200 ...) ~ 200 (scores 0 / 200 / 0 against [q0 = e1]),
    # and the total equals the float64 step-by-step loss to float32 rounding.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    c = torch.tensor([[0.0, 0.0], [200.0, 0.0], [0.0, 1.0]])
    loss = F.in_batch_softmax_loss(q, c)
    scores = q.double() @ c.double().T
    expected = (torch.logsumexp(scores, 1) - scores.diagonal()).sum()
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert float(torch.logsumexp(scores[0], 0) - scores[0, 0]) == pytest.approx(200.0, rel=1e-9)
    grads = torch.autograd.grad(
        F.in_batch_softmax_loss(q.requires_grad_(), c.requires_grad_()), [q, c]
    )
    reference = torch.autograd.grad(F.retrieval_loss(*F.retrieval_logits(q, c)), [q, c])
    for got, want in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


def test_fused_without_grad_and_bad_shapes() -> None:
    loss = F.in_batch_softmax_loss(torch.zeros(2, 3), torch.zeros(2, 3))
    assert loss.item() == pytest.approx(2 * math.log(2))
    with pytest.raises(ValueError, match="num_queries <= num_candidates"):
        F.in_batch_softmax_loss(torch.zeros(3, 3), torch.zeros(2, 3))


_Q, _C, _D = 3, 5, 4


@pytest.mark.parametrize(
    ("options", "fused"),
    [
        ({}, True),
        ({"temperature": 0.5, "sample_weight": torch.ones(_Q)}, True),
        ({"candidate_sampling_probability": torch.full((_C,), 0.2)}, True),
        ({"return_scores": True}, False),
        ({"num_hard_negatives": 2}, False),
        ({"remove_accidental_hits": True, "candidate_ids": torch.arange(_C)}, False),
        ({"score_mask": torch.ones(_Q, _C, dtype=torch.bool)}, False),
        ({"query_embeddings": torch.randn(_Q, 2, _D)}, False),
        ({"query_embeddings": torch.randn(_C + 1, _D)}, False),
    ],
)
def test_one_choice_between_fused_and_step_by_step(options: dict, fused: bool) -> None:
    # `fuses` is the only decision; retrieval_task_loss follows it (no score matrix when fused) and both
    # paths give the same loss: 1e-6 relative (float32 sums of a few terms in another order).
    g = torch.Generator().manual_seed(0)
    q = options.pop("query_embeddings", torch.randn(_Q, _D, generator=g))
    c = torch.randn(_C, _D, generator=g)
    decision = {
        k: v
        for k, v in options.items()
        if k in ("remove_accidental_hits", "score_mask", "num_hard_negatives", "return_scores")
    }
    assert F.fuses(q, c, **decision) is fused
    out = F.retrieval_task_loss(q, c, **options)
    assert (out.scores is None) is fused
    if fused:
        step_by_step = F.retrieval_task_loss(q, c, **options, loss=None, return_scores=True)
        assert step_by_step.scores is not None
        assert out.loss.item() == pytest.approx(step_by_step.loss.item(), rel=1e-6)


def test_custom_loss_never_fuses() -> None:
    from torchrs.losses import CategoricalCrossentropy

    loss = CategoricalCrossentropy(from_logits=True, reduction="sum")
    assert not F.fuses(torch.zeros(2, 3), torch.zeros(2, 3), loss=loss)
