"""``torchrs.serve --compile`` in process: per-batch latency of the served signatures, eager vs compiled.

``python benchmarks/serve_compile.py [--seconds 3] [--out benchmarks/results/serve_compile.json]``
(``make bench-serve-compile``) builds the serving benchmark's two TF exports (the basic-retrieval
index and the functional ranking model, MovieLens 100K sizes; see ``benchmarks/serving.py``),
converts them, and for each builds its ``serving_default`` twice, as ``torchrs.serve`` does: eager,
and with ``--compile`` (:mod:`torchrs.serve.compiling`: lookups eager, the tensor part through
``torch.compile``). It reports the compile time (the warm-up a version pays before AVAILABLE) and,
per batch size the batcher forms (1, 8, 32 rows), the median and p90 latency of one model call
(``run_batch``: NumPy in, NumPy out, under ``torch.inference_mode``), eager and compiled measured
alternately in the same process. Before timing, the compiled answers are checked against the eager
ones (identifiers identical, floats within 1e-5 of the output's scale).

No HTTP here: this isolates what compiling changes. The machine's other load weighs on both alike;
absolute figures from a shared machine are contaminated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import N_MOVIES, N_USERS, REPO, build_exports

BATCH_SIZES = (1, 8, 32)
# Float agreement required of compiled vs eager answers (fused kernels may sum in another order).
RTOL = 1e-5


def _batch(model: str, rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    users = np.array([str(i).encode() for i in rng.integers(1, N_USERS + 20, rows)], dtype=object)
    if model == "index":
        return {"input_1": users}
    movies = [f"Movie {i} (1995)".encode() for i in rng.integers(0, N_MOVIES, rows)]
    return {"user_id": users, "movie_title": np.array(movies, dtype=object)}


def _same(eager: dict[str, np.ndarray], compiled: dict[str, np.ndarray]) -> None:
    for name, expected in eager.items():
        got = compiled[name]
        if expected.dtype == object or expected.dtype.kind in "iu":
            if not np.array_equal(expected, got):
                raise AssertionError(f"{name}: compiled identifiers differ from eager ones")
        else:
            scale = float(np.abs(expected).max()) or 1.0
            np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * scale, err_msg=name)


def measure(torchrs_dir: Path, model: str, seconds: float) -> dict[str, Any]:
    """Compile time, then per batch size eager / compiled call latencies, alternating."""
    import torchrs
    from torchrs.serve.batching import run_batch
    from torchrs.serve.compiling import WARMUP_ROWS
    from torchrs.serve.signature import signatures

    architecture = json.loads((torchrs_dir / "torchrs.json").read_text())["architecture"]
    eager = signatures(torchrs.load(torchrs_dir), architecture)["serving_default"]
    started = time.perf_counter()
    compiled = signatures(torchrs.load(torchrs_dir), architecture, compile=True)["serving_default"]
    rng = np.random.default_rng(0)
    for rows in WARMUP_ROWS:  # what load_version does before AVAILABLE
        run_batch(compiled.run, _batch(model, rng, rows))
    compile_s = time.perf_counter() - started
    out: dict[str, Any] = {"model": model, "compile_seconds": round(compile_s, 1), "batches": []}
    for rows in BATCH_SIZES:
        batches = [_batch(model, rng, rows) for _ in range(64)]
        for b in batches[:4]:  # also compiles nothing new: the dynamic graph covers every size
            _same(run_batch(eager.run, b), run_batch(compiled.run, b))
        times: dict[str, list[float]] = {"eager": [], "compiled": []}
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            for name, sig in (("eager", eager), ("compiled", compiled)):
                t = time.perf_counter()
                run_batch(sig.run, batches[i % len(batches)])
                times[name].append(time.perf_counter() - t)
            i += 1
        row: dict[str, Any] = {"rows": rows, "calls": i}
        for name, values in times.items():
            ms = np.array(values) * 1000
            row[f"{name}_p50_ms"] = round(float(np.percentile(ms, 50)), 3)
            row[f"{name}_p90_ms"] = round(float(np.percentile(ms, 90)), 3)
        out["batches"].append(row)
        print(json.dumps({"model": model, **row}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="timing per batch size (default %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_compile.json"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="torchrs-serve-compile-") as tmp:
        exports = build_exports(Path(tmp))
        results = [
            measure(torchrs_dir, model, args.seconds) for model, (_, torchrs_dir) in exports.items()
        ]
    import torch

    payload = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/serve_compile.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "load_average_at_end": [round(x, 1) for x in os.getloadavg()],
        },
        "torch": torch.__version__,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# torchrs.serve --compile: one model call, eager vs compiled (in process)",
        "",
        f"{payload['date']}; `{payload['command']}`; torch {payload['torch']}, "
        f"{payload['machine']['cpus']} CPUs, load average at the end "
        f"{payload['machine']['load_average_at_end']}. Written by benchmarks/serve_compile.py.",
        "",
        "| model | compile s | rows | eager p50 ms | compiled p50 ms | eager p90 ms | compiled p90 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        for b in r["batches"]:
            lines.append(
                f"| {r['model']} | {r['compile_seconds']} | {b['rows']} | {b['eager_p50_ms']} | "
                f"{b['compiled_p50_ms']} | {b['eager_p90_ms']} | {b['compiled_p90_ms']} |"
            )
    table = "\n".join(lines) + "\n"
    args.out.with_suffix(".md").write_text(table)
    print("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
