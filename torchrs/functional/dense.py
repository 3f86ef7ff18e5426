"""Keras ``Dense`` math, ``activation(x @ kernel + bias)``, with the bias and ReLU fused into the matmul.

TF's graph optimizer (grappler, with oneDNN) fuses each Dense's ``MatMul + BiasAdd + Relu`` into one
kernel; torch eager runs ``addmm`` and then a separate ReLU pass over the output (1.8 of 12.4 ms of a
basic-ranking step in torchrs's profile). On CPU, oneDNN's fused linear-pointwise kernel
(``torch.ops.mkldnn._linear_pointwise``, the op inductor emits for this pattern) applies bias and ReLU
in the matmul's epilogue. It has no autograd formula, so :class:`_FusedLinear` supplies the one torch
uses for ``relu(linear(x))``: ReLU's gradient from the output (``threshold_backward``), then the two
matmuls and the bias sum.

Which path runs is decided per shape by :mod:`torchrs.functional.gemm`'s one-time measurement (kind
``"linear"``): the fused oneDNN kernel only where it is at least :data:`~torchrs.functional.gemm.ONEDNN_MARGIN`
times as fast as torch's ``linear`` + in-place ReLU. With MKL on its fast path the two are close and the
unfused ops run (the default on the AMD EPYC and Intel Xeon measured); where MKL is not (``MKL_CBWR=COMPATIBLE``
on the AMD EPYC: a basic-ranking step's 8192x64 . 64x256 product 3-4x slower through MKL), the fused
kernel runs forward and :class:`_FusedLinear`'s backward products take the measured path as well.
``TORCHRS_GEMM=blas`` keeps every product on BLAS (bit-reproducible runs); ``TORCHRS_FUSED_DENSE=1``
forces the fused kernel.

Numbers: the same float32 products and sums as the unfused ops up to summation order (oneDNN's GEMM
blocking, not MKL's); Keras's are TF's own oneDNN / Eigen order, so both sides are held to float32
tolerances, never to bit equality.

>>> x, w, b = torch.randn(4, 3), torch.randn(5, 3), torch.randn(5)
>>> torch.allclose(dense(x, w, b, "relu"), torch.relu(x @ w.T + b), atol=1e-6)
True
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from torchrs.functional import gemm

__all__ = ["dense", "fusable", "may_fuse", "takes_fused"]

# Forced on (TORCHRS_FUSED_DENSE=1) for every shape, measured or not: on the 2-core AMD EPYC with MKL on its fast
# path, basic-ranking and DCN training ran 1.01x and 1.02x of the unfused ops at load average ~1.2, 1.09x /
# 1.04x (ranking) and 0.98x / 1.02x (DCN) in two quieter interleaved runs (benchmarks/dense_levers.py; oneDNN
# reorders the plain weight into its blocked layout on every call, which inductor avoids by prepacking; a
# training step's weights change), and 0.74x / 0.94x under heavy load from other work: hence the measured
# choice, with its margin, rather than the fused kernel everywhere.
ENABLED = os.environ.get("TORCHRS_FUSED_DENSE", "0") == "1"
# The activations oneDNN fuses here ("none": the plain linear layer of a logit / rating head).
FUSED_ACTIVATIONS = ("relu", "none")


def fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's fused kernel can run: float32 2-D CPU input, oneDNN built in, no autocast.

    Args:
        x: the layer's input.
        weight: its ``[out, in]`` weight.

    Returns:
        True when :func:`dense` may take the fused path (it does where :func:`takes_fused` says so).
    """
    # Inductor fuses on its own; nothing to measure inside a trace.
    if torch.compiler.is_compiling():
        return False
    return bool(
        x.dim() == 2
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.shape[0] > 0
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_scripting()
    )


def may_fuse(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """A check on shapes alone: False when :func:`dense` would surely run torch's ``linear`` (+ ReLU).

    That is, the fused kernel is not forced and the product is too small for gemm to measure (or
    ``TORCHRS_GEMM=blas``). ``Dense`` asks it first, so that a small product (a batch-1 request) pays ~1 us
    here rather than the ~20 us of :func:`dense`'s checks and measured-choice lookup.
    """
    return ENABLED or (
        x.dim() == 2 and gemm.may_use_onednn(x.shape[0], weight.shape[0], x.shape[1])
    )


def takes_fused(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: str
) -> bool:
    """Whether :func:`dense` runs oneDNN's fused kernel for these operands (measuring the shape once).

    Args:
        x: ``(B, in)``, :func:`fusable`.
        weight: ``(out, in)``.
        bias: ``(out,)`` or None.
        attr: ``"relu"`` or ``"none"``.

    Returns:
        True for the fused kernel, False for torch's ``linear`` (+ in-place ReLU).
    """
    if ENABLED:
        return True
    x, weight = x.detach(), weight.detach()
    bias = None if bias is None else bias.detach()

    def unfused() -> torch.Tensor:
        out = F.linear(x, weight, bias)  # (B, out)
        return torch.relu_(out) if attr == "relu" else out

    def fused() -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], "")  # (B, out)

    def measure() -> gemm.GemmChoice:
        with torch.no_grad():
            return gemm.measure_paths("linear", x, weight, unfused, fused)

    return gemm.backend_for("linear", x, weight, measure) == gemm.ONEDNN


class _FusedLinear(torch.autograd.Function):
    """``act(x @ weight.T + bias)`` by oneDNN forward; torch's own formulas backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, attr: str
    ) -> torch.Tensor:
        y = torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], "")  # (B, out)
        ctx.relu = attr == "relu"
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight, y if ctx.relu else None)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight, y = ctx.saved_tensors
        if ctx.relu:  # relu'(z) = 1 where the output is > 0, as autograd's relu backward
            grad = torch.ops.aten.threshold_backward(grad, y, 0)  # (B, out)
        grad = grad.contiguous()
        # Both products on gemm's measured path for their shapes, like the forward.
        grad_x = gemm.matmul(grad, weight) if ctx.needs_input_grad[0] else None  # (B, in)
        grad_w = (  # (out, in): grad.T @ x, accumulated into zeros
            gemm.addmm_t_(weight.new_zeros(weight.shape), grad, x)
            if ctx.needs_input_grad[1]
            else None
        )
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (out,)
        return grad_x, grad_w, grad_b, None


# Not traced by torch.compile: its path choice measures and caches in Python. Dense.forward does not call it
# while compiling (inductor fuses there); a frame that runs eagerly after a graph break calls it as is.
@torch.compiler.disable
def dense(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None
) -> torch.Tensor:
    """``activation(x @ weight.T + bias)``, fused where oneDNN can (see the module docstring).

    Args:
        x: ``(B, in)`` (other ranks take the unfused path).
        weight: ``(out, in)``.
        bias: ``(out,)`` or None.
        activation: ``"relu"`` or ``None`` (linear); other activations are applied by the caller.

    Returns:
        ``(B, out)``.

    Raises:
        ValueError: an activation this function does not fuse.
    """
    attr = "none" if activation is None else activation
    if attr not in FUSED_ACTIVATIONS:
        raise ValueError(f"dense fuses {FUSED_ACTIVATIONS} only (got activation={activation!r})")
    if fusable(x, weight) and takes_fused(x.contiguous(), weight, bias, attr):
        return _FusedLinear.apply(x.contiguous(), weight, bias, attr)
    out = F.linear(x, weight, bias)  # (..., out), a fresh tensor
    # In place: no second (B, out) buffer, one pass less over memory (1.03-1.05x basic-ranking / DCN training
    # on the 2-core AMD EPYC); autograd's ReLU backward reads the output either way.
    return torch.relu_(out) if attr == "relu" else out
