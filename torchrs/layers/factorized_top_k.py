"""Layers for retrieving top K recommendations from factorized retrieval models, as ``tfrs.layers.factorized_top_k``.

``BruteForce`` scores every indexed candidate; ``Streaming`` walks over an iterable of candidate batches at
every query, as TFRS reduces a ``tf.data.Dataset``. Both return ``(scores, identifiers)`` ordered like
``tf.math.top_k``: score descending, equal scores by lower candidate position (see
:mod:`torchrs.functional.top_k`, which holds the math).

Identifiers (torch has no string tensors):

* none given: int64 row positions (TFRS returns int32 ``tf.range`` positions; the values are the same);
* an integer tensor / array / list: returned as an int64 ``LongTensor``;
* ``str`` / ``bytes`` (a list, or a NumPy array of dtype ``object``, ``U`` or ``S``): returned as a NumPy
  array. A list becomes dtype ``object`` and keeps its elements as given: ``bytes`` in, ``bytes`` out, which
  equals TF's ``.numpy()`` of a string tensor. A NumPy array keeps its own dtype.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchrs.functional.top_k import exclude_top_k, stable_top_k, top_k_dot

__all__ = ["BruteForce", "ScaNN", "Streaming", "TopK"]


#: What ``forward`` returns as identifiers: int64 tensor, or a NumPy array of strings / bytes.
Identifiers = Tensor | np.ndarray

#: ``tfrs.layers.factorized_top_k._wrap_batch_too_small_error``'s message, raised by ``Streaming`` with
#: ``handle_incomplete_batches=False`` when a candidate batch holds fewer than k candidates.
_BATCH_TOO_SMALL = (
    "Tried to retrieve k={k} top items, but the candidate dataset batch size is too small. This may be "
    "because your candidate batch size is too small or the last batch of your dataset is too small. To "
    "resolve this, increase your batch size, set the drop_remainder argument to True when batching your "
    "candidates, or set the handle_incomplete_batches argument to True in the constructor. "
)
_NOT_INDEXED = (
    "The `index` method must be called first to create the retrieval index "
    "(or `index_from_dataset`, or `load_state_dict` with `candidates`)."
)
_BAD_ELEMENT = (
    "The dataset must yield candidate embeddings or tuples of (candidate identifiers, candidate "
    "embeddings). Got {got} instead."
)


class TopK(nn.Module, abc.ABC):
    """Interface for top K layers.

    Implementers provide ``index`` (builds the retrieval index from candidate embeddings), ``forward``
    (returns the top K candidates for queries) and ``is_exact``.

    Args:
        k: default number of candidates to retrieve.
        **kwargs: ``name`` (the Keras layer name); any other keyword raises ``TypeError``.
    """

    def __init__(self, k: int, **kwargs: Any) -> None:
        name = kwargs.pop("name", None)
        if kwargs:
            raise TypeError(
                f"Unexpected keyword arguments {sorted(kwargs)}; only `name` is accepted."
            )
        super().__init__()
        self._k = _check_k(k)
        self.name: str = name if name is not None else _snake_case(type(self).__name__)

    @abc.abstractmethod
    def index(self, candidates: Tensor | np.ndarray, identifiers: Any = None) -> TopK:
        """Builds the retrieval index.

        When called multiple times the existing index is dropped and a new one created.

        Args:
            candidates: ``(N, D)`` candidate embeddings.
            identifiers: optional ``N`` identifiers (integer tensor / array, or ``str`` / ``bytes``). If
                given, they are returned for the top candidates; otherwise row positions are.

        Returns:
            Self.
        """
        raise NotImplementedError()

    def index_from_dataset(self, candidates: Iterable[Any]) -> TopK:
        """Builds the retrieval index from batches.

        Args:
            candidates: an iterable (list, generator, ``DataLoader``) of ``(n, D)`` embedding batches, or
                of ``(identifiers, embeddings)`` pairs (a tuple, or the list a ``DataLoader`` collates).

        Returns:
            Self.

        Raises:
            ValueError: if the batches do not have that structure.
        """
        batches = [_split_element(element) for element in _iterable(candidates)]
        if not batches:
            raise ValueError("`candidates` yielded no batches; there is nothing to index.")
        with_ids = _check_same_structure(batches)
        embeddings = torch.cat([_as_embeddings(emb, "candidates") for _, emb in batches])  # (N, D)
        identifiers = _concat_identifiers([ids for ids, _ in batches]) if with_ids else None
        return self.index(embeddings, identifiers)

    @abc.abstractmethod
    def forward(self, queries: Any, k: int | None = None) -> tuple[Tensor, Identifiers]:
        """Queries the index.

        Args:
            queries: ``(B, D)`` query embeddings, or raw query features when a ``query_model`` was given.
            k: number of candidates to retrieve; defaults to the constructor's ``k``.

        Returns:
            ``(scores, identifiers)``, both ``(B, k)``.

        Raises:
            ValueError: if ``index`` has not been called.
        """
        raise NotImplementedError()

    def query_with_exclusions(
        self, queries: Any, exclusions: Any, k: int | None = None
    ) -> tuple[Tensor, Identifiers]:
        """Queries the index, leaving out given identifiers (e.g. items a user has already seen).

        TFRS's semantics exactly: retrieve ``k + num_exclusions`` candidates, subtract
        ``EXCLUSION_PENALTY`` (1e5) from the scores of excluded ones, take the top ``min(k, retrieved)``
        again (ties by lower rank) and return the *original* scores with their identifiers. An excluded
        candidate therefore comes back when fewer than k others were retrieved.

        Args:
            queries: as for ``forward``.
            exclusions: ``(B, E)`` identifiers to exclude per query (``(1, E)`` applies to every query), of
                the same kind as the index's identifiers (``str`` and ``bytes`` compare through UTF-8,
                as TF's string tensors do).
            k: number of candidates to return; defaults to the constructor's ``k``.

        Returns:
            ``(scores, identifiers)``, both ``(B, k)``.

        >>> index = BruteForce(k=2).index(torch.tensor([[1.0], [2.0], [3.0]]), ["a", "b", "c"])
        >>> scores, ids = index.query_with_exclusions(torch.tensor([[1.0]]), [["c"]])
        >>> scores.tolist(), ids.tolist()
        ([[2.0, 1.0]], [['b', 'a']])
        """
        k = self._resolve_k(k)
        excluded_ids = _as_exclusions(exclusions)  # (B, E)
        scores, identifiers = self(queries, k=k + excluded_ids.shape[1])  # (B, M)
        if excluded_ids.shape[0] not in (1, scores.shape[0]):
            raise ValueError(
                f"`exclusions` has {excluded_ids.shape[0]} rows but there are {scores.shape[0]} queries; "
                "pass one row of exclusions per query (or a single row for all of them)."
            )
        excluded = _is_excluded(identifiers, excluded_ids).to(scores.device)  # (B, M)
        kept_scores, columns = exclude_top_k(scores, excluded, k)  # (B, k)
        return kept_scores, _take_columns(identifiers, columns)

    @abc.abstractmethod
    def is_exact(self) -> bool:
        """Whether the layer returns exact results (approximate layers such as ScaNN do not)."""
        raise NotImplementedError()

    def _resolve_k(self, k: int | None) -> int:
        return self._k if k is None else _check_k(k)

    def _embed_queries(self, queries: Any) -> Tensor:
        query_model: Callable[[Any], Any] | None = getattr(self, "query_model", None)
        if query_model is not None:
            queries = query_model(queries)
        if isinstance(queries, np.ndarray):
            queries = torch.from_numpy(queries)
        if not isinstance(queries, Tensor):
            raise TypeError(
                f"Queries must be a tensor (after the query model, if any), got {type(queries).__name__}."
            )
        if queries.dim() != 2:
            raise ValueError(
                f"Queries must be a 2-D (num_queries, dim) tensor (got shape {tuple(queries.shape)}); "
                "for a single query use `queries.unsqueeze(0)`."
            )
        if not queries.is_floating_point():
            raise TypeError(
                f"Queries must be floating point embeddings (got dtype {queries.dtype})."
            )
        return queries


class BruteForce(TopK):
    """Brute force retrieval: scores every indexed candidate.

    The index lives in two buffers, so ``state_dict()`` holds it: ``candidates`` ``(N, D)`` and, for
    integer (or default) identifiers, ``identifiers`` ``(N,)`` int64. ``load_state_dict`` accepts them into
    a fresh layer (the buffers take the incoming shapes). String identifiers cannot live in a tensor: they
    are kept as a NumPy array (``string_identifiers``) and are set with ``index(candidates, identifiers)``.

    Args:
        query_model: optional callable (e.g. an ``nn.Module`` tower) turning raw query features into
            ``(B, D)`` query embeddings; when absent, queries are embeddings.
        k: default number of candidates to retrieve.
        name: name of the layer.

    >>> index = BruteForce(k=2).index(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    >>> scores, ids = index(torch.tensor([[2.0, 1.0]]))
    >>> scores.tolist(), ids.tolist()
    ([[3.0, 2.0]], [[2, 0]])
    """

    candidates: Tensor | None
    identifiers: Tensor | None

    def __init__(
        self, query_model: Callable[[Any], Any] | None = None, k: int = 10, name: str | None = None
    ) -> None:
        super().__init__(k=k, name=name)
        self.query_model = query_model
        self.register_buffer("candidates", None)
        self.register_buffer("identifiers", None)
        self._string_identifiers: np.ndarray | None = None

    @property
    def string_identifiers(self) -> np.ndarray | None:
        """The string / bytes identifiers, when the index was built with them (else None)."""
        return self._string_identifiers

    def index(self, candidates: Tensor | np.ndarray, identifiers: Any = None) -> BruteForce:
        """Builds the retrieval index (see ``TopK.index``); the embeddings are copied.

        >>> BruteForce().index(torch.zeros(3))
        Traceback (most recent call last):
        ...
        ValueError: The candidates tensor must be 2D (got (3,)).
        """
        embeddings = _as_embeddings(candidates, "candidates")
        ids = _as_identifiers(identifiers)
        if ids is not None and len(ids) != embeddings.shape[0]:
            raise ValueError(
                "The candidates and identifiers tensors must have the same number of rows (got "
                f"{embeddings.shape[0]} candidates rows and {len(ids)} identifier rows). "
            )
        self.candidates = embeddings.detach().clone()
        if ids is None:
            self.identifiers = torch.arange(embeddings.shape[0], device=embeddings.device)
            self._string_identifiers = None
        elif isinstance(ids, Tensor):
            self.identifiers = ids.to(embeddings.device).clone()
            self._string_identifiers = None
        else:
            self.identifiers = None
            self._string_identifiers = ids
        return self

    def forward(self, queries: Any, k: int | None = None) -> tuple[Tensor, Identifiers]:
        """Returns the top k ``(scores, identifiers)`` of every query; see ``TopK.forward``."""
        k = self._resolve_k(k)
        candidates = self.candidates
        if candidates is None:
            raise ValueError(_NOT_INDEXED)
        # Floating queries take the candidates' dtype, as Keras autocasts a layer's inputs.
        queries = self._embed_queries(queries).to(candidates.dtype)  # (B, D)
        if queries.shape[1] != candidates.shape[1]:
            raise ValueError(
                f"Query embeddings of shape {tuple(queries.shape)} do not match the indexed candidates of "
                f"shape {tuple(candidates.shape)}: the embedding dimensions differ "
                f"({queries.shape[1]} != {candidates.shape[1]})."
            )
        if k > candidates.shape[0]:
            raise ValueError(
                f"Tried to retrieve k={k} candidates, but the index holds only {candidates.shape[0]}. "
                "Pass a smaller `k` (query_with_exclusions retrieves k + the number of exclusions) "
                "or index more candidates."
            )
        scores, positions = top_k_dot(queries, candidates, k)  # (B, k)
        return scores, self._lookup(positions)

    def is_exact(self) -> bool:
        return True

    def _lookup(self, positions: Tensor) -> Identifiers:
        rows = self.candidates.shape[0] if self.candidates is not None else 0
        if self._string_identifiers is not None:
            if len(self._string_identifiers) != rows:
                raise ValueError(
                    f"The index holds {rows} candidates but {len(self._string_identifiers)} string "
                    "identifiers; call `index(candidates, identifiers)` to set both together."
                )
            return self._string_identifiers[positions.cpu().numpy()]
        if self.identifiers is None:
            return positions
        if self.identifiers.shape[0] != rows:
            raise ValueError(
                f"The index holds {rows} candidates but {self.identifiers.shape[0]} identifiers; "
                "call `index(candidates, identifiers)` to set both together."
            )
        return self.identifiers[positions]

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # The index's size is data, not architecture: let the buffers take the incoming shapes.
        for name, dtype in (("candidates", None), ("identifiers", torch.long)):
            incoming = state_dict.get(prefix + name)
            if not isinstance(incoming, Tensor):
                continue
            current = getattr(self, name)
            device = current.device if current is not None else incoming.device
            setattr(
                self,
                name,
                torch.empty(incoming.shape, dtype=dtype or incoming.dtype, device=device),
            )
            if name == "identifiers":
                self._string_identifiers = None
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class Streaming(TopK):
    """Retrieves the K highest scoring candidates by walking over candidate batches at every query.

    At each query the layer iterates over the indexed batches, takes the top k of each batch, and merges it
    with the running top k, as TFRS's ``Dataset.map(...).reduce(...)`` does. Nothing is copied at indexing:
    a list or a ``DataLoader`` is iterated again at every query (a one-shot iterator such as a generator is
    read once into a list).

    Args:
        query_model: optional callable turning raw query features into ``(B, D)`` query embeddings.
        k: default number of candidates to retrieve.
        handle_incomplete_batches: when True, batches with fewer than k candidates are handled (and a
            corpus of fewer than k candidates returns them all, as in TFRS); when False such a batch raises
            ``ValueError`` with TFRS's message.
        num_parallel_calls: accepted for API compatibility with TFRS (``tf.data`` parallelism); unused.
        sorted_order: accepted for API compatibility. TFRS may return unsorted results when False; torchrs
            always returns them sorted, which is one of the orders TFRS may return.

    >>> index = Streaming(k=2).index_from_dataset([torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0]])])
    >>> scores, ids = index(torch.tensor([[1.0]]))
    >>> scores.tolist(), ids.tolist()
    ([[3.0, 2.0]], [[1, 2]])
    """

    def __init__(
        self,
        query_model: Callable[[Any], Any] | None = None,
        k: int = 10,
        handle_incomplete_batches: bool = True,
        num_parallel_calls: int | None = None,
        sorted_order: bool = True,
    ) -> None:
        super().__init__(k=k)
        self.query_model = query_model
        self._candidates: Iterable[Any] | None = None
        self._handle_incomplete_batches = handle_incomplete_batches
        self._num_parallel_calls = num_parallel_calls
        self._sorted = sorted_order

    def index_from_dataset(self, candidates: Iterable[Any]) -> Streaming:
        """Keeps the iterable of batches; see ``TopK.index_from_dataset``."""
        candidates = _iterable(candidates)
        if iter(candidates) is candidates:  # a one-shot iterator cannot be walked at every query
            candidates = list(candidates)
        # Lists are checked now; other iterables (a DataLoader) as their batches are read.
        if isinstance(candidates, list | tuple):
            _check_same_structure([_split_element(element) for element in candidates])
        self._candidates = candidates
        return self

    def index(self, candidates: Any, identifiers: Any = None) -> Streaming:
        """Not implemented. Please call ``index_from_dataset`` instead."""
        raise NotImplementedError(
            "The streaming top k class only accepts datasets. Please call `index_from_dataset` instead."
        )

    def forward(self, queries: Any, k: int | None = None) -> tuple[Tensor, Identifiers]:
        """Returns the top k ``(scores, identifiers)`` of every query; see ``TopK.forward``.

        With ``handle_incomplete_batches=True`` and fewer than k candidates in all, fewer than k columns
        come back, as in TFRS.
        """
        k = self._resolve_k(k)
        if self._candidates is None:
            raise ValueError(_NOT_INDEXED)
        queries = self._embed_queries(queries)  # (B, D)
        num_queries = queries.shape[0]
        scores = queries.new_zeros(num_queries, 0)  # (B, 0): TFRS's initial state
        identifiers: Identifiers = torch.zeros(
            num_queries, 0, dtype=torch.long, device=queries.device
        )
        offset = 0
        with_ids: bool | None = None
        for element in self._candidates:
            batch_ids, batch = _split_element(element)
            batch = _as_embeddings(batch, "candidate batch").to(queries.device)  # (n, D)
            if with_ids is None:
                with_ids = batch_ids is not None
            elif with_ids != (batch_ids is not None):
                raise ValueError(
                    _BAD_ELEMENT.format(got="a mix of batches with and without identifiers")
                )
            if batch.shape[1] != queries.shape[1]:
                raise ValueError(
                    f"Query embeddings of shape {tuple(queries.shape)} do not match a candidate batch of "
                    f"shape {tuple(batch.shape)}: the embedding dimensions differ "
                    f"({queries.shape[1]} != {batch.shape[1]})."
                )
            if batch_ids is None:
                rows = batch.shape[0]
                ids: Identifiers = torch.arange(offset, offset + rows, device=queries.device)
            else:
                ids = _checked_batch_identifiers(batch_ids, batch.shape[0], queries.device)
            offset += batch.shape[0]
            if not self._handle_incomplete_batches and batch.shape[0] < k:
                raise ValueError(_BATCH_TOO_SMALL.format(k=k))
            batch_scores = queries.to(batch.dtype) @ batch.T  # (B, n)
            # (B, k') with k' = min(k, n): TFRS's k_ under handle_incomplete_batches.
            top_scores, top_positions = stable_top_k(batch_scores, min(k, batch.shape[0]))
            # State first: its candidates come from earlier batches, so ties keep the lower position.
            joined = torch.cat([scores.to(top_scores.dtype), top_scores], dim=1)  # (B, K + k')
            joined_ids = _concat_columns(identifiers, _take_rows(ids, top_positions))
            scores, columns = stable_top_k(joined, min(k, joined.shape[1]))  # (B, k)
            identifiers = _take_columns(joined_ids, columns)
        return scores, identifiers

    def is_exact(self) -> bool:
        return True


# ----------------------------------------------------------------------------- helpers


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"`k` must be an int (got {k!r} of type {type(k).__name__}).")
    if k <= 0:
        raise ValueError(f"`k` must be a positive number of candidates to retrieve (got k={k}).")
    return int(k)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _iterable(candidates: Any) -> Iterable[Any]:
    if isinstance(candidates, Tensor | np.ndarray) or not isinstance(candidates, Iterable):
        raise TypeError(
            "`candidates` must be an iterable of embedding batches or of (identifiers, embeddings) "
            f"batches, such as a list or a DataLoader (got {type(candidates).__name__}); to index one "
            "tensor of embeddings, call `index` instead."
        )
    return candidates


def _split_element(element: Any) -> tuple[Any, Any]:
    """``(identifiers or None, embeddings)`` of one dataset element, as TFRS's element_spec check."""
    if isinstance(element, Tensor | np.ndarray):
        return None, element
    if isinstance(element, tuple | list):
        if len(element) != 2:
            raise ValueError(
                _BAD_ELEMENT.format(got=f"a {type(element).__name__} of {len(element)} items")
            )
        return element[0], element[1]
    raise ValueError(_BAD_ELEMENT.format(got=type(element).__name__))


def _check_same_structure(batches: Sequence[tuple[Any, Any]]) -> bool:
    """Whether the batches carry identifiers; raises when some do and some do not, or sizes differ."""
    with_ids = {ids is not None for ids, _ in batches}
    if len(with_ids) > 1:
        raise ValueError(_BAD_ELEMENT.format(got="a mix of batches with and without identifiers"))
    for ids, emb in batches:
        if ids is not None and len(ids) != len(emb):
            raise ValueError(
                "Candidates and identifiers have to have the same batch dimension. "
                f"Got {len(emb)} and {len(ids)}."
            )
    return bool(with_ids) and with_ids.pop()


def _as_embeddings(candidates: Any, name: str) -> Tensor:
    if isinstance(candidates, np.ndarray):
        candidates = torch.from_numpy(candidates)
    if not isinstance(candidates, Tensor):
        raise TypeError(
            f"`{name}` must be a tensor or NumPy array (got {type(candidates).__name__})."
        )
    if candidates.dim() != 2:
        raise ValueError(f"The candidates tensor must be 2D (got {tuple(candidates.shape)}).")
    if not candidates.is_floating_point():
        raise TypeError(
            f"`{name}` must be floating point embeddings (got dtype {candidates.dtype})."
        )
    return candidates


def _as_identifiers(identifiers: Any) -> Identifiers | None:
    """int64 tensor for integer identifiers, NumPy array for strings / bytes, None for None."""
    if identifiers is None:
        return None
    if isinstance(identifiers, Tensor):
        array: np.ndarray | None = None
        tensor = identifiers
    else:
        if isinstance(identifiers, np.ndarray):
            array = identifiers
        else:
            items = list(identifiers)
            is_text = [isinstance(item, str | bytes) for item in items]
            if items and all(is_text):
                array = np.empty(len(items), dtype=object)
                array[:] = items
            elif any(is_text):
                raise TypeError(
                    "`identifiers` mixes strings with other values; use one kind of identifier."
                )
            else:
                array = np.asarray(items)
        if array.dtype.kind in "OUS":
            if array.ndim != 1:
                raise ValueError(f"`identifiers` must be 1-D (got shape {array.shape}).")
            return array
        if array.size == 0:
            array = array.astype(np.int64)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(
            f"`identifiers` must be integers or strings (got dtype {tensor.dtype}); "
            "cast them to int64 or pass a list / array of str or bytes."
        )
    if tensor.dim() != 1:
        raise ValueError(f"`identifiers` must be 1-D (got shape {tuple(tensor.shape)}).")
    return tensor.detach().long()


def _concat_identifiers(parts: Sequence[Any]) -> Identifiers:
    converted = [_as_identifiers(part) for part in parts]
    if all(isinstance(part, Tensor) for part in converted):
        return torch.cat(converted)  # type: ignore[arg-type]
    if all(isinstance(part, np.ndarray) for part in converted):
        return np.concatenate(converted)  # type: ignore[arg-type]
    raise TypeError("Identifier batches mix integers and strings; use one kind of identifier.")


def _checked_batch_identifiers(batch_ids: Any, rows: int, device: torch.device) -> Identifiers:
    ids = _as_identifiers(batch_ids)
    if ids is None or len(ids) != rows:
        raise ValueError(
            "Candidates and identifiers have to have the same batch dimension. "
            f"Got {rows} and {0 if ids is None else len(ids)}."
        )
    return ids.to(device) if isinstance(ids, Tensor) else ids


def _as_exclusions(exclusions: Any) -> Tensor | np.ndarray:
    """A rank-2 integer tensor, or a rank-2 object array of str / bytes."""
    if isinstance(exclusions, Tensor):
        array: Tensor | np.ndarray = exclusions
    else:
        try:
            array = np.asarray(exclusions)
        except ValueError as error:  # ragged lists
            raise ValueError(
                "`exclusions` must be a rank-2 (num_queries, num_exclusions) array; rows of different "
                "lengths are not supported (pad them with an identifier that is not in the index)."
            ) from error
    if array.ndim != 2:
        raise ValueError(
            "`exclusions` must be a rank-2 (num_queries, num_exclusions) array of identifiers "
            f"(got shape {tuple(array.shape)}); wrap a single query's exclusions in a list."
        )
    if isinstance(array, np.ndarray) and array.dtype.kind in "OUS":
        return array.astype(object)
    tensor = array if isinstance(array, Tensor) else torch.from_numpy(np.ascontiguousarray(array))
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(
            f"`exclusions` must be integer or string identifiers (got dtype {tensor.dtype})."
        )
    return tensor.long()


def _is_excluded(identifiers: Identifiers, exclusions: Tensor | np.ndarray) -> Tensor:
    """``(B, M)`` bool: whether each retrieved identifier is among its row's exclusions."""
    if isinstance(identifiers, Tensor):
        if not isinstance(exclusions, Tensor):
            if exclusions.size:
                raise TypeError(
                    "The index has integer identifiers: `exclusions` must be integers too."
                )
            exclusions = torch.zeros(exclusions.shape, dtype=torch.long)
        exclude = exclusions.to(identifiers.device)  # (B, E)
        return (identifiers.unsqueeze(-1) == exclude.unsqueeze(1)).any(-1)  # (B, M)
    if isinstance(exclusions, Tensor):
        if exclusions.numel():
            raise TypeError(
                "The index has string identifiers: `exclusions` must be str or bytes too."
            )
        exclusions = np.empty(tuple(exclusions.shape), dtype=object)
    matches = _utf8_keys(identifiers)[:, :, None] == _utf8_keys(exclusions)[:, None, :]  # (B, M, E)
    return torch.from_numpy(np.asarray(matches, dtype=bool).reshape(matches.shape).any(-1))


def _utf8_keys(array: np.ndarray) -> np.ndarray:
    """Object array of ``bytes``: TF compares string tensors byte-wise, with Python ``str`` as UTF-8."""
    flat = [item.encode("utf-8") if isinstance(item, str) else item for item in array.reshape(-1)]
    keys = np.empty(len(flat), dtype=object)
    keys[:] = flat
    return keys.reshape(array.shape)


def _take_rows(ids: Identifiers, positions: Tensor) -> Identifiers:
    """``ids[positions]`` for a 1-D tensor or NumPy array and ``(B, k)`` positions."""
    if isinstance(ids, Tensor):
        return ids[positions]
    return ids[positions.cpu().numpy()]


def _take_columns(ids: Identifiers, columns: Tensor) -> Identifiers:
    """Row-wise gather of a ``(B, M)`` tensor or array with ``(B, k)`` column positions."""
    if isinstance(ids, Tensor):
        return ids.gather(1, columns.to(ids.device))
    return np.take_along_axis(ids, columns.cpu().numpy(), axis=1)


def _concat_columns(left: Identifiers, right: Identifiers) -> Identifiers:
    if isinstance(left, Tensor) and isinstance(right, Tensor):
        return torch.cat([left, right.to(left.device)], dim=1)
    if isinstance(left, Tensor) and left.shape[1] == 0:  # the empty initial state
        return right
    if isinstance(left, Tensor) or isinstance(right, Tensor):
        raise TypeError("Identifier batches mix integers and strings; use one kind of identifier.")
    return np.concatenate([left, right], axis=1)


# ------------------------------------------------------------------------------------------------ ScaNN
# ``ScaNN``: the approximate retrieval index of ``tfrs.layers.factorized_top_k``, backed by faiss.
#
# TFRS wraps Google's ScaNN (partitioning + asymmetric hashing). torchrs keeps the layer's name, arguments and
# contract (``index`` / ``__call__(queries, k) -> (scores, identifiers)``, ``is_exact() == False``) and runs it
# on faiss, the well-kept ANN library: an inverted-file index (``index_type="ivf"``: ``num_leaves`` k-means
# partitions, ``num_leaves_to_search`` probed per query) or an HNSW graph (``index_type="hnsw"``). With
# ``num_reordering_candidates`` the approximate shortlist is re-scored exactly, as ScaNN's reordering does.
# Results are approximate, so ``FactorizedTopK`` needs ``true_candidate_ids`` with it, as in TFRS.

#: faiss marks "no result" (fewer reachable candidates than k) with position -1; TFRS's ScaNN pads with NaN
#: scores, which ``FactorizedTopK`` treats as misses.
_FAISS_MISSING = -1
_INDEX_TYPES = ("ivf", "hnsw")
_DISTANCES = ("dot_product", "squared_l2")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
        raise ImportError(
            "ScaNN in torchrs is backed by faiss: pip install faiss-cpu (or faiss-gpu)."
        ) from err
    return faiss


class ScaNN(BruteForce):
    """Approximate top-K retrieval over a faiss index, with TFRS's ``ScaNN`` arguments.

    Args:
        query_model: optional callable turning raw query features into query embeddings.
        k: default number of candidates to retrieve.
        distance_measure: ``"dot_product"`` (TFRS default; scores are inner products) or ``"squared_l2"``
            (scores are negative squared distances, so higher is still better).
        num_leaves: IVF partitions (k-means centroids); capped at the number of candidates.
        num_leaves_to_search: partitions probed per query (recall vs speed).
        training_iterations: k-means iterations when building the partitions.
        dimensions_per_block: accepted for TFRS compatibility; faiss's flat IVF stores exact vectors.
        num_reordering_candidates: when given, retrieve that many approximately, then re-score exactly.
        parallelize_batch_searches: accepted for compatibility (faiss parallelises batches itself).
        name: name of the layer.
        index_type: ``"ivf"`` or ``"hnsw"``.
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth (recall vs speed).
        seed: k-means seed, so that an index is reproducible.

    >>> index = ScaNN(k=1, num_leaves=2, num_leaves_to_search=2).index(torch.eye(4))
    >>> index(torch.tensor([[0.0, 0.0, 1.0, 0.0]]))[1].tolist()
    [[2]]
    >>> index.is_exact()
    False
    """

    def __init__(
        self,
        query_model: Callable[[Any], Any] | None = None,
        k: int = 10,
        distance_measure: str = "dot_product",
        num_leaves: int = 100,
        num_leaves_to_search: int = 10,
        training_iterations: int = 12,
        dimensions_per_block: int = 2,
        num_reordering_candidates: int | None = None,
        parallelize_batch_searches: bool = True,
        name: str | None = None,
        *,
        index_type: str = "ivf",
        hnsw_m: int = 32,
        ef_search: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(query_model=query_model, k=k, name=name)
        if distance_measure not in _DISTANCES:
            raise ValueError(
                f"Unknown distance_measure {distance_measure!r}: expected one of {_DISTANCES}."
            )
        if index_type not in _INDEX_TYPES:
            raise ValueError(f"Unknown index_type {index_type!r}: expected one of {_INDEX_TYPES}.")
        for arg, value in (
            ("num_leaves", num_leaves),
            ("num_leaves_to_search", num_leaves_to_search),
            ("training_iterations", training_iterations),
            ("hnsw_m", hnsw_m),
            ("ef_search", ef_search),
        ):
            if int(value) < 1:
                raise ValueError(f"`{arg}` must be a positive integer (got {value}).")
        if num_reordering_candidates is not None and num_reordering_candidates < 1:
            raise ValueError(
                f"`num_reordering_candidates` must be None or >= 1 (got {num_reordering_candidates})."
            )
        self.distance_measure = distance_measure
        self.num_leaves = int(num_leaves)
        self.num_leaves_to_search = int(num_leaves_to_search)
        self.training_iterations = int(training_iterations)
        self.dimensions_per_block = dimensions_per_block
        self.num_reordering_candidates = num_reordering_candidates
        self.parallelize_batch_searches = parallelize_batch_searches
        self.index_type = index_type
        self.hnsw_m = int(hnsw_m)
        self.ef_search = int(ef_search)
        self.seed = int(seed)
        self._faiss_index: Any = None

    def index(self, candidates: Tensor | np.ndarray, identifiers: Any = None) -> ScaNN:
        """Builds the faiss index over ``candidates`` (``(N, D)``), keeping ``identifiers`` like BruteForce."""
        super().index(candidates, identifiers)
        assert self.candidates is not None  # set by BruteForce.index (not user input)
        self._faiss_index = self._build(self.candidates)
        return self

    def _build(self, candidates: Tensor) -> Any:
        faiss = _faiss()
        vectors = np.ascontiguousarray(candidates.detach().cpu().numpy(), dtype=np.float32)
        num, dim = vectors.shape
        metric = (
            faiss.METRIC_INNER_PRODUCT
            if self.distance_measure == "dot_product"
            else faiss.METRIC_L2
        )
        if self.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, metric)
            index.hnsw.efSearch = self.ef_search
        else:
            leaves = min(self.num_leaves, num)
            quantizer = (
                faiss.IndexFlatIP(dim)
                if metric == faiss.METRIC_INNER_PRODUCT
                else faiss.IndexFlatL2(dim)
            )
            index = faiss.IndexIVFFlat(quantizer, dim, leaves, metric)
            index.cp.niter = self.training_iterations
            index.cp.seed = self.seed
            index.cp.min_points_per_centroid = (
                1  # small corpora: no warning, partitions may be small
            )
            index.train(vectors)
            index.nprobe = min(self.num_leaves_to_search, leaves)
            index.quantizer_trains_alone = 0
        index.add(vectors)
        # faiss keeps a reference-free copy of the vectors; the quantizer must outlive the Python wrapper.
        self._quantizer = getattr(index, "quantizer", None)
        return index

    def forward(self, queries: Any, k: int | None = None) -> tuple[Tensor, Identifiers]:
        """Returns approximate top-k ``(scores, identifiers)``; missing results have NaN scores."""
        k = self._resolve_k(k)
        if self.candidates is None:
            raise ValueError(
                "The `index` method must be called first to create the retrieval index."
            )
        if self._faiss_index is None:  # loaded from a state_dict: rebuild the ANN structure
            self._faiss_index = self._build(self.candidates)
        queries = self._embed_queries(queries).to(self.candidates.dtype)  # (B, D)
        if queries.shape[1] != self.candidates.shape[1]:
            raise ValueError(
                f"Query embeddings of shape {tuple(queries.shape)} do not match the indexed candidates of "
                f"shape {tuple(self.candidates.shape)}."
            )
        shortlist = max(k, self.num_reordering_candidates or 0)
        shortlist = min(shortlist, self.candidates.shape[0])
        vectors = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
        distances, positions = self._faiss_index.search(vectors, shortlist)  # (B, S)
        positions_t = torch.from_numpy(positions.astype(np.int64)).to(queries.device)
        missing = positions_t == _FAISS_MISSING
        safe = positions_t.clamp(min=0)
        if self.num_reordering_candidates is not None:
            exact = torch.einsum("bd,bsd->bs", queries, self.candidates[safe])  # (B, S)
            if self.distance_measure == "squared_l2":
                exact = -(queries.unsqueeze(1) - self.candidates[safe]).square().sum(-1)
            scores = exact.masked_fill(missing, float("-inf"))
        else:
            raw = torch.from_numpy(distances).to(queries.device, queries.dtype)
            scores = raw if self.distance_measure == "dot_product" else -raw
            scores = scores.masked_fill(missing, float("-inf"))
        top_scores, columns = stable_top_k(scores, min(k, scores.shape[1]))  # (B, k)
        top_positions = safe.gather(1, columns)
        top_missing = missing.gather(1, columns)
        top_scores = top_scores.masked_fill(top_missing, float("nan"))
        return top_scores, self._lookup(top_positions)

    def is_exact(self) -> bool:
        return False
