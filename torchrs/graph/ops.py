"""TensorFlow ops in PyTorch: the allow-list of what a translated graph may contain.

A graph translated from a ``tf.saved_model.save`` export (see :mod:`torchrs.graph`) names each node's
op by its TF op type. :data:`OPS` maps every allowed type to a pure function with TF's semantics and
lists the attributes the converter keeps for it; nothing outside this table can appear in a loaded
graph. String tensors (torch has none) travel as NumPy ``object`` arrays of ``bytes``, as in TF;
numbers travel as torch tensors.

>>> OPS["BiasAdd"].fn(torch.zeros(2, 3), torch.arange(3.0)).tolist()
[[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from torchrs.preprocessing._farmhash import hash_bucket_fast
from torchrs.preprocessing.hashing import hash_bucket_strong

__all__ = ["DTYPES", "OPS", "OpDef", "UnsupportedGraphError", "to_dtype"]


class UnsupportedGraphError(ValueError):
    """A graph names an op, attribute or dtype outside the allow-list."""


#: TF dtype names (``tf.DType.name``) -> torch dtypes. ``string`` is a NumPy ``object`` array.
DTYPES: dict[str, torch.dtype | None] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "uint8": torch.uint8,
    "bool": torch.bool,
    "string": None,
}

# Keras / TF constants copied where an op's TF kernel has them.
#: ``tf.nn.leaky_relu``'s default slope.
LEAKY_RELU_ALPHA = 0.2
#: ``tf.nn.selu``'s constants (Klambauer et al.), as TF's kernel spells them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def to_dtype(name: str) -> torch.dtype | None:
    """The torch dtype of a TF dtype name (``None`` for strings)."""
    if name not in DTYPES:
        raise UnsupportedGraphError(
            f"dtype {name!r} is not supported in a translated graph (supported: {sorted(DTYPES)})."
        )
    return DTYPES[name]


@dataclass(frozen=True)
class OpDef:
    """One allowed op: its function and the attributes (of its TF NodeDef) it takes by keyword."""

    fn: Callable[..., Any]
    attrs: tuple[str, ...] = ()
    #: The op returns a tuple (several outputs, referenced by index).
    multi_output: bool = False


def _is_str(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def _int_list(x: Any) -> list[int]:
    if isinstance(x, torch.Tensor):
        return [int(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, np.ndarray):
        return [int(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, Sequence):
        return [int(v) for v in x]
    return [int(x)]


def _scalar(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.item()
    return x


def _axis(axis: Any, rank: int) -> int:
    a = int(_scalar(axis))
    return a + rank if a < 0 else a


def _to_tensor(x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    t = torch.as_tensor(np.asarray(x))
    return t.to(like.device) if like is not None else t


# --------------------------------------------------------------------------------------------
# Identity and plumbing.
# --------------------------------------------------------------------------------------------


def identity(x: Any) -> Any:
    return x


def identity_n(*xs: Any) -> tuple[Any, ...]:
    return tuple(xs)


def check_numerics(x: torch.Tensor, *, message: str = "") -> torch.Tensor:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"CheckNumerics failed (a NaN or Inf in the tensor): {message}")
    return x


def assert_(condition: Any, *data: Any, summarize: int = 3) -> None:
    """TF ``Assert``: raises with the op's message when the condition does not hold."""
    ok = bool(condition.all()) if isinstance(condition, torch.Tensor) else bool(np.all(condition))
    if not ok:
        parts = [
            d.decode("utf-8", "replace")
            if isinstance(d, bytes)
            else str(d.tolist() if hasattr(d, "tolist") else d)
            for d in data
        ]
        raise ValueError("Assertion of the exported graph failed: " + " ".join(parts))


# --------------------------------------------------------------------------------------------
# Math.
# --------------------------------------------------------------------------------------------


def matmul(
    a: torch.Tensor, b: torch.Tensor, *, transpose_a: bool = False, transpose_b: bool = False
) -> torch.Tensor:
    if transpose_a:
        a = a.transpose(-1, -2)
    if transpose_b:
        b = b.transpose(-1, -2)
    return a @ b


def batch_matmul(
    a: torch.Tensor, b: torch.Tensor, *, adj_x: bool = False, adj_y: bool = False
) -> torch.Tensor:
    return matmul(a, b, transpose_a=adj_x, transpose_b=adj_y)


def einsum(*inputs: torch.Tensor, equation: str) -> torch.Tensor:
    return torch.einsum(equation, *inputs)


def bias_add(x: torch.Tensor, bias: torch.Tensor, *, data_format: str = "NHWC") -> torch.Tensor:
    if data_format.startswith("NC") and x.dim() > 2:
        return x + bias.reshape((-1,) + (1,) * (x.dim() - 2))
    return x + bias


def _binary(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str
) -> Callable[..., Any]:
    def op(x: Any, y: Any) -> Any:
        if _is_str(x) or _is_str(y):
            raise UnsupportedGraphError("arithmetic on string tensors is not supported")
        if not isinstance(x, torch.Tensor):
            x = _to_tensor(x, y if isinstance(y, torch.Tensor) else None)
        if not isinstance(y, torch.Tensor):
            y = _to_tensor(y, x)
        return fn(x, y)

    op.__name__ = op.__qualname__ = name
    return op


def equal(x: Any, y: Any, *, incompatible_shape_error: bool = True) -> Any:
    if _is_str(x) or _is_str(y):
        return torch.from_numpy(np.asarray(np.asarray(x) == np.asarray(y), dtype=bool))
    return equal_(x, y)


def not_equal(x: Any, y: Any, *, incompatible_shape_error: bool = True) -> Any:
    if _is_str(x) or _is_str(y):
        return torch.from_numpy(np.asarray(np.asarray(x) != np.asarray(y), dtype=bool))
    return not_equal_(x, y)


def real_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x / y


def div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TF ``Div``: true division for floats, truncating division for integers."""
    if x.is_floating_point():
        return x / y
    return torch.div(x, y, rounding_mode="trunc")


def floor_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="floor")


def floor_mod(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.remainder(x, y)


def div_no_nan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(y == 0, torch.zeros_like(x / torch.ones_like(y)), x / y)


def squared_difference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y) * (x - y)


def add_n(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def rsqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.rsqrt(x)


def l2_loss(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum() / 2


def leaky_relu(x: torch.Tensor, *, alpha: float = LEAKY_RELU_ALPHA) -> torch.Tensor:
    return F.leaky_relu(x, negative_slope=alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    return SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * torch.expm1(x))


def softsign(x: torch.Tensor) -> torch.Tensor:
    return x / (1 + x.abs())


def gelu(x: torch.Tensor, *, approximate: bool = False) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if approximate else "none")


def softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def log_softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(x, dim=-1)


def _reduction(kind: str) -> Callable[..., torch.Tensor]:
    def op(x: torch.Tensor, axis: Any, *, keep_dims: bool = False) -> torch.Tensor:
        dims = tuple(_axis(a, x.dim()) for a in _int_list(axis))
        if not dims:
            return x
        if kind == "Sum":
            return x.sum(dim=dims, keepdim=keep_dims)
        if kind == "Mean":
            return (
                x.mean(dim=dims, keepdim=keep_dims)
                if x.is_floating_point()
                else _int_mean(x, dims, keep_dims)
            )
        if kind == "Prod":
            out = x
            for d in sorted(dims, reverse=True):
                out = out.prod(dim=d, keepdim=keep_dims)
            return out
        if kind == "Max":
            return x.amax(dim=dims, keepdim=keep_dims)
        if kind == "Min":
            return x.amin(dim=dims, keepdim=keep_dims)
        if kind == "Any":
            return x.bool().any(dim=dims, keepdim=keep_dims) if len(dims) > 0 else x
        if kind == "All":
            out = x.bool()
            for d in sorted(dims, reverse=True):
                out = out.all(dim=d, keepdim=keep_dims)
            return out
        raise UnsupportedGraphError(kind)

    op.__name__ = op.__qualname__ = kind.lower() + "_op"
    return op


def _int_mean(x: torch.Tensor, dims: tuple[int, ...], keep_dims: bool) -> torch.Tensor:
    n = 1
    for d in dims:
        n *= x.shape[d]
    return torch.div(x.sum(dim=dims, keepdim=keep_dims), n, rounding_mode="trunc")


def arg_max(x: torch.Tensor, axis: Any, *, output_type: str = "int64") -> torch.Tensor:
    return x.argmax(dim=_axis(axis, x.dim())).to(to_dtype(output_type) or torch.int64)


def arg_min(x: torch.Tensor, axis: Any, *, output_type: str = "int64") -> torch.Tensor:
    return x.argmin(dim=_axis(axis, x.dim())).to(to_dtype(output_type) or torch.int64)


def cast(x: Any, *, DstT: str, Truncate: bool = False) -> Any:
    dtype = to_dtype(DstT)
    if dtype is None:
        if _is_str(x):
            return x
        raise UnsupportedGraphError("Cast to string is not supported")
    if _is_str(x):
        raise UnsupportedGraphError("Cast from string is not supported (use StringToNumber)")
    x = _to_tensor(x)
    if x.is_floating_point() and not dtype.is_floating_point and dtype != torch.bool:
        return x.trunc().to(dtype)  # TF truncates toward zero
    return x.to(dtype)


def top_k(x: torch.Tensor, k: Any, *, sorted: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``TopKV2``: ties go to the lower index, as in TF's stable top-k."""
    kk = int(_scalar(k))
    # A stable descending sort gives TF's tie rule (lower index first) on every CPU.
    values, indices = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :kk], indices[..., :kk].to(torch.int32)


def select(condition: Any, x: Any, y: Any) -> Any:
    cond = _to_tensor(condition).bool()
    if _is_str(x) or _is_str(y):
        return np.where(cond.cpu().numpy(), x, y)
    x = _to_tensor(x)
    y = _to_tensor(y, x)
    if cond.dim() == 1 and x.dim() > 1:  # v1 Select: a vector picks whole rows
        cond = cond.reshape((-1,) + (1,) * (x.dim() - 1))
    return torch.where(cond, x, y)


def where(condition: Any) -> torch.Tensor:
    return torch.nonzero(_to_tensor(condition).bool()).to(torch.int64)


def clip_by_value(x: torch.Tensor, lo: Any, hi: Any) -> torch.Tensor:
    return torch.minimum(torch.maximum(x, _to_tensor(lo, x)), _to_tensor(hi, x))


# --------------------------------------------------------------------------------------------
# Shapes.
# --------------------------------------------------------------------------------------------


def shape(x: Any, *, out_type: str = "int32") -> torch.Tensor:
    dims = list(x.shape)
    return torch.tensor(dims, dtype=to_dtype(out_type) or torch.int32)


def size(x: Any, *, out_type: str = "int32") -> torch.Tensor:
    return torch.tensor(int(np.prod(x.shape)), dtype=to_dtype(out_type) or torch.int32)


def rank(x: Any) -> torch.Tensor:
    return torch.tensor(len(x.shape), dtype=torch.int32)


def reshape(x: Any, new_shape: Any) -> Any:
    dims = _int_list(new_shape)
    if _is_str(x):
        return x.reshape(dims)
    return x.reshape(dims)


def expand_dims(x: Any, axis: Any) -> Any:
    a = int(_scalar(axis))
    a = a + len(x.shape) + 1 if a < 0 else a
    if _is_str(x):
        return np.expand_dims(x, a)
    return x.unsqueeze(a)


def squeeze(x: Any, *, squeeze_dims: Sequence[int] = ()) -> Any:
    if _is_str(x):
        return np.squeeze(x, axis=tuple(squeeze_dims)) if squeeze_dims else np.squeeze(x)
    if not squeeze_dims:
        return x.squeeze()
    out = x
    for d in sorted((_axis(d, x.dim()) for d in squeeze_dims), reverse=True):
        out = out.squeeze(d)
    return out


def transpose(x: Any, perm: Any) -> Any:
    p = _int_list(perm)
    if _is_str(x):
        return np.transpose(x, p)
    return x.permute(p)


def tile(x: Any, multiples: Any) -> Any:
    m = _int_list(multiples)
    if _is_str(x):
        return np.tile(x, m)
    return x.repeat(m)


def fill(dims: Any, value: Any) -> Any:
    d = _int_list(dims)
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.full(d, value.item(), dtype=object)
    v = _to_tensor(value)
    return torch.full(d, v.item(), dtype=v.dtype)


def zeros_like(x: Any) -> Any:
    return torch.zeros_like(x)


def ones_like(x: Any) -> Any:
    return torch.ones_like(x)


def concat(*values_and_axis: Any) -> Any:
    *values, axis = values_and_axis
    if any(_is_str(v) for v in values):
        return np.concatenate(
            [np.asarray(v, dtype=object) for v in values], axis=int(_scalar(axis))
        )
    rank_ = values[0].dim()
    return torch.cat(list(values), dim=_axis(axis, max(rank_, 1)))


def pack(*values: Any, axis: int = 0) -> Any:
    if any(_is_str(v) for v in values):
        return np.stack([np.asarray(v, dtype=object) for v in values], axis=axis)
    tensors = [_to_tensor(v) for v in values]
    return torch.stack(tensors, dim=axis if axis >= 0 else axis + tensors[0].dim() + 1)


def unpack(x: Any, *, axis: int = 0, num: int = 0) -> tuple[Any, ...]:
    if _is_str(x):
        return tuple(np.moveaxis(x, axis, 0))
    return tuple(torch.unbind(x, dim=_axis(axis, x.dim())))


def split(axis: Any, x: torch.Tensor, *, num_split: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.chunk(x, num_split, dim=_axis(axis, x.dim())))


def split_v(x: torch.Tensor, size_splits: Any, axis: Any, *, num_split: int) -> tuple[Any, ...]:
    sizes = _int_list(size_splits)
    dim = _axis(axis, x.dim())
    if -1 in sizes:
        known = sum(s for s in sizes if s != -1)
        sizes = [x.shape[dim] - known if s == -1 else s for s in sizes]
    return tuple(torch.split(x, sizes, dim=dim))


def range_(start: Any, limit: Any, delta: Any, *, Tidx: str = "int32") -> torch.Tensor:
    dtype = to_dtype(Tidx) or torch.int32
    return torch.arange(_scalar(start), _scalar(limit), _scalar(delta), dtype=dtype)


def slice_(x: Any, begin: Any, size_: Any) -> Any:
    b = _int_list(begin)
    s = _int_list(size_)
    index = tuple(slice(bi, None if si == -1 else bi + si) for bi, si in zip(b, s, strict=True))
    return x[index]


def strided_slice(
    x: Any,
    begin: Any,
    end: Any,
    strides: Any,
    *,
    begin_mask: int = 0,
    end_mask: int = 0,
    ellipsis_mask: int = 0,
    new_axis_mask: int = 0,
    shrink_axis_mask: int = 0,
) -> Any:
    """TF ``StridedSlice`` with all five masks, as a Python index expression."""
    b, e, s = _int_list(begin), _int_list(end), _int_list(strides)
    index: list[Any] = []
    for i in range(len(b)):
        bit = 1 << i
        if ellipsis_mask & bit:
            index.append(Ellipsis)
        elif new_axis_mask & bit:
            index.append(None)
        elif shrink_axis_mask & bit:
            index.append(b[i])
        else:
            start = None if begin_mask & bit else b[i]
            stop = None if end_mask & bit else e[i]
            index.append(slice(start, stop, s[i]))
    if isinstance(x, torch.Tensor) and x.dim() == 0:
        return x
    if isinstance(x, torch.Tensor) and any(
        isinstance(i, slice) and (i.step or 1) < 0 for i in index
    ):
        # torch has no negative steps: NumPy's slicing has TF's semantics; copy back.
        picked = np.ascontiguousarray(x.detach().cpu().numpy()[tuple(index)])
        return torch.from_numpy(picked.copy()).to(x.device)
    return x[tuple(index)]


def fused_batch_norm(
    x: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    mean: torch.Tensor,
    variance: torch.Tensor,
    *,
    epsilon: float = 1e-4,
    data_format: str = "NHWC",
    is_training: bool = True,
) -> tuple[torch.Tensor, ...]:
    """``FusedBatchNormV3`` (also what Keras's LayerNormalization traces, reshaped to NCHW).

    In training mode the statistics are the batch's, over every axis but the channel one (the
    biased variance normalises; TF reports Bessel's correction in ``batch_variance``).
    """
    channel = 1 if data_format.startswith("NC") else x.dim() - 1
    view = [1] * x.dim()
    view[channel] = -1
    if is_training:
        dims = tuple(d for d in range(x.dim()) if d != channel)
        batch_mean = x.mean(dim=dims)
        biased = x.var(dim=dims, unbiased=False)
        n = x.numel() // max(x.shape[channel], 1)
        reported = biased * (n / max(n - 1, 1))
        used_mean, used_var = batch_mean, biased
    else:
        batch_mean, reported = mean, variance
        used_mean, used_var = mean, variance
    inv = torch.rsqrt(used_var + epsilon) * scale
    y = (x - used_mean.reshape(view)) * inv.reshape(view) + offset.reshape(view)
    empty = torch.zeros(0, dtype=x.dtype)
    return y, batch_mean, reported, batch_mean, used_var, empty


def matrix_band_part(x: torch.Tensor, num_lower: Any, num_upper: Any) -> torch.Tensor:
    """``MatrixBandPart``: keeps the band ``-num_lower <= j - i <= num_upper`` (negative = all)."""
    lower, upper = int(_scalar(num_lower)), int(_scalar(num_upper))
    rows, cols = x.shape[-2], x.shape[-1]
    i = torch.arange(rows, device=x.device).unsqueeze(1)
    j = torch.arange(cols, device=x.device).unsqueeze(0)
    keep = torch.ones(rows, cols, dtype=torch.bool, device=x.device)
    if lower >= 0:
        keep &= (i - j) <= lower
    if upper >= 0:
        keep &= (j - i) <= upper
    return torch.where(keep, x, torch.zeros_like(x))


# TensorLists (the ``variant`` loop state of Keras RNN loops): Python lists of tensors, never
# mutated in place (TF's list ops are values: a set returns a new list).


def tensor_list_reserve(
    element_shape: Any, num_elements: Any, *, element_dtype: str = "float32"
) -> list[Any]:
    n = int(_scalar(num_elements))
    return [None] * max(n, 0)


def tensor_list_from_tensor(
    x: Any, element_shape: Any, *, element_dtype: str = "float32"
) -> list[Any]:
    return list(torch.unbind(x, 0)) if isinstance(x, torch.Tensor) else list(x)


def tensor_list_get_item(
    items: list[Any], index: Any, element_shape: Any, *, element_dtype: str = "float32"
) -> Any:
    i = int(_scalar(index))
    if not 0 <= i < len(items) or items[i] is None:
        raise IndexError(f"TensorListGetItem: no element at index {i} (list of {len(items)}).")
    return items[i]


def tensor_list_set_item(
    items: list[Any], index: Any, item: Any, *, resize_if_index_out_of_bounds: bool = False
) -> list[Any]:
    i = int(_scalar(index))
    out = list(items)
    if i >= len(out):
        if not resize_if_index_out_of_bounds:
            raise IndexError(f"TensorListSetItem: index {i} out of range (list of {len(out)}).")
        out.extend([None] * (i + 1 - len(out)))
    out[i] = item
    return out


def tensor_list_push_back(
    items: list[Any], item: Any, *, element_dtype: str = "float32"
) -> list[Any]:
    return [*items, item]


def tensor_list_length(items: list[Any]) -> torch.Tensor:
    return torch.tensor(len(items), dtype=torch.int32)


def tensor_list_stack(
    items: list[Any], element_shape: Any, *, element_dtype: str = "float32", num_elements: int = -1
) -> torch.Tensor:
    if any(v is None for v in items):
        raise ValueError("TensorListStack: the list has unset elements.")
    if not items:
        shape = [d if d >= 0 else 0 for d in _int_list(element_shape)]
        return torch.zeros([0, *shape], dtype=to_dtype(element_dtype) or torch.float32)
    return torch.stack(list(items), 0)


def broadcast_to(x: torch.Tensor, new_shape: Any) -> torch.Tensor:
    return x.expand(_int_list(new_shape))


def broadcast_args(s0: Any, s1: Any) -> torch.Tensor:
    out = torch.broadcast_shapes(tuple(_int_list(s0)), tuple(_int_list(s1)))
    return torch.tensor(list(out), dtype=_to_tensor(s0).dtype)


def one_hot(
    indices: torch.Tensor, depth: Any, on: Any, off: Any, *, axis: int = -1
) -> torch.Tensor:
    d = int(_scalar(depth))
    on_t, off_t = _to_tensor(on), _to_tensor(off)
    valid = (indices >= 0) & (indices < d)
    hot = F.one_hot(torch.where(valid, indices, torch.zeros_like(indices)).long(), d).bool()
    hot &= valid.unsqueeze(-1)
    out = torch.where(hot, on_t, off_t)
    if axis != -1:
        out = out.movedim(-1, axis)
    return out


# --------------------------------------------------------------------------------------------
# Gathers.
# --------------------------------------------------------------------------------------------


def _check_indices(indices: torch.Tensor, n: int, what: str) -> None:
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        raise IndexError(f"{what}: index {bad} is out of range [0, {n}) (TF raises here too).")


def resource_gather(
    params: Any, indices: Any, *, batch_dims: int = 0, validate_indices: bool = True
) -> Any:
    if (  # an embedding lookup: one call, index_select checks the range itself
        not batch_dims
        and isinstance(params, torch.Tensor)
        and isinstance(indices, torch.Tensor)
        and indices.dim() == 1
    ):
        try:
            return torch.index_select(params, 0, indices)
        except (IndexError, RuntimeError):
            pass  # gather raises TF's error (or index_select's own, for any other problem)
    return gather(params, indices, 0, batch_dims=batch_dims)


def gather(params: Any, indices: Any, axis: Any = 0, *, batch_dims: int = 0) -> Any:
    idx = _to_tensor(indices).long()
    ax = int(_scalar(axis))
    if batch_dims:
        raise UnsupportedGraphError("GatherV2 with batch_dims is not supported")
    if _is_str(params):
        _check_indices(idx, params.shape[ax], "Gather")
        return np.take(params, idx.cpu().numpy(), axis=ax)
    ax = ax + params.dim() if ax < 0 else ax
    try:  # index_select checks the range itself: no extra pass over the indices when they are valid
        out = torch.index_select(params, ax, idx if idx.dim() == 1 else idx.reshape(-1))
    except (IndexError, RuntimeError):
        _check_indices(idx, params.shape[ax], "Gather")
        raise
    if idx.dim() == 1:
        return out
    return out.reshape(params.shape[:ax] + idx.shape + params.shape[ax + 1 :])


def gather_nd(params: Any, indices: Any, *, batch_dims: int = 0) -> Any:
    idx = _to_tensor(indices).long()
    depth = idx.shape[-1]
    flat = idx.reshape(-1, depth)
    if _is_str(params):
        picked = params[tuple(flat.cpu().numpy().T)]
        return picked.reshape(tuple(idx.shape[:-1]) + params.shape[depth:])
    picked = params[tuple(flat.T)]
    return picked.reshape(tuple(idx.shape[:-1]) + tuple(params.shape[depth:]))


# --------------------------------------------------------------------------------------------
# Strings, lookups and hashing (host side: NumPy arrays of bytes).
# --------------------------------------------------------------------------------------------


def to_bytes_array(values: Any) -> np.ndarray:
    """Python / NumPy strings (``str`` or ``bytes``) as a NumPy ``object`` array of ``bytes``."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":  # the common case, fast
        encoded = np.empty(values.size, dtype=object)
        encoded[:] = [v.encode("utf-8", "surrogateescape") for v in values.reshape(-1).tolist()]
        return encoded.reshape(values.shape)
    arr = np.asarray(values, dtype=object)
    flat = [
        v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogateescape")
        for v in arr.reshape(-1)
    ]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def string_to_hash_bucket_fast(x: np.ndarray, *, num_buckets: int) -> torch.Tensor:
    flat = list(to_bytes_array(x).reshape(-1))
    return torch.from_numpy(hash_bucket_fast(flat, num_buckets).reshape(x.shape))


def string_to_hash_bucket_strong(
    x: np.ndarray, *, num_buckets: int, key: Sequence[int]
) -> torch.Tensor:
    flat = list(to_bytes_array(x).reshape(-1))
    return torch.from_numpy(hash_bucket_strong(flat, num_buckets, key).reshape(x.shape))


def bucketize(x: torch.Tensor, *, boundaries: Sequence[float]) -> torch.Tensor:
    """TF ``Bucketize``: index of the first boundary greater than the value (``bisect_right``)."""
    edges = _edges(tuple(boundaries))
    return torch.bucketize(x.to(torch.float64), edges, right=True).to(torch.int32)


@functools.lru_cache(maxsize=256)
def _edges(boundaries: tuple[float, ...]) -> torch.Tensor:
    """A Bucketize node's boundaries as a tensor, made once per node (never written to)."""
    with torch.inference_mode(False):
        return torch.tensor(boundaries, dtype=torch.float64)


def lookup_find(table: Any, keys: Any, default: Any) -> Any:
    return table.find(keys, default)


def lookup_size(table: Any) -> torch.Tensor:
    return torch.tensor(table.size(), dtype=torch.int64)


def lookup_export(table: Any) -> tuple[Any, Any]:
    return table.keys, table.values


def string_lower(x: np.ndarray, *, encoding: str = "") -> np.ndarray:
    flat = [
        v.decode("utf-8", "surrogateescape").lower().encode("utf-8", "surrogateescape")
        if encoding
        else v.lower()
        for v in to_bytes_array(x).reshape(-1)
    ]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(x.shape)


# TF's text ops on host arrays (what a TextVectorization layer traces).
#: ``tf.strings.split`` with an empty separator splits on runs of these (ASCII whitespace).
WHITESPACE = b" \t\n\r\x0b\x0c"


def _bytes_rows(x: Any) -> list[bytes]:
    return list(to_bytes_array(x).reshape(-1))


def _object_array(items: Sequence[bytes], shape: tuple[int, ...] | None = None) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out.reshape(shape) if shape is not None else out


_REGEX_CACHE: dict[tuple[bytes, bool], Any] = {}


def _regex(pattern: str | bytes) -> Any:
    import re

    raw = pattern.encode("utf-8", "surrogateescape") if isinstance(pattern, str) else pattern
    key = (raw, True)
    if key not in _REGEX_CACHE:
        _REGEX_CACHE[key] = re.compile(raw)
    return _REGEX_CACHE[key]


def _rewrite(rewrite: str | bytes) -> bytes:
    return rewrite.encode("utf-8", "surrogateescape") if isinstance(rewrite, str) else rewrite


def static_regex_replace(
    x: Any, *, pattern: str | bytes, rewrite: str | bytes, replace_global: bool = True
) -> np.ndarray:
    """``StaticRegexReplace`` (RE2 pattern; the character classes Keras uses mean the same in
    Python's ``re``)."""
    regex, repl = _regex(pattern), _rewrite(rewrite)
    arr = to_bytes_array(x)
    count = 0 if replace_global else 1
    return _object_array([regex.sub(repl, v, count=count) for v in arr.reshape(-1)], arr.shape)


def regex_replace(x: Any, pattern: Any, rewrite: Any, *, replace_global: bool = True) -> np.ndarray:
    return static_regex_replace(
        x,
        pattern=_bytes_rows(pattern)[0],
        rewrite=_bytes_rows(rewrite)[0],
        replace_global=replace_global,
    )


def string_split_v2(
    x: Any, sep: Any, *, maxsplit: int = -1
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """``StringSplitV2``: a sparse ``(indices [N, 2], values, dense shape [2])`` of the tokens."""
    seps = _bytes_rows(sep)
    separator = seps[0] if seps else b""
    rows = _bytes_rows(x)
    indices: list[tuple[int, int]] = []
    values: list[bytes] = []
    longest = 0
    for r, text in enumerate(rows):
        if separator:
            parts = text.split(separator, maxsplit) if maxsplit >= 0 else text.split(separator)
        else:
            parts = text.split(None, maxsplit) if maxsplit >= 0 else text.split()
        indices.extend((r, i) for i in range(len(parts)))
        values.extend(parts)
        longest = max(longest, len(parts))
    index_tensor = torch.tensor(indices, dtype=torch.int64).reshape(-1, 2)
    return (
        index_tensor,
        _object_array(values),
        torch.tensor([len(rows), longest], dtype=torch.int64),
    )


def dense_bincount(
    x: torch.Tensor, size: Any, weights: torch.Tensor, *, binary_output: bool = False
) -> torch.Tensor:
    n = int(_scalar(size))
    flat = x.reshape(-1).long()
    keep = (flat >= 0) & (flat < n)
    if weights.numel():
        counts = torch.zeros(n, dtype=weights.dtype).index_add_(
            0, flat[keep], weights.reshape(-1)[keep]
        )
    else:
        counts = torch.bincount(flat[keep], minlength=n)[:n].to(x.dtype)
    if binary_output:
        counts = (counts > 0).to(counts.dtype)
    return counts


def cumsum(
    x: torch.Tensor, axis: Any, *, exclusive: bool = False, reverse: bool = False
) -> torch.Tensor:
    dim = _axis(axis, x.dim())
    y = x.flip(dim) if reverse else x
    out = torch.cumsum(y, dim=dim)
    if exclusive:
        out = out - y
    return (out.flip(dim) if reverse else out).to(x.dtype)


def string_ngrams(
    data: Any,
    data_splits: Any,
    *,
    separator: str,
    ngram_widths: Sequence[int],
    left_pad: str,
    right_pad: str,
    pad_width: int,
    preserve_short_sequences: bool,
) -> tuple[np.ndarray, torch.Tensor]:
    """``StringNGrams`` over ragged rows: per row, the n-grams of each width in order."""
    tokens = _bytes_rows(data)
    splits = _int_list(data_splits)
    sep, lpad, rpad = _rewrite(separator), _rewrite(left_pad), _rewrite(right_pad)
    out: list[bytes] = []
    out_splits = [0]
    for start, end in itertools.pairwise(splits):
        row = tokens[start:end]
        made = 0
        for width in ngram_widths:
            pad = min(width - 1 if pad_width < 0 else pad_width, width - 1)
            padded = [lpad] * pad + row + [rpad] * pad
            count = len(padded) - width + 1
            for i in range(max(0, count)):
                out.append(sep.join(padded[i : i + width]))
                made += 1
        if made == 0 and preserve_short_sequences and row:
            out.append(sep.join(row))
            made = 1
        out_splits.append(out_splits[-1] + made)
    split_dtype = data_splits.dtype if isinstance(data_splits, torch.Tensor) else torch.int64
    return _object_array(out), torch.tensor(out_splits, dtype=split_dtype)


def ragged_tensor_to_tensor(
    out_shape: Any,
    values: Any,
    default_value: Any,
    *partitions: Any,
    row_partition_types: Sequence[str] = ("ROW_SPLITS",),
) -> Any:
    """``RaggedTensorToTensor`` for one ``ROW_SPLITS`` partition: rows padded with the default."""
    if list(row_partition_types) != ["ROW_SPLITS"] or len(partitions) != 1:
        raise UnsupportedGraphError(
            f"RaggedTensorToTensor with partitions {list(row_partition_types)} is not supported "
            "(only one ROW_SPLITS partition, as Keras layers produce)."
        )
    splits = _int_list(partitions[0])
    nrows = len(splits) - 1
    lengths = [b - a for a, b in itertools.pairwise(splits)]
    wanted = _int_list(out_shape)
    wanted = wanted if len(wanted) > 1 else []
    width = max(lengths, default=0)
    if len(wanted) >= 2 and wanted[1] >= 0:
        width = wanted[1]
    if len(wanted) >= 1 and wanted[0] >= 0:
        nrows = min(nrows, wanted[0])
    if _is_str(values):
        fill = _bytes_rows(default_value)[0]
        dense = np.full((nrows, width), fill, dtype=object)
        for r in range(nrows):
            row = values[splits[r] : splits[r] + min(lengths[r], width)]
            dense[r, : len(row)] = row
        return dense
    vals = _to_tensor(values)
    inner = tuple(vals.shape[1:])
    dense_t = torch.full((nrows, width, *inner), _to_tensor(default_value).item(), dtype=vals.dtype)
    for r in range(nrows):
        n = min(lengths[r], width)
        dense_t[r, :n] = vals[splits[r] : splits[r] + n]
    return dense_t


def _pure_unary(fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> Callable[[Any], Any]:
    def op(x: Any) -> Any:
        return fn(_to_tensor(x))

    op.__name__ = op.__qualname__ = name
    return op


def logical_not(x: Any) -> torch.Tensor:
    return ~_to_tensor(x).bool()


def _pow(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.pow(x, y)


def _relu6(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, 0.0, 6.0)


def _elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    # TF's softplus: log1p(exp(x)), with the same large-|x| shortcuts as torch's threshold=20.
    return F.softplus(x)


def _sign(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x)


def _erf(x: torch.Tensor) -> torch.Tensor:
    return torch.erf(x)


def _is_nan(x: torch.Tensor) -> torch.Tensor:
    return torch.isnan(x)


def _log1p(x: torch.Tensor) -> torch.Tensor:
    return torch.log1p(x)


def _reciprocal(x: torch.Tensor) -> torch.Tensor:
    return torch.reciprocal(x)


def _square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def _floor(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x)


def _round(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x)  # banker's rounding, as TF's Round


# Module-level names for every element-wise op (emitted Python imports them by name).
abs_op = _pure_unary(torch.abs, "abs_op")
add = _binary(torch.add, "add")
all_op = _reduction("All")
any_op = _reduction("Any")
div_ = _binary(div, "div_")
div_no_nan_ = _binary(div_no_nan, "div_no_nan_")
elu_op = _pure_unary(_elu, "elu_op")
erf_op = _pure_unary(_erf, "erf_op")
exp_op = _pure_unary(torch.exp, "exp_op")
floor_div_ = _binary(floor_div, "floor_div_")
floor_mod_ = _binary(floor_mod, "floor_mod_")
floor_op = _pure_unary(_floor, "floor_op")
greater = _binary(torch.gt, "greater")
greater_equal = _binary(torch.ge, "greater_equal")
is_nan_op = _pure_unary(_is_nan, "is_nan_op")
less = _binary(torch.lt, "less")
less_equal = _binary(torch.le, "less_equal")
log1p_op = _pure_unary(_log1p, "log1p_op")
log_op = _pure_unary(torch.log, "log_op")
logical_and = _binary(torch.logical_and, "logical_and")
logical_or = _binary(torch.logical_or, "logical_or")
max_op = _reduction("Max")
maximum = _binary(torch.maximum, "maximum")
mean_op = _reduction("Mean")
min_op = _reduction("Min")
minimum = _binary(torch.minimum, "minimum")
mul = _binary(torch.mul, "mul")
neg_op = _pure_unary(torch.neg, "neg_op")
pow_ = _binary(_pow, "pow_")
prod_op = _reduction("Prod")
real_div_ = _binary(real_div, "real_div_")
reciprocal_op = _pure_unary(_reciprocal, "reciprocal_op")
relu6_op = _pure_unary(_relu6, "relu6_op")
relu_op = _pure_unary(torch.relu, "relu_op")
round_op = _pure_unary(_round, "round_op")
rsqrt_op = _pure_unary(rsqrt, "rsqrt_op")
selu_op = _pure_unary(selu, "selu_op")
sigmoid_op = _pure_unary(torch.sigmoid, "sigmoid_op")
sign_op = _pure_unary(_sign, "sign_op")
softplus_op = _pure_unary(_softplus, "softplus_op")
softsign_op = _pure_unary(softsign, "softsign_op")
sqrt_op = _pure_unary(torch.sqrt, "sqrt_op")
square_op = _pure_unary(_square, "square_op")
squared_difference_ = _binary(squared_difference, "squared_difference_")
sub = _binary(torch.sub, "sub")
equal_ = _binary(torch.eq, "equal_")
not_equal_ = _binary(torch.ne, "not_equal_")
sum_op = _reduction("Sum")
tanh_op = _pure_unary(torch.tanh, "tanh_op")


OPS: dict[str, OpDef] = {
    # plumbing
    "Identity": OpDef(identity),
    "Snapshot": OpDef(identity),
    "StopGradient": OpDef(identity),
    "PreventGradient": OpDef(identity),
    "ReadVariableOp": OpDef(identity),
    "IdentityN": OpDef(identity_n, multi_output=True),
    "CheckNumerics": OpDef(check_numerics, ("message",)),
    "Assert": OpDef(assert_, ("summarize",)),
    # math
    "MatMul": OpDef(matmul, ("transpose_a", "transpose_b")),
    "BatchMatMul": OpDef(batch_matmul, ("adj_x", "adj_y")),
    "BatchMatMulV2": OpDef(batch_matmul, ("adj_x", "adj_y")),
    "BatchMatMulV3": OpDef(batch_matmul, ("adj_x", "adj_y")),
    "Einsum": OpDef(einsum, ("equation",)),
    "BiasAdd": OpDef(bias_add, ("data_format",)),
    "Add": OpDef(add),
    "AddV2": OpDef(add),
    "AddN": OpDef(add_n),
    "Sub": OpDef(sub),
    "Mul": OpDef(mul),
    "RealDiv": OpDef(real_div_),
    "Div": OpDef(div_),
    "DivNoNan": OpDef(div_no_nan_),
    "FloorDiv": OpDef(floor_div_),
    "FloorMod": OpDef(floor_mod_),
    "Maximum": OpDef(maximum),
    "Minimum": OpDef(minimum),
    "Pow": OpDef(pow_),
    "SquaredDifference": OpDef(squared_difference_),
    "Neg": OpDef(neg_op),
    "Abs": OpDef(abs_op),
    "Sign": OpDef(sign_op),
    "Square": OpDef(square_op),
    "Sqrt": OpDef(sqrt_op),
    "Rsqrt": OpDef(rsqrt_op),
    "Reciprocal": OpDef(reciprocal_op),
    "Inv": OpDef(reciprocal_op),
    "Exp": OpDef(exp_op),
    "Log": OpDef(log_op),
    "Log1p": OpDef(log1p_op),
    "Floor": OpDef(floor_op),
    "Round": OpDef(round_op),
    "Erf": OpDef(erf_op),
    "IsNan": OpDef(is_nan_op),
    "L2Loss": OpDef(l2_loss),
    "ClipByValue": OpDef(clip_by_value),
    # activations
    "Relu": OpDef(relu_op),
    "Relu6": OpDef(relu6_op),
    "Elu": OpDef(elu_op),
    "Selu": OpDef(selu_op),
    "Sigmoid": OpDef(sigmoid_op),
    "Tanh": OpDef(tanh_op),
    "Softplus": OpDef(softplus_op),
    "Softsign": OpDef(softsign_op),
    "LeakyRelu": OpDef(leaky_relu, ("alpha",)),
    "Gelu": OpDef(gelu, ("approximate",)),
    "Softmax": OpDef(softmax),
    "LogSoftmax": OpDef(log_softmax),
    # comparisons and logic
    "Equal": OpDef(equal, ("incompatible_shape_error",)),
    "NotEqual": OpDef(not_equal, ("incompatible_shape_error",)),
    "Less": OpDef(less),
    "LessEqual": OpDef(less_equal),
    "Greater": OpDef(greater),
    "GreaterEqual": OpDef(greater_equal),
    "LogicalAnd": OpDef(logical_and),
    "LogicalOr": OpDef(logical_or),
    "LogicalNot": OpDef(logical_not),
    "Select": OpDef(select),
    "SelectV2": OpDef(select),
    "Where": OpDef(where),
    # reductions
    "Sum": OpDef(sum_op, ("keep_dims",)),
    "Mean": OpDef(mean_op, ("keep_dims",)),
    "Prod": OpDef(prod_op, ("keep_dims",)),
    "Max": OpDef(max_op, ("keep_dims",)),
    "Min": OpDef(min_op, ("keep_dims",)),
    "Any": OpDef(any_op, ("keep_dims",)),
    "All": OpDef(all_op, ("keep_dims",)),
    "ArgMax": OpDef(arg_max, ("output_type",)),
    "ArgMin": OpDef(arg_min, ("output_type",)),
    "Cast": OpDef(cast, ("DstT", "Truncate")),
    "TopKV2": OpDef(top_k, ("sorted",), multi_output=True),
    # shapes
    "Shape": OpDef(shape, ("out_type",)),
    "Size": OpDef(size, ("out_type",)),
    "Rank": OpDef(rank),
    "Reshape": OpDef(reshape),
    "ExpandDims": OpDef(expand_dims),
    "Squeeze": OpDef(squeeze, ("squeeze_dims",)),
    "Transpose": OpDef(transpose),
    "Tile": OpDef(tile),
    "Fill": OpDef(fill),
    "ZerosLike": OpDef(zeros_like),
    "OnesLike": OpDef(ones_like),
    "ConcatV2": OpDef(concat),
    "Pack": OpDef(pack, ("axis",)),
    "Unpack": OpDef(unpack, ("axis", "num"), multi_output=True),
    "Split": OpDef(split, ("num_split",), multi_output=True),
    "SplitV": OpDef(split_v, ("num_split",), multi_output=True),
    "Range": OpDef(range_, ("Tidx",)),
    "Slice": OpDef(slice_),
    "StridedSlice": OpDef(
        strided_slice,
        ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"),
    ),
    "BroadcastTo": OpDef(broadcast_to),
    "TensorListReserve": OpDef(tensor_list_reserve, ("element_dtype",)),
    "TensorListFromTensor": OpDef(tensor_list_from_tensor, ("element_dtype",)),
    "TensorListGetItem": OpDef(tensor_list_get_item, ("element_dtype",)),
    "TensorListSetItem": OpDef(tensor_list_set_item, ("resize_if_index_out_of_bounds",)),
    "TensorListPushBack": OpDef(tensor_list_push_back, ("element_dtype",)),
    "TensorListLength": OpDef(tensor_list_length),
    "TensorListStack": OpDef(tensor_list_stack, ("element_dtype", "num_elements")),
    "MatrixBandPart": OpDef(matrix_band_part),
    "FusedBatchNormV3": OpDef(
        fused_batch_norm, ("epsilon", "data_format", "is_training"), multi_output=True
    ),
    "BroadcastArgs": OpDef(broadcast_args),
    "OneHot": OpDef(one_hot, ("axis",)),
    # gathers
    "ResourceGather": OpDef(resource_gather, ("batch_dims", "validate_indices")),
    "GatherV2": OpDef(gather, ("batch_dims",)),
    "GatherNd": OpDef(gather_nd, ("batch_dims",)),
    # lookups, hashing, strings
    "LookupTableFindV2": OpDef(lookup_find),
    "LookupTableSizeV2": OpDef(lookup_size),
    "LookupTableExportV2": OpDef(lookup_export, multi_output=True),
    "StringToHashBucketFast": OpDef(string_to_hash_bucket_fast, ("num_buckets",)),
    "StringToHashBucketStrong": OpDef(string_to_hash_bucket_strong, ("num_buckets", "key")),
    "Bucketize": OpDef(bucketize, ("boundaries",)),
    "StringLower": OpDef(string_lower, ("encoding",)),
    "StaticRegexReplace": OpDef(static_regex_replace, ("pattern", "rewrite", "replace_global")),
    "RegexReplace": OpDef(regex_replace, ("replace_global",)),
    "StringSplitV2": OpDef(string_split_v2, ("maxsplit",), multi_output=True),
    "StringNGrams": OpDef(
        string_ngrams,
        (
            "separator",
            "ngram_widths",
            "left_pad",
            "right_pad",
            "pad_width",
            "preserve_short_sequences",
        ),
        multi_output=True,
    ),
    "RaggedTensorToTensor": OpDef(ragged_tensor_to_tensor, ("row_partition_types",)),
    "DenseBincount": OpDef(dense_bincount, ("binary_output",)),
    "Cumsum": OpDef(cumsum, ("exclusive", "reverse")),
}

#: Ops the converter drops because they have no data effect (control dependencies only).
NO_EFFECT_OPS = frozenset({"NoOp"})
