"""Shared machinery of :class:`StringLookup` and :class:`IntegerLookup` (Keras 2 ``IndexLookup``).

Index layout, exactly as ``tf_keras`` 2.x lays it out:

- ``output_mode="int"`` with a ``mask_token``: the mask maps to 0, the ``num_oov_indices`` OOV
  slots follow from 1, then the vocabulary;
- otherwise (no mask, or any other output mode): the OOV slots start at 0 and the vocabulary
  follows them. Outside ``"int"`` mode the mask token takes no slot and is dropped from the
  encoded output.

``adapt`` orders tokens by descending count and breaks ties by descending token (byte order for
strings, numeric order for integers), the order of ``np.lexsort((tokens, counts))[::-1]`` in
Keras, then keeps ``max_tokens`` minus the special slots.

Pure functions (:func:`encode_categorical_inputs`, :func:`inverse_document_frequency`,
:func:`read_vocabulary_file`) hold the math; :class:`IndexLookup` holds the vocabulary.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn

INT = "int"
ONE_HOT = "one_hot"
MULTI_HOT = "multi_hot"
COUNT = "count"
TF_IDF = "tf_idf"
OUTPUT_MODES = (INT, ONE_HOT, MULTI_HOT, COUNT, TF_IDF)
# Keras still accepts the pre-2.6 spellings of two output modes and renames them.
DEPRECATED_OUTPUT_MODES = {"binary": MULTI_HOT, "tf-idf": TF_IDF}
# Keras ``adapt`` slices array data into batches of 32 rows when ``batch_size`` is None; a 1-D
# batch is one document for ``tf_idf``, so the batch size changes the learned IDF weights.
DEFAULT_ADAPT_BATCH_SIZE = 32
# Keras maps the mask token to int64 max outside "int" mode so that ``tf.math.bincount`` drops it.
MASK_DROPPED = torch.iinfo(torch.int64).max
# Keras's table default when OOV inputs must be hashed (num_oov_indices > 1) or rejected (== 0).
OOV_SENTINEL = -1
# Keras layer keyword arguments that carry no meaning here (they appear in Keras configs).
_IGNORED_KERAS_KWARGS = frozenset(
    {
        "trainable",
        "batch_input_shape",
        "input_shape",
        "batch_size",
        "dynamic",
        "input_dim",
        "has_static_table",
        "autocast",
    }
)
_DTYPE_NAMES = {
    "int32": torch.int32,
    "int64": torch.int64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# TensorFlow's text-file table initializer rejects empty lines and strips one trailing "\r".
_LINE_END = re.compile(rb"\r?\n")


# --------------------------------------------------------------------------------------------
# Pure functions.
# --------------------------------------------------------------------------------------------


def inverse_document_frequency(token_document_counts: np.ndarray, num_documents: int) -> np.ndarray:
    """Keras IDF weights ``log(1 + num_documents / (1 + token_document_counts))``.

    Computed in float64 as TensorFlow does (int64 / int64 true division), then left to the
    caller to cast.

    Args:
        token_document_counts: ``(V,)`` number of documents each token appears in.
        num_documents: total number of documents seen by ``adapt``.

    Returns:
        ``(V,)`` float64 IDF weights.

    >>> inverse_document_frequency(np.array([1, 3]), 3).round(4).tolist()
    [0.9163, 0.5596]
    """
    counts = np.asarray(token_document_counts, dtype=np.float64)  # (V,)
    return np.log(1.0 + float(num_documents) / (1.0 + counts))  # (V,)


def encode_categorical_inputs(
    indices: torch.Tensor,
    output_mode: str,
    depth: int,
    dtype: torch.dtype = torch.float32,
    idf_weights: torch.Tensor | None = None,
    row_ids: torch.Tensor | None = None,
    num_rows: int | None = None,
) -> torch.Tensor:
    """Keras ``encode_categorical_inputs``: turn lookup indices into one/multi-hot, counts, TF-IDF.

    Indices outside ``[0, depth)`` (the dropped mask, ``MASK_DROPPED``) are not counted, as
    ``tf.math.bincount(minlength=depth, maxlength=depth)`` does not count them.

    Args:
        indices: integer indices. Dense: any rank up to 2 (rank 0 is treated as one sample; for
            ``"one_hot"`` a last axis that is not of size 1 gets a new axis appended first).
            Ragged (``row_ids`` given): the flat ``(N,)`` values of all rows.
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        depth: size of the encoded last axis.
        dtype: floating (or integer) dtype of the result.
        idf_weights: ``(depth,)`` weights, required for ``"tf_idf"``.
        row_ids: ``(N,)`` row of each flat index, for ragged input.
        num_rows: number of ragged rows (rows may be empty).

    Returns:
        ``indices`` cast to ``dtype`` for ``"int"``; otherwise ``(..., depth)`` with the last input
        axis replaced by ``depth`` (``(depth,)`` for rank-0/1 input, ``(B, depth)`` for rank 2 or
        ragged input).

    Raises:
        ValueError: if the encoded output would have rank above 2, or ``idf_weights`` is missing.

    >>> encode_categorical_inputs(torch.tensor([[1, 3, 3], [0, 2, 9]]), "count", 4)
    tensor([[0., 1., 0., 2.],
            [1., 0., 1., 0.]])
    """
    if output_mode == INT:
        return indices.to(dtype)
    if row_ids is None:
        original_shape = tuple(indices.shape)
        if indices.dim() == 0:
            indices = indices.unsqueeze(-1)
        if output_mode == ONE_HOT and indices.shape[-1] != 1:
            indices = indices.unsqueeze(-1)
        if indices.dim() > 2:
            raise ValueError(
                "When output_mode is not `'int'`, maximum supported output rank is 2. "
                f"Received output_mode={output_mode!r} and input shape {original_shape}, which "
                f"would result in output rank {indices.dim()}. Flatten the input to at most 2-D."
            )
        rank1 = indices.dim() == 1
        rows2d = indices.reshape(1, -1) if rank1 else indices  # (R, L)
        num_rows = rows2d.shape[0]
        row_ids = torch.arange(num_rows, device=indices.device).unsqueeze(1).expand_as(rows2d)
        flat, row_ids = rows2d.reshape(-1), row_ids.reshape(-1)  # (R*L,), (R*L,)
    else:
        rank1, flat = False, indices.reshape(-1)  # (N,)
        if num_rows is None:
            raise ValueError("`num_rows` is required with `row_ids`.")
    valid = (flat >= 0) & (flat < depth)  # (N,)
    cells = row_ids[valid] * depth + flat[valid]  # (M,) flat cell ids
    counts = torch.bincount(cells, minlength=num_rows * depth).reshape(num_rows, depth)  # (R, D)
    if output_mode in (ONE_HOT, MULTI_HOT):
        counts = counts > 0
    out = counts.to(dtype)  # (R, D)
    if output_mode == TF_IDF:
        if idf_weights is None:
            raise ValueError("When output_mode is `'tf_idf'`, `idf_weights` must be provided.")
        out = out * idf_weights.to(device=out.device, dtype=dtype)  # (R, D)
    return out[0] if rank1 else out


def read_vocabulary_file(path: str | os.PathLike[str]) -> list[bytes]:
    """Lines of a vocabulary file, split as TensorFlow's ``TextFileInitializer`` splits them.

    One token per line; a trailing ``"\\r"`` is stripped; other whitespace is kept; a final
    newline does not add a token; an empty line is an error, as in TensorFlow.

    Args:
        path: the text file.

    Returns:
        The tokens as raw ``bytes``, in file order.

    Raises:
        ValueError: if the file does not exist or has an empty line.
    """
    if not os.path.isfile(path):
        raise ValueError(
            f"Vocabulary file {os.fspath(path)!r} does not exist. Pass an existing file with one "
            "token per line, or a list of tokens."
        )
    with open(path, "rb") as handle:
        data = handle.read()
    lines = _LINE_END.split(data)
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    for number, line in enumerate(lines):
        if not line:
            raise ValueError(
                f"Invalid content in vocabulary file {os.fspath(path)!r}: empty line found at "
                f"line {number} (0-based). TensorFlow rejects empty lines; remove it."
            )
    return lines


@dataclass(frozen=True)
class Batch:
    """Inputs flattened for lookup: ``values`` in row-major order plus how to reshape them.

    Dense inputs have ``shape`` (possibly ``()``) and ``row_lengths=None``; ragged inputs (a list
    of rows of different lengths) have ``shape=(num_rows,)`` and ``row_lengths`` per row.
    """

    values: Any
    shape: tuple[int, ...]
    row_lengths: np.ndarray | None = None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def parse_dtype(dtype: Any, default: torch.dtype) -> torch.dtype:
    """Torch dtype from a Keras ``dtype`` config value (name, policy dict) or a torch dtype."""
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, dict):  # Keras 2.13+ serialises a DTypePolicy as a dict.
        dtype = dtype.get("config", {}).get("name", None)
    if isinstance(dtype, str):
        name = dtype.replace("mixed_", "")
        if name in _DTYPE_NAMES:
            return _DTYPE_NAMES[name]
    raise ValueError(
        f"Unsupported `dtype`: {dtype!r}. Use one of {sorted(_DTYPE_NAMES)} or a torch.dtype."
    )


# --------------------------------------------------------------------------------------------
# The module.
# --------------------------------------------------------------------------------------------


class IndexLookup(nn.Module):
    """Keras 2 ``IndexLookup``: the vocabulary logic shared by the string and integer lookups.

    Not a public layer (as in Keras); subclasses supply how tokens are read, compared and looked
    up. Token values are kept in a canonical form: ``bytes`` for strings, ``int`` for integers.

    Args:
        max_tokens: maximum vocabulary size including the mask and OOV slots, or None.
        num_oov_indices: number of OOV slots; OOV inputs are hashed over them when more than 1,
            and raise when 0.
        mask_token: token mapped to 0 in ``"int"`` mode and dropped in other modes; None for no
            mask.
        oov_token: token returned for OOV indices by ``invert=True``.
        vocabulary_dtype: ``"string"`` or an integer dtype name.
        vocabulary: tokens, or a path to a text file with one token per line.
        idf_weights: IDF weights, only with ``output_mode="tf_idf"``.
        invert: map indices back to tokens (only with ``output_mode="int"``).
        output_mode: ``"int"``, ``"one_hot"``, ``"multi_hot"``, ``"count"`` or ``"tf_idf"``.
        sparse: must be False (torch sparse outputs are not supported).
        pad_to_max_tokens: pad the encoded axis to ``max_tokens``.
        **kwargs: Keras layer arguments found in configs: ``name``, ``dtype`` (output dtype),
            ``vocabulary_size`` and ``has_input_vocabulary``; others such as ``trainable`` are
            accepted and ignored.
    """

    def __init__(
        self,
        max_tokens: int | None,
        num_oov_indices: int,
        mask_token: Any,
        oov_token: Any,
        vocabulary_dtype: str,
        vocabulary: Any = None,
        idf_weights: Any = None,
        invert: bool = False,
        output_mode: str = INT,
        sparse: bool = False,
        pad_to_max_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        cls = type(self).__name__
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(
                f"If set, `max_tokens` must be greater than 1 (it counts the mask and OOV slots). "
                f"Received: max_tokens={max_tokens}"
            )
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(
                "If `pad_to_max_tokens` is True, `max_tokens` must be set. "
                f"Received: max_tokens={max_tokens}"
            )
        if not isinstance(num_oov_indices, (int, np.integer)) or num_oov_indices < 0:
            raise ValueError(
                "`num_oov_indices` must be an integer greater than or equal to 0. "
                f"Received: num_oov_indices={num_oov_indices!r}"
            )
        output_mode = DEPRECATED_OUTPUT_MODES.get(output_mode, output_mode)
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"Unknown value for `output_mode` of {cls}: {output_mode!r}. "
                f"Allowed values are: {OUTPUT_MODES}."
            )
        if invert and output_mode != INT:
            raise ValueError(
                "`output_mode` must be `'int'` when `invert` is true. "
                f"Received: output_mode={output_mode!r}"
            )
        if sparse:
            raise ValueError(
                f"`sparse=True` is not supported by torchrs {cls}: outputs are dense torch "
                f"tensors. Received: sparse={sparse!r}. Use sparse=False (the default) and "
                "convert with `.to_sparse()` if needed."
            )
        if idf_weights is not None and output_mode != TF_IDF:
            raise ValueError(
                "`idf_weights` should only be set if `output_mode` is `'tf_idf'`. "
                f"Received: idf_weights={idf_weights!r} and output_mode={output_mode!r}"
            )
        name = kwargs.pop("name", None)
        dtype = kwargs.pop("dtype", None)
        frozen_vocab_size = kwargs.pop("vocabulary_size", None)
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        unknown = sorted(set(kwargs) - _IGNORED_KERAS_KWARGS)
        if unknown:
            raise TypeError(f"{cls} got unexpected keyword arguments: {unknown}.")

        self.name = name if name is not None else re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
        self.invert = bool(invert)
        self.max_tokens = max_tokens
        self.num_oov_indices = int(num_oov_indices)
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = output_mode
        self.sparse = False
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.vocabulary_dtype = vocabulary_dtype
        self.input_vocabulary = vocabulary
        self.input_idf_weights = idf_weights
        default_dtype = torch.int64 if output_mode == INT else torch.float32
        self.dtype = parse_dtype(dtype, default_dtype)
        if output_mode == INT and (self.dtype.is_floating_point or self.dtype == torch.bool):
            raise ValueError(
                f"When `output_mode='int'`, `dtype` should be an integer type. Received: dtype={dtype!r}"
            )
        self._mask_key = (
            None if mask_token is None else self._canonical_token(mask_token, "mask_token")
        )
        self._oov_key = None if oov_token is None else self._canonical_token(oov_token, "oov_token")
        if invert and oov_token is None:
            raise ValueError(
                "`invert=True` returns `oov_token` for OOV indices, so it cannot be None. "
                f"Received: oov_token={oov_token!r}"
            )
        self._has_input_vocabulary = bool(has_input_vocabulary)
        self._frozen_vocab_size: int | None = frozen_vocab_size
        self._tokens: list[Hashable] | None = None
        #: Bumped whenever the vocabulary changes (set_vocabulary, adapt, load_state_dict), so that caches of
        #: this layer's outputs (FactorizedTopK's corpus snapshot) can tell; tensors have version counters.
        self.vocabulary_version = 0
        self._reset_adapt_state()
        # Follows .to(device): outputs computed on the CPU (strings) are moved to this device.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self.register_buffer("idf_weights", None, persistent=False)
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # ---- subclass hooks ---------------------------------------------------------------------

    def _canonical_token(self, token: Any, argument: str) -> Hashable:
        """Canonical form of one token (bytes / int); TypeError naming ``argument`` if invalid."""
        raise NotImplementedError

    def _canonical_vocabulary(self, vocabulary: Any) -> list[Hashable]:
        """Canonical tokens of an in-memory 1-D vocabulary."""
        raise NotImplementedError

    def _parse_file_token(self, line: bytes, number: int, path: str) -> Hashable:
        """Canonical token of one vocabulary-file line."""
        raise NotImplementedError

    def _public_token(self, token: Hashable) -> Any:
        """What ``get_vocabulary`` returns for a canonical token."""
        raise NotImplementedError

    def _build_table(self, tokens: list[Hashable]) -> None:
        """(Re)build the fast lookup structures for ``tokens`` (canonical, no special tokens)."""
        raise NotImplementedError

    def _count_batch(self, batch: Any) -> tuple[list[Hashable], np.ndarray, np.ndarray | None, int]:
        """Adapt counts of one batch: tokens, counts, document counts (tf_idf) and documents."""
        raise NotImplementedError

    def _sort_keys(self, tokens: list[Hashable]) -> np.ndarray:
        """1-D array that ``np.lexsort`` orders like Keras orders these tokens."""
        raise NotImplementedError

    # ---- indices ----------------------------------------------------------------------------

    def _oov_start_index(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == INT else 0

    def _token_start_index(self) -> int:
        return self._oov_start_index() + self.num_oov_indices

    def _mask_value(self) -> int:
        return 0 if self.output_mode == INT else MASK_DROPPED

    def _default_value(self) -> int:
        """Index of a token not in the vocabulary before OOV hashing (Keras's table default)."""
        return self._oov_start_index() if self.num_oov_indices == 1 else OOV_SENTINEL

    def _output_device(self) -> torch.device:
        anchor: torch.Tensor = self._device_anchor  # type: ignore[assignment]
        return anchor.device

    # ---- vocabulary -------------------------------------------------------------------------

    def vocabulary_size(self) -> int:
        """Size of the vocabulary including the mask and OOV slots.

        Returns:
            ``token_start + number of tokens`` (just the special slots before a vocabulary is set).
        """
        return self._token_start_index() + (0 if self._tokens is None else len(self._tokens))

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[Any]:
        """The vocabulary, so that ``vocab[i]`` is the token of index ``i``.

        Args:
            include_special_tokens: include the mask (``"int"`` mode) and OOV slots. If False,
                only the learned / given tokens are returned.

        Returns:
            A list of tokens: ``str`` for ``StringLookup``, ``int`` for ``IntegerLookup``; OOV
            slots hold ``oov_token`` and slot 0 holds ``mask_token`` in ``"int"`` mode.
        """
        tokens = [self._public_token(t) for t in (self._tokens or [])]
        if not include_special_tokens:
            return tokens
        specials = [self.oov_token] * self._token_start_index()
        if self.mask_token is not None and self.output_mode == INT:
            specials[0] = self.mask_token
        return [self._public_special(t) for t in specials] + tokens

    def _public_special(self, token: Any) -> Any:
        return token

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Set the vocabulary (and IDF weights) directly instead of adapting.

        Args:
            vocabulary: a list, tuple or 1-D array of tokens, or a path to a text file with one
                token per line. An in-memory vocabulary may start with the special tokens in
                their exact order (``[mask] + [oov] * num_oov_indices``); they are then skipped.
            idf_weights: 1-D IDF weights, as long as ``vocabulary``; required for ``"tf_idf"``
                and forbidden otherwise.

        Raises:
            ValueError: empty vocabulary, repeated tokens, a mask (or, with ``invert``, an OOV)
                token inside the vocabulary, more tokens than ``max_tokens``, missing or
                misshapen ``idf_weights``.
            RuntimeError: the vocabulary size changes in a non-``"int"`` mode without padding.
        """
        cls = type(self).__name__
        if self.output_mode == TF_IDF:
            if idf_weights is None:
                raise ValueError(
                    "`idf_weights` must be set if output_mode is 'tf_idf'. Pass one weight per "
                    "vocabulary entry."
                )
        elif idf_weights is not None:
            raise ValueError(
                "`idf_weights` should only be set if output_mode is `'tf_idf'`. "
                f"Received: output_mode={self.output_mode!r} and idf_weights={idf_weights!r}"
            )
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == TF_IDF:
                raise ValueError(
                    "output_mode `'tf_idf'` does not support loading a vocabulary from file "
                    f"({os.fspath(vocabulary)!r}); pass the tokens and `idf_weights` as lists."
                )
            path = os.fspath(vocabulary)
            lines = read_vocabulary_file(path)
            # As in Keras, a file is the table itself: no special-token stripping or checks.
            tokens = [self._parse_file_token(line, i, path) for i, line in enumerate(lines)]
            self._check_repeated(tokens, f"vocabulary file {path!r}")
            self._install_tokens(tokens)
            return

        full = self._canonical_vocabulary(vocabulary)
        if len(full) == 0:
            raise ValueError(f"Cannot set an empty vocabulary, you passed {vocabulary!r}.")
        oov_start, token_start = self._oov_start_index(), self._token_start_index()
        specials = [self._mask_key] * oov_start + [self._oov_key] * self.num_oov_indices
        found_special_tokens = full[:token_start] == specials
        tokens = full[token_start:] if found_special_tokens else full
        self._check_repeated(tokens, "vocabulary")
        if self._mask_key is not None and self._mask_key in tokens:
            raise ValueError(
                "Found reserved mask token at unexpected location in `vocabulary`. The passed "
                "`vocabulary` does not need to include the OOV and mask tokens. Either remove all "
                "mask and OOV tokens, or include them only at the start of the vocabulary in "
                f"precisely this order: {[self._public_special(t) for t in self._specials()]}. "
                f"Received: mask_token={self.mask_token!r} at vocabulary index "
                f"{full.index(self._mask_key, oov_start if found_special_tokens else 0)}"
            )
        if self.invert and self._oov_key is not None and self._oov_key in tokens:
            raise ValueError(
                "Found reserved OOV token at unexpected location in `vocabulary`. The passed "
                "`vocabulary` does not need to include the OOV and mask tokens. Either remove all "
                "mask and OOV tokens, or include them only at the start of the vocabulary in "
                f"precisely this order: {[self._public_special(t) for t in self._specials()]}. "
                f"Received: oov_token={self.oov_token!r} at vocabulary index "
                f"{len(full) - len(tokens) + tokens.index(self._oov_key)}"
            )
        if not tokens:
            raise ValueError(
                f"{cls} vocabulary {vocabulary!r} holds only the special tokens; pass at least "
                "one regular token."
            )
        new_size = token_start + len(tokens)
        if self.max_tokens is not None and new_size > self.max_tokens:
            raise ValueError(
                "Attempted to set a vocabulary larger than the maximum vocab size. Passed vocab "
                f"size is {new_size} (with {token_start} special slots), max vocab size "
                f"(`max_tokens`) is {self.max_tokens}."
            )
        weights = None
        if self.output_mode == TF_IDF:
            weights = self._padded_idf(idf_weights, len(full), found_special_tokens)
        self._install_tokens(tokens, weights)

    def _specials(self) -> list[Hashable]:
        return [self._mask_key] * self._oov_start_index() + [self._oov_key] * self.num_oov_indices

    def _check_repeated(self, tokens: list[Hashable], what: str) -> None:
        if len(set(tokens)) != len(tokens):
            seen: set[Hashable] = set()
            repeated = []
            for token in tokens:
                if token in seen and token not in repeated:
                    repeated.append(token)
                seen.add(token)
            raise ValueError(
                f"The passed {what} has at least one repeated term. Please uniquify it. The "
                f"repeated terms are {[self._public_token(t) for t in repeated]}"
            )

    def _padded_idf(self, idf_weights: Any, vocab_len: int, found_special: bool) -> torch.Tensor:
        if isinstance(idf_weights, torch.Tensor):
            idf_weights = idf_weights.detach().cpu().numpy()
        weights = np.asarray(idf_weights)
        if weights.ndim != 1 or weights.dtype.kind not in "iuf":
            raise ValueError(
                "`idf_weights` must be a 1-D array of numbers. Received: "
                f"shape {weights.shape}, dtype {weights.dtype}."
            )
        if weights.shape[0] != vocab_len:
            raise ValueError(
                "`idf_weights` must be the same length as `vocabulary`. "
                f"len(idf_weights) is {weights.shape[0]}, len(vocabulary) is {vocab_len}."
            )
        # Without explicit special tokens, Keras fills their weights with the mean of those given
        # (``np.average``), and pads the back with zeros up to max_tokens when padding.
        front = 0 if found_special else self._token_start_index()
        front_value = 0 if found_special else np.average(weights)
        back = 0
        if self.pad_to_max_tokens and self.max_tokens is not None:
            back = self.max_tokens - front - weights.shape[0]
        padded = np.pad(weights, (front, back), "constant", constant_values=(front_value, 0))
        return torch.as_tensor(padded).to(self.dtype)  # (D,)

    def _install_tokens(
        self, tokens: list[Hashable], idf_weights: torch.Tensor | None = None
    ) -> None:
        """Set the canonical tokens (no special tokens) after checking the frozen size."""
        new_size = self._token_start_index() + len(tokens)
        self._ensure_vocab_size_unchanged(new_size)
        self._build_table(tokens)
        self._tokens = list(tokens)
        self.vocabulary_version += 1
        self._frozen_vocab_size = new_size
        if idf_weights is not None:
            self.idf_weights = idf_weights.to(self._output_device())

    def _ensure_vocab_size_unchanged(self, new_size: int) -> None:
        if self.output_mode == INT or self.pad_to_max_tokens:
            return
        if self._frozen_vocab_size is not None and new_size != self._frozen_vocab_size:
            raise RuntimeError(
                f"When using `output_mode={self.output_mode}` and `pad_to_max_tokens=False`, the "
                "vocabulary size cannot be changed once set (Keras freezes it so the encoded "
                f"width stays fixed). Old vocab size is {self._frozen_vocab_size}, new vocab "
                f"size is {new_size}. Create a new layer, or use pad_to_max_tokens=True."
            )

    def _ensure_vocabulary(self) -> None:
        if self._tokens is None:
            raise RuntimeError(
                f"{type(self).__name__} has no vocabulary yet. Pass `vocabulary=` to the "
                "constructor, call `set_vocabulary(...)`, or `adapt(data)` before calling it."
            )

    def _depth(self) -> int:
        if self.pad_to_max_tokens:
            return int(self.max_tokens)  # type: ignore[arg-type]
        return int(self._frozen_vocab_size or self.vocabulary_size())

    def _raise_num_oov_zero(self, oov_values: Sequence[Any]) -> None:
        shown = list(oov_values[:10])
        more = "" if len(oov_values) <= 10 else f" (and {len(oov_values) - 10} more)"
        raise ValueError(
            "When `num_oov_indices=0` all inputs should be in vocabulary, found OOV values "
            f"{shown}{more}, consider setting `num_oov_indices=1`."
        )

    # ---- adapt ------------------------------------------------------------------------------

    def _reset_adapt_state(self) -> None:
        self._token_counts: dict[Hashable, int] = {}
        self._token_document_counts: dict[Hashable, int] = {}
        self._num_documents = 0

    def reset_state(self) -> None:
        """Forget the counts accumulated by :meth:`update_state` (not the vocabulary)."""
        self._reset_adapt_state()

    def update_state(self, data: Any) -> None:
        """Accumulate token counts of one batch (one step of ``adapt``).

        A 0-D or 1-D batch is one document (for ``tf_idf``); a 2-D batch (or a list of rows of
        different lengths) holds one document per row.

        Args:
            data: a batch of tokens.

        Raises:
            ValueError: if the layer was built with a fixed ``vocabulary``.
        """
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt {type(self).__name__} layer after setting a static vocabulary via "
                "the `vocabulary` init argument. Create the layer without `vocabulary` to adapt it."
            )
        tokens, counts, doc_counts, num_docs = self._count_batch(data)
        token_counts = self._token_counts
        for token, count in zip(tokens, counts.tolist(), strict=True):
            token_counts[token] = token_counts.get(token, 0) + count
        if doc_counts is not None:
            document_counts = self._token_document_counts
            for token, count in zip(tokens, doc_counts.tolist(), strict=True):
                document_counts[token] = document_counts.get(token, 0) + count
            self._num_documents += num_docs

    def finalize_state(self) -> None:
        """Build the vocabulary (and IDF weights) from the accumulated counts, then reset them.

        Raises:
            ValueError: if no token was counted.
        """
        counts = dict(self._token_counts)
        if not counts:
            raise ValueError(
                f"{type(self).__name__}.adapt found no tokens in the data. Expected input data to "
                "be non-empty."
            )
        for special in (self._mask_key, self._oov_key):
            if special is not None:
                counts.pop(special, None)
        if not counts:
            raise ValueError(
                f"{type(self).__name__}.adapt found only mask/OOV tokens in the data; the "
                "vocabulary would be empty."
            )
        tokens = list(counts)
        count_array = np.fromiter(counts.values(), dtype=np.int64, count=len(tokens))  # (V,)
        # Keras: "sort our tokens by count and break ties by sorting the tokens themselves".
        order = np.lexsort((self._sort_keys(tokens), count_array))[::-1]  # (V,)
        if self.max_tokens:
            order = order[: self.max_tokens - self._token_start_index()]
        tokens = [tokens[i] for i in order]
        weights = None
        if self.output_mode == TF_IDF:
            doc_counts = np.array([self._token_document_counts.get(t, 0) for t in tokens])  # (V,)
            idf = torch.from_numpy(inverse_document_frequency(doc_counts, self._num_documents)).to(
                self.dtype
            )  # (V,)
            # OOV slots get the mean IDF (float32 reduce_mean in Keras): no OOV document counts.
            front = torch.full((self._token_start_index(),), float(idf.mean()), dtype=self.dtype)
            back_len = 0
            if self.pad_to_max_tokens and self.max_tokens is not None:
                back_len = self.max_tokens - front.shape[0] - idf.shape[0]
            weights = torch.cat([front, idf, torch.zeros(back_len, dtype=self.dtype)])  # (D,)
        self._install_tokens(tokens, weights)
        self._reset_adapt_state()

    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the vocabulary from data: tokens by descending count, ties by descending token.

        Args:
            data: array-like tokens (a list, nested list, NumPy array, or for ``IntegerLookup`` a
                tensor), cut along the first axis into batches of ``batch_size``; or any other
                iterable (a generator, a ``DataLoader``) that yields batches.
            batch_size: rows per batch for array-like data (default 32, as Keras). It matters
                only for ``tf_idf`` on 1-D data, where each batch is one document. Must be None
                for iterables of batches.
            steps: maximum number of batches to read, or None for all.

        Raises:
            ValueError: empty data, ``batch_size`` with an iterable, a fixed vocabulary, or only
                special tokens in the data.
        """
        if self._has_input_vocabulary:
            raise ValueError(
                f"Cannot adapt {type(self).__name__} layer after setting a static vocabulary via "
                "the `vocabulary` init argument. Create the layer without `vocabulary` to adapt it."
            )
        if steps is not None and steps < 1:
            raise ValueError(f"`steps` must be a positive integer or None. Received: steps={steps}")
        batches: Iterable[Any]
        if self._is_array_like(data):
            batches = self._array_batches(data, batch_size)
        else:
            if batch_size is not None:
                raise ValueError(
                    "Do not specify `batch_size` when `data` is an iterable of batches (it yields "
                    f"batches already). Received: batch_size={batch_size}"
                )
            if not isinstance(data, Iterable):
                raise TypeError(
                    f"{type(self).__name__}.adapt expects array-like tokens or an iterable of "
                    f"batches. Received: {type(data).__name__}"
                )
            batches = data
        if steps is not None:
            batches = islice(batches, steps)
        self.reset_state()
        for batch in batches:
            self.update_state(batch)
        self.finalize_state()

    def _is_array_like(self, data: Any) -> bool:
        if isinstance(data, (list, tuple, np.ndarray, torch.Tensor, str, bytes, int, np.generic)):
            return True
        return hasattr(data, "numpy") and hasattr(data, "shape")  # a TensorFlow eager tensor

    def _array_batches(self, data: Any, batch_size: int | None) -> Iterable[Any]:
        size = batch_size if batch_size is not None else DEFAULT_ADAPT_BATCH_SIZE
        if size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size}")
        if isinstance(data, (str, bytes, int, np.generic)) or (
            isinstance(data, (np.ndarray, torch.Tensor)) and data.ndim == 0
        ):
            return [data]
        if len(data) == 0:
            raise ValueError(
                f"{type(self).__name__}.adapt: expected input data to be non-empty. "
                f"Received: {data!r}"
            )
        return (data[i : i + size] for i in range(0, len(data), size))

    # ---- forward ----------------------------------------------------------------------------

    def _encode(self, indices: torch.Tensor, row_lengths: np.ndarray | None) -> torch.Tensor:
        """Apply ``output_mode`` to looked-up indices (on the CPU or the input's device)."""
        if self.output_mode == INT:
            return indices.to(self.dtype)
        row_ids = num_rows = None
        if row_lengths is not None:
            num_rows = len(row_lengths)
            row_ids = torch.repeat_interleave(
                torch.arange(num_rows, device=indices.device),
                torch.as_tensor(row_lengths, device=indices.device),
            )  # (N,)
        return encode_categorical_inputs(
            indices,
            self.output_mode,
            self._depth(),
            dtype=self.dtype,
            idf_weights=self.idf_weights,
            row_ids=row_ids,
            num_rows=num_rows,
        )

    # ---- serialisation ----------------------------------------------------------------------

    def _config_token(self, token: Any) -> Any:
        return token

    def _config_vocabulary(self) -> Any:
        vocab = self.input_vocabulary
        if vocab is None:
            return None
        if isinstance(vocab, (str, os.PathLike)):
            return os.fspath(vocab)
        return [self._public_token(t) for t in self._canonical_vocabulary(vocab)]

    def get_config(self) -> dict[str, Any]:
        """Keras-style config (JSON-safe): the constructor arguments plus ``vocabulary_size``.

        As in Keras, ``vocabulary`` and ``idf_weights`` are the constructor inputs (None after
        ``adapt``); learned vocabularies and IDF weights travel in ``state_dict()``.

        Returns:
            A dict that :meth:`from_config` turns back into an equivalent layer.
        """
        idf = self.input_idf_weights
        if idf is not None:
            if isinstance(idf, torch.Tensor):
                idf = idf.detach().cpu().numpy()
            idf = np.asarray(idf, dtype=np.float64).tolist()
        return {
            "name": self.name,
            "trainable": True,
            "dtype": _dtype_name(self.dtype),
            "invert": self.invert,
            "max_tokens": self.max_tokens,
            "num_oov_indices": self.num_oov_indices,
            "oov_token": self._config_token(self.oov_token),
            "mask_token": self._config_token(self.mask_token),
            "output_mode": self.output_mode,
            "sparse": self.sparse,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "vocabulary_dtype": self.vocabulary_dtype,
            "idf_weights": idf,
            "vocabulary": self._config_vocabulary(),
            "vocabulary_size": self._frozen_vocab_size,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IndexLookup:
        """Build a layer from :meth:`get_config` output, or from a Keras layer config.

        Args:
            config: the config dict.

        Returns:
            A new layer (with the vocabulary when the config carries one).
        """
        return cls(**dict(config))

    def _state_keys(self) -> list[str]:
        keys = self._token_state_keys()
        if self.output_mode == TF_IDF:
            keys.append("idf_weights")
        return keys

    def _token_state_keys(self) -> list[str]:
        raise NotImplementedError

    def _tokens_to_state(self, tokens: list[Hashable]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _tokens_from_state(self, state: dict[str, torch.Tensor]) -> list[Hashable]:
        raise NotImplementedError

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for key, value in self._tokens_to_state(self._tokens or []).items():
            destination[prefix + key] = value
        if self.output_mode == TF_IDF:
            idf = self.idf_weights
            destination[prefix + "idf_weights"] = (
                torch.empty(0, dtype=self.dtype) if idf is None else idf.detach().cpu()
            )

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
        keys = self._state_keys()
        present = {k: state_dict[prefix + k] for k in keys if prefix + k in state_dict}
        if strict:
            missing_keys.extend(prefix + k for k in keys if k not in present)
            for key in state_dict:
                if key.startswith(prefix) and key[len(prefix) :] not in keys:
                    unexpected_keys.append(key)
        if not all(k in present for k in self._token_state_keys()):
            return
        try:
            tokens = self._tokens_from_state(present)
            idf = present.get("idf_weights")
            if tokens:
                self._install_tokens(tokens, None if idf is None or idf.numel() == 0 else idf)
            else:
                self._tokens = None
                self.vocabulary_version += 1
        except (ValueError, RuntimeError, TypeError) as err:
            error_msgs.append(f"While loading the vocabulary of {type(self).__name__}: {err}")

    def extra_repr(self) -> str:
        parts = [
            f"vocabulary_size={self.vocabulary_size()}",
            f"num_oov_indices={self.num_oov_indices}",
            f"mask_token={self.mask_token!r}",
            f"output_mode={self.output_mode!r}",
        ]
        if self.invert:
            parts.append("invert=True")
        return ", ".join(parts)


def _ragged_rows_error(layer: str) -> TypeError:
    return TypeError(
        f"{layer} got rows of different lengths (ragged input). Ragged rows are supported when "
        "`output_mode` is not 'int' (each row is one sample) and in `adapt`; for 'int' output "
        "pad the rows to equal length first (for example with the mask token)."
    )


def integer_batch(inputs: Any, allow_ragged: bool, layer: str) -> Batch:
    """Integer inputs as an int64 tensor (dense: in its shape; ragged: flat with row lengths).

    Accepts torch integer tensors (kept on their device), NumPy integer arrays, Python / NumPy
    integers, (nested) lists or tuples of them, and objects with a ``.numpy()`` method (TensorFlow
    eager tensors, read through NumPy).

    Args:
        inputs: the integers.
        allow_ragged: accept a list of rows of different lengths.
        layer: layer name for error messages.

    Returns:
        A :class:`Batch` whose ``values`` is an int64 tensor.

    Raises:
        TypeError: for non-integer inputs (floats, bools, strings) or disallowed ragged rows.
    """
    if not isinstance(inputs, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(inputs, "numpy"):
        inputs = inputs.numpy()  # a TensorFlow eager tensor
    if isinstance(inputs, torch.Tensor):
        if inputs.dtype.is_floating_point or inputs.dtype.is_complex or inputs.dtype == torch.bool:
            raise TypeError(
                f"{layer} expects integer inputs; got a torch tensor of dtype {inputs.dtype}. "
                "Cast it with `.long()` if the values are integral."
            )
        return Batch(inputs.to(torch.int64), tuple(inputs.shape))
    if isinstance(inputs, (bool, np.bool_)):
        raise TypeError(f"{layer} expects integer inputs; got the bool {inputs!r}.")
    if (
        isinstance(inputs, (list, tuple))
        and inputs
        and all(isinstance(row, (list, tuple, np.ndarray, torch.Tensor)) for row in inputs)
    ):
        lengths = [len(row) for row in inputs]
        if len(set(lengths)) > 1:
            if not allow_ragged:
                raise _ragged_rows_error(layer)
            rows = [integer_batch(row, False, layer) for row in inputs]
            if any(len(row.shape) != 1 for row in rows):
                raise TypeError(f"{layer}: each ragged row must be a flat sequence of integers.")
            flat = torch.cat([row.values.cpu() for row in rows]) if rows else torch.empty(0)
            return Batch(flat.to(torch.int64), (len(rows),), np.asarray(lengths, dtype=np.int64))
        if any(isinstance(row, torch.Tensor) for row in inputs):
            inputs = [row.cpu().numpy() if isinstance(row, torch.Tensor) else row for row in inputs]
    try:
        array = np.asarray(inputs)
    except (ValueError, OverflowError) as err:
        raise TypeError(f"{layer} could not read the inputs as integers: {err}") from None
    if array.dtype.kind not in "iu" or (array.size == 0 and isinstance(inputs, (list, tuple))):
        if array.size == 0 and isinstance(inputs, (list, tuple)):
            array = array.astype(np.int64)
        else:
            raise TypeError(
                f"{layer} expects integer inputs; got {type(inputs).__name__} with NumPy dtype "
                f"{array.dtype}. Pass ints (a torch integer tensor, a NumPy integer array or a "
                "list of ints)."
            )
    return Batch(torch.from_numpy(array.astype(np.int64, copy=False)), array.shape)
