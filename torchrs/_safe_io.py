"""Reading a torchrs checkpoint directory someone else wrote: bounded, and checked before allocating.

A checkpoint directory may come from anywhere (a colleague, a download, a half-copied disk). What
:func:`torchrs.io.load` opens and allocates is decided here, before any tensor is created:

* only regular files inside the directory are opened (no FIFO that blocks forever, no device, no
  symbolic link leading out of the directory);
* ``torchrs.json`` is read with size and nesting limits, and its architecture must be a tree of
  JSON objects of the expected types (a malformed file is one :class:`UnsafeCheckpointError`, not a
  ``KeyError`` deep inside);
* the ``model.safetensors`` header is parsed and checked on its own (known dtypes, offsets that
  tile the data exactly, inside the file), then every shape ``torchrs.json`` declares is compared
  with the stored one, and the total size with a configurable memory guard;
* vocabularies are stored as ``token_bytes`` (uint8) + ``token_offsets`` (int64, non-decreasing,
  from 0 to the byte count); configs may not name files (vocabularies live in the safetensors file).

>>> json_depth('{"a": [1, {"b": "[[["}]}')
3
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MEMORY_GUARD_ENV",
    "HeaderEntry",
    "UnsafeCheckpointError",
    "check_config_files",
    "check_module_dtypes",
    "check_spec",
    "check_token_offsets",
    "json_depth",
    "memory_limit",
    "read_json",
    "read_safetensors_header",
    "regular_file_inside",
]

# torchrs.json holds the architecture only (vocabularies and tables live in model.safetensors), so
# a few KB is typical; 64 MiB leaves room for long Discretization boundaries and configs.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Deepest nesting a converted architecture reaches is ~20 (index > container > functional > layer
# config); Python's json module recurses per level and fails with RecursionError near 1000.
MAX_JSON_DEPTH = 100
# safetensors itself refuses headers above 100 MB (safetensors.SafetensorError: HeaderTooLarge).
MAX_HEADER_BYTES = 100_000_000
# The safetensors header starts with its length as an 8-byte little-endian integer.
HEADER_LENGTH_BYTES = 8
#: Environment variable: the most bytes of tensors :func:`torchrs.io.load` agrees to allocate.
MEMORY_GUARD_ENV = "TORCHRS_MAX_LOAD_BYTES"
# safetensors dtype code -> (bytes per element, kind: "f" float, "i" integer, "b" bool).
DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "f"),
    "F32": (4, "f"),
    "F16": (2, "f"),
    "BF16": (2, "f"),
    "I64": (8, "i"),
    "I32": (4, "i"),
    "I16": (2, "i"),
    "I8": (1, "i"),
    "U8": (1, "i"),
    "U16": (2, "i"),
    "U32": (4, "i"),
    "U64": (8, "i"),
    "BOOL": (1, "b"),
}
# Config keys whose value names a file a layer would read (Keras lookups accept a vocabulary path).
FILE_CONFIG_KEYS = ("vocabulary", "idf_weights")
# Node keys holding child nodes, and the torch-name prefix each child gets (see torchrs.io.build_module).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class UnsafeCheckpointError(ValueError):
    """A checkpoint directory that cannot be read safely: the message names the file and the problem."""


class HeaderEntry:
    """One tensor of a safetensors header: dtype code, shape, byte range in the data section."""

    __slots__ = ("dtype", "shape", "start", "stop")

    def __init__(self, dtype: str, shape: tuple[int, ...], start: int, stop: int) -> None:
        self.dtype, self.shape, self.start, self.stop = dtype, shape, start, stop

    @property
    def nbytes(self) -> int:
        return self.stop - self.start

    @property
    def kind(self) -> str:
        return DTYPES[self.dtype][1]


def json_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text (strings skipped), without parsing it.

    >>> json_depth("[[[]]]")
    3
    """
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def regular_file_inside(root: Path, name: str) -> Path:
    """``root / name`` if it is a regular file whose real location is inside ``root``.

    Raises:
        UnsafeCheckpointError: missing, a FIFO / device / directory, or a symbolic link out of ``root``.
    """
    path = root / name
    real_root = root.resolve()
    try:
        real = path.resolve(strict=True)
        mode = os.stat(real).st_mode
    except OSError as err:
        raise UnsafeCheckpointError(
            f"{path} cannot be opened ({err.strerror or err}). A torchrs checkpoint directory holds "
            f"{name} as a regular file; convert the model again."
        ) from None
    if real != real_root / name and real_root not in real.parents:
        raise UnsafeCheckpointError(
            f"{path} is a symbolic link to {real}, outside the checkpoint directory; torchrs reads "
            "only files inside it. Copy the file into the directory."
        )
    if not stat.S_ISREG(mode):
        raise UnsafeCheckpointError(
            f"{path} is not a regular file (a FIFO, device or directory); torchrs reads only regular "
            "files. Convert the model again."
        )
    return path


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    # O_NONBLOCK: a FIFO swapped in after the check returns at once instead of waiting for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeCheckpointError(f"{path} is not a regular file; torchrs reads only those.")
        if info.st_size > limit:
            raise UnsafeCheckpointError(
                f"{path} is {info.st_size} bytes; {what} may be at most {limit} bytes."
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


def read_json(path: Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parses a JSON file with size and nesting limits.

    Raises:
        UnsafeCheckpointError: too large, too deeply nested, not UTF-8 or not JSON.
    """
    data = _read_bounded(path, max_bytes, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnsafeCheckpointError(f"{path} is not UTF-8 text ({err}); {what} is JSON.") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise UnsafeCheckpointError(
            f"{path} nests {depth} levels deep; {what} may nest at most {MAX_JSON_DEPTH}."
        )
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise UnsafeCheckpointError(
            f"{path} is not valid JSON ({err}); the file is truncated or corrupted."
        ) from None


def memory_limit() -> int:
    """Bytes of tensors a load may allocate: ``$TORCHRS_MAX_LOAD_BYTES``, else the machine's memory."""
    value = os.environ.get(MEMORY_GUARD_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise UnsafeCheckpointError(
                f"{MEMORY_GUARD_ENV}={value!r} is not a number of bytes."
            ) from None
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def read_safetensors_header(path: Path) -> dict[str, HeaderEntry]:
    """The tensors a ``model.safetensors`` declares, checked against the file before any allocation.

    Every entry must have a known dtype, a shape of non-negative integers, and a byte range of
    exactly ``numel * itemsize`` bytes; the ranges must tile the data section without overlap and
    end inside the file; the total must fit :func:`memory_limit`.

    Raises:
        UnsafeCheckpointError: anything else.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        with os.fdopen(os.dup(fd), "rb") as handle:
            prefix = handle.read(HEADER_LENGTH_BYTES)
            if len(prefix) < HEADER_LENGTH_BYTES:
                raise UnsafeCheckpointError(f"{path} is truncated: no safetensors header.")
            length = int.from_bytes(prefix, "little")
            if length > min(MAX_HEADER_BYTES, size - HEADER_LENGTH_BYTES):
                raise UnsafeCheckpointError(
                    f"{path} declares a {length}-byte header in a {size}-byte file; it is truncated "
                    "or corrupted."
                )
            raw = handle.read(length)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
        if json_depth(text) > 3:  # {"name": {"shape": [...]}}: nothing deeper
            raise ValueError("nested deeper than a safetensors header")
        header = json.loads(text)
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as err:
        raise UnsafeCheckpointError(f"{path}: malformed safetensors header ({err}).") from None
    header.pop("__metadata__", None)
    entries: dict[str, HeaderEntry] = {}
    data_size = size - HEADER_LENGTH_BYTES - length
    for name, entry in header.items():
        entries[name] = _header_entry(path, name, entry, data_size)
    spans = sorted((e.start, e.stop, n) for n, e in entries.items())
    end = 0
    for start, stop, name in spans:
        if start != end:
            raise UnsafeCheckpointError(
                f"{path}: tensor {name!r} starts at byte {start}, expected {end}; the data "
                "ranges overlap or leave gaps. The file is corrupted."
            )
        end = stop
    total = sum(e.nbytes for e in entries.values())
    limit = memory_limit()
    if total > limit:
        raise UnsafeCheckpointError(
            f"{path} holds {total} bytes of tensors, more than the {limit} bytes allowed; raise "
            f"{MEMORY_GUARD_ENV} if this machine can hold them."
        )
    return entries


def _header_entry(path: Path, name: str, entry: Any, data_size: int) -> HeaderEntry:
    def bad(why: str) -> UnsafeCheckpointError:
        return UnsafeCheckpointError(f"{path}: tensor {name!r} {why}; the file is corrupted.")

    if not isinstance(entry, dict):
        raise bad("has no dtype / shape / data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise bad(f"has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise bad(f"has shape {shape!r}, not a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise bad(f"has data_offsets {offsets!r}, not two integers")
    start, stop = offsets
    expected = math.prod(shape) * DTYPES[dtype][0]
    if not 0 <= start <= stop <= data_size or stop - start != expected:
        raise bad(
            f"declares {dtype}{shape} ({expected} bytes) at bytes {start}..{stop} of a "
            f"{data_size}-byte data section"
        )
    return HeaderEntry(dtype, tuple(shape), start, stop)


def _children(spec: Mapping[str, Any], prefix: str) -> Iterator[tuple[Any, str, str]]:
    """(child node, torch-name prefix, where) of an architecture node (torchrs.io.build_module's walk)."""
    cls = spec["class_name"]
    if cls == "Sequential":
        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise UnsafeCheckpointError(
                f"torchrs.json: architecture node {prefix or '<root>'}: 'layers' is not a list"
            )
        for i, layer in enumerate(layers):
            yield layer, f"{prefix}{i}.", f"{prefix}layers[{i}]"
    elif cls == "Functional":
        layers = spec.get("layers")
        if not isinstance(layers, dict) or not isinstance(spec.get("nodes"), list):
            raise UnsafeCheckpointError(
                f"torchrs.json: architecture node {prefix or '<root>'}: a Functional needs 'layers' (object) and 'nodes' (list)"
            )
        for key, layer in layers.items():
            yield layer, f"{prefix}layers.{key}.", f"{prefix}layers.{key}"
    elif cls == "Container":
        children = spec.get("children")
        if not isinstance(children, dict):
            raise UnsafeCheckpointError(
                f"torchrs.json: architecture node {prefix or '<root>'}: 'children' is not an object"
            )
        for name, child in children.items():
            yield child, f"{prefix}{name}.", f"{prefix}{name}"
    elif cls in ("BruteForce", "Streaming") and spec.get("query_model") is not None:
        yield spec["query_model"], f"{prefix}query_model.", f"{prefix}query_model"


def check_spec(spec: Any, header: Mapping[str, HeaderEntry], prefix: str = "") -> None:
    """Checks an architecture tree against the stored tensors before anything is built.

    Every node must be an object with a string ``class_name`` and object ``config`` / ``shapes``;
    every declared shape must be the stored one; layers whose size comes from their config (MLP
    units, GRU units, Cross projection) may not declare more parameters than the file stores; and
    no config may name a file.

    Raises:
        UnsafeCheckpointError: the first problem found, naming the node.
    """
    stored = sum(math.prod(e.shape) for e in header.values())
    _check_node(spec, header, prefix, stored)


def _check_node(spec: Any, header: Mapping[str, HeaderEntry], prefix: str, stored: int) -> None:
    where = prefix.rstrip(".") or "<root>"
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise UnsafeCheckpointError(
            f"torchrs.json: architecture node {where} is not an object with a 'class_name' string; "
            "the file is corrupted. Convert the model again."
        )
    for key in ("config", "shapes"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise UnsafeCheckpointError(f"torchrs.json: {where}.{key} is not an object.")
    config = spec.get("config") or {}
    for key in FILE_CONFIG_KEYS:
        if isinstance(config.get(key), str):
            raise UnsafeCheckpointError(
                f"torchrs.json: {where} ({spec['class_name']}) names a file as its {key} "
                f"({config[key]!r}); torchrs checkpoints keep vocabularies in model.safetensors and "
                "never open other files. Convert the model again."
            )
    for key, shape in (spec.get("shapes") or {}).items():
        entry = header.get(prefix + key)
        if entry is None or list(entry.shape) != shape:
            got = None if entry is None else list(entry.shape)
            raise UnsafeCheckpointError(
                f"torchrs.json declares {prefix + key} with shape {shape!r} but model.safetensors "
                f"stores {got!r}; the two files do not belong together. Convert the model again."
            )
    declared = _config_parameters(spec, prefix)
    if declared > stored:
        raise UnsafeCheckpointError(
            f"torchrs.json: {where} ({spec['class_name']}) declares {declared} parameters in its "
            f"config but model.safetensors stores {stored} values in all; the file is corrupted."
        )
    for child, child_prefix, _ in _children(spec, prefix):
        _check_node(child, header, child_prefix, stored)


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UnsafeCheckpointError(
            f"torchrs.json: {where} is {value!r}, not a non-negative integer."
        )
    return value


def _config_parameters(spec: dict[str, Any], prefix: str) -> int:
    """Parameters a node's config alone makes :func:`torchrs.io.build_module` allocate."""
    cls, config, shapes = spec["class_name"], spec.get("config") or {}, spec.get("shapes") or {}
    where = prefix.rstrip(".") or "<root>"

    def dim(key: str, axis: int) -> int:
        shape = shapes.get(key)
        if not isinstance(shape, list) or len(shape) <= axis:
            raise UnsafeCheckpointError(
                f"torchrs.json: {where} ({cls}) declares no shape for {key}."
            )
        return _int(shape[axis], f"{where}.shapes.{key}")

    if cls == "MLP":
        units = config.get("units")
        if not isinstance(units, list):
            raise UnsafeCheckpointError(f"torchrs.json: {where}.config.units is not a list.")
        total, previous = 0, dim("_sublayers.0.weight", 1)
        bias = 1 if config.get("use_bias", True) else 0
        for i, value in enumerate(units):
            width = _int(value, f"{where}.config.units[{i}]")
            total += width * (previous + bias)
            previous = width
        return total
    if cls == "GRU":
        units = _int(config.get("units"), f"{where}.config.units")
        return 3 * units * (dim("gru.weight_ih_l0", 1) + units)  # weights only: biases vary
    if cls == "Cross" and config.get("projection_dim") is not None:
        weight = shapes.get("_dense.weight") or shapes.get("_dense_v.weight") or [0]
        return (
            2
            * _int(config["projection_dim"], f"{where}.config.projection_dim")
            * _int(weight[0], f"{where}.shapes")
        )
    return 0


def check_token_offsets(tensors: Mapping[str, Any]) -> None:
    """Every stored vocabulary (``<prefix>token_bytes`` + ``<prefix>token_offsets``) is well formed.

    Args:
        tensors: the loaded tensors by name (torch tensors).

    Raises:
        UnsafeCheckpointError: offsets that are not int64, do not start at 0, decrease, or do not end
            at the byte count; bytes that are not uint8.
    """
    import torch

    for name, offsets in tensors.items():
        if not name.endswith("token_offsets"):
            continue
        blob = tensors.get(name[: -len("token_offsets")] + "token_bytes")
        if blob is None or blob.dtype != torch.uint8 or blob.dim() != 1:
            raise UnsafeCheckpointError(
                f"model.safetensors: {name} has no 1-D uint8 token_bytes beside it; the vocabulary "
                "is corrupted. Convert the model again."
            )
        if offsets.dtype != torch.int64 or offsets.dim() != 1 or offsets.numel() == 0:
            raise UnsafeCheckpointError(
                f"model.safetensors: {name} is {offsets.dtype}{list(offsets.shape)}, expected 1-D int64."
            )
        steps = offsets[1:] - offsets[:-1]
        if int(offsets[0]) != 0 or int(offsets[-1]) != blob.numel() or bool((steps < 0).any()):
            raise UnsafeCheckpointError(
                f"model.safetensors: {name} must rise from 0 to {blob.numel()} (the byte count of "
                "the vocabulary) without decreasing; the vocabulary is corrupted. Convert the model again."
            )


def check_module_dtypes(state: Mapping[str, Any], header: Mapping[str, HeaderEntry]) -> None:
    """A float parameter must be stored as floats, an integer buffer as integers.

    Raises:
        UnsafeCheckpointError: a stored tensor whose kind (float / integer / bool) differs.
    """
    for name, value in state.items():
        entry = header.get(name)
        if entry is None:
            continue  # load_state_dict(strict=True) reports it as missing
        want = (
            "f" if value.is_floating_point() else "b" if str(value.dtype) == "torch.bool" else "i"
        )
        if entry.kind != want:
            raise UnsafeCheckpointError(
                f"model.safetensors stores {name} as {entry.dtype}, but the module needs "
                f"{value.dtype}; the file is corrupted or was not written by the converter."
            )


def check_config_files(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """:func:`regular_file_inside` for each name; returns them by name."""
    return {name: regular_file_inside(root, name) for name in names}


def read_checkpoint_files(
    root: Path, config_file: str, weights_file: str
) -> tuple[dict[str, Any], Path, dict[str, HeaderEntry]]:
    """``torchrs.json`` (bounded, checked) and the checked header of ``model.safetensors``.

    Returns:
        ``(config, weights path, header)``; the architecture was checked against the header.

    Raises:
        UnsafeCheckpointError: any file that is not a regular file inside ``root``, malformed JSON,
            an architecture that disagrees with the stored tensors, or tensors over the memory guard.
    """
    config_path = regular_file_inside(root, config_file)
    meta = read_json(config_path, config_file)
    if not isinstance(meta, dict) or not isinstance(meta.get("model_kind"), str):
        raise UnsafeCheckpointError(
            f"{config_path} is not a torchrs config (an object with 'model_kind'); the file is "
            "corrupted. Convert the model again."
        )
    weights = regular_file_inside(root, weights_file)
    header = read_safetensors_header(weights)
    if meta["model_kind"] != "weights":
        check_spec(meta.get("architecture"), header)
    return meta, weights, header


def build_checked(
    build: Any, spec: dict[str, Any], tensors: Mapping[str, Any], header: Mapping[str, HeaderEntry]
) -> Any:
    """``build(spec, tensors)`` with malformed-config errors turned into :class:`UnsafeCheckpointError`."""
    check_token_offsets(tensors)
    try:
        module = build(spec, tensors)
    except (KeyError, TypeError, AttributeError, IndexError, RecursionError) as err:
        raise UnsafeCheckpointError(
            f"torchrs.json: the architecture cannot be rebuilt ({type(err).__name__}: {err}); the "
            "file is malformed. Convert the model again."
        ) from None
    check_module_dtypes(module.state_dict(), header)
    return module
