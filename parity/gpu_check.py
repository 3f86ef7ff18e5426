"""The prepared GPU check: ``python -m parity.gpu_check [--records DIR] [--device cuda] [--report DIR]`` (``make
gpu-check``).

Torch only (no TensorFlow), for a machine lent for minutes. It

1. replays the recorded ``basic_retrieval``, ``basic_ranking`` and ``dcn`` scenarios on the device
   (`parity.replay`: the checks and tolerances of ``parity run``, against TFRS runs recorded on a CPU beforehand
   with ``make records``; by default the full-size records kept in the repository, ``parity/records``): CUDA
   parity;
2. measures the device's float32 matmul roofline: the best rate of a large square ``torch.matmul``;
3. measures torchrs throughput on the device against that roofline: training a two-tower retrieval model at
   batch 8192 (in-batch softmax, Keras Adagrad), evaluating it with ``FactorizedTopK`` over a 1M x 64
   ``BruteForce`` corpus, and ``BruteForce`` top-10 queries on the same corpus.

The report (``report.md``, ``figures.json``; the replay's own parity report in ``parity/``) names the device.
Every size is an option, so the same script runs end to end on a CPU at a reduced scale (the tests do).
Long phases show tqdm progress.

>>> matmul_flops(2, 3, 4)
48
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import torchrs as trs
from parity.harness import ParityUsageError, ScenarioResult

# The scenarios whose CUDA parity the check proves (those of the issue; their records total a few MB).
GPU_SCENARIOS = ("basic_retrieval", "basic_ranking", "dcn")
# The full-size records kept in the repository (`parity.record.COMMITTED_RECORDS`, refreshed by `make records`).
DEFAULT_RECORDS = "parity/records"
DEFAULT_REPORT = "reports/gpu-check"
# The basic retrieval tutorial's training batch, and the benchmarks' large corpus (1M x 64).
DEFAULT_BATCH = 8192
DEFAULT_CORPUS = 1_000_000
DEFAULT_DIM = 64
# Query-tower rows: the users of a large catalogue; only the gathered rows matter for the matmul work.
DEFAULT_QUERIES = 100_000
# Square matmul side for the roofline: 8192^3 * 2 = 1.1 TFLOP, ~20 ms on an H100, long enough to time.
DEFAULT_ROOFLINE_SIZE = 8192
# FactorizedTopK's default ks (TFRS 0.7.7) end at 100: evaluation selects the top 100 of the corpus.
EVAL_TOP_K = 100
QUERY_TOP_K = 10
# Keras Adagrad's tutorial learning rate.
LEARNING_RATE = 0.1


def matmul_flops(m: int, k: int, n: int) -> int:
    """Floating-point operations of an ``(m, k) @ (k, n)`` matmul: one multiply and one add per term."""
    return 2 * m * k * n


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (a no-op on CPU), so that a timer sees finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The card's name (CUDA) or the CPU model, for the report."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from parity.record import cpu_name

    return f"{cpu_name()} ({torch.get_num_threads()} torch threads)"


def _best_seconds(work: Callable[[], Any], device: torch.device, repeats: int, what: str) -> float:
    """The fastest of ``repeats`` timed calls of ``work`` after one warm-up call."""
    work()
    synchronize(device)
    best = float("inf")
    for _ in tqdm(range(repeats), desc=what, leave=False):
        start = time.perf_counter()
        work()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class Roofline:
    """The device's measured float32 matmul rate: the ceiling the throughput ratios are taken against."""

    size: int
    seconds: float
    flops_per_second: float
    # torch.get_float32_matmul_precision(): "highest" is true float32; "high" / "medium" allow TF32 / bf16.
    float32_matmul_precision: str


def measure_roofline(device: torch.device, size: int, repeats: int = 10) -> Roofline:
    """Times ``(size, size) @ (size, size)`` float32 matmuls on ``device``; returns the best rate.

    The float32 matmul precision stays as torch leaves it ("highest": no TF32, unless the user changed it):
    the training and evaluation measured next run under the same setting, so the ratio compares like with
    like.
    """
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=generator)  # (n, n)
    b = torch.randn(size, size, device=device, generator=generator)  # (n, n)
    out = torch.empty(size, size, device=device)  # (n, n)
    seconds = _best_seconds(lambda: torch.matmul(a, b, out=out), device, repeats, "roofline matmul")
    return Roofline(
        size=size,
        seconds=seconds,
        flops_per_second=matmul_flops(size, size, size) / seconds,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
    )


@dataclass(frozen=True)
class Throughput:
    """One measured workload: examples per second, its matmul work per example, and the roofline share."""

    case: str
    batch: int
    examples_per_second: float
    matmul_flops_per_example: float
    achieved_flops_per_second: float
    roofline_ratio: float
    note: str


class TwoTower(trs.Model):
    """A pre-indexed two-tower retrieval model: query and candidate embedding tables and a Retrieval task."""

    def __init__(self, num_queries: int, num_candidates: int, dim: int, index: Any) -> None:
        super().__init__()
        self.query_model = trs.layers.Embedding(num_queries, dim)
        self.candidate_model = trs.layers.Embedding(num_candidates, dim)
        self.task = trs.tasks.Retrieval(metrics=trs.metrics.FactorizedTopK(candidates=index))

    def compute_loss(
        self, features: dict[str, torch.Tensor], training: bool = False
    ) -> torch.Tensor:
        queries = self.query_model(features["query"])  # (B, D)
        candidates = self.candidate_model(features["candidate"])  # (B, D)
        loss: torch.Tensor = self.task(queries, candidates, compute_metrics=not training)
        return loss


def _rate(
    case: str, batch: int, seconds: float, flops_per_example: float, roofline: Roofline, note: str
) -> Throughput:
    per_second = batch / seconds
    achieved = per_second * flops_per_example
    return Throughput(
        case,
        batch,
        per_second,
        flops_per_example,
        achieved,
        achieved / roofline.flops_per_second,
        note,
    )


def measure_throughput(
    device: torch.device,
    roofline: Roofline,
    *,
    batch: int = DEFAULT_BATCH,
    corpus: int = DEFAULT_CORPUS,
    dim: int = DEFAULT_DIM,
    num_queries: int = DEFAULT_QUERIES,
    steps: int = 20,
    eval_batches: int = 5,
) -> list[Throughput]:
    """Training, evaluation and BruteForce query throughput of torchrs on ``device`` (see the module doc)."""
    generator = torch.Generator(device=device).manual_seed(0)
    corpus_embeddings = torch.randn(corpus, dim, device=device, generator=generator)  # (N, D)
    index = trs.layers.factorized_top_k.BruteForce(k=EVAL_TOP_K).index(corpus_embeddings)
    model = TwoTower(num_queries, corpus, dim, index).to(device)
    model.compile(optimizer=lambda params: trs.optim.Adagrad(params, learning_rate=LEARNING_RATE))

    def batch_of_ids() -> dict[str, torch.Tensor]:
        return {
            "query": torch.randint(num_queries, (batch,), device=device, generator=generator),
            "candidate": torch.randint(corpus, (batch,), device=device, generator=generator),
        }

    batches = [batch_of_ids() for _ in range(steps + 1)]
    # Each train_step ends in float(loss), which synchronises the device: per-step wall time is honest.
    model.train_step(batches[0])  # warm-up: optimizer state, kernels, allocator
    synchronize(device)
    start = time.perf_counter()
    for b in tqdm(batches[1:], desc=f"train (batch {batch})", leave=False):
        model.train_step(b)
    synchronize(device)
    train_seconds = (time.perf_counter() - start) / steps
    # In-batch softmax: scores (B, B) forward, then the query and candidate gradients: three B x D x B matmuls.
    train_flops = 3 * matmul_flops(batch, dim, batch) / batch

    model.reset_metrics()
    model.test_step(batches[0])  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for b in tqdm(batches[1 : eval_batches + 1], desc="evaluate (FactorizedTopK)", leave=False):
        model.test_step(b)
    synchronize(device)
    eval_seconds = (time.perf_counter() - start) / min(eval_batches, steps)
    # Every query is scored against the whole corpus (then the top 100 kept).
    corpus_flops = matmul_flops(1, dim, corpus)

    queries = torch.randn(batch, dim, device=device, generator=generator)  # (B, D)
    query_index = trs.layers.factorized_top_k.BruteForce(k=QUERY_TOP_K).index(corpus_embeddings)
    query_seconds = _best_seconds(lambda: query_index(queries), device, 3, "BruteForce top-10")
    shape = f"{corpus:,} x {dim} corpus"
    return [
        _rate(
            "train two-tower retrieval (in-batch softmax, Adagrad)",
            batch,
            train_seconds,
            train_flops,
            roofline,
            f"{num_queries:,} + {corpus:,} rows x {dim}; mean of {steps} steps",
        ),
        _rate(
            f"evaluate FactorizedTopK (top-{EVAL_TOP_K})",
            batch,
            eval_seconds,
            corpus_flops,
            roofline,
            f"{shape}; mean of {min(eval_batches, steps)} batches",
        ),
        _rate(
            f"BruteForce top-{QUERY_TOP_K} queries",
            batch,
            query_seconds,
            corpus_flops,
            roofline,
            f"{shape}; best of 3",
        ),
    ]


def replay_records(records: str, device: str, scenarios: Sequence[str]) -> list[ScenarioResult]:
    """Replays ``scenarios`` from ``records`` on ``device`` (see `parity.replay`)."""
    from parity.record import read_record
    from parity.replay import check_record, find_records, replay_record

    loaded = [read_record(p) for p in find_records(records, scenarios)]
    ready = [check_record(r) for r in loaded]  # refuse a stale record before any training
    results = []
    for record, prepared in zip(loaded, ready, strict=True):
        print(f"replaying {record.scenario} on {device} ...", flush=True)
        results.append(replay_record(record, device=device, prepared=prepared))
    return results


def _figure(value: float) -> str:
    """Thousands separated from 100 up, three significant digits below (a CPU's 0.5 GFLOP/s, a card's 40,000).

    >>> _figure(41234.56), _figure(0.51234)
    ('41,235', '0.512')
    """
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(
    device: str,
    name: str,
    results: Sequence[ScenarioResult],
    roofline: Roofline,
    throughputs: Sequence[Throughput],
) -> str:
    """``report.md`` of the GPU check."""
    passed = all(r.passed for r in results)
    lines = [
        f"# torchrs GPU check: {name} ({device})",
        "",
        f"Replay parity ({', '.join(r.scenario for r in results)}; TFRS recorded on CPU): "
        f"**{'PASS' if passed else 'FAIL'}**, "
        f"{sum(len(r.failures()) for r in results)} failed of {sum(len(r.checks) for r in results)} checks "
        "(table: `parity/report.md`).",
        "",
        f"Matmul roofline: {_figure(roofline.flops_per_second / 1e9)} GFLOP/s float32 "
        f"({roofline.size} x {roofline.size} @ {roofline.size} x {roofline.size}, best "
        f"{roofline.seconds * 1e3:.2f} ms; float32 matmul precision {roofline.float32_matmul_precision!r}).",
        "",
        "| case | batch | examples/s | matmul MFLOP/example | achieved GFLOP/s | share of roofline | setup |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in throughputs:
        lines.append(
            f"| {t.case} | {t.batch:,} | {t.examples_per_second:,.0f} | "
            f"{t.matmul_flops_per_example / 1e6:.4g} | {_figure(t.achieved_flops_per_second / 1e9)} | "
            f"{t.roofline_ratio:.1%} | {t.note} |"
        )
    lines += [
        "",
        "The share of roofline counts only the matmul work (scores and their gradients); the rest (embedding "
        "gathers, softmax, top-k selection, the optimizer's pass over the tables) is what keeps it below 100%.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 pass, 1 a replay check failed, 2 usage error)."""
    parser = argparse.ArgumentParser(
        prog="python -m parity.gpu_check",
        description="CUDA parity from CPU-made records, and torchrs throughput against the matmul roofline.",
    )
    parser.add_argument("--records", default=DEFAULT_RECORDS, help="records made by `make records`")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--report", default=DEFAULT_REPORT, help="report directory")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--corpus", type=int, default=DEFAULT_CORPUS, help="BruteForce corpus rows")
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM, help="embedding dimension")
    parser.add_argument("--queries", type=int, default=DEFAULT_QUERIES, help="query-table rows")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--eval-batches", type=int, default=5, help="timed evaluation batches")
    parser.add_argument("--roofline-size", type=int, default=DEFAULT_ROOFLINE_SIZE)
    args = parser.parse_args(argv)
    try:
        for flag in ("batch", "corpus", "dim", "queries", "steps", "eval_batches", "roofline_size"):
            if getattr(args, flag) < 1:
                raise ParityUsageError(
                    f"--{flag.replace('_', '-')} must be a positive integer (got {getattr(args, flag)})."
                )
        if args.corpus < EVAL_TOP_K:
            raise ParityUsageError(
                f"--corpus must hold at least {EVAL_TOP_K} rows, FactorizedTopK's largest k (got {args.corpus})."
            )
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ParityUsageError(
                "--device cuda: torch sees no CUDA device here; use --device cpu."
            )
        results = replay_records(args.records, args.device, GPU_SCENARIOS)
    except ParityUsageError as err:
        print(f"parity.gpu_check: error: {err}", file=sys.stderr)
        return 2
    from parity.replay import write_report

    device = torch.device(args.device)
    out = Path(args.report)
    write_report(results, out / "parity")
    print("measuring the matmul roofline ...", flush=True)
    roofline = measure_roofline(device, args.roofline_size)
    print("measuring throughput ...", flush=True)
    throughputs = measure_throughput(
        device,
        roofline,
        batch=args.batch,
        corpus=args.corpus,
        dim=args.dim,
        num_queries=args.queries,
        steps=args.steps,
        eval_batches=args.eval_batches,
    )
    name = device_name(device)
    text = markdown(args.device, name, results, roofline, throughputs)
    (out / "report.md").write_text(text)
    figures = {
        "device": args.device,
        "device_name": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "passed": all(r.passed for r in results),
        "replay": {r.scenario: {"passed": r.passed, "failed": len(r.failures())} for r in results},
        "roofline": asdict(roofline),
        "throughput": [asdict(t) for t in throughputs],
    }
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    print(text)
    print(f"Report: {out / 'report.md'}")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
