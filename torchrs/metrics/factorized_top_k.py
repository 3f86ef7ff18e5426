"""Factorized retrieval top-K metrics, as ``tfrs.metrics.FactorizedTopK``.

The matching math lives in :mod:`torchrs.functional.top_k_metrics`; this module keeps the state: one weighted
hit count per ``k``, as torchmetrics states (``dist_reduce_fx="sum"``) so the metric syncs under DDP.
"""

from __future__ import annotations

import abc
import hashlib
import weakref
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchmetrics
from torch import Tensor, nn

from torchrs.data.mapped import MappedBatches
from torchrs.functional.top_k_metrics import id_based_hits, score_based_hits
from torchrs.layers.factorized_top_k import BruteForce, Streaming, TopK
from torchrs.metrics.keras_metric import quiet_compute


class Factorized(torchmetrics.Metric, abc.ABC):
    """Computes metrics across the top-K candidates surfaced by a retrieval model (abstract)."""

    full_state_update = False

    @abc.abstractmethod
    def update(
        self,
        query_embeddings: Tensor,
        true_candidate_embeddings: Tensor,
        true_candidate_ids: Any = None,
        sample_weight: Tensor | None = None,
    ) -> None:
        raise NotImplementedError()

    @abc.abstractmethod
    def metric_names(self) -> list[str]:
        """The Keras names of the values ``result()`` returns, in order."""

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Keras alias of ``update``."""
        self.update(*args, **kwargs)

    def result(self) -> list[Tensor]:
        """Keras alias of ``compute``: a list of metric values (zeros before any update, as in Keras)."""
        with quiet_compute():
            return self.compute()

    def reset_states(self) -> None:
        """Keras alias of ``reset``."""
        self.reset()


class FactorizedTopK(Factorized):
    """Top-K categorical accuracy over a corpus: how often the true candidate is in the top K for a query.

    Args:
        candidates: a ``TopK`` layer (used as is), a ``(N, D)`` tensor of candidate embeddings (indexed with
            ``BruteForce``), or an iterable of embedding batches or ``(identifiers, embeddings)`` batches
            (indexed with ``Streaming``, like TFRS does for a ``tf.data.Dataset``).
        ks: the values of ``k`` to report.
        name: prefix of the reported names, ``f"{name}/top_{k}_categorical_accuracy"``.

    Evaluation is id-based when ``true_candidate_ids`` is passed to ``update`` and score-based otherwise;
    see :mod:`torchrs.functional.top_k_metrics` for both rules.

    Batches given as an iterable are re-read at every update, as TFRS re-embeds its candidate dataset. In
    evaluation (queries that do not require grad) one pass is kept in :attr:`corpus_snapshot` and reused for as
    long as nothing the embeddings depend on has changed (:class:`CorpusState` says what is compared): same
    results, one embedding pass per evaluation instead of one per batch.

    Attributes:
        corpus_snapshot: the :class:`CorpusSnapshot` of the last pass over an iterable of batches, or ``None``
            (none yet, ``reset()``, or candidates given as a tensor / ``TopK`` layer).

    >>> import torch
    >>> metric = FactorizedTopK(candidates=torch.eye(3), ks=(1, 2))
    >>> metric.update(torch.tensor([[1.0, 0.5, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]))
    >>> [round(float(v), 2) for v in metric.result()]
    [0.0, 1.0]
    >>> metric.metric_names()
    ['factorized_top_k/top_1_categorical_accuracy', 'factorized_top_k/top_2_categorical_accuracy']
    """

    hits: Tensor
    weight: Tensor

    def __init__(
        self,
        candidates: TopK | Tensor | Iterable,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        name: str = "factorized_top_k",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) <= 0:
            raise ValueError(f"`ks` must be a non-empty sequence of positive integers (got {ks}).")
        source = None
        if isinstance(candidates, Tensor):
            candidates = BruteForce(k=max(ks)).index(candidates)
        elif not isinstance(candidates, TopK):
            if not isinstance(candidates, Iterable):
                raise TypeError(
                    "`candidates` must be a torchrs TopK layer, a (num_candidates, dim) tensor, or an iterable "
                    f"of candidate batches (got {type(candidates).__name__})."
                )
            source = candidates
            candidates = Streaming(k=max(ks)).index_from_dataset(candidates)
        self.name = name
        self._corpus_source = source
        self.corpus_snapshot: CorpusSnapshot | None = None
        self._ks = ks
        self._candidates = candidates
        self.add_state(
            "hits", default=torch.zeros(len(ks), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "weight", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )

    @property
    def ks(self) -> tuple[int, ...]:
        return self._ks

    @property
    def candidates(self) -> TopK:
        """The retrieval layer the metric queries."""
        return self._candidates

    def metric_names(self) -> list[str]:
        return [f"{self.name}/top_{k}_categorical_accuracy" for k in self._ks]

    def update(
        self,
        query_embeddings: Tensor,
        true_candidate_embeddings: Tensor,
        true_candidate_ids: Any = None,
        sample_weight: Tensor | None = None,
    ) -> None:
        """Updates the metrics.

        Args:
            query_embeddings: ``(Q, D)`` query embeddings.
            true_candidate_embeddings: ``(Q, D)`` embeddings of the candidates chosen for the queries.
            true_candidate_ids: identifiers of the true candidates; when given, evaluation is id-based.
            sample_weight: optional ``(Q,)`` weights (default 1).
        """
        if query_embeddings.dim() != 2 or true_candidate_embeddings.shape != query_embeddings.shape:
            raise ValueError(
                "`query_embeddings` and `true_candidate_embeddings` must both be (num_queries, dim) "
                f"(got {tuple(query_embeddings.shape)} and {tuple(true_candidate_embeddings.shape)})."
            )
        if true_candidate_ids is None and not self._candidates.is_exact():
            raise ValueError(
                f"The candidate generation layer ({type(self._candidates).__name__}) does not return exact "
                "results. To perform evaluation using that layer, you must supply `true_candidate_ids`, which "
                "will be checked against the candidate ids returned from the candidate generation layer."
            )
        # Queries inside an autograd graph mean training: weights move between updates, so re-read like TFRS.
        index = self._index(reuse_snapshot=not query_embeddings.requires_grad)
        with torch.no_grad():
            query_embeddings = query_embeddings.detach()
            top_k_scores, retrieved_ids = index(query_embeddings, k=max(self._ks))
            if true_candidate_ids is not None:
                hits = id_based_hits(top_k_scores, retrieved_ids, true_candidate_ids, self._ks)
            else:
                positive_scores = (query_embeddings * true_candidate_embeddings.detach()).sum(
                    dim=1
                )  # (Q,)
                hits = score_based_hits(positive_scores, top_k_scores, self._ks)
            hits = hits.to(device=self.hits.device, dtype=torch.float64)  # (Q, len(ks))
            if sample_weight is None:
                weight = torch.ones(hits.shape[0], dtype=torch.float64, device=self.hits.device)
            else:
                weight = torch.as_tensor(sample_weight).to(
                    device=self.hits.device, dtype=torch.float64
                )
                weight = torch.broadcast_to(
                    weight.reshape(-1) if weight.dim() else weight, (hits.shape[0],)
                )
            self.hits += (hits * weight.unsqueeze(1)).sum(dim=0)
            self.weight += weight.sum()

    def _index(self, reuse_snapshot: bool) -> TopK:
        """The layer to query: the corpus snapshot when it may be used and is current, else ``candidates``."""
        if self._corpus_source is None or not reuse_snapshot:
            return self._candidates
        state = CorpusState.of(self._corpus_source)
        if state is None:
            return self._candidates
        if self.corpus_snapshot is None or not self.corpus_snapshot.state.matches(state):
            index = BruteForce(k=max(self._ks)).index_from_dataset(self._corpus_source)
            self.corpus_snapshot = CorpusSnapshot(index=index, state=state)
        return self.corpus_snapshot.index

    def reset(self) -> None:
        super().reset()
        self.corpus_snapshot = None

    def __getstate__(self) -> dict[str, Any]:
        # The snapshot is a cache holding weak references: copies and pickles start without one.
        state = super().__getstate__()
        state["corpus_snapshot"] = None
        return state

    def compute(self) -> list[Tensor]:
        # Keras Mean with no updates reports 0 (divide_no_nan).
        if self.weight == 0:
            return [torch.tensor(0.0, device=self.hits.device) for _ in self._ks]
        return list((self.hits / self.weight).to(torch.float32).unbind())


class _Unknowable(Exception):
    """Raised while reading a corpus' state when part of it cannot be compared cheaply and exactly."""


@dataclass(frozen=True, eq=False)
class CorpusState:
    """What the candidate embeddings of an iterable corpus depend on, read at one moment.

    Known sources (any other gives no state, so no snapshot: the corpus is re-read at every update):

    * a :class:`~torchrs.data.MappedBatches` over a list / tuple of batches whose function is an ``nn.Module``
      (the tutorial's ``movies.batch(128).map(movie_model)``). Compared: the module and every submodule
      (identity and ``training`` flag), every parameter and buffer (identity and in-place version counter:
      optimizer steps and ``load_state_dict`` bump it), each lookup layer's ``vocabulary_version``
      (``set_vocabulary``, ``adapt``, ``load_state_dict``), and the batches themselves: their number and
      structure, tensors by identity and version, NumPy arrays by a BLAKE2b digest of their bytes, ``str`` /
      ``bytes`` / numbers by value. A batch holding anything else makes the state unknowable;
    * a list / tuple of embedding tensors or of ``(identifiers, embeddings)`` tensor pairs (identity and
      version of each tensor).

    Attributes:
        tensors: weak references to the tensors and modules read (a freed or replaced one never matches).
        versions: the tensors' version counters at that moment.
        values: everything else, compared by value (structure, digests, flags, vocabulary versions).
    """

    tensors: tuple[weakref.ReferenceType, ...]
    versions: tuple[int, ...]
    values: tuple[Hashable, ...]

    @classmethod
    def of(cls, source: Iterable) -> CorpusState | None:
        """The state of ``source`` now, or ``None`` when it cannot be known (then nothing may be cached)."""
        objects: list[Tensor | nn.Module] = []
        values: list[Hashable] = []
        try:
            if isinstance(source, MappedBatches):
                if not isinstance(source.fn, nn.Module) or not isinstance(
                    source.batches, (list, tuple)
                ):
                    return None
                for module in source.fn.modules():
                    objects.append(module)
                    values.append((module.training, getattr(module, "vocabulary_version", None)))
                objects.extend(source.fn.parameters())
                objects.extend(source.fn.buffers())
                _read_batch(source.batches, objects, values, tensors_only=False)
            elif isinstance(source, (list, tuple)):
                _read_batch(source, objects, values, tensors_only=True)
            else:
                return None
        except _Unknowable:
            return None
        versions = tuple(o._version if isinstance(o, Tensor) else -1 for o in objects)
        return cls(tuple(weakref.ref(o) for o in objects), versions, tuple(values))

    def matches(self, other: CorpusState) -> bool:
        """Whether ``other`` was read from the very same, unchanged objects."""
        return (
            self.versions == other.versions
            and self.values == other.values
            and len(self.tensors) == len(other.tensors)
            and all(
                mine() is not None and mine() is theirs()
                for mine, theirs in zip(self.tensors, other.tensors, strict=True)
            )
        )


@dataclass(frozen=True)
class CorpusSnapshot:
    """One embedding pass over an iterable corpus, indexed, with the :class:`CorpusState` it was read in.

    Attributes:
        index: a ``BruteForce`` over the embeddings of that pass (exact, like the ``Streaming`` it stands for).
        state: what the embeddings depended on when they were computed.
    """

    index: TopK
    state: CorpusState


def _read_batch(
    batch: Any, objects: list[Tensor | nn.Module], values: list[Hashable], *, tensors_only: bool
) -> None:
    """Appends what ``batch`` holds to ``objects`` (tensors) and ``values``; raises _Unknowable otherwise."""
    if isinstance(batch, Tensor):
        objects.append(batch)
        values.append("tensor")
    elif isinstance(batch, (list, tuple)):
        values.append((type(batch).__name__, len(batch)))
        for element in batch:
            _read_batch(element, objects, values, tensors_only=tensors_only)
    elif tensors_only:
        raise _Unknowable
    elif isinstance(batch, np.ndarray):
        if batch.dtype.hasobject:
            items = batch.ravel().tolist()
            if not all(isinstance(x, (str, bytes, int, float)) for x in items):
                raise _Unknowable
            values.append(("object-array", batch.shape, tuple(items)))
        else:
            digest = hashlib.blake2b(np.ascontiguousarray(batch).data, digest_size=16).digest()
            values.append(("array", batch.dtype.str, batch.shape, digest))
    elif isinstance(batch, Mapping):
        values.append(("mapping", tuple(batch)))
        for element in batch.values():
            _read_batch(element, objects, values, tensors_only=tensors_only)
    elif batch is None or isinstance(batch, (str, bytes, int, float, np.generic)):
        values.append((type(batch).__name__, batch))
    else:
        raise _Unknowable
