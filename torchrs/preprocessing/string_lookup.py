"""``tf.keras.layers.StringLookup`` (Keras 2) for PyTorch: strings to vocabulary indices.

Torch has no string tensors, so inputs are Python ``str`` / ``bytes``, (nested) lists of them or
NumPy arrays of ``str`` / ``bytes`` / ``object``; outputs are ``torch.LongTensor``s of the input
shape (``output_mode="int"``) or float encodings. Tokens are compared as UTF-8 bytes, like
``tf.string``: ``"é"`` and ``b"\\xc3\\xa9"`` are the same token. TensorFlow eager string tensors
are accepted too (read through ``.numpy()``), which helps parity code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from itertools import repeat
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from torchrs.preprocessing._farmhash import hash_bucket_fast
from torchrs.preprocessing._index_lookup import (
    INT,
    TF_IDF,
    Batch,
    IndexLookup,
    _ragged_rows_error,
    integer_batch,
)

__all__ = ["StringLookup"]

# ``tf.constant`` encodes Python ``str`` as UTF-8 whatever the layer's ``encoding`` is.
INPUT_ENCODING = "utf-8"
# Error handler for str <-> bytes: any byte string (even invalid UTF-8) maps to a str and back.
ESCAPE_ERRORS = "surrogateescape"
# Flat-lookup placeholder for "not in the table" (table indices are >= 0 or the dropped mask).
_MISS = -1


def _input_bytes(value: Any) -> bytes:
    """UTF-8 bytes of one input token; TypeError for anything but str / bytes."""
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return value.encode(INPUT_ENCODING, ESCAPE_ERRORS)
    raise TypeError(
        f"StringLookup inputs must be str or bytes; found {type(value).__name__} {value!r}. "
        "Use IntegerLookup for integer features, or `invert=True` to map indices to strings."
    )


def _string_batch(inputs: Any, allow_ragged: bool) -> Batch:
    """Flatten string inputs to a list (row-major) with their shape or ragged row lengths."""
    if isinstance(inputs, (str, bytes)):
        return Batch([inputs], ())
    if not isinstance(inputs, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(inputs, "numpy"):
        inputs = inputs.numpy()  # a TensorFlow eager tensor (tf.string -> object array of bytes)
        if isinstance(inputs, bytes):
            return Batch([inputs], ())
    if isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"StringLookup maps strings, but got a torch.Tensor of dtype {inputs.dtype}. Pass str "
            "or bytes (lists or NumPy arrays), use IntegerLookup for integer features, or "
            "`invert=True` to map indices back to strings."
        )
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind not in "USO":
            raise TypeError(
                "StringLookup expects a NumPy array of str, bytes or object; got dtype "
                f"{inputs.dtype}. Use IntegerLookup for integer features."
            )
        if inputs.dtype.kind == "O" and inputs.ndim == 1 and inputs.size:
            if isinstance(inputs[0], (list, tuple, np.ndarray)):
                return _nested_batch(list(inputs), allow_ragged)
        return Batch(inputs.ravel().tolist(), inputs.shape)
    if isinstance(inputs, (list, tuple)):
        if inputs and isinstance(inputs[0], (list, tuple, np.ndarray)):
            return _nested_batch(list(inputs), allow_ragged)
        return Batch(list(inputs), (len(inputs),))
    raise TypeError(
        "StringLookup expects str, bytes, a (nested) list or tuple of them, or a NumPy array of "
        f"str/bytes/object; got {type(inputs).__name__}."
    )


def _nested_batch(rows: list[Any], allow_ragged: bool) -> Batch:
    lengths = [len(row) if hasattr(row, "__len__") else -1 for row in rows]
    if len(set(lengths)) <= 1 and lengths[0] >= 0:
        array = np.empty(0, dtype=object)
        try:
            array = np.array(rows, dtype=object)
        except ValueError:
            pass
        if array.ndim >= 2:
            return Batch(array.ravel().tolist(), array.shape)
    if not allow_ragged:
        raise _ragged_rows_error("StringLookup")
    values: list[Any] = []
    for row in rows:
        if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple, np.ndarray)):
            raise TypeError(
                f"StringLookup: each ragged row must be a list of strings; got {row!r}."
            )
        row_values = row.ravel().tolist() if isinstance(row, np.ndarray) else list(row)
        values.extend(row_values)
    return Batch(values, (len(rows),), np.asarray(lengths, dtype=np.int64))


def _unhashable_error(values: list[Any]) -> TypeError:
    for value in values:
        if not isinstance(value, (str, bytes)):
            return TypeError(
                f"StringLookup inputs must be str or bytes; found {type(value).__name__} "
                f"{value!r}. Nested inputs must be rectangular (equal-length rows)."
            )
    return TypeError("StringLookup inputs must be str or bytes.")


class StringLookup(IndexLookup):
    """Maps strings to integer indices from a vocabulary (Keras 2 ``StringLookup``).

    The vocabulary is set with ``vocabulary=`` / :meth:`set_vocabulary` or learned with
    :meth:`adapt` (descending count, ties in reverse byte order). Index layout with the default
    ``mask_token=None``: OOV slots ``0 .. num_oov_indices-1``, then ``vocab[i] -> i +
    num_oov_indices``. With a mask token in ``"int"`` mode the mask is 0 and OOV starts at 1.
    With ``num_oov_indices > 1`` an OOV string goes to slot ``Fingerprint64(utf8) %
    num_oov_indices`` (``tf.strings.to_hash_bucket_fast``), and with 0 it raises.

    Args:
        max_tokens: maximum vocabulary size including mask and OOV slots (caps ``adapt``).
        num_oov_indices: number of OOV slots (default 1).
        mask_token: token for masked inputs (mapped to 0 in ``"int"`` mode, dropped otherwise);
            default None (no mask).
        oov_token: returned for OOV indices when ``invert=True``; default ``"[UNK]"``.
        vocabulary: list / tuple / 1-D array of str or bytes, or a path to a text file with one
            token per line (read like TensorFlow: no special-token handling).
        idf_weights: IDF weights, one per vocabulary entry, for ``output_mode="tf_idf"``.
        encoding: text encoding used to decode tokens in :meth:`get_vocabulary` and inverted
            outputs (inputs given as ``str`` are always UTF-8 encoded, as by ``tf.constant``).
        invert: map indices back to strings (returns a NumPy object array of ``str``).
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        sparse: must be False; sparse outputs are not supported.
        pad_to_max_tokens: pad encoded outputs to ``max_tokens`` columns.
        **kwargs: Keras layer arguments found in configs (``name``, ``dtype``,
            ``vocabulary_size``...).

    Bytes that are not valid UTF-8 are decoded with ``surrogateescape`` in outputs, so
    ``get_vocabulary()`` fed back to ``set_vocabulary`` gives the same layer. NumPy ``"U"``/``"S"``
    arrays drop trailing NUL characters; use lists or ``object`` arrays for such tokens.

    Outputs are computed on the CPU and moved to the layer's device (``layer.to(device)``).

    >>> layer = StringLookup(vocabulary=["a", "b", "c", "d"])
    >>> layer([["a", "c", "d"], ["d", "z", "b"]])
    tensor([[1, 3, 4],
            [4, 0, 2]])
    >>> layer = StringLookup()
    >>> layer.adapt([["a", "c", "d"], ["d", "z", "b"]])
    >>> layer.get_vocabulary()
    ['[UNK]', 'd', 'z', 'c', 'b', 'a']
    >>> StringLookup(vocabulary=["a", "b", "c", "d"], num_oov_indices=2)([["a", "c", "d"], ["m", "z", "b"]])
    tensor([[2, 4, 5],
            [0, 1, 3]])
    >>> StringLookup(vocabulary=["a", "b", "c", "d"], invert=True)([[1, 3, 4], [4, 0, 2]])
    array([['a', 'c', 'd'],
           ['d', '[UNK]', 'b']], dtype=object)
    """

    def __init__(
        self,
        max_tokens: int | None = None,
        num_oov_indices: int = 1,
        mask_token: str | bytes | None = None,
        oov_token: str | bytes = "[UNK]",
        vocabulary: Any = None,
        idf_weights: Any = None,
        encoding: str = "utf-8",
        invert: bool = False,
        output_mode: str = "int",
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        # Legacy Keras configs carry dtype="string" (the old input dtype): ignore it, as Keras does.
        if kwargs.get("dtype") in ("string", "str"):
            del kwargs["dtype"]
        kwargs.pop("vocabulary_dtype", None)  # always strings
        self.encoding = encoding
        self._table: dict[Any, int] = {}
        self._inverse_table: np.ndarray | None = None
        # The same table for Arrow's C++ hash lookup: the byte keys and the index each maps to.
        self._arrow_lookup_options: pc.SetLookupOptions | None = None
        self._arrow_slots = np.zeros(0, dtype=np.int64)
        super().__init__(
            max_tokens=max_tokens,
            num_oov_indices=num_oov_indices,
            mask_token=mask_token,
            oov_token=oov_token,
            vocabulary_dtype="string",
            vocabulary=vocabulary,
            idf_weights=idf_weights,
            invert=invert,
            output_mode=output_mode,
            sparse=sparse,
            pad_to_max_tokens=pad_to_max_tokens,
            **kwargs,
        )

    # ---- token codec ------------------------------------------------------------------------

    def _canonical_token(self, token: Any, argument: str) -> Hashable:
        if isinstance(token, (str, bytes)):
            return _input_bytes(token)
        raise TypeError(
            f"StringLookup `{argument}` must be a str or bytes (or None); got "
            f"{type(token).__name__} {token!r}."
        )

    def _canonical_vocabulary(self, vocabulary: Any) -> list[Hashable]:
        if isinstance(vocabulary, np.ndarray):
            if vocabulary.ndim != 1 or vocabulary.dtype.kind not in "USO":
                raise ValueError(
                    "StringLookup `vocabulary` must be a 1-D array of str or bytes; got shape "
                    f"{vocabulary.shape} and dtype {vocabulary.dtype}."
                )
            items = vocabulary.tolist()
        elif isinstance(vocabulary, (list, tuple)):
            items = list(vocabulary)
        else:
            raise TypeError(
                "StringLookup `vocabulary` must be a list, tuple, 1-D NumPy array of str/bytes, "
                f"or a path to a text file; got {type(vocabulary).__name__}."
            )
        out: list[Hashable] = []
        for item in items:
            if not isinstance(item, (str, bytes)):
                raise TypeError(
                    "StringLookup `vocabulary` entries must be str or bytes; got "
                    f"{type(item).__name__} {item!r}."
                )
            out.append(_input_bytes(item))
        return out

    def _parse_file_token(self, line: bytes, number: int, path: str) -> Hashable:
        return line

    def _decode(self, token: bytes) -> str:
        return token.decode(self.encoding, ESCAPE_ERRORS)

    def _public_token(self, token: Hashable) -> Any:
        return self._decode(token)  # type: ignore[arg-type]

    def _special_str(self, token: Any) -> str:
        return self._decode(token) if isinstance(token, bytes) else token

    def _config_token(self, token: Any) -> Any:
        return None if token is None else self._special_str(token)

    def _config_vocabulary(self) -> Any:
        vocab = self.input_vocabulary
        if isinstance(vocab, (list, tuple, np.ndarray)):
            tokens = cast(list[bytes], self._canonical_vocabulary(vocab))
            return [t.decode(INPUT_ENCODING, ESCAPE_ERRORS) for t in tokens]
        return super()._config_vocabulary()

    def get_config(self) -> dict[str, Any]:
        """Keras ``StringLookup`` config (JSON-safe; ``encoding`` instead of ``vocabulary_dtype``).

        Returns:
            The config dict.
        """
        config = super().get_config()
        del config["vocabulary_dtype"]
        config["encoding"] = self.encoding
        return config

    # ---- table ------------------------------------------------------------------------------

    def _build_table(self, tokens: list[Hashable]) -> None:
        start = self._token_start_index()
        table: dict[Any, int] = {}
        for index, token in enumerate(tokens, start):
            table[token] = index
            table[token.decode(INPUT_ENCODING, ESCAPE_ERRORS)] = index  # type: ignore[attr-defined]
        if self._mask_key is not None:  # the mask wins over any table entry, as in Keras
            mask = cast(bytes, self._mask_key)
            table[mask] = table[mask.decode(INPUT_ENCODING, ESCAPE_ERRORS)] = self._mask_value()
        self._table = table
        self._inverse_table = None
        byte_keys = [key for key in table if isinstance(key, bytes)]
        self._arrow_lookup_options = pc.SetLookupOptions(
            value_set=pa.array(byte_keys, type=pa.binary())
        )
        self._arrow_slots = np.fromiter(map(table.__getitem__, byte_keys), np.int64, len(byte_keys))

    def _arrow_indices(self, values: list[Any]) -> np.ndarray | None:
        """Indices, OOV resolved, by Arrow's C++ hash table; None where Arrow cannot.

        Arrow converts a list of all-``str`` (UTF-8) or all-``bytes`` tokens without a Python call
        per token and compares bytes, as ``tf.string`` does. Mixed ``str`` / ``bytes``, ``str``
        holding surrogate escapes (non-UTF-8 tokens), non-strings or an empty batch return None: the
        dict lookup handles those (and raises the errors users see).
        """
        if not values or self._arrow_lookup_options is None:
            return None
        try:
            array = pa.array(values)
        except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
            return None
        if array.null_count or not (
            pa.types.is_string(array.type) or pa.types.is_binary(array.type)
        ):
            return None
        if pa.types.is_string(array.type):
            array = array.cast(pa.binary())  # a view of the same UTF-8 bytes
        positions = pc.index_in(array, options=self._arrow_lookup_options)  # (N,), null: absent
        found = positions.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)  # (N,)
        indices = np.where(found >= 0, self._arrow_slots[np.maximum(found, 0)], _MISS)  # (N,)
        missing = np.flatnonzero(found < 0)  # (M,): OOV, compared as canonical UTF-8 bytes already
        if missing.size == 0:
            return indices
        # Each distinct OOV token once (Arrow's dictionary encoding), then to its OOV slot.
        encoded = pc.dictionary_encode(array.take(pa.array(missing)))
        distinct = encoded.dictionary.to_pylist()  # (U,) bytes
        if self.num_oov_indices == 0:
            self._raise_num_oov_zero([self._decode(k) for k in distinct])
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)  # (M,)
        if self.num_oov_indices == 1:
            indices[missing] = self._oov_start_index()
        else:
            buckets = hash_bucket_fast(distinct, self.num_oov_indices)  # (U,)
            indices[missing] = buckets[codes] + self._oov_start_index()
        return indices

    def _lookup_values(self, values: list[Any]) -> np.ndarray:
        """Indices of flat input strings, OOV handled (hashing, or the num_oov_indices=0 error)."""
        table = self._table
        indices = self._arrow_indices(values)
        if indices is None:
            try:
                indices = np.fromiter(map(table.get, values, repeat(_MISS)), np.int64, len(values))
            except TypeError:
                raise _unhashable_error(values) from None
        missing = np.flatnonzero(indices == _MISS)  # (M,)
        if missing.size == 0:
            return indices
        # Each distinct unmatched input is resolved once: as UTF-8 bytes, then to its OOV bucket.
        distinct = list(dict.fromkeys(values[i] for i in missing))  # (U,)
        keys = [_input_bytes(value) for value in distinct]
        resolved = np.fromiter(map(table.get, keys, repeat(_MISS)), np.int64, len(keys))  # (U,)
        oov = np.flatnonzero(resolved == _MISS)
        if oov.size:
            oov_keys = [keys[i] for i in oov]
            if self.num_oov_indices == 0:
                self._raise_num_oov_zero([self._decode(k) for k in dict.fromkeys(oov_keys)])
            if self.num_oov_indices == 1:
                resolved[oov] = self._oov_start_index()
            else:
                buckets = hash_bucket_fast(oov_keys, self.num_oov_indices)  # (O,)
                resolved[oov] = buckets + self._oov_start_index()
        slot = dict(zip(distinct, resolved.tolist(), strict=True))
        indices[missing] = np.fromiter(
            map(slot.__getitem__, (values[i] for i in missing)), np.int64, missing.size
        )
        return indices

    # ---- forward ----------------------------------------------------------------------------

    def forward(self, inputs: Any) -> torch.Tensor | np.ndarray:
        """Look strings up (or, with ``invert=True``, indices back up).

        Args:
            inputs: str / bytes, a (nested) list or tuple of them, or a NumPy array of
                str/bytes/object. Rows of different lengths are accepted outside ``"int"`` mode.
                With ``invert=True``: integer indices (tensor, array, list).

        Returns:
            ``"int"``: a LongTensor of the input shape. ``"one_hot"``: ``(..., depth)``.
            ``"multi_hot"`` / ``"count"`` / ``"tf_idf"``: ``(depth,)`` for 1-D input, ``(B,
            depth)`` for 2-D or ragged input. ``invert=True``: a NumPy object array of ``str``.

        Raises:
            RuntimeError: no vocabulary yet.
            TypeError: inputs that are not strings (or not integers with ``invert``).
            ValueError: an OOV input with ``num_oov_indices=0``; output rank above 2.
        """
        self._ensure_vocabulary()
        if self.invert:
            return self._invert_lookup(inputs)
        batch = _string_batch(inputs, allow_ragged=self.output_mode != INT)
        indices = torch.from_numpy(self._lookup_values(batch.values))  # (N,)
        if batch.row_lengths is None:
            indices = indices.reshape(batch.shape)
        return self._encode(indices, batch.row_lengths).to(self._output_device())

    def _invert_lookup(self, inputs: Any) -> np.ndarray:
        batch = integer_batch(inputs, allow_ragged=False, layer="StringLookup(invert=True)")
        if self._inverse_table is None:
            self._inverse_table = np.array(
                [self._special_str(t) for t in self.get_vocabulary()], dtype=object
            )
        table = self._inverse_table  # (V,)
        indices = batch.values.cpu().numpy()  # (...)
        out = np.full(indices.shape, self._special_str(self.oov_token), dtype=object)
        valid = (indices >= 0) & (indices < table.shape[0])
        out[valid] = table[indices[valid]]
        return out

    # ---- adapt ------------------------------------------------------------------------------

    def _count_batch(self, batch: Any) -> tuple[list[Hashable], np.ndarray, np.ndarray | None, int]:
        flat = _string_batch(batch, allow_ragged=True)
        try:
            raw_counts = Counter(flat.values)
        except TypeError:
            raise _unhashable_error(flat.values) from None
        canonical: dict[Any, bytes] = {raw: _input_bytes(raw) for raw in raw_counts}
        merged: dict[Hashable, int] = {}
        for raw, count in raw_counts.items():
            key = canonical[raw]
            merged[key] = merged.get(key, 0) + count
        tokens = list(merged)
        counts = np.fromiter(merged.values(), dtype=np.int64, count=len(tokens))
        if self.output_mode != TF_IDF:
            return tokens, counts, None, 0
        rows = self._document_rows(flat)
        doc_counts: dict[Hashable, int] = {}
        for row in rows:
            for key in {canonical[v] for v in row}:
                doc_counts[key] = doc_counts.get(key, 0) + 1
        documents = np.array([doc_counts.get(t, 0) for t in tokens], dtype=np.int64)
        return tokens, counts, documents, len(rows)

    @staticmethod
    def _document_rows(flat: Batch) -> list[list[Any]]:
        """Documents of one adapt batch: the batch itself if 0/1-D, else one per row."""
        values = flat.values
        if flat.row_lengths is not None:
            ends = np.cumsum(flat.row_lengths).tolist()
            starts = [0, *ends[:-1]]
            return [values[s:e] for s, e in zip(starts, ends, strict=True)]
        if len(flat.shape) <= 1:
            return [values]
        if len(flat.shape) > 2:
            raise ValueError(
                "adapt with output_mode='tf_idf' needs batches of rank 1 (one document) or 2 (one "
                f"document per row); got shape {flat.shape}."
            )
        width = flat.shape[1]
        return [values[i * width : (i + 1) * width] for i in range(flat.shape[0])]

    def _sort_keys(self, tokens: list[Hashable]) -> np.ndarray:
        keys = np.empty(len(tokens), dtype=object)
        keys[:] = tokens  # bytes objects: compared bytewise, as Keras sorts tf.string keys
        return keys

    # ---- state_dict -------------------------------------------------------------------------

    def _token_state_keys(self) -> list[str]:
        return ["token_bytes", "token_offsets"]

    def _tokens_to_state(self, tokens: list[Hashable]) -> dict[str, torch.Tensor]:
        blob = b"".join(tokens)  # type: ignore[arg-type]
        offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in tokens], out=offsets[1:])  # type: ignore[arg-type]
        return {
            "token_bytes": torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            if blob
            else torch.empty(0, dtype=torch.uint8),
            "token_offsets": torch.from_numpy(offsets),
        }

    def _tokens_from_state(self, state: dict[str, torch.Tensor]) -> list[Hashable]:
        blob = state["token_bytes"].cpu().numpy().astype(np.uint8).tobytes()
        offsets = state["token_offsets"].cpu().tolist()
        return [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
