"""functional.gemm: both paths give the product within its rounding bound; the choice is measured once."""

from __future__ import annotations

import pytest
import torch

from torchrs.functional import gemm
from torchrs.functional.retrieval import in_batch_softmax_loss
from torchrs.functional.top_k import top_k_dot

pytestmark = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN"
)

# A float32 dot product of k terms, summed in any order, is within k * 2**-24 * sum |a_i b_i| of the exact
# value (the classic recursive-summation bound, with float32's unit roundoff 2**-24); BLAS and oneDNN differ
# only in that order. Shapes are above MIN_MEASURED_MACS so that "auto" measures them.
M, N, K = 256, 4096, 32
assert M * N * K >= gemm.MIN_MEASURED_MACS


def _bound(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    return a.shape[1] * 2.0**-24 * (a.double().abs() @ b_t.double().abs())


def _operands(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, K, generator=g), torch.randn(N, K, generator=g)


@pytest.mark.parametrize("backend", [gemm.BLAS, gemm.ONEDNN])
def test_every_product_within_the_rounding_bound(backend: str) -> None:
    a, b = _operands()
    with gemm.use_backend(backend):
        nt = gemm.scores(a, b, out=torch.empty(M, N))
        g = torch.randn(M, N)
        nn_out = torch.empty(M, K)
        nn = gemm.matmul(g, b, out=nn_out)
        c0 = torch.randn(N, K)
        acc = gemm.addmm_t_(c0.clone(), g, a)
    exact_nt = a.double() @ b.double().T
    assert ((nt.double() - exact_nt).abs() <= _bound(a, b.T)).all()
    assert nn.data_ptr() == nn_out.data_ptr()  # written into `out` on both paths
    assert ((nn.double() - g.double() @ b.double()).abs() <= _bound(g, b)).all()
    exact_acc = c0.double() + g.double().T @ a.double()
    # +1 term: the addition of c0 rounds once more.
    assert ((acc.double() - exact_acc).abs() <= _bound(g.T, a) + 2.0**-24 * exact_acc.abs()).all()


def test_auto_measures_once_per_shape_and_accumulates_once() -> None:
    a, b = _operands(1)
    threads = torch.get_num_threads()
    first = gemm.scores(a, b)
    again = gemm.scores(a, b)
    nt = [
        c
        for c in gemm.choices()
        if c.kind == "nt" and c.shape == (M, N, K) and c.threads == threads
    ]
    assert len(nt) == 1 and nt[0].backend in (gemm.BLAS, gemm.ONEDNN)
    # Seconds of one 67 MFLOP product: well under a second on any path.
    assert 0 <= nt[0].blas_seconds < 1 and 0 <= nt[0].onednn_seconds < 1
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # one process, one path: same bits
    # The measurement of c += g.T @ a runs on a scratch copy: c is updated exactly once.
    g = torch.randn(M, N)
    c0 = torch.randn(N, K)
    c = gemm.addmm_t_(c0.clone(), g, a)
    exact = c0.double() + g.double().T @ a.double()
    assert ((c.double() - exact).abs() <= _bound(g.T, a) + 2.0**-24 * exact.abs()).all()


def test_small_products_take_blas_without_measuring() -> None:
    a, b = torch.randn(8, 32), torch.randn(64, 32)
    assert gemm.backend_for("nt", a, b) == gemm.BLAS
    gemm.scores(a, b)
    assert not [c for c in gemm.choices() if c.shape == (8, 64, 32)]


def test_onednn_never_used_where_it_cannot_run() -> None:
    a, b = _operands()
    with gemm.use_backend(gemm.ONEDNN):
        assert gemm.backend_for("nt", a.double(), b.double()) == gemm.BLAS  # float32 only
        with torch.enable_grad():  # no autograd formula through oneDNN's op
            assert gemm.backend_for("nt", a.requires_grad_(), b) == gemm.BLAS


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _operands()
    monkeypatch.setenv(gemm.ENV_VAR, "onednn")
    assert gemm.backend_for("nt", a, b) == gemm.ONEDNN
    monkeypatch.setenv(gemm.ENV_VAR, "BLAS")
    assert gemm.backend_for("nt", a, b) == gemm.BLAS
    monkeypatch.setenv(gemm.ENV_VAR, "mkl")
    with pytest.raises(ValueError, match="TORCHRS_GEMM='mkl' is not a GEMM path: use 'blas'"):
        gemm.backend_for("nt", a, b)
    with pytest.raises(ValueError, match="`backend` must be"):
        with gemm.use_backend("mkl"):
            pass


def test_workspace_made_in_inference_mode_is_not_reused_outside_it() -> None:
    # An inference tensor cannot be written outside inference_mode: a server's model thread (under
    # inference_mode) and plain calls in the same thread each get their own buffer.
    like = torch.zeros(1)
    with torch.inference_mode():
        inside = gemm.workspace(64, like)
        assert inside.is_inference()
    outside = gemm.workspace(64, like)
    assert not outside.is_inference()
    outside.fill_(1.0)  # RuntimeError if the inference buffer were handed out


def test_workspace_is_reused_and_grows() -> None:
    like = torch.empty(0)
    first = gemm.workspace(1000, like)
    assert gemm.workspace(500, like).data_ptr() == first.data_ptr()
    bigger = gemm.workspace(10**6, like)
    assert bigger.numel() == 10**6
    assert gemm.workspace(1000, like).data_ptr() == bigger.data_ptr()


def test_top_k_dot_same_results_on_both_paths() -> None:
    # Scores within the rounding bound of the float64 product; indices those of the float64 top k wherever the
    # k-th and (k+1)-th exact scores are further apart than twice the bound (every row with random normals).
    g = torch.Generator().manual_seed(2)
    q, c = torch.randn(1024, 32, generator=g), torch.randn(20_000, 32, generator=g)
    exact = q.double() @ c.double().T
    top = exact.topk(11, dim=1)
    bound = _bound(q, c.T).max()
    separated = (top.values[:, 9] - top.values[:, 10]) > 2 * bound
    assert separated.float().mean() > 0.99
    for backend in (gemm.BLAS, gemm.ONEDNN):
        with gemm.use_backend(backend):
            scores, indices = top_k_dot(q, c, 10)
        assert torch.equal(indices[separated], top.indices[separated, :10])
        assert ((scores.double() - top.values[:, :10]).abs() <= bound).all()


def test_fused_loss_same_on_both_paths() -> None:
    # The fused retrieval loss through BLAS and through oneDNN: 1e-6 relative on the loss (sums of 8192 terms
    # in float64), gradients within 1e-5 of their largest entry (float32 block products, other order).
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1024, 32, generator=g, requires_grad=True)
    c = torch.randn(1024, 32, generator=g, requires_grad=True)
    results = []
    for backend in (gemm.BLAS, gemm.ONEDNN):
        with gemm.use_backend(backend):
            loss = in_batch_softmax_loss(q, c, temperature=0.5)
            results.append((loss.detach(), *torch.autograd.grad(loss, [q, c])))
    (loss_a, dq_a, dc_a), (loss_b, dq_b, dc_b) = results
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-6)
    for x, y in ((dq_a, dq_b), (dc_a, dc_b)):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5 * float(y.abs().max()))
