"""TF Serving's wire formats: REST JSON (row and columnar) and ``TensorProto``, to and from NumPy.

REST, as TF Serving's ``json_tensor.cc`` reads and writes it:

- request ``{"instances": [...]}`` (row format: one entry per example; with several inputs each
  entry is an object of them) or ``{"inputs": ...}`` (columnar: each input a whole batch), plus an
  optional ``"signature_name"``; strings are JSON strings, or ``{"b64": "..."}`` for any bytes;
- response ``{"predictions": [...]}`` for row requests (one output: its rows; several: one object
  per row) and ``{"outputs": ...}`` for columnar ones (one output: its value; several: an object);
  string outputs whose name ends in ``_bytes`` are written ``{"b64": ...}``; other string outputs
  are written as JSON strings holding the tensor's bytes as they are: TF Serving's rapidjson writer
  (default flags, UTF-8 to UTF-8) copies every byte of ``0x80`` and above unvalidated and escapes
  only ``"``, ``\\`` and control characters, so a value that is not valid UTF-8 reaches the
  client as those raw bytes (no replacement character, no ``\\u`` escape); this codec does the same.

``TensorProto``: numbers travel in ``tensor_content`` (what ``tf.make_tensor_proto`` writes for an
array) or in the typed ``*_val`` fields, strings in ``string_val``, and a single value fills the
whole shape, as TF's ``MakeNdarray`` reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from torchrs.serve.errors import Code, ServingError
from torchrs.serve.signature import Signature

# TF's DataType enum (tensorflow/core/framework/types.proto) for the dtypes a converted model uses.
DT_ENUM: dict[str, int] = {
    "float32": 1,
    "float64": 2,
    "int32": 3,
    "uint8": 4,
    "int16": 5,
    "int8": 6,
    "string": 7,
    "int64": 9,
    "bool": 10,
}
DT_NAME = {v: k for k, v in DT_ENUM.items()}
# The TensorProto field each dtype's values live in when tensor_content is empty.
_VAL_FIELD = {
    "float32": "float_val",
    "float64": "double_val",
    "int32": "int_val",
    "uint8": "int_val",
    "int16": "int_val",
    "int8": "int_val",
    "int64": "int64_val",
    "bool": "bool_val",
    "string": "string_val",
}
# TF Serving writes string outputs whose name ends so as base64 objects.
BYTES_SUFFIX = "_bytes"
# Bytes that are not UTF-8 ride through Python's str as lone surrogates U+DC80..U+DCFF and are
# written back as the same bytes: the raw pass-through of TF Serving's JSON writer.
_RAW_BYTES = "surrogateescape"
_JSON_TYPE = {str: "String", bool: "Boolean", int: "Number", float: "Number", dict: "Object"}


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def _leaf(value: Any, dtype: str) -> Any:
    """One JSON scalar as a value of ``dtype``, or TF Serving's type error."""
    if dtype == "string":
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:  # "\\ud800" alone: rapidjson refuses it while parsing
                raise _invalid(
                    f"JSON Parse error: The surrogate pair in string is invalid: {value!a}"
                ) from None
        if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error as error:
                raise _invalid(f"Unable to base64 decode {value['b64']!r}: {error}") from None
    elif dtype == "bool":
        if isinstance(value, bool):
            return value
    elif dtype.startswith("float"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    shown = json.dumps(value)[:60]
    raise _invalid(
        f"JSON Value: {shown} Type: {_JSON_TYPE.get(type(value), 'Array')} is not of expected "
        f"type: {dtype}"
    )


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, list) and not (isinstance(value, dict) and set(value) != {"b64"})


def json_to_array(value: Any, dtype: str, what: str) -> np.ndarray:
    """A (nested) JSON list as an array of ``dtype``; strings as an object array of bytes.

    Args:
        value: the JSON value.
        dtype: the signature input's dtype.
        what: names the value in errors.

    Returns:
        The array.

    Raises:
        ServingError: INVALID_ARGUMENT for a wrong type or a ragged list.

    >>> json_to_array([["a", {"b64": "/w=="}]], "string", "x")
    array([[b'a', b'\\xff']], dtype=object)
    >>> json_to_array([1, 2.5], "float32", "x")
    array([1. , 2.5], dtype=float32)
    """
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth == len(shape) or (depth < len(shape) and shape[depth] == 0):
            if depth < len(shape):
                if node != []:
                    raise _invalid(f"{what}: lists of different lengths (a ragged tensor).")
                return
            if not _is_leaf(node):
                raise _invalid(f"{what}: lists of different depths (a ragged tensor).")
            flat.append(_leaf(node, dtype))
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            raise _invalid(
                f"{what}: expected a list of {shape[depth]} at depth {depth}; lists must not be "
                "ragged (all rows of a tensor have the same length)."
            )
        for child in node:
            walk(child, depth + 1)

    walk(value, 0)
    if dtype == "string":
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    return np.asarray(flat, dtype=np.dtype(dtype)).reshape(shape)


def _named_inputs(obj: Mapping[str, Any], signature: Signature, where: str) -> None:
    unknown = sorted(set(obj) - set(signature.inputs))
    if unknown:
        raise _invalid(
            f"{where}: does not have named input: {unknown[0]}; the signature "
            f"{signature.name!r} takes {sorted(signature.inputs)}."
        )
    missing = sorted(set(signature.inputs) - set(obj))
    if missing:
        raise _invalid(
            f"{where}: missing named input(s) {missing}; the signature {signature.name!r} takes "
            f"{sorted(signature.inputs)}."
        )


def parse_request(body: Any, signature: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """A REST predict body as ``({input: array}, row_format)``.

    Args:
        body: the parsed JSON object.
        signature: the signature it is addressed to.

    Returns:
        The input arrays and whether the request used the row (``instances``) format.

    Raises:
        ServingError: INVALID_ARGUMENT naming what is missing or wrong.
    """
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object with 'instances' or 'inputs'.")
    if ("instances" in body) == ("inputs" in body):
        raise _invalid(
            "Missing 'inputs' or 'instances' key"
            if "instances" not in body
            else "Request object must contain exactly one of 'instances' or 'inputs', not both."
        )
    names = list(signature.inputs)
    if "inputs" in body:
        value = body["inputs"]
        if len(names) == 1 and not (isinstance(value, dict) and set(value) != {"b64"}):
            value = {names[0]: value}
        if not isinstance(value, dict):
            raise _invalid(
                f"'inputs' must be an object of {names} (the signature has several inputs)."
            )
        _named_inputs(value, signature, "JSON object 'inputs'")
        return {n: json_to_array(value[n], signature.inputs[n].dtype, n) for n in names}, False
    rows = body["instances"]
    if not isinstance(rows, list) or not rows:
        raise _invalid("'instances' must be a non-empty list, one entry per example.")
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for i, row in enumerate(rows):
        if isinstance(row, dict) and set(row) != {"b64"}:
            _named_inputs(row, signature, f"Failed to process element: {i} of 'instances' list")
            for n in names:
                columns[n].append(row[n])
        elif len(names) == 1:
            columns[names[0]].append(row)
        else:
            raise _invalid(
                f"Failed to process element: {i} of 'instances' list: the signature has several "
                f"inputs {names}, so each instance must be an object of them."
            )
    return {n: json_to_array(columns[n], signature.inputs[n].dtype, n) for n in names}, True


def _jsonable(array: np.ndarray, name: str) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        as_b64 = name.endswith(BYTES_SUFFIX)
        flat = [
            {"b64": base64.b64encode(v).decode("ascii")}
            if as_b64
            else v.decode("utf-8", _RAW_BYTES)
            for v in array.ravel()
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    return array.tolist()


def format_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """TF Serving's response object for the signature's outputs.

    Args:
        outputs: ``{output name: array}``, in the signature's order.
        row_format: the request used ``instances``.

    Returns:
        ``{"predictions": ...}`` or ``{"outputs": ...}``.

    >>> out = {"scores": np.array([[0.5, 0.25]], np.float32), "ids": np.array([[b"a", b"b"]], object)}
    >>> format_response(out, row_format=True)
    {'predictions': [{'scores': [0.5, 0.25], 'ids': ['a', 'b']}]}
    >>> format_response({"rating": np.array([[3.5]], np.float32)}, row_format=False)
    {'outputs': [[3.5]]}
    """
    values = {n: _jsonable(a, n) for n, a in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    sizes = {n: (a.shape[0] if a.ndim else -1) for n, a in outputs.items()}
    if len(set(sizes.values())) != 1 or -1 in sizes.values():
        raise _invalid(
            f"Tensors of the outputs differ in their 0th dimension {sizes}; ask with the columnar "
            "'inputs' format instead of 'instances'."
        )
    return {
        "predictions": [
            {n: v[i] for n, v in values.items()} for i in range(len(next(iter(values.values()))))
        ]
    }


def dumps(payload: Any) -> bytes:
    """JSON bytes as TF Serving writes them (NaN / Infinity allowed, no spaces).

    Non-ASCII text is written as UTF-8, not ``\\u`` escapes, and string outputs that are not UTF-8
    as their raw bytes, as TF Serving's writer does (see the module docstring).

    >>> dumps({"outputs": [b"caf\\xc3\\xa9".decode(), b"\\xff\\xfe".decode("utf-8", _RAW_BYTES)]})
    b'{"outputs":["caf\\xc3\\xa9","\\xff\\xfe"]}'
    """
    text = json.dumps(payload, separators=(",", ":"), allow_nan=True, ensure_ascii=False)
    try:
        return text.encode("utf-8", _RAW_BYTES)
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte (not from an output)
        return text.encode("utf-8", "backslashreplace")


def loads(body: bytes) -> Any:
    """A request body, or TF Serving's parse error."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        position = getattr(error, "pos", getattr(error, "start", 0))
        raise _invalid(f"JSON Parse error: {error}. at offset: {position}") from None


def array_from_proto(proto: Any, expected: str | None = None, what: str = "") -> np.ndarray:
    """A ``TensorProto`` as an array (TF's ``MakeNdarray`` semantics).

    Args:
        proto: a ``tensorflow.TensorProto``.
        expected: the signature's dtype; a different one is an error.
        what: names the tensor in errors.

    Returns:
        The array; strings as an object array of bytes.

    Raises:
        ServingError: INVALID_ARGUMENT for an unsupported or unexpected dtype, or a size mismatch.
    """
    dtype = DT_NAME.get(proto.dtype)
    if dtype is None:
        raise _invalid(f"{what}: unsupported tensor dtype enum {proto.dtype}.")
    if expected is not None and dtype != expected:
        raise _invalid(f"Expects arg[0] of {what!r} to be {expected} but {dtype} is provided")
    shape = [int(d.size) for d in proto.tensor_shape.dim]
    count = math.prod(shape)
    if dtype != "string" and proto.tensor_content:
        array = np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
        if array.size != count:
            raise _invalid(f"{what}: tensor_content holds {array.size} values for shape {shape}.")
        return array.astype(np.dtype(dtype)).reshape(shape)
    values = list(getattr(proto, _VAL_FIELD[dtype]))
    if len(values) > count:
        raise _invalid(f"{what}: {len(values)} values for shape {shape}.")
    if values and len(values) < count:
        values += [values[-1]] * (count - len(values))  # TF repeats the last value
    if dtype == "string":
        out = np.empty(count, dtype=object)
        out[:] = values if values else [b""] * count
        return out.reshape(shape)
    if not values:
        return np.zeros(shape, dtype=np.dtype(dtype))
    return np.asarray(values, dtype=np.dtype(dtype)).reshape(shape)


def array_to_proto(array: np.ndarray, proto: Any) -> None:
    """Fills a ``TensorProto`` with ``array`` (as ``tf.make_tensor_proto`` writes it).

    Args:
        array: a NumPy array (strings as an object array of bytes).
        proto: the empty ``tensorflow.TensorProto`` to fill.
    """
    is_string = array.dtype == object or array.dtype.kind == "S"
    dtype = "string" if is_string else array.dtype.name
    proto.dtype = DT_ENUM[dtype]
    for size in array.shape:
        proto.tensor_shape.dim.add(size=int(size))
    if is_string:
        proto.string_val.extend(array.ravel().tolist())
    else:
        proto.tensor_content = np.ascontiguousarray(
            array, dtype=array.dtype.newbyteorder("<")
        ).tobytes()
