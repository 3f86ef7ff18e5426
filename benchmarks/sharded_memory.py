"""Memory per rank and examples/s at 2 ranks: DDP replicas vs TorchRec-sharded tables (a measurement, not a test).

    python benchmarks/sharded_memory.py [--users 100000] [--items 1000000] [--dim 64] [--batch 4096] [--steps 10]

Launches ``torchrun --nproc_per_node=2`` (gloo, CPU) twice on a two-tower retrieval model (user table
``users x dim``, item table ``items x dim``, ``trs.tasks.Retrieval``, Keras Adagrad):

* ``ddp``: ``trs.layers.Embedding`` tables, ``Model.fit``'s DistributedDataParallel; every rank holds both
  tables whole, their dense gradients, DDP's gradient buckets and the Adagrad accumulators;
* ``sharded``: ``torchrs.distributed.shard(..., row_wise)``, tables built on the ``meta`` device so no rank ever
  holds a whole table; each rank holds its half of the rows and of FBGEMM's accumulator, updated in backward.

Each rank reports its peak resident set size above its baseline (after imports, before the model is built) and
its training examples/s over ``--steps`` steps after one warm-up step (each rank trains on its own ``--batch``
examples per step, so the global rate is twice the per-rank one). Prints a Markdown table and writes JSON to
``--json``. Figures from a shared machine are contaminated by whatever else runs there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
#: Linux reports ru_maxrss in KiB.
RU_MAXRSS_UNIT = 1024
WORKER_ENV = "TORCHRS_SHARDED_BENCH_MODE"
#: A rank waiting longer than this on a collective fails the run instead of hanging.
PROCESS_GROUP_TIMEOUT = datetime.timedelta(seconds=600)


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(mode: str, args: argparse.Namespace, out: Path) -> None:
    import torch
    import torch.distributed as dist
    from torch import nn

    import torchrs as trs

    dist.init_process_group("gloo", timeout=PROCESS_GROUP_TIMEOUT)
    rank = dist.get_rank()
    if mode == "sharded":  # TorchRec's import is not the model's memory: before the baseline
        import torchrec  # noqa: F401

        import torchrs.distributed
    torch.manual_seed(0)
    baseline = _rss()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT

    class TwoTowers(trs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_model = trs.layers.Embedding(args.users, args.dim)
            self.item_model = trs.layers.Embedding(args.items, args.dim)
            self.task = trs.tasks.Retrieval()

        def compute_loss(self, inputs: Any, training: bool = False) -> torch.Tensor:
            return self.task(self.user_model(inputs["user"]), self.item_model(inputs["item"]))

    def adagrad(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return trs.optim.Adagrad(params, learning_rate=0.1)

    if mode == "sharded":
        from torchrs.distributed import shard

        with torch.device("meta"):  # no rank ever holds a whole table
            model = TwoTowers()
        shard(model, {"user_model": "row_wise", "item_model": "row_wise"}, optimizer=adagrad)
    else:
        model = TwoTowers()
        model.compile(optimizer=adagrad)
    g = torch.Generator().manual_seed(rank)
    batches = [
        {
            "user": torch.randint(0, args.users, (args.batch,), generator=g),
            "item": torch.randint(0, args.items, (args.batch,), generator=g),
        }
        for _ in range(args.steps + 1)
    ]
    model.fit(
        batches[:1], epochs=1, verbose=0
    )  # warm-up: optimizer state and DDP buckets exist after it
    dist.barrier()
    start = time.perf_counter()
    model.fit(batches[1:], epochs=1, verbose=0)
    dist.barrier()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT
    figures = {
        "rank": rank,
        "peak_above_baseline_mib": max(0, peak - max(baseline, peak_before)) / MIB,
        "examples_per_second_per_rank": args.steps * args.batch / seconds,
    }
    (out / f"{mode}-{rank}.json").write_text(json.dumps(figures))
    dist.barrier()
    dist.destroy_process_group()


def _launch(mode: str, argv: list[str], out: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [__file__, *argv, "--out", str(out)]
    env = {**os.environ, WORKER_ENV: mode, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4096, help="examples per rank and step")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    mode = os.environ.get(WORKER_ENV)
    if mode:
        _worker(mode, args, Path(args.out))
        return 0
    forwarded = [a for a in argv if not a.startswith("--json")]
    if args.json:
        forwarded = [a for a in forwarded if a != args.json]
    table_mib = (args.users + args.items) * args.dim * 4 / MIB
    results: dict[str, Any] = {"tables_mib": table_mib, "args": vars(args), "modes": {}}
    with tempfile.TemporaryDirectory(prefix="torchrs-sharded-") as tmp:
        for mode in ("ddp", "sharded"):
            _launch(mode, forwarded, Path(tmp))
            ranks = [json.loads((Path(tmp) / f"{mode}-{r}.json").read_text()) for r in range(2)]
            results["modes"][mode] = {
                "peak_above_baseline_mib_per_rank": max(
                    r["peak_above_baseline_mib"] for r in ranks
                ),
                "examples_per_second_global": sum(r["examples_per_second_per_rank"] for r in ranks),
            }
    print(
        f"tables: {args.users:,} + {args.items:,} rows x {args.dim} float32 = {table_mib:,.0f} MiB"
    )
    print("| mode | peak memory per rank above baseline | examples/s (2 ranks) |")
    print("| --- | --- | --- |")
    for mode, figures in results["modes"].items():
        print(
            f"| {mode} | {figures['peak_above_baseline_mib_per_rank']:,.0f} MiB "
            f"| {figures['examples_per_second_global']:,.0f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    code = main()
    if os.environ.get(WORKER_ENV):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(
            code
        )  # the README's DDP pitfall: leave without finalizing once the figures are written
    sys.exit(code)
