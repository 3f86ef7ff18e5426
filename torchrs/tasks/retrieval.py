"""A factorized retrieval task, as ``tfrs.tasks.Retrieval``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torchmetrics
from torch import Tensor, nn

from torchrs.functional import retrieval as _F
from torchrs.functional.retrieval import MIN_FLOAT
from torchrs.metrics.factorized_top_k import Factorized
from torchrs.metrics.keras_metric import update_metric
from torchrs.tasks.base import Task

__all__ = ["MIN_FLOAT", "Retrieval"]


class Retrieval(Task):
    """A factorized retrieval task: in-batch softmax over query x candidate scores.

    Row ``i`` of the queries chose candidate ``i``; every other candidate in the batch is a negative. The loss
    is categorical cross-entropy from logits with SUM reduction over the batch (TFRS's default). The loss is
    :func:`torchrs.functional.retrieval.retrieval_task_loss`: with the default loss, no option that changes the
    labels (hard negatives, accidental hits, score mask) and no batch metric to update in this call, it runs
    fused: scores, softmax and both gradients in one cache-sized pass, never materialising the (Q, C) score or
    label matrix.

    Args:
        loss: a Keras-style loss ``loss(y_true, y_pred, sample_weight=None)``; defaults to
            ``CategoricalCrossentropy(from_logits=True, reduction="sum")`` (fused).
        metrics: a ``Factorized`` metric or a sequence of them, updated when ``compute_metrics``.
        batch_metrics: metrics updated with ``(labels, scores)`` of the batch.
        loss_metrics: metrics updated with the loss.
        temperature: divides the scores when given.
        num_hard_negatives: keep only this many hardest negatives per row when given.
        remove_accidental_hits: push down negatives that share the positive's ``candidate_ids``.
        name: optional task name.

    >>> import torch
    >>> task = Retrieval()
    >>> task(torch.zeros(2, 4), torch.zeros(2, 4))  # two rows of log(2), summed
    tensor(1.3863)
    """

    def __init__(
        self,
        loss: Callable[..., Tensor] | None = None,
        metrics: Factorized | Sequence[Factorized] | None = None,
        batch_metrics: Sequence[torchmetrics.Metric] | None = None,
        loss_metrics: Sequence[torchmetrics.Metric] | None = None,
        temperature: float | None = None,
        num_hard_negatives: int | None = None,
        remove_accidental_hits: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if metrics is None:
            metrics = []
        if not isinstance(metrics, Sequence):
            metrics = [metrics]
        if num_hard_negatives is not None and num_hard_negatives < 0:
            raise ValueError(
                f"`num_hard_negatives` must be None or >= 0 (got {num_hard_negatives})."
            )
        if temperature is not None and temperature == 0:
            raise ValueError("`temperature` must be non-zero (got 0); use None for no temperature.")
        self._loss = loss
        self._factorized_metrics = nn.ModuleList(metrics)
        self._batch_metrics = nn.ModuleList(batch_metrics or [])
        self._loss_metrics = nn.ModuleList(loss_metrics or [])
        self._temperature = temperature
        self._num_hard_negatives = num_hard_negatives
        self._remove_accidental_hits = remove_accidental_hits
        self.name = name or "retrieval"

    @property
    def factorized_metrics(self) -> Sequence[Factorized]:
        """The metrics object used to compute retrieval metrics."""
        return [cast(Factorized, metric) for metric in self._factorized_metrics]

    @factorized_metrics.setter
    def factorized_metrics(self, value: Factorized | Sequence[Factorized] | None) -> None:
        if isinstance(value, Factorized):
            value = [value]
        if not isinstance(value, Sequence):
            value = []
        self._factorized_metrics = nn.ModuleList(value)

    def forward(
        self,
        query_embeddings: Tensor,
        candidate_embeddings: Tensor,
        sample_weight: Tensor | None = None,
        candidate_sampling_probability: Tensor | None = None,
        candidate_ids: Any = None,
        compute_metrics: bool = True,
        compute_batch_metrics: bool = True,
        score_mask: Tensor | None = None,
    ) -> Tensor:
        """Computes the task loss and updates the metrics.

        Args:
            query_embeddings: ``(Q, D)`` queries, or ``(Q, H, D)`` multi-head queries (max over heads;
                factorized metrics are then skipped, as in TFRS).
            candidate_embeddings: ``(C, D)`` candidates, ``C >= Q``: extra rows are extra negatives.
            sample_weight: ``(Q,)`` weights.
            candidate_sampling_probability: ``(C,)`` sampling probabilities for the log-Q correction.
            candidate_ids: ``(C,)`` identifiers (ints or strings); used for accidental-hit removal and make the
                factorized metrics id-based.
            compute_metrics: update the factorized metrics (slow: they range over the whole corpus).
            compute_batch_metrics: update the batch metrics.
            score_mask: ``(Q, C)`` boolean: False excludes a candidate from the loss.

        Returns:
            The scalar loss.
        """
        update_batch_metrics = compute_batch_metrics and len(self._batch_metrics) > 0
        out = _F.retrieval_task_loss(
            query_embeddings,
            candidate_embeddings,
            sample_weight=sample_weight,
            candidate_sampling_probability=candidate_sampling_probability,
            candidate_ids=candidate_ids,
            score_mask=score_mask,
            temperature=self._temperature,
            num_hard_negatives=self._num_hard_negatives,
            remove_accidental_hits=self._remove_accidental_hits,
            loss=self._loss,
            return_scores=update_batch_metrics,
        )
        self._update_metrics(
            out.loss,
            query_embeddings,
            candidate_embeddings,
            sample_weight,
            candidate_ids,
            compute_metrics,
            out.scores if update_batch_metrics else None,
            out.labels,
        )
        return out.loss

    @staticmethod
    def _metrics(modules: nn.ModuleList) -> list[torchmetrics.Metric]:
        return [cast(torchmetrics.Metric, metric) for metric in modules]

    # Metric updates run eagerly under torch.compile (Model.compile(jit_compile=True)): torchmetrics keeps Python
    # counters that would make dynamo recompile at every step.
    @torch.compiler.disable
    def _update_metrics(
        self,
        loss: Tensor,
        query_embeddings: Tensor,
        candidate_embeddings: Tensor,
        sample_weight: Any,
        candidate_ids: Any,
        compute_metrics: bool,
        scores: Tensor | None,
        labels: Tensor | None,
    ) -> None:
        for metric in self._metrics(self._loss_metrics):
            metric.update(loss.detach())

        if compute_metrics and query_embeddings.dim() == 2:
            num_queries = query_embeddings.shape[0]
            for metric in self._metrics(self._factorized_metrics):
                metric.update(
                    query_embeddings,
                    # Only the first num_queries candidates are positives; the rest are extra negatives.
                    candidate_embeddings[:num_queries],
                    true_candidate_ids=candidate_ids,
                    sample_weight=sample_weight,
                )

        if scores is not None:
            with torch.no_grad():
                dense = labels if labels is not None else _F.eye_labels(*scores.shape, like=scores)
                for metric in self._metrics(self._batch_metrics):
                    update_metric(metric, dense, scores.detach(), sample_weight)
