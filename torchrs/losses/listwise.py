"""Listwise ranking losses of tensorflow-ranking (``tfr.keras.losses``) used by the TFRS listwise tutorial.

``tfrs.tasks.Ranking(loss=tfr.keras.losses.PairwiseHingeLoss())`` becomes
``torchrs.tasks.Ranking(loss=torchrs.losses.PairwiseHingeLoss())``; the pointwise model of that tutorial uses
``MeanSquaredError``, which is :class:`torchrs.losses.MeanSquaredError` (the per-list mean of squared errors,
then the mean over lists).

Inputs are ``(batch_size, list_size)`` labels and scores; pad short lists with label ``-1``. Losses are reduced
the Keras way (default ``"auto"`` = ``SUM_OVER_BATCH_SIZE``: the sum of the weighted per-item or per-list losses
divided by their count, padded items included). ``tensorflow-ranking`` is not a dependency: the math follows
its definitions (see :mod:`torchrs.functional.listwise`), and the tests compare values and gradients with
tensorflow-ranking 0.5.5 itself.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from torchrs.functional.listwise import (
    check_lists,
    list_mle_loss,
    listwise_weights,
    pairwise_hinge_loss,
    pairwise_weights,
)
from torchrs.functional.losses import compute_weighted_loss
from torchrs.losses.base import Loss

__all__ = ["ListMLELoss", "PairwiseHingeLoss"]


class _RankingLoss(Loss):
    """Shared arguments and checks of the tfr Keras losses."""

    def __init__(
        self,
        reduction: str = "auto",
        name: str | None = None,
        lambda_weight: Any = None,
        temperature: float = 1.0,
        ragged: bool = False,
    ) -> None:
        who = type(self).__name__
        if lambda_weight is not None:
            raise ValueError(
                f"{who}(lambda_weight={lambda_weight!r}) is not supported: only lambda_weight=None (the "
                "tfr default, used by the TFRS listwise tutorial) is."
            )
        if ragged:
            raise ValueError(
                f"{who}(ragged=True) is not supported: torch has no ragged tensors. Pad the lists to one "
                "length with label -1 (tfr's padding label); padded items are ignored."
            )
        if (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or temperature <= 0
        ):
            raise ValueError(
                f"{who}: `temperature` must be a positive number, got {temperature!r}."
            )
        super().__init__(reduction=reduction, name=name)
        self._lambda_weight = lambda_weight
        self._temperature = float(temperature)
        self._ragged = ragged

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Unweighted, unreduced losses: per item ``(B, L)`` (pairwise) or per list ``(B, 1)`` (listwise)."""
        raise NotImplementedError

    def _weights(self, y_true: Tensor, sample_weight: Tensor | None) -> Tensor | None:
        """tfr's weights of :meth:`call`'s losses from the labels and the user's ``sample_weight``."""
        raise NotImplementedError

    def forward(
        self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None
    ) -> Tensor:
        """Loss of a batch of lists.

        Args:
            y_true: ``(B, L)`` graded relevance, ``-1`` for padding.
            y_pred: ``(B, L)`` scores.
            sample_weight: optional scalar, per-list ``(B, 1)`` or per-item ``(B, L)`` weights.

        Returns:
            The reduced loss (with ``reduction="none"`` the weighted losses of :meth:`call`).
        """
        y_true, y_pred = check_lists(y_true, y_pred, type(self).__name__)
        weights = self._weights(y_true, sample_weight)
        return compute_weighted_loss(self.call(y_true, y_pred), weights, reduction=self.reduction)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "lambda_weight": self._lambda_weight,
            "temperature": self._temperature,
            "ragged": self._ragged,
        }


class PairwiseHingeLoss(_RankingLoss):
    """Pairwise hinge loss, as ``tfr.keras.losses.PairwiseHingeLoss``.

    ``loss_i = Σ_j I[y_i > y_j] · max(0, 1 - (s_i - s_j))`` per item, weighted by item ``i``'s weight (0 on
    padded items), then reduced: by default ``Σ_{b,i} w_bi · loss_bi / (B · L)``.

    The scores are divided by ``temperature`` first (tfr's Keras ``_PairwiseLoss.call`` applies
    ``get_logits``), so with ``temperature=T`` the margin is 1 on ``s / T``.

    Args:
        reduction: Keras reduction (``"auto"`` = ``"sum_over_batch_size"``, ``"sum"``, ``"none"``).
        name: loss name.
        lambda_weight: only ``None``.
        temperature: scores are divided by it.
        ragged: only ``False`` (pad with label -1).

    >>> import torch
    >>> loss = PairwiseHingeLoss()
    >>> loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))  # relu(1 - (0.6 - 0.8)) / 2 items
    tensor(0.6000)
    """

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Per-item losses ``(B, L)`` before weighting and reduction."""
        y_true, y_pred = check_lists(y_true, y_pred, type(self).__name__)
        return pairwise_hinge_loss(y_true, y_pred / self._temperature)

    def _weights(self, y_true: Tensor, sample_weight: Tensor | None) -> Tensor | None:
        return pairwise_weights(y_true, sample_weight)  # (B, L)


class ListMLELoss(_RankingLoss):
    """ListMLE loss, as ``tfr.keras.losses.ListMLELoss``: ``-log P(π_y | s)`` under Plackett-Luce, where
    ``π_y`` orders the items by descending label.

    Per list ``loss = Σ_i [log Σ_{k >= i} exp(s_(k) / T) - s_(i) / T]`` (``T`` the temperature), weighted by
    the list weight ``Σ w·y / Σ y`` and reduced; by default the mean over lists.

    Ties among labels are ordered at random on every call, as tfr does (``shuffle_ties=True``); the draw uses
    torch's global generator, so ``torch.manual_seed`` reproduces it. Lists without tied labels give a
    deterministic loss. Note tfr's own quirks, kept: padded items still add ``log(number of padded items
    left)`` terms, and a list whose labels are all 0 gets weight 0 once a ``sample_weight`` is passed.

    Args:
        reduction: Keras reduction (``"auto"`` = ``"sum_over_batch_size"``, ``"sum"``, ``"none"``).
        name: loss name.
        lambda_weight: only ``None``.
        temperature: scores are divided by it.
        ragged: only ``False`` (pad with label -1).

    >>> import torch
    >>> ListMLELoss()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.6, 0.8]]))  # log(e^.6 + e^.8) - .6
    tensor(0.7981)
    """

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Per-list losses ``(B, 1)`` before weighting and reduction."""
        y_true, y_pred = check_lists(y_true, y_pred, type(self).__name__)
        return list_mle_loss(y_true, y_pred / self._temperature)

    def _weights(self, y_true: Tensor, sample_weight: Tensor | None) -> Tensor | None:
        return listwise_weights(y_true, sample_weight)  # (B, 1) or None
