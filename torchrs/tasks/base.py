"""Base task class."""

from __future__ import annotations

import torchmetrics
from torch import nn

from torchrs.metrics.factorized_top_k import Factorized


class Task(nn.Module):
    """Base class of tasks, as ``tfrs.tasks.Task``: a module that turns model outputs into a loss.

    >>> from torchrs.metrics import RootMeanSquaredError
    >>> from torchrs.tasks import Ranking
    >>> [m.name for m in Ranking(metrics=[RootMeanSquaredError()]).metrics]
    ['root_mean_squared_error']
    """

    @property
    def metrics(self) -> list[torchmetrics.Metric]:
        """Keras's ``Layer.metrics``: the metrics the task holds, in Keras's order. Reset them with
        ``for m in task.metrics: m.reset_states()`` (or torch's ``m.reset()``).

        Keras lists a layer's own metrics first, then those of its sub-layers. TFRS's ``FactorizedTopK`` is a
        layer holding one ``Mean`` per ``k``, so ``Retrieval.metrics`` lists the batch and loss metrics, then the
        top-K ones; here ``FactorizedTopK`` is one metric (reporting every ``k``), listed in that last place.
        """
        found: list[torchmetrics.Metric] = []

        def collect(module: nn.Module) -> None:
            for child in module.children():
                if isinstance(child, torchmetrics.Metric):
                    if not any(child is m for m in found):
                        found.append(child)
                else:
                    collect(child)

        collect(self)
        return [m for m in found if not isinstance(m, Factorized)] + [
            m for m in found if isinstance(m, Factorized)
        ]
