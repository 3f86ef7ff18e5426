"""functional.dense: oneDNN's fused Linear + bias + ReLU against torch's unfused ops and autograd."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

import torchrs.functional.dense as dense_module
from torchrs.functional import gemm
from torchrs.functional.dense import dense, fusable, takes_fused
from torchrs.layers import Dense

pytestmark = pytest.mark.numerics

# Forward and gradients agree with the unfused ops to float32 rounding of a dot product over the
# shared dimension: oneDNN blocks the GEMM in its own order (CPU-dependent), so no bit equality. Any
# order of a length-d sum is within d * 2^-24 * sum|terms| of the exact value (Higham 3.1); we bound
# by that with d the summed length, against float64 references.


@pytest.fixture(autouse=True)
def fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused path is opt-in (TORCHRS_FUSED_DENSE=1); these tests turn it on."""
    monkeypatch.setattr(dense_module, "ENABLED", True)


def _bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise float32 bound for a @ b (both float64 here): d * u * |a| @ |b|, plus a tiny floor."""
    d = a.shape[-1]
    return 2 * d * 2.0**-24 * (a.abs() @ b.abs()) + 1e-30


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize(("batch", "fan_in", "fan_out"), [(1, 3, 5), (64, 37, 256), (300, 256, 64)])
def test_forward_and_gradients_match_float64(activation, batch, fan_in, fan_out) -> None:
    generator = torch.Generator().manual_seed(batch + fan_in)
    x = torch.randn(batch, fan_in, generator=generator, requires_grad=True)
    w = torch.randn(fan_out, fan_in, generator=generator, requires_grad=True)
    b = torch.randn(fan_out, generator=generator, requires_grad=True)
    assert fusable(x, w)
    y = dense(x, w, b, activation)
    upstream = torch.randn(batch, fan_out, generator=generator)
    (y * upstream).sum().backward()

    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    z64 = x64 @ w64.T + b64
    y64 = torch.relu(z64) if activation == "relu" else z64
    (y64 * upstream.double()).sum().backward()
    ones = torch.ones(batch, 1, dtype=torch.float64)
    z_bound = _bound(
        torch.cat([x64, ones], 1).detach(), torch.cat([w64, b64[:, None]], 1).detach().T
    )
    assert torch.all((y.double() - y64).abs() <= z_bound)
    # Gradients: relu's mask may differ only where |z| is within the forward's rounding (none here
    # with these random inputs unless z is ~0; those entries are excluded).
    live = (z64.abs() > z_bound).detach()
    g64 = upstream.double() * ((z64 > 0).double() if activation == "relu" else 1.0)
    g64 = g64 * live
    assert x.grad is not None and w.grad is not None and b.grad is not None
    torch.testing.assert_close(
        x.grad.double() * 1,
        x64.grad,
        atol=float(_bound(g64.abs(), w64.detach().abs()).max()),
        rtol=0,
    )
    torch.testing.assert_close(
        w.grad.double(), w64.grad, atol=float(_bound(g64.T.abs(), x64.detach().abs()).max()), rtol=0
    )
    torch.testing.assert_close(
        b.grad.double(),
        b64.grad,
        atol=float(2 * batch * 2.0**-24 * g64.abs().sum(0).max()) + 1e-30,
        rtol=0,
    )


def test_falls_back_where_onednn_does_not_apply() -> None:
    x = torch.randn(2, 3, 4)  # 3-D: the unfused path
    w, b = torch.randn(5, 4), torch.randn(5)
    assert not fusable(x, w)
    torch.testing.assert_close(dense(x, w, b, "relu"), torch.relu(F.linear(x, w, b)))
    assert not fusable(x.double()[0], w.double())
    dense_module.ENABLED = (
        False  # the default: measured per shape, unless TORCHRS_GEMM forces a path
    )
    with gemm.use_backend(gemm.BLAS):
        assert not takes_fused(x[0], w, b, "relu")
    with gemm.use_backend(gemm.ONEDNN):
        assert takes_fused(x[0], w, b, "relu")
    dense_module.ENABLED = True
    with pytest.raises(
        ValueError, match=r"dense fuses \('relu', 'none'\) only \(got activation='tanh'\)"
    ):
        dense(x[0], w, b, "tanh")


def test_keras_dense_takes_the_fused_path_and_matches_unfused() -> None:
    torch.manual_seed(0)
    layer = Dense(64, activation="relu", input_dim=32)
    x = torch.randn(128, 32)
    expected = torch.relu(F.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
    no_bias = Dense(8, use_bias=False, input_dim=32)
    torch.testing.assert_close(no_bias(x), F.linear(x, no_bias.weight), rtol=1e-6, atol=1e-6)
    out = no_bias(x.requires_grad_())
    out.sum().backward()
    assert no_bias.weight.grad is not None and no_bias.bias is None


def _spin(seconds: float) -> None:
    """Busy for ``seconds`` of wall time (what gemm's measurement counts)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize(("blas_ms", "onednn_ms", "expected"), [(6, 3, "onednn"), (4, 3.6, "blas")])
def test_onednn_needs_the_margin_to_be_chosen(blas_ms, onednn_ms, expected) -> None:
    # 2x faster clears ONEDNN_MARGIN (1.25): oneDNN; 1.11x does not: BLAS, so that timing noise between two
    # near-equal paths cannot flip the choice (and the results' last bits) from one process to the next.
    a, b = torch.zeros(4, 3), torch.zeros(5, 3)
    choice = gemm.measure_paths(
        "linear", a, b, lambda: _spin(blas_ms / 1e3), lambda: _spin(onednn_ms / 1e3)
    )
    assert choice.backend == expected
    assert choice.blas_seconds >= blas_ms / 1e3 and choice.onednn_seconds >= onednn_ms / 1e3


def test_dense_layer_measures_its_shape_once_and_keeps_torchs_numbers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The default (ENABLED off): a product above gemm.MIN_MEASURED_MACS is measured once as kind "linear";
    # whichever path won, forward and gradients are float32 roundings of the float64 reference: 1e-5 on
    # outputs of magnitude ~10 (64-term dot products), 1e-4 relative / 1e-3 absolute on gradients whose
    # entries reach ~1e3 (sums of 1000 rows).
    monkeypatch.setattr(dense_module, "ENABLED", False)
    torch.manual_seed(1)
    layer = Dense(256, activation="relu", input_dim=64)
    x = torch.randn(1000, 64, requires_grad=True)
    assert x.shape[0] * 64 * 256 >= gemm.MIN_MEASURED_MACS
    y = layer(x)
    y.square().sum().backward()
    threads = torch.get_num_threads()
    linear = [
        c
        for c in gemm.choices()
        if c.kind == "linear" and c.shape == (1000, 256, 64) and c.threads == threads
    ]
    assert len(linear) == 1
    c = linear[0]
    assert c.backend == (
        gemm.ONEDNN if c.onednn_seconds * gemm.ONEDNN_MARGIN <= c.blas_seconds else gemm.BLAS
    )
    layer(x)
    assert (
        len([c for c in gemm.choices() if c.kind == "linear" and c.shape == (1000, 256, 64)]) == 1
    )
    x64 = x.detach().double().requires_grad_()
    w64 = layer.weight.detach().double().requires_grad_()
    y64 = torch.relu(x64 @ w64.T + layer.bias.detach().double())
    y64.square().sum().backward()
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(layer.weight.grad.double(), w64.grad, rtol=1e-4, atol=1e-3)


def test_may_fuse_is_false_only_where_dense_would_take_linear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The shape-only gate Dense asks first (a batch-1 request must not pay dense()'s ~20 us of checks): it says
    # False exactly where gemm answers BLAS without measuring.
    monkeypatch.setattr(dense_module, "ENABLED", False)
    w = torch.zeros(64, 32)
    small, large = torch.zeros(1, 32), torch.zeros(4096, 32)
    assert 1 * 64 * 32 < gemm.MIN_MEASURED_MACS <= 4096 * 64 * 32
    assert not dense_module.may_fuse(small, w)
    assert gemm.backend_for("linear", small, w) == gemm.BLAS
    assert dense_module.may_fuse(large, w)
    assert not dense_module.may_fuse(torch.zeros(2, 4096, 32), w)  # 3-D: never fused
    with gemm.use_backend(gemm.ONEDNN):
        assert dense_module.may_fuse(small, w)
    with gemm.use_backend(gemm.BLAS):
        assert not dense_module.may_fuse(large, w)
    monkeypatch.setattr(dense_module, "ENABLED", True)
    assert dense_module.may_fuse(small, w)
