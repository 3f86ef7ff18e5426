"""A bounded background CPU load: busy processes on the same cores that stop by themselves.

Shared CI runners, containers with a CPU quota and a laptop running other work all give a
training loop fewer CPU cycles than it has threads. ``background_load`` reproduces that: each
process spins in a pure-Python loop (no threads, no memory traffic to speak of) until its own
deadline, so a crashed or interrupted benchmark leaves nothing behind for long.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The busy loop each load process runs: spin until time.monotonic() passes the deadline it is given.
_SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
# A load process never outlives this many seconds, whatever it is asked.
MAX_SECONDS = 600.0


@contextmanager
def background_load(processes: int, seconds: float) -> Iterator[list[int]]:
    """Runs ``processes`` busy processes for at most ``seconds`` (each stops by itself then).

    Args:
        processes: how many busy processes (each takes up to one core).
        seconds: their lifetime; capped at ``MAX_SECONDS``. Leaving the block stops them earlier.

    Yields:
        The load processes' ids.
    """
    lifetime = min(float(seconds), MAX_SECONDS)
    procs = [
        subprocess.Popen([sys.executable, "-c", _SPIN, str(lifetime)]) for _ in range(processes)
    ]
    try:
        time.sleep(0.2)  # let them start spinning
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
