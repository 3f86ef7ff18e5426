"""Peak memory of converting a checkpoint with a large embedding table (not a test: a measurement).

    python benchmarks/converter_memory.py [--rows 2000000] [--dim 64] [--no-verify]

A child process writes ``tf.train.Checkpoint(embedding=tf.Variable(rows x dim float32))``; this
process imports TensorFlow and the converter, records its resident set size (the baseline), converts
the checkpoint, and prints the peak RSS above that baseline in MiB and in copies of the table. The
issue's bar: no more than one extra copy of the table. Writing streams tensor by tensor (one table in
memory); ``--verify`` (the default, as in the CLI) reads the source table once more (a TF checkpoint
cannot be read in parts) but the written file in row blocks by plain reads (a memory-mapped read would
make every scanned page resident: that was a second copy), so both modes hold one copy plus blocks.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MIB = 1024 * 1024
# Linux reports ru_maxrss in KiB.
RU_MAXRSS_UNIT = 1024
# The limit: at most one extra copy of the table while converting, verification included.
MAX_EXTRA_COPIES = 1.0
# Slack over that copy: interpreter and allocator noise (without verification), plus verification's row blocks
# (16 MiB per side) and the comparison's temporaries.
SLACK_COPIES = {False: 0.1, True: 0.25}


def _current_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _write_checkpoint(prefix: Path, rows: int, dim: int) -> None:
    code = (
        "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'\n"
        "import sys, tensorflow as tf\n"
        "rows, dim, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "v = tf.Variable(tf.random.uniform((rows, dim), -0.05, 0.05, seed=0))\n"
        "tf.train.Checkpoint(embedding=v).write(prefix)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(rows), str(dim), str(prefix)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--no-verify", action="store_true", help="skip the re-read check")
    args = parser.parse_args(argv)
    table = args.rows * args.dim * 4
    with tempfile.TemporaryDirectory(prefix="torchrs-mem-") as tmp:
        prefix = Path(tmp) / "ckpt" / "table"
        _write_checkpoint(prefix, args.rows, args.dim)
        from converters.tfrs_to_torch import convert
        from converters.tfrs_to_torch.tf_env import import_tf

        import_tf()
        baseline = _current_rss()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT
        result = convert(prefix, Path(tmp) / "out", run_verify=not args.no_verify)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RU_MAXRSS_UNIT
    extra = max(0, peak - max(baseline, peak_before))
    copies = extra / table
    print(f"table: {args.rows} x {args.dim} float32 = {table / MIB:,.0f} MiB")
    print(f"converted tensors: {result.converted}, verified: {result.tensors_checked}")
    print(f"baseline RSS: {baseline / MIB:,.0f} MiB; peak above baseline: {extra / MIB:,.0f} MiB")
    limit = MAX_EXTRA_COPIES + SLACK_COPIES[not args.no_verify]
    print(f"= {copies:.2f} copies of the table (limit: {limit:.2f})")
    if copies > limit:
        print("FAIL: the conversion held more than one extra copy of the table")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
