"""Keras ``Dense`` math, ``activation(x @ kernel + bias)``, with the bias and ReLU fused into the matmul.

TF's graph optimizer (grappler, with oneDNN) fuses each Dense's ``MatMul + BiasAdd + Relu`` into one
kernel; torch eager runs ``addmm`` and then a separate ReLU pass over the output (1.8 of 12.4 ms of a
basic-ranking step in torchrs's profile). On CPU, oneDNN's fused linear-pointwise kernel
(``torch.ops.mkldnn._linear_pointwise``, the op inductor emits for this pattern) applies bias and ReLU
in the matmul's epilogue. It has no autograd formula, so :class:`_FusedLinear` supplies the one torch
uses for ``relu(linear(x))``: ReLU's gradient from the output (``threshold_backward``), then the two
matmuls and the bias sum.

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

__all__ = ["dense", "fusable"]

# Opt-in (TORCHRS_FUSED_DENSE=1): on the 2-core AMD EPYC, basic-ranking and DCN training ran 1.01x and 1.02x
# of the unfused ops at load average ~1.2, 1.09x / 1.04x (ranking) and 0.98x / 1.02x (DCN) in two quieter
# interleaved runs (benchmarks/dense_levers.py; oneDNN reorders the plain weight into its blocked layout on
# every call, which inductor avoids by prepacking; a training step's weights change), and 0.74x / 0.94x under
# heavy load from other work. Not consistently >= 3% faster: no default yet.
ENABLED = os.environ.get("TORCHRS_FUSED_DENSE", "0") == "1"
# The activations oneDNN fuses here ("none": the plain linear layer of a logit / rating head).
FUSED_ACTIVATIONS = ("relu", "none")


def fusable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether oneDNN's fused kernel applies: float32 2-D CPU input, oneDNN built in, no autocast.

    Args:
        x: the layer's input.
        weight: its ``[out, in]`` weight.

    Returns:
        True when :func:`dense` takes the fused path.
    """
    return bool(
        ENABLED
        and x.dim() == 2
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.shape[0] > 0
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_scripting()
    )


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
        grad_x = grad.mm(weight) if ctx.needs_input_grad[0] else None  # (B, in)
        grad_w = grad.t().mm(x) if ctx.needs_input_grad[1] else None  # (out, in)
        grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (out,)
        return grad_x, grad_w, grad_b, None


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
    if not fusable(x, weight):
        out = F.linear(x, weight, bias)
        return torch.relu(out) if attr == "relu" else out
    return _FusedLinear.apply(x.contiguous(), weight, bias, attr)
