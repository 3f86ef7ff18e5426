"""GFLOP/s of BLAS (MKL) and oneDNN for the products of retrieval, and what torchrs.functional.gemm picks.

Run it plainly and under ``MKL_CBWR=COMPATIBLE`` (MKL's code path for CPUs it does not tune for), with 1 and
with all threads::

    python benchmarks/gemm_paths.py --threads 1
    MKL_CBWR=COMPATIBLE python benchmarks/gemm_paths.py --threads 1

Each figure is the fastest of ``--rounds`` interleaved rounds (other work on the same cores only slows a
round down). BLAS writes into a reused buffer; oneDNN has no ``out=`` and allocates, as in the library.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from torchrs.functional import gemm

# (m, n, k) of ``a @ b.T``: the fused retrieval loss's score block (128 rows of an 8192 batch, dim 32),
# BruteForce's k <= 32 block over a 1M x 64 corpus, FactorizedTopK's top-100 block over 1,682 movies, the
# unfused 8192 x 8192 score matrix, and a tiny product.
SHAPES = [
    (128, 8192, 32),
    (256, 8192, 32),
    (1024, 2048, 64),
    (512, 2048, 64),
    (128, 131072, 64),
    (128, 1682, 32),
    (4096, 1682, 32),
    (8192, 8192, 32),
    (8, 64, 32),
]


def _fastest(fns: dict[str, object], rounds: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()  # type: ignore[operator]
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"cpu={platform.processor() or platform.machine()} threads={torch.get_num_threads()} "
        f"MKL_CBWR={os.environ.get('MKL_CBWR', '')} torch={torch.__version__} "
        f"load={os.getloadavg()[0]:.1f}"
    )
    for m, n, k in SHAPES:
        a, b, out = torch.randn(m, k), torch.randn(n, k), torch.empty(m, n)
        best = _fastest(
            {
                "blas": lambda a=a, b=b, out=out: torch.matmul(a, b.T, out=out),
                "onednn": lambda a=a, b=b: torch.ops.mkldnn._linear_pointwise(
                    a, b, None, "none", [], ""
                ),
            },
            args.rounds,
        )
        with torch.no_grad():
            gemm.scores(a, b, out=out)
        chosen = gemm.backend_for("nt", a, b)
        flops = 2.0 * m * n * k
        print(
            f"{m:>5} x {k} . {k} x {n:<7} blas {flops / best['blas'] / 1e9:6.1f}  "
            f"onednn {flops / best['onednn'] / 1e9:6.1f} GFLOP/s  -> torchrs: {chosen}"
        )


if __name__ == "__main__":
    main()
