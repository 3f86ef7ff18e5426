"""How tensors sit in ``model.safetensors``: vocabularies and string identifiers as bytes, index data beside
parameters. Reading is safetensors' own (:func:`read_tensors`); the converter streams its writing itself.

Any byte string (a newline, non-UTF-8) must round-trip exactly, so a list of tokens is stored as two tensors:
``<prefix>token_bytes`` (uint8, the tokens concatenated) and ``<prefix>token_offsets`` (int64, ``N + 1`` offsets).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

__all__ = [
    "ESCAPE_ERRORS",
    "INDEX_TENSORS",
    "TOKEN_BYTES",
    "TOKEN_OFFSETS",
    "decode_tokens",
    "encode_tokens",
    "read_tensors",
    "tokens_as_str",
]

TOKEN_BYTES = "token_bytes"
TOKEN_OFFSETS = "token_offsets"
#: Decoding of string identifiers: any byte string maps to a str and back (like StringLookup).
ESCAPE_ERRORS = "surrogateescape"
#: Tensors of an index node, relative to its prefix, that building consumes (not ``load_state_dict``).
INDEX_TENSORS = (
    "candidates",
    "batch_sizes",
    "identifiers",
    f"identifiers.{TOKEN_BYTES}",
    f"identifiers.{TOKEN_OFFSETS}",
)


def encode_tokens(tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``(token_bytes, token_offsets)`` of a list of byte strings.

    >>> blob, offsets = encode_tokens([b"a\\n", b"", b"\\xff"])
    >>> blob.tolist(), offsets.tolist()
    ([97, 10, 255], [0, 2, 2, 3])
    """
    blob = np.frombuffer(b"".join(tokens), dtype=np.uint8).copy()
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    return blob, offsets


def decode_tokens(tensors: dict[str, torch.Tensor], prefix: str) -> list[bytes]:
    """The byte strings stored under ``prefix`` (the inverse of :func:`encode_tokens`).

    >>> blob, offsets = encode_tokens([b"a\\n", b"", b"\\xff"])
    >>> decode_tokens({"token_bytes": torch.from_numpy(blob), "token_offsets": torch.from_numpy(offsets)}, "")
    [b'a\\n', b'', b'\\xff']
    """
    blob = tensors[prefix + TOKEN_BYTES].numpy().tobytes()
    offsets = tensors[prefix + TOKEN_OFFSETS].tolist()
    return [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def tokens_as_str(tokens: list[bytes]) -> np.ndarray:
    """Byte strings as a NumPy array of ``str`` (``surrogateescape``: any bytes round-trip)."""
    return np.array([t.decode("utf-8", ESCAPE_ERRORS) for t in tokens], dtype=object)


def read_tensors(path: str | os.PathLike[str], device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (no pickle)."""
    from safetensors.torch import load_file

    return load_file(os.fspath(path), device=str(device))
