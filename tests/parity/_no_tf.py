"""Runs a module's ``main(argv)`` in a process where TensorFlow cannot be imported, as on a torch-only machine.

``python tests/parity/_no_tf.py MODULE ARG...`` (or `run_without_tf` from a test) marks TensorFlow and its Keras / TFRS / tfds / tfr packages as
absent (``sys.modules[name] = None``: ``import`` raises ``ModuleNotFoundError`` and
``importlib.util.find_spec`` answers None, exactly as when they are not installed), checks that
``import tensorflow`` fails, runs ``MODULE.main(ARG...)``, checks that none of them got loaded after all, and
exits with ``main``'s status (3 if TensorFlow was reachable).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ABSENT = (
    "tensorflow",
    "tensorflow_recommenders",
    "tensorflow_ranking",
    "tensorflow_datasets",
    "tf_keras",
    "keras",
)


ROOT = Path(__file__).resolve().parents[2]


def run_without_tf(*argv: str) -> subprocess.CompletedProcess[str]:
    """``MODULE.main(ARG...)`` (``argv = (MODULE, ARG...)``) in a fresh interpreter without TensorFlow."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, __file__, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )


def main() -> int:
    for name in ABSENT:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print("no_tf: import tensorflow fails", flush=True)
    else:
        return 3
    if importlib.util.find_spec("tensorflow") is not None:
        return 3
    module, argv = sys.argv[1], sys.argv[2:]
    status = importlib.import_module(module).main(argv)
    loaded = sorted(
        m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in ABSENT
    )
    if loaded:
        print(f"no_tf: loaded after all: {loaded}", flush=True)
        return 3
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
