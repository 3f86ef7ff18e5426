"""Exact string-key lookups of translated lookup tables, without encoding the inputs first.

TF compares ``tf.string`` keys as bytes, and a Python ``str`` fed to TF stands for its UTF-8 bytes
(``surrogateescape`` here, so that every byte string has a ``str`` form and back).
:class:`StringIndex` finds keys with exactly those semantics for ``bytes``, ``str`` and NumPy
``<U`` inputs, but matches a ``str`` as it is wherever that is equivalent, so a batch of Python or
NumPy strings is never encoded to bytes string by string:

* one ``dict`` holds every key twice: as ``bytes``, and, where the key is valid UTF-8, as the
  decoded ``str`` (a ``bytes`` and a ``str`` never compare equal, so the two never collide). A
  ``str`` without lone surrogates is equal to a decoded key exactly when its UTF-8 encoding is
  equal to the key; any other ``str`` that misses is encoded and looked up as bytes, as before.
* a NumPy ``<U`` array of :data:`VECTOR_MIN` strings or more is looked up without creating Python
  objects: a hash of each string's UCS-4 code points at the few positions that tell the keys
  apart (a weighted sum, exact modulo 2**64), ``np.searchsorted`` in the sorted hashes of the
  keys, then a full comparison with the candidate key's string. The keys' hashes are distinct
  (see :data:`HASH_SEEDS`), so a string equal to a key always finds it, and a hash collision with
  any other string fails the comparison.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np

__all__ = ["MISS", "VECTOR_MIN", "StringIndex"]

#: Position reported for a key that is not in the table.
MISS = -1
#: From this many strings a NumPy ``<U`` batch is hashed as an array; below, the dict is cheaper
#: (the array path costs ~10 us a call whatever the batch, the dict ~0.15 us a string; AMD EPYC).
VECTOR_MIN = 64
#: Seeds tried, in order, for the hash weights until every key hashes differently (a 64-bit
#: collision among a table's keys is ~V**2 / 2**65, so the first seed all but always does).
HASH_SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)
#: The last entry of a vector index, past every key's hash, so that a search never runs off the
#: end; its key holds a lone surrogate (no key does) and its position is MISS.
SENTINEL_HASH, SENTINEL_KEY = 2**64 - 1, "\ud800"
#: Keys sampled to rank character positions by how much they vary (enough to rank, cheap for
#: vocabularies of millions).
VARIETY_SAMPLE = 4096
#: How TF feeds a Python ``str``: its UTF-8 bytes; ``surrogateescape`` maps any bytes to a str and back.
ENCODING, ERRORS = "utf-8", "surrogateescape"
#: The UTF-16 surrogates, U+D800 to U+DFFF: no valid UTF-8 key decodes to a str holding one.
SURROGATE_FIRST, SURROGATE_COUNT = 0xD800, 0x800


def encode(value: Any) -> bytes:
    """One input token as the bytes TF compares (``str`` as UTF-8, anything else through ``str``).

    >>> encode("é"), encode(b"\\xff"), encode("\\udcff")
    (b'\\xc3\\xa9', b'\\xff', b'\\xff')
    """
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else str(value)
    return text.encode(ENCODING, ERRORS)


class StringIndex:
    """The position of each of a table's ``bytes`` keys, found from ``bytes``, ``str`` or ``<U`` inputs.

    Args:
        keys: the table's keys, as ``bytes`` (any bytes: invalid UTF-8 included).

    >>> index = StringIndex([b"a", "é".encode(), b"\\xff", b""])
    >>> index.find(np.array(["é", "zz", "", "a"])).tolist()
    [1, -1, 3, 0]
    >>> index.find(np.array([b"\\xff", "\\udcff", "a"], dtype=object)).tolist()
    [2, 2, 0]
    """

    def __init__(self, keys: list[bytes]) -> None:
        self.size = len(keys)
        self._bytes: dict[bytes, int] = {}
        self._any: dict[Any, int] = {}
        texts: list[str] = []
        text_positions: list[int] = []
        for position, key in enumerate(keys):
            key = bytes(key)
            if key in self._bytes:  # first occurrence wins, as for a TF table built from a list
                continue
            self._bytes[key] = position
            self._any[key] = position
            try:
                text = key.decode(ENCODING)  # strict: a str without lone surrogates
            except UnicodeDecodeError:
                continue  # only a str with surrogates encodes to it: found through the bytes
            self._any[text] = position
            # NumPy drops a str's trailing NULs, so no <U input can equal such a key.
            if not text.endswith("\x00"):
                texts.append(text)
                text_positions.append(position)
        self._vector = _VectorIndex.build(texts, text_positions)

    def find(self, values: Any) -> np.ndarray:
        """``int64`` positions of ``values`` (any shape) among the keys; :data:`MISS` where absent."""
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            if self._vector is not None and values.size >= VECTOR_MIN:
                flat = values if values.ndim == 1 else values.reshape(-1)
                if not flat.flags.c_contiguous:
                    flat = np.ascontiguousarray(flat)
                codes = _codes(flat)  # (n, width)
                found = self._vector.find(flat, codes)
                missed = found == MISS
                if missed.any():
                    self._resolve_misses(found, flat, codes, missed)
                return found.reshape(values.shape)
            return self.find_objects(values.reshape(-1).tolist()).reshape(values.shape)
        array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
        return self.find_objects(array.reshape(-1).tolist()).reshape(array.shape)

    def find_objects(self, items: list[Any]) -> np.ndarray:
        """Positions of a flat list of ``bytes`` / ``str`` (or anything, matched as ``str(x)``)."""
        try:
            found = np.fromiter(
                map(self._any.get, items, repeat(MISS)), dtype=np.int64, count=len(items)
            )
        except TypeError:  # an unhashable item: matched through str(item), one by one
            return np.array(
                [self._bytes.get(encode(v), MISS) for v in items], dtype=np.int64
            ).reshape(len(items))
        for i in np.flatnonzero(found == MISS).tolist():
            item = items[i]
            if not isinstance(item, bytes):  # a str with surrogates, a number, ...: as bytes
                found[i] = self._bytes.get(encode(item), MISS)
        return found

    def _resolve_misses(
        self, found: np.ndarray, flat: np.ndarray, codes: np.ndarray, missed: np.ndarray
    ) -> None:
        """Missed rows of a ``<U`` batch that hold a lone surrogate: looked up by their bytes."""
        odd = (codes[missed] - np.uint32(SURROGATE_FIRST)) < np.uint32(SURROGATE_COUNT)
        if odd.any():  # only a str made with surrogateescape (or a broken one) gets here
            for i in np.flatnonzero(missed)[odd.any(axis=1)].tolist():
                found[i] = self._bytes.get(encode(str(flat[i])), MISS)


def _codes(flat: np.ndarray) -> np.ndarray:
    """The UCS-4 code points of a flat, contiguous ``<U`` array, ``(n, width)`` ``uint32``."""
    width = flat.dtype.itemsize // 4
    if width == 0:
        return np.zeros((flat.size, 1), dtype=np.uint32)
    return flat.view(np.uint32).reshape(flat.size, width)


class _VectorIndex:
    """Sorted 64-bit hashes of the keys' code points, the keys in the same order, their positions.

    The hash reads only the columns (character positions) that tell the keys apart, chosen once
    here: a query of 1,024 movie titles hashes ~5 code points a title instead of ~40.
    """

    def __init__(
        self,
        columns: np.ndarray,
        weights: np.ndarray,
        hashes: np.ndarray,
        keys: np.ndarray,
        positions: np.ndarray,
    ) -> None:
        self.columns = columns  # (C,) int64, ascending: the character positions hashed
        self.weights = weights  # (C,) uint64
        # (V + 1,) each: ascending distinct hashes, then SENTINEL_HASH with SENTINEL_KEY at MISS.
        self.hashes = np.append(hashes, np.uint64(SENTINEL_HASH))
        self.keys = np.append(keys, SENTINEL_KEY)  # <U, in hash order
        self.positions = np.append(positions, MISS)  # int64, in hash order
        self._n_columns: dict[int, int] = {}  # query width -> columns within it

    @classmethod
    def build(cls, texts: list[str], positions: list[int]) -> _VectorIndex | None:
        """The index of ``texts``; ``None`` for no keys or (never seen) colliding hashes."""
        if not texts:
            return None
        keys = np.array(texts, dtype=str)
        codes = _codes(keys)  # (V, width)
        # Most varied character positions first: few of them usually tell every key apart.
        width = codes.shape[1]
        sample = codes[:: max(1, len(texts) // VARIETY_SAMPLE)]
        varied = [np.unique(sample[:, j]).size for j in range(width)]
        candidates = np.array(sorted(range(width), key=lambda j: (-varied[j], j)), dtype=np.int64)
        for seed in HASH_SEEDS:
            weights = np.asarray(
                np.random.default_rng(seed).integers(
                    1, np.iinfo(np.int64).max, width, dtype=np.uint64
                )
            )
            count = 1
            while True:  # 1, 2, 4, ... of the most varied positions, until the hashes differ
                columns = np.sort(candidates[:count])
                hashes = _hash(codes[:, columns], weights[columns])
                if np.unique(hashes).size == hashes.size and SENTINEL_HASH not in hashes:
                    order = np.argsort(hashes, kind="stable")
                    return cls(
                        columns,
                        weights[columns],
                        hashes[order],
                        keys[order],
                        np.asarray(positions, dtype=np.int64)[order],
                    )
                if count >= width:
                    break  # a 64-bit collision over every position: the next seed
                count = min(2 * count, width)
        return None

    def find(self, flat: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Positions of a flat ``<U`` array (its ``codes``); :data:`MISS` where absent (or found
        only by its bytes)."""
        width = codes.shape[1]
        n_columns = self._n_columns.get(width)
        if n_columns is None:  # past its width a string is NUL padding, which adds nothing
            n_columns = self._n_columns[width] = int(np.searchsorted(self.columns, width))
        hashes = _hash(codes[:, self.columns[:n_columns]], self.weights[:n_columns])  # (n,)
        slot = self.hashes.searchsorted(
            hashes
        )  # the sentinel past the last key: never out of range
        hit = self.keys[slot] == flat  # the whole string: a hash collision is never a match
        return np.where(hit, self.positions[slot], MISS)


def _hash(codes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum(code[j] * weight[j]) mod 2**64`` per row (the key side sums the same terms)."""
    return (codes * weights).sum(axis=1, dtype=np.uint64)
