"""Listwise ranking losses (tfr.keras.losses semantics): hand-derived values, then tensorflow-ranking itself.

The first tests derive every expected number by hand from tfr's definitions (losses_impl.py / keras/losses.py),
in the comments. The ``tf``-marked tests at the end compare with tensorflow-ranking 0.5.5's own Keras losses
(the ``tfr`` fixture) on random lists, values and gradients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchrs.functional.listwise import (
    list_mle_loss,
    listwise_weights,
    pairwise_hinge_loss,
    pairwise_weights,
)
from torchrs.losses import MeanSquaredError
from torchrs.losses.listwise import ListMLELoss, PairwiseHingeLoss
from torchrs.metrics.ranking import NDCGMetric
from torchrs.tasks import Ranking

# log(e^a + e^b) - a, the ListMLE term of an item scored a ahead of one scored b.
LSE_06_08 = math.log(math.exp(0.6) + math.exp(0.8)) - 0.6  # 0.798139


# --------------------------------------------------------------------------------------- PairwiseHingeLoss
def test_pairwise_hinge_tfr_docstring_value() -> None:
    # y = (1, 0), s = (0.6, 0.8): one pair (0, 1): relu(1 - (0.6 - 0.8)) = 1.2; per-item losses (1.2, 0);
    # SUM_OVER_BATCH_SIZE divides by B * L = 2 -> 0.6 (tfr's docstring value).
    loss = PairwiseHingeLoss()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    assert loss.item() == pytest.approx(0.6, rel=1e-6)


def test_pairwise_hinge_ignores_padding_but_counts_it_in_the_mean() -> None:
    # Item 2 is padding (label -1), so only the pair (0, 1) counts: relu(1 - 0.5) = 0.5.
    # The mean still divides by B * L = 3 items: 0.5 / 3.
    loss = PairwiseHingeLoss()(torch.tensor([[2.0, 1.0, -1.0]]), torch.tensor([[0.5, 0.0, 9.0]]))
    assert loss.item() == pytest.approx(0.5 / 3, rel=1e-6)


def test_pairwise_hinge_item_and_list_weights() -> None:
    labels, scores = torch.tensor([[2.0, 1.0, 0.0]]), torch.zeros(1, 3)
    # All scores 0, so every pair with y_i > y_j costs relu(1 - 0) = 1: item 0 has pairs (0,1), (0,2) -> 2;
    # item 1 has (1,2) -> 1; item 2 none. Item weights apply to the first item of a pair:
    # (2*2 + 3*1 + 1*0) / 3 items = 7 / 3.
    item = PairwiseHingeLoss()(labels, scores, sample_weight=torch.tensor([[2.0, 3.0, 1.0]]))
    assert item.item() == pytest.approx(7 / 3, rel=1e-6)
    # A per-list weight w multiplies every item: 2 * (2 + 1) / 3 = 2.
    listwise = PairwiseHingeLoss()(labels, scores, sample_weight=torch.tensor([[2.0]]))
    assert listwise.item() == pytest.approx(2.0, rel=1e-6)
    # A scalar weight is the same as a per-list one.
    assert PairwiseHingeLoss()(
        labels, scores, sample_weight=torch.tensor(2.0)
    ).item() == pytest.approx(2.0)


def test_pairwise_hinge_reductions_and_gradient() -> None:
    labels, scores = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]], requires_grad=True)
    # reduction none: the weighted per-item losses (1.2, 0); sum: 1.2.
    none = PairwiseHingeLoss(reduction="none")(labels, scores)
    torch.testing.assert_close(none, torch.tensor([[1.2, 0.0]]))
    assert PairwiseHingeLoss(reduction="sum")(labels, scores).item() == pytest.approx(1.2)
    # loss = relu(1 - s0 + s1) / 2 with the hinge active: d/ds0 = -1/2, d/ds1 = +1/2.
    PairwiseHingeLoss()(labels, scores).backward()
    torch.testing.assert_close(scores.grad, torch.tensor([[-0.5, 0.5]]))


def test_pairwise_hinge_divides_scores_by_temperature() -> None:
    # tfr's Keras _PairwiseLoss.call applies get_logits: s / 0.5 = (1.2, 1.6), relu(1 - (1.2 - 1.6)) = 1.4,
    # / 2 items = 0.7 (tfr gives 0.7; see test_pairwise_hinge_matches_tfr).
    loss = PairwiseHingeLoss(temperature=0.5)(
        torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]])
    )
    assert loss.item() == pytest.approx(0.7, rel=1e-6)


def test_pairwise_functions() -> None:
    # Per item: item 0 beats item 2 (margin 1 - (3 - 1) < 0 -> 0) and ties item 1 (no pair): 0.
    # Item 1 beats item 2: relu(1 - (0 - 1)) = 2.
    losses = pairwise_hinge_loss(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[3.0, 0.0, 1.0]]))
    torch.testing.assert_close(losses, torch.tensor([[0.0, 2.0, 0.0]]))
    torch.testing.assert_close(
        pairwise_weights(torch.tensor([[1.0, -1.0]])), torch.tensor([[1.0, 0.0]])
    )


# --------------------------------------------------------------------------------------------- ListMLELoss
def test_list_mle_two_items() -> None:
    # Order by label: (item 0: 0.6, item 1: 0.8). -log P = [log(e^.6 + e^.8) - .6] + [log(e^.8) - .8] = 0.798139
    # (tfr's docstring value 0.7981389); the batch mean of one list is that value.
    loss = ListMLELoss()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    assert loss.item() == pytest.approx(LSE_06_08, rel=1e-6)


def test_list_mle_three_items() -> None:
    # Labels (3, 1, 2) order the scores (1, 3, 2): terms log(e^1 + e^3 + e^2) - 1 = 2.407606,
    # log(e^3 + e^2) - 3 = 0.313262, log(e^2) - 2 = 0 -> 2.720868.
    expected = (math.log(math.e + math.e**3 + math.e**2) - 1) + (
        math.log(math.e**3 + math.e**2) - 3
    )
    loss = ListMLELoss()(torch.tensor([[3.0, 1.0, 2.0]]), torch.tensor([[1.0, 2.0, 3.0]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(2.720868, rel=1e-6)


def test_list_mle_padding_keeps_tfr_log_count_terms() -> None:
    # Padded items get the logit log(1e-10) and sort last: the valid terms are unchanged (up to a 1e-10
    # share), but with two padded items tfr adds log(2) (their own Plackett-Luce term) + log(1) = 0.
    loss = ListMLELoss()(
        torch.tensor([[1.0, 0.0, -1.0, -1.0]]), torch.tensor([[0.6, 0.8, 50.0, -3.0]])
    )
    assert loss.item() == pytest.approx(LSE_06_08 + math.log(2), rel=1e-6)


def test_list_mle_temperature_divides_scores() -> None:
    # Scores / 0.5 = (1.2, 1.6): log(e^1.2 + e^1.6) - 1.2 = 0.913015.
    loss = ListMLELoss(temperature=0.5)(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    assert loss.item() == pytest.approx(math.log(math.exp(1.2) + math.exp(1.6)) - 1.2, rel=1e-6)


def test_list_mle_weights_and_gradient() -> None:
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    scores = torch.tensor([[0.6, 0.8], [0.0, 0.0]], requires_grad=True)
    # Unweighted: list 1 costs 0.798139, list 2 (equal scores, any order) log(2) = 0.693147; mean 0.745643.
    assert ListMLELoss()(labels, scores).item() == pytest.approx(
        (LSE_06_08 + math.log(2)) / 2, rel=1e-6
    )
    # Per-list weights (2, 3): tfr's weight is Σ w·y / Σ y, which is 0 for the all-zero list 2:
    # (2 * 0.798139 + 0) / 2 lists = 0.798139.
    weighted = ListMLELoss()(labels, scores, sample_weight=torch.tensor([[2.0], [3.0]]))
    assert weighted.item() == pytest.approx(LSE_06_08, rel=1e-6)
    # loss = (2 * L1 + 0 * L2) / 2 = L1 with L1 = log(e^a + e^b) - a: d/d(a, b) = (p - 1, 1 - p) where
    # p = e^a / (e^a + e^b); list 2 has weight 0, so no gradient.
    weighted.backward()
    p = math.exp(0.6) / (math.exp(0.6) + math.exp(0.8))
    torch.testing.assert_close(scores.grad[0], torch.tensor([p - 1, 1 - p]))
    torch.testing.assert_close(scores.grad[1], torch.zeros(2))  # weight 0


def test_listwise_weights_function() -> None:
    # Item weights (2, 4) with labels (1, 3): (2*1 + 4*3) / (1 + 3) = 3.5; all-zero labels -> 0.
    weights = listwise_weights(
        torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[2.0, 4.0], [5.0, 5.0]])
    )
    torch.testing.assert_close(weights, torch.tensor([[3.5], [0.0]]))
    assert listwise_weights(torch.tensor([[1.0]]), None) is None


def test_list_mle_ties_are_shuffled_with_torch_rng() -> None:
    # Equal labels: tfr orders tied items at random. Orders (0, 1) and (1, 0) give
    # log(e^0 + e^2) - 0 = 2.126928 and log(e^0 + e^2) - 2 = 0.126928.
    labels, scores = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 2.0]])
    lse = math.log(1 + math.exp(2))
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        seen.add(round(ListMLELoss()(labels, scores).item(), 5))
    assert seen == {round(lse, 5), round(lse - 2, 5)}
    # The same seed reproduces the draw.
    torch.manual_seed(7)
    first = ListMLELoss()(labels, scores)
    torch.manual_seed(7)
    assert ListMLELoss()(labels, scores).item() == first.item()
    # Without ties the generator does not matter.
    generator = torch.Generator().manual_seed(123)
    value = list_mle_loss(torch.tensor([[3.0, 1.0]]), scores, generator=generator)
    torch.testing.assert_close(value, torch.tensor([[lse]]))


def test_list_mle_reduction_none_shape() -> None:
    losses = ListMLELoss(reduction="none")(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.6, 0.8]] * 2)
    )
    # List 2 puts item 1 (0.8) first: log(e^.6 + e^.8) - .8.
    torch.testing.assert_close(losses, torch.tensor([[LSE_06_08], [LSE_06_08 - 0.2]]))


# ----------------------------------------------------------------------------------------- MSE and tasks
def test_mean_squared_error_on_lists_is_keras_mse() -> None:
    # The tutorial's pointwise model: per-list mean of squared errors ((0 + 4) / 2 = 2 for both lists),
    # then the mean over the 2 lists = 2.
    loss = MeanSquaredError()(
        torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[1.0, 4.0], [3.0, 3.0]])
    )
    assert loss.item() == pytest.approx(2.0)


def test_listwise_losses_in_a_ranking_task() -> None:
    ndcg = NDCGMetric(name="ndcg_metric")
    task = Ranking(loss=PairwiseHingeLoss(), metrics=[ndcg])
    loss = task(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))
    assert loss.item() == pytest.approx(0.6, rel=1e-6)
    # Ranked (item 1, item 0): DCG = 1 / log2(3) = 0.63093; ideal 1.
    assert ndcg.result().item() == pytest.approx(1 / math.log2(3), rel=1e-6)


# ----------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("loss_cls", [PairwiseHingeLoss, ListMLELoss])
def test_bad_inputs(loss_cls: type) -> None:
    loss = loss_cls()
    with pytest.raises(ValueError, match=r"shape \(batch_size, list_size\), got shape \(3,\)"):
        loss(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"same shape, got labels \(1, 2\) and scores \(1, 3\)"):
        loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.1, 0.2, 0.3]]))
    with pytest.raises(
        ValueError, match=r"`sample_weight` must be a scalar, per-list .* got shape \(2,\)"
    ):
        loss(
            torch.tensor([[1.0, 0.0]]),
            torch.tensor([[0.1, 0.2]]),
            sample_weight=torch.tensor([1.0, 2.0]),
        )
    with pytest.raises(ValueError, match="lambda_weight=.* is not supported"):
        loss_cls(lambda_weight="ndcg")
    with pytest.raises(ValueError, match=r"ragged=True\) is not supported.*label -1"):
        loss_cls(ragged=True)
    with pytest.raises(ValueError, match="`temperature` must be a positive number, got 0"):
        loss_cls(temperature=0)
    with pytest.raises(ValueError, match="Invalid `reduction` 'mean'"):
        loss_cls(reduction="mean")


# ------------------------------------------------------------------------------- tensorflow-ranking reference
# tfr's ListMLE draws its tie-breaking values with this op-level seed (losses_impl.ListMLELoss: seed=37);
# with the same global seed, `tf.random.uniform(shape, seed=37)` replays the draw the loss makes next.
TFR_LIST_MLE_OP_SEED = 37
WEIGHTINGS = ("none", "scalar", "per_list", "per_item")


def _random_lists(
    seed: int, ties: bool, batch: int = 12, list_size: int = 6
) -> dict[str, np.ndarray]:
    """Padded ("ragged-ish") lists: graded labels, -1 padding, scores and weights of every kind.

    Row 0 is full length, row 1 a single item (label 0, so tfr's listwise weight Σw·y / Σy is 0), row 2 all
    padding; the others have random lengths. ``ties=False`` makes the valid labels of a list distinct (a
    permutation of 0 .. n-1); ``ties=True`` draws grades 0..3, so most lists hold ties.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, list_size + 1, size=batch)
    lengths[:3] = (list_size, 1, 0)
    labels = np.full((batch, list_size), -1.0, np.float32)
    for row, n in enumerate(lengths):
        labels[row, :n] = rng.integers(0, 4, size=n) if ties else rng.permutation(n)
    if ties:
        labels[1, 0] = 0.0
    item_weights = rng.uniform(0.0, 2.0, size=(batch, list_size)).astype(np.float32)
    item_weights[3, 0] = 0.0  # a zero item weight
    return {
        "labels": labels,
        # N(0, 2): hinge margins and softmax terms of every size; continuous, so no two scores are equal and
        # no pair sits exactly on the hinge's kink.
        "scores": rng.normal(0.0, 2.0, size=(batch, list_size)).astype(np.float32),
        "none": None,
        "scalar": np.float32(1.5),
        "per_list": rng.uniform(0.5, 2.0, size=(batch, 1)).astype(np.float32),
        "per_item": item_weights,
    }


def _tf_value_and_grad(tf, loss, labels, scores, weights):
    s = tf.constant(scores)
    with tf.GradientTape() as tape:
        tape.watch(s)
        value = loss(tf.constant(labels), s, sample_weight=weights)
        total = tf.reduce_sum(value)
    return value.numpy(), tape.gradient(total, s).numpy()


def _torch_value_and_grad(loss, labels, scores, weights):
    s = torch.tensor(scores, requires_grad=True)
    value = loss(
        torch.from_numpy(labels),
        s,
        sample_weight=None if weights is None else torch.tensor(weights),
    )
    value.sum().backward()
    return value.detach().numpy(), s.grad.numpy()


# Tolerances against tfr (rtol 1e-5 + atol 1e-5 on values and gradients), by loss:
# - PairwiseHingeLoss, labels with ties (tied pairs count in neither direction) and padding: float32 sums of
#   <= 36 pair terms (and their mean) in another order, measured over 8 seeds <= 1.9e-7 relative (1.5e-5
#   absolute on sums up to 248); gradients are sums of +-w / T terms, measured <= 3.7e-9.
# - ListMLELoss, distinct labels per list so tfr's random tie-breaking has nothing to break (the all-padding
#   row is tied, but all its logits are log(1e-10), so every order gives log(6!)): sums of L log-sum-exp terms
#   in float32, measured over 8 seeds <= 1.8e-6 relative (3.1e-5 absolute on sums up to 248); gradients (|g| up
#   to 17) <= 1.9e-6 absolute, i.e. float32 epsilon x |g|.
# A wrong pair direction, sort direction, padding rule or reduction is >= 1e-2 off, a wrong list weight a factor.
@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("name", "torch_loss", "ties"),
    [("PairwiseHingeLoss", PairwiseHingeLoss, True), ("ListMLELoss", ListMLELoss, False)],
)
def test_loss_matches_tfr(tf, tfr, seed: int, name: str, torch_loss: type, ties: bool) -> None:
    data = _random_lists(seed, ties=ties)
    for weighting in WEIGHTINGS:
        for reduction in ("auto", "sum", "none"):
            for temperature in (1.0, 0.5):
                kwargs = {"reduction": reduction, "temperature": temperature}
                ref, ref_grad = _tf_value_and_grad(
                    tf,
                    getattr(tfr.losses, name)(**kwargs),
                    data["labels"],
                    data["scores"],
                    data[weighting],
                )
                got, grad = _torch_value_and_grad(
                    torch_loss(**kwargs), data["labels"], data["scores"], data[weighting]
                )
                where = f"{weighting=} {reduction=} {temperature=}"
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=where)
                np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-5, err_msg=where)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_list_mle_replays_tfr_tie_breaking(tf, tfr, seed: int) -> None:
    # With ties tfr's ListMLE is random (it shuffles tied items on every call with tf.random.uniform(seed=37)).
    # To compare exactly, the draw is replayed: after tf.random.set_seed(g) the eager op
    # uniform(shape, seed=37) returns the values the loss draws next after the same set_seed(g); torchrs gets
    # them as `shuffle_values`. Tolerances as in the tie-free test.
    data = _random_lists(seed, ties=True)
    labels, scores = data["labels"], data["scores"]
    values_per_draw = []
    for global_seed in (10, 11, 12):
        for temperature in (1.0, 0.5):
            tf.random.set_seed(global_seed)
            draw = tf.random.uniform(labels.shape, seed=TFR_LIST_MLE_OP_SEED).numpy()
            tf.random.set_seed(global_seed)
            ref, ref_grad = _tf_value_and_grad(
                tf,
                tfr.losses.ListMLELoss(reduction="none", temperature=temperature),
                labels,
                scores,
                None,
            )
            s = torch.tensor(scores, requires_grad=True)
            got = list_mle_loss(
                torch.from_numpy(labels), s / temperature, shuffle_values=torch.from_numpy(draw)
            )
            got.sum().backward()
            where = f"{global_seed=} {temperature=}"
            np.testing.assert_allclose(
                got.detach().numpy(), ref, rtol=1e-5, atol=1e-5, err_msg=where
            )
            np.testing.assert_allclose(
                s.grad.numpy(), ref_grad, rtol=1e-5, atol=1e-5, err_msg=where
            )
            if temperature == 1.0:
                values_per_draw.append(ref)
    # The draws really differ in outcome (else this test could not tell a tie rule from another).
    assert not np.allclose(values_per_draw[0], values_per_draw[1]) or not np.allclose(
        values_per_draw[0], values_per_draw[2]
    )


@pytest.mark.tf
def test_mean_squared_error_on_lists_matches_the_tutorial_keras_loss(tf) -> None:
    # The tutorial's pointwise model uses tf.keras.losses.MeanSquaredError on (B, L) lists: the per-list mean,
    # then SUM_OVER_BATCH_SIZE over lists. Float32 means of <= 6 squares: measured <= 4.8e-7 relative.
    data = _random_lists(0, ties=True)
    labels = np.abs(data["labels"])  # the tutorial's lists have no padding
    for weighting in ("none", "per_list"):
        ref, ref_grad = _tf_value_and_grad(
            tf, tf.keras.losses.MeanSquaredError(), labels, data["scores"], data[weighting]
        )
        got, grad = _torch_value_and_grad(
            MeanSquaredError(), labels, data["scores"], data[weighting]
        )
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-7)
