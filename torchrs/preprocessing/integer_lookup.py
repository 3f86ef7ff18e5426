"""``tf.keras.layers.IntegerLookup`` (Keras 2) for PyTorch: integers to contiguous indices.

Inputs are torch integer tensors (on any device), NumPy integer arrays or (nested) lists of ints;
outputs are ``torch.LongTensor``s on the input's device. The lookup is vectorised, no Python loop over
inputs: a direct-address table (one gather) when the vocabulary's ids are dense enough (MovieLens user and
movie ids are), else a binary search (``torch.searchsorted``) over the sorted vocabulary. For 1M inputs over a
500k-id vocabulary drawn from [0, 2M) the gather is ~15x faster than the search (``benchmarks/test_preprocessing.py``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any, cast

import numpy as np
import torch

from torchrs.preprocessing._index_lookup import (
    INT,
    OOV_SENTINEL,
    TF_IDF,
    Batch,
    IndexLookup,
    integer_batch,
)

__all__ = ["IntegerLookup"]

# A direct-address table is used when it spans at most this many slots per vocabulary entry (or at most
# DENSE_TABLE_MIN_SLOTS in all): its memory stays within a few times that of the sorted keys.
DENSE_TABLE_SLOTS_PER_TOKEN = 4
DENSE_TABLE_MIN_SLOTS = 1 << 16
# Marks an id of the direct-address table's range that is not in the vocabulary.
_ABSENT = -1
# Vocabulary dtypes Keras can build a lookup table for (TF hash tables have int32 / int64 keys).
VOCABULARY_DTYPES = {"int32": torch.int32, "int64": torch.int64}
# TensorFlow reads an integer vocabulary file line with ``safe_strto64``: optional sign, digits,
# surrounding whitespace allowed.
_INT_LINE = re.compile(rb"\s*[+-]?[0-9]+\s*")


def _as_int(token: Any, argument: str) -> int:
    if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
        if isinstance(token, torch.Tensor) and token.numel() == 1 and not token.is_floating_point():
            return int(token.item())
        raise TypeError(
            f"IntegerLookup `{argument}` must be an integer (or None); got "
            f"{type(token).__name__} {token!r}."
        )
    return int(token)


class IntegerLookup(IndexLookup):
    """Maps integers to contiguous vocabulary indices (Keras 2 ``IntegerLookup``).

    Same index layout as :class:`~torchrs.preprocessing.string_lookup.StringLookup`: with the
    default ``mask_token=None`` OOV slots come first and ``vocab[i] -> i + num_oov_indices``; with a
    mask token in ``"int"`` mode the mask is 0 and OOV starts at 1. With ``num_oov_indices > 1``
    an OOV value ``x`` goes to slot ``x mod num_oov_indices`` (``tf.math.floormod``: never
    negative), and with 0 it raises. ``adapt`` orders by descending count, ties by descending
    value.

    Args:
        max_tokens: maximum vocabulary size including mask and OOV slots (caps ``adapt``).
        num_oov_indices: number of OOV slots (default 1).
        mask_token: integer for masked inputs (0 in ``"int"`` mode, dropped otherwise); default
            None.
        oov_token: returned for OOV indices when ``invert=True``; default -1 (also dropped from
            ``adapt`` counts, as Keras does).
        vocabulary: list / tuple / 1-D array or tensor of ints, or a path to a text file with one
            integer per line.
        vocabulary_dtype: ``"int64"`` (default) or ``"int32"``; with ``"int32"`` inputs are cast
            (wrapping) to int32 before the lookup, like ``tf.cast``.
        idf_weights: IDF weights, one per vocabulary entry, for ``output_mode="tf_idf"``.
        invert: map indices back to vocabulary values.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        sparse: must be False; sparse outputs are not supported.
        pad_to_max_tokens: pad encoded outputs to ``max_tokens`` columns.
        **kwargs: Keras layer arguments found in configs (``name``, ``dtype``,
            ``vocabulary_size``...).

    Float inputs are rejected (Keras would silently truncate them).

    >>> layer = IntegerLookup(vocabulary=[12, 36, 1138, 42])
    >>> layer(torch.tensor([[12, 1138, 42], [42, 1000, 36]]))
    tensor([[1, 3, 4],
            [4, 0, 2]])
    >>> layer = IntegerLookup()
    >>> layer.adapt([[12, 1138, 42], [42, 1000, 36]])
    >>> layer.get_vocabulary()
    [-1, 42, 1138, 1000, 36, 12]
    >>> IntegerLookup(vocabulary=[12, 36, 1138, 42], num_oov_indices=2)([[12, 1138, 42], [37, 1000, 36]])
    tensor([[2, 4, 5],
            [1, 0, 3]])
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: int | None = None,
        oov_token: int = -1,
        vocabulary: Any = None,
        vocabulary_dtype: str = "int64",
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        name = str(vocabulary_dtype).replace("torch.", "")
        if name not in VOCABULARY_DTYPES:
            raise ValueError(
                "`vocabulary_dtype` must be an integer dtype, 'int64' or 'int32'. "
                f"Received: {vocabulary_dtype!r}"
            )
        # Legacy Keras configs set dtype="int64" (the old input dtype) outside "int" mode.
        if output_mode != "int" and kwargs.get("dtype") == "int64":
            del kwargs["dtype"]
        self._key_dtype = VOCABULARY_DTYPES[name]
        self._sorted_keys: torch.Tensor | None = None
        self._sorted_values: torch.Tensor | None = None
        self._token_tensor: torch.Tensor | None = None
        self._dense_slots: torch.Tensor | None = (
            None  # (max - min + 1,) slot of id min + i, or _ABSENT
        )
        self._dense_low = 0
        super().__init__(
            max_tokens=max_tokens,
            num_oov_indices=num_oov_indices,
            mask_token=mask_token,
            oov_token=oov_token,
            vocabulary_dtype=name,
            vocabulary=vocabulary,
            idf_weights=idf_weights,
            invert=invert,
            output_mode=output_mode,
            sparse=sparse,
            pad_to_max_tokens=pad_to_max_tokens,
            **kwargs,
        )

    # ---- token codec ------------------------------------------------------------------------

    def _in_key_range(self, values: list[int], argument: str) -> None:
        info = torch.iinfo(self._key_dtype)
        bad = [v for v in values if not info.min <= v <= info.max]
        if bad:
            raise ValueError(
                f"IntegerLookup `{argument}` values {bad[:5]} do not fit vocabulary_dtype "
                f"{self.vocabulary_dtype!r}; use vocabulary_dtype='int64'."
            )

    def _canonical_token(self, token: Any, argument: str) -> Hashable:
        value = _as_int(token, argument)
        self._in_key_range([value], argument)
        return value

    def _canonical_vocabulary(self, vocabulary: Any) -> list[Hashable]:
        if isinstance(vocabulary, torch.Tensor):
            vocabulary = vocabulary.detach().cpu().numpy()
        if not isinstance(vocabulary, (list, tuple, np.ndarray)):
            raise TypeError(
                "IntegerLookup `vocabulary` must be a list, tuple, 1-D array or tensor of ints, or "
                f"a path to a text file; got {type(vocabulary).__name__}."
            )
        array = np.asarray(vocabulary)
        if array.size == 0:
            return []
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise TypeError(
                "IntegerLookup `vocabulary` must be a 1-D sequence of integers; got shape "
                f"{array.shape} and dtype {array.dtype}."
            )
        values = array.tolist()
        self._in_key_range(values, "vocabulary")
        return values

    def _parse_file_token(self, line: bytes, number: int, path: str) -> Hashable:
        if not _INT_LINE.fullmatch(line):
            raise ValueError(
                f"Vocabulary file {path!r}, line {number} (0-based): {line!r} is not an integer."
            )
        value = int(line)
        self._in_key_range([value], f"vocabulary file {path!r}")
        return value

    def _public_token(self, token: Hashable) -> Any:
        return token

    def _public_special(self, token: Any) -> Any:
        return None if token is None else int(token)

    def _config_token(self, token: Any) -> Any:
        return None if token is None else int(token)

    # ---- table ------------------------------------------------------------------------------

    def _build_table(self, tokens: list[Hashable]) -> None:
        device = self._output_device()
        values = torch.tensor(tokens, dtype=torch.int64)  # (V,)
        order = torch.argsort(values)  # (V,)
        self._sorted_keys = values[order].to(device)  # (V,)
        self._sorted_values = (order + self._token_start_index()).to(device)  # (V,)
        self._token_tensor = values.to(device)  # (V,)
        self._dense_slots = None
        if len(tokens):
            low, high = int(self._sorted_keys[0]), int(self._sorted_keys[-1])
            span = high - low + 1
            if span <= max(DENSE_TABLE_SLOTS_PER_TOKEN * len(tokens), DENSE_TABLE_MIN_SLOTS):
                dense = torch.full((span,), _ABSENT, dtype=torch.int64)  # (span,)
                dense[values - low] = torch.arange(len(tokens)) + self._token_start_index()
                self._dense_slots, self._dense_low = dense.to(device), low

    def _on_device(self, name: str, device: torch.device) -> torch.Tensor:
        tensor = getattr(self, name)
        if tensor.device != device:
            tensor = tensor.to(device)
            setattr(self, name, tensor)
        return tensor

    def _cast_keys(self, values: torch.Tensor) -> torch.Tensor:
        if self._key_dtype == torch.int64:
            return values
        return values.to(self._key_dtype).to(torch.int64)  # wraps like tf.cast

    def _lookup_tensor(self, values: torch.Tensor) -> torch.Tensor:
        """Indices of integer inputs, OOV handled (floormod hashing or the num_oov=0 error)."""
        values = self._cast_keys(values)
        if self._dense_slots is not None:
            dense = self._on_device("_dense_slots", values.device)  # (span,)
            offset = values - self._dense_low  # (...)
            in_range = (offset >= 0) & (offset < dense.shape[0])
            slot = dense[offset.clamp_(0, dense.shape[0] - 1)]  # (...)
            indices = torch.where(
                in_range & (slot != _ABSENT), slot, self._default_value()
            )  # (...)
        else:
            keys = self._on_device("_sorted_keys", values.device)  # (V,)
            slots = self._on_device("_sorted_values", values.device)  # (V,)
            position = torch.searchsorted(keys, values.contiguous()).clamp_(max=keys.shape[0] - 1)
            found = keys[position] == values  # (...)
            indices = torch.where(found, slots[position], self._default_value())  # (...)
        if self.mask_token is not None:
            indices = torch.where(values == cast(int, self._mask_key), self._mask_value(), indices)
        if self.num_oov_indices == 0:
            missing = indices == OOV_SENTINEL
            if bool(missing.any()):
                self._raise_num_oov_zero(torch.unique(values[missing]).tolist())
        elif self.num_oov_indices > 1:
            buckets = torch.remainder(values, self.num_oov_indices) + self._oov_start_index()
            indices = torch.where(indices == OOV_SENTINEL, buckets, indices)
        return indices

    # ---- forward ----------------------------------------------------------------------------

    def forward(self, inputs: Any) -> torch.Tensor:
        """Look integers up (or, with ``invert=True``, indices back up).

        Args:
            inputs: integers: a tensor (any device), a NumPy array, an int or (nested) lists.
                Rows of different lengths are accepted outside ``"int"`` mode.

        Returns:
            ``"int"``: a LongTensor of the input shape (vocabulary values with ``invert=True``).
            ``"one_hot"``: ``(..., depth)``. ``"multi_hot"`` / ``"count"`` / ``"tf_idf"``:
            ``(depth,)`` for 1-D input, ``(B, depth)`` for 2-D or ragged input.

        Raises:
            RuntimeError: no vocabulary yet.
            TypeError: non-integer inputs.
            ValueError: an OOV input with ``num_oov_indices=0``; output rank above 2.
        """
        self._ensure_vocabulary()
        batch = integer_batch(
            inputs, allow_ragged=self.output_mode != INT and not self.invert, layer="IntegerLookup"
        )
        if self.invert:
            return self._invert_lookup(batch)
        indices = self._lookup_tensor(batch.values)
        return self._encode(indices, batch.row_lengths)

    def _invert_lookup(self, batch: Batch) -> torch.Tensor:
        indices = batch.values  # (...)
        tokens = self._on_device("_token_tensor", indices.device)  # (V,)
        start = self._token_start_index()
        valid = (indices >= start) & (indices < start + tokens.shape[0])
        position = (indices - start).clamp(0, tokens.shape[0] - 1)
        out = torch.where(valid, tokens[position], cast(int, self._oov_key))
        if self.mask_token is not None:
            out = torch.where(indices == 0, cast(int, self._mask_key), out)
        return out.to(self._key_dtype)

    # ---- adapt ------------------------------------------------------------------------------

    def _count_batch(self, batch: Any) -> tuple[list[Hashable], np.ndarray, np.ndarray | None, int]:
        flat = integer_batch(batch, allow_ragged=True, layer="IntegerLookup.adapt")
        values = self._cast_keys(flat.values).cpu().numpy().reshape(-1)  # (N,)
        unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        tokens: list[Hashable] = unique.tolist()
        if self.output_mode != TF_IDF:
            return tokens, counts, None, 0
        if flat.row_lengths is not None:
            num_docs = len(flat.row_lengths)
            rows = np.repeat(np.arange(num_docs), flat.row_lengths)  # (N,)
        elif len(flat.shape) <= 1:
            num_docs, rows = 1, np.zeros(values.shape[0], dtype=np.int64)
        elif len(flat.shape) == 2:
            num_docs = flat.shape[0]
            rows = np.repeat(np.arange(num_docs), flat.shape[1])  # (N,)
        else:
            raise ValueError(
                "adapt with output_mode='tf_idf' needs batches of rank 1 (one document) or 2 (one "
                f"document per row); got shape {flat.shape}."
            )
        pairs = np.unique(rows * len(tokens) + inverse.reshape(-1))  # (P,) distinct (row, token)
        documents = np.bincount(pairs % len(tokens), minlength=len(tokens))  # (V,)
        return tokens, counts, documents, num_docs

    def _sort_keys(self, tokens: list[Hashable]) -> np.ndarray:
        return np.asarray(tokens, dtype=np.int64)

    # ---- state_dict -------------------------------------------------------------------------

    def _token_state_keys(self) -> list[str]:
        return ["tokens"]

    def _tokens_to_state(self, tokens: list[Hashable]) -> dict[str, torch.Tensor]:
        return {"tokens": torch.tensor(tokens, dtype=torch.int64)}

    def _tokens_from_state(self, state: dict[str, torch.Tensor]) -> list[Hashable]:
        return state["tokens"].cpu().tolist()
