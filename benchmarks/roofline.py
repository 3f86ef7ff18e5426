"""Roofline of the small ranking models: this CPU's fp32 GEMM ceiling against their training GFLOP/s.

    python benchmarks/roofline.py [--results benchmarks/results/latest.json] [--out benchmarks/results]

(``make roofline``.) The basic ranking model (embeddings 2 x 32 -> Dense 256-64-1, batch 8192) and DCN
(full-rank Cross 64 -> 64, Dense 192-192-1) of ``benchmarks/test_training.py`` spend their FLOPs in
their Dense layers' matrix products. This script

1. counts the GEMM FLOPs of one training step exactly: for every Dense ``k -> n`` on a batch ``B``, the
   forward product ``(B, k) @ (k, n)``, the input gradient ``(B, n) @ (n, k)`` and the kernel gradient
   ``(k, B) @ (B, n)``, each ``2 B k n`` FLOPs (the first layer's input gradient included: it flows into
   the trainable embeddings). Not counted: bias adds, ReLUs and their gradients, the Cross layer's
   element-wise ``x0 * (.) + x``, the loss, the embedding gathers / scatters and the optimizer update
   (all O(B n) or O(parameters), memory-bound, together a few % of the GEMM FLOPs);
2. measures the fp32 GEMM throughput of torch (MKL / oneDNN) and TensorFlow on large square products
   and on exactly these shapes and layouts (best of ``--rounds`` interleaved rounds, each repeating the
   product for ~``ROUND_SECONDS``), so ``G`` = the time of one step's GEMMs alone, each shape by the
   faster framework, is a lower bound on any step's time on this CPU;
3. reads the training throughputs of TFRS and torchrs (one run of ``test_training.py``, from the
   pytest-benchmark JSON) and turns them into achieved GFLOP/s, the fraction of the ceiling, and the
   largest torchrs / TFRS ratio the GEMMs allow: ``T_tf / G`` (a step cannot take less than its GEMMs).

Where ``T_tf / G`` is below a target ratio, the target cannot be met on this CPU by any implementation
that does the same arithmetic. Writes ``roofline.json`` and ``roofline.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# TFRS's Keras 2, as the benchmarks (conftest) set it; OpenMP yields (torchrs.config), before torch loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")

import torch

RESULTS = Path(__file__).resolve().parent / "results"
# The tutorials' batch size (test_training.BATCH_SIZE).
BATCH = 8192
# Each timed round repeats one product for about this long, so that per-call overhead (TF eager
# dispatch ~10 us) is a small part of products of ~1 ms.
ROUND_SECONDS = 0.05
# Large square products: the ceiling MKL / oneDNN reach on this CPU when shapes do not limit them.
SQUARE_SIZES = (1024, 2048)


@dataclass(frozen=True)
class Model:
    """A benchmark model's Dense layers as ``(in, out)`` and its group in the benchmark JSON."""

    name: str
    group: str
    dense: tuple[tuple[int, int], ...]


MODELS = (
    # Embeddings 32 + 32 -> Dense 256 relu -> 64 relu -> 1 (basic ranking tutorial).
    Model(
        "basic ranking", "train: basic ranking (MLP 256-64-1, MSE)", ((64, 256), (256, 64), (64, 1))
    ),
    # Cross: x0 * Dense(64 -> 64)(x0) + x0, then Dense 192 relu -> 192 relu -> 1 (DCN tutorial).
    Model(
        "DCN",
        "train: DCN (Cross + MLP 192-192-1, MSE)",
        ((64, 64), (64, 192), (192, 192), (192, 1)),
    ),
)


@dataclass(frozen=True)
class Gemm:
    """One product of a training step: ``(m, k) @ (k, n)`` in the layout the frameworks use."""

    role: str  # "forward", "grad input", "grad kernel"
    m: int
    k: int
    n: int

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.k * self.n


def step_gemms(model: Model, batch: int = BATCH) -> list[Gemm]:
    """The three products of every Dense ``k -> n`` in one training step.

    >>> [g.flops for g in step_gemms(Model("m", "g", ((4, 2),)), batch=3)]
    [48.0, 48.0, 48.0]
    """
    gemms = []
    for k, n in model.dense:
        gemms += [
            Gemm("forward", batch, k, n),  # x (B, k) @ kernel (k, n)
            Gemm("grad input", batch, n, k),  # g (B, n) @ kernel^T (n, k)
            Gemm("grad kernel", k, batch, n),  # x^T (k, B) @ g (B, n)
        ]
    return gemms


def _torch_fn(g: Gemm) -> Callable[[], Any]:
    """The product as torch autograd runs it (nn.Linear's weight is (out, in))."""
    if g.role == "forward":  # addmm(b, x, W.T): x (B, k), W (n, k)
        x, w = torch.randn(g.m, g.k), torch.randn(g.n, g.k)
        return lambda: torch.mm(x, w.t())
    if g.role == "grad input":  # grad (B, n) @ W (n, k)
        grad, w = torch.randn(g.m, g.k), torch.randn(g.k, g.n)
        return lambda: torch.mm(grad, w)
    # grad kernel: grad.T (n, B) @ x (B, k) -> W's (n, k) gradient (Gemm's m = k_in, n = n_out).
    grad, x = torch.randn(g.k, g.n), torch.randn(g.k, g.m)
    return lambda: torch.mm(grad.t(), x)


def _tf_fn(tf: Any, g: Gemm) -> Callable[[], Any]:
    """The product as Keras's Dense and its gradient run it (kernel is (in, out))."""
    if g.role == "forward":
        x, w = tf.random.normal((g.m, g.k)), tf.random.normal((g.k, g.n))
        return lambda: tf.linalg.matmul(x, w)
    if g.role == "grad input":  # MatMul(grad, kernel, transpose_b=True)
        grad, w = tf.random.normal((g.m, g.k)), tf.random.normal((g.n, g.k))
        return lambda: tf.linalg.matmul(grad, w, transpose_b=True)
    x, grad = (
        tf.random.normal((g.k, g.m)),
        tf.random.normal((g.k, g.n)),
    )  # MatMul(x, g, transpose_a)
    return lambda: tf.linalg.matmul(x, grad, transpose_a=True)


def _time_rounds(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Seconds per call of each function: best of ``rounds`` interleaved rounds."""
    repeats = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        _ = fn()
        once = max(time.perf_counter() - start, 1e-6)
        repeats[name] = max(1, int(ROUND_SECONDS / once))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                out = fn()
            if hasattr(out, "numpy"):
                out.numpy()  # TF eager ops are synchronous on CPU; this only makes sure
            best[name] = min(best[name], (time.perf_counter() - start) / repeats[name])
    return best


def measure(rounds: int) -> dict[str, Any]:
    """GEMM GFLOP/s of torch and TF on the square and the models' shapes."""
    from parity._tf import import_tf

    tf = import_tf()[0]
    square = {}
    for size in SQUARE_SIZES:
        g = Gemm("forward", size, size, size)
        t = _time_rounds({"torch": _torch_fn(g), "tf": _tf_fn(tf, g)}, rounds)
        square[size] = {fw: g.flops / s / 1e9 for fw, s in t.items()}
    models = {}
    for model in MODELS:
        rows = []
        for g in step_gemms(model):
            t = _time_rounds({"torch": _torch_fn(g), "tf": _tf_fn(tf, g)}, rounds)
            rows.append({**asdict(g), "flops": g.flops, "seconds": t})
        models[model.name] = rows
    return {"square_gflops": square, "models": models}


def _throughputs(results: Path) -> dict[str, dict[str, float]]:
    """``{group: {framework: examples/s}}`` of the training cases in a pytest-benchmark JSON."""
    data = json.loads(results.read_text())
    out: dict[str, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if bench["group"].startswith("train: ") and info.get("device", "cpu") == "cpu":
            out.setdefault(bench["group"], {})[info["framework"]] = info["throughput"]
    return out


def analyse(measured: dict[str, Any], throughputs: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per model: FLOPs per step, GEMM-only step times, achieved GFLOP/s and the ratio GEMMs allow."""
    ceiling = max(max(v.values()) for v in measured["square_gflops"].values())
    out: dict[str, Any] = {"ceiling_gflops": ceiling, "models": {}}
    for model in MODELS:
        rows = measured["models"][model.name]
        flops = sum(r["flops"] for r in rows)
        gemm_s = {fw: sum(r["seconds"][fw] for r in rows) for fw in ("torch", "tf")}
        best_s = sum(min(r["seconds"].values()) for r in rows)
        entry: dict[str, Any] = {
            "gflop_per_step": flops / 1e9,
            "gemm_ms_per_step": {fw: 1e3 * s for fw, s in gemm_s.items()},
            "gemm_ms_per_step_best": 1e3 * best_s,
            "gemm_gflops_best": flops / best_s / 1e9,
        }
        figures = throughputs.get(model.group, {})
        for fw in ("tfrs", "torchrs"):
            if fw in figures:
                step_s = BATCH / figures[fw]
                entry[fw] = {
                    "examples_per_s": figures[fw],
                    "step_ms": 1e3 * step_s,
                    "gflops": flops / step_s / 1e9,
                    "fraction_of_ceiling": flops / step_s / 1e9 / ceiling,
                    "fraction_of_step_in_gemms": best_s / step_s,
                }
        if "tfrs" in entry:
            entry["max_ratio_vs_tfrs"] = entry["tfrs"]["step_ms"] / entry["gemm_ms_per_step_best"]
            if "torchrs" in entry:
                entry["ratio"] = (
                    entry["torchrs"]["examples_per_s"] / entry["tfrs"]["examples_per_s"]
                )
        out["models"][model.name] = entry
    return out


def render(measured: dict[str, Any], analysis: dict[str, Any], record: dict[str, Any]) -> str:
    lines = [
        "# Roofline: small ranking models",
        "",
        f"Machine: {record['summary']}. Written by `benchmarks/roofline.py`.",
        "",
        "fp32 GEMM, large square products (GFLOP/s):",
        "",
        "| size | torch | TF |",
        "| ---: | ---: | ---: |",
    ]
    for size, v in measured["square_gflops"].items():
        lines.append(f"| {size} | {v['torch']:.1f} | {v['tf']:.1f} |")
    for model in MODELS:
        a = analysis["models"][model.name]
        lines += [
            "",
            f"## {model.name} (batch {BATCH}, Dense {' / '.join(f'{k}->{n}' for k, n in model.dense)})",
            "",
            "| GEMM (m x k x n) | role | MFLOP | torch GFLOP/s | TF GFLOP/s |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for r in measured["models"][model.name]:
            s = r["seconds"]
            lines.append(
                f"| {r['m']} x {r['k']} x {r['n']} | {r['role']} | {r['flops'] / 1e6:.1f} | "
                f"{r['flops'] / s['torch'] / 1e9:.1f} | {r['flops'] / s['tf'] / 1e9:.1f} |"
            )
        lines += [
            "",
            f"- GEMM FLOPs per training step: {a['gflop_per_step']:.3f} GFLOP; the step's GEMMs alone take "
            f"{a['gemm_ms_per_step']['torch']:.2f} ms (torch) / {a['gemm_ms_per_step']['tf']:.2f} ms (TF), "
            f"{a['gemm_ms_per_step_best']:.2f} ms each shape by the faster "
            f"({a['gemm_gflops_best']:.1f} GFLOP/s).",
        ]
        for fw in ("tfrs", "torchrs"):
            if fw in a:
                f = a[fw]
                lines.append(
                    f"- {fw}: {f['examples_per_s']:,.0f} examples/s = {f['step_ms']:.2f} ms per step = "
                    f"{f['gflops']:.1f} GFLOP/s, {100 * f['fraction_of_ceiling']:.0f}% of the square "
                    f"ceiling ({analysis['ceiling_gflops']:.1f}); the GEMMs are "
                    f"{100 * f['fraction_of_step_in_gemms']:.0f}% of its step."
                )
        if "max_ratio_vs_tfrs" in a:
            lines.append(
                f"- Largest torchrs / TFRS ratio the GEMMs allow: {a['max_ratio_vs_tfrs']:.2f}x"
                + (f" (measured {a['ratio']:.2f}x)." if "ratio" in a else ".")
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    from torchrs.config import machine_record, machine_summary

    measured = measure(args.rounds)
    throughputs = _throughputs(args.results) if args.results.exists() else {}
    analysis = analyse(measured, throughputs)
    record = machine_record()
    record["summary"] = machine_summary(record)
    text = render(measured, analysis, record)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "roofline.json").write_text(
        json.dumps(
            {
                "machine": record,
                "results": str(args.results),
                "measured": measured,
                "analysis": analysis,
            },
            indent=1,
        )
    )
    (args.out / "roofline.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
