"""The CLI's process hygiene: TensorFlow's native logging silenced, signals turned into a clean exit.

* TensorFlow and absl write C++ log lines straight to file descriptor 2 (``I0000 ... cpu_feature_guard``,
  ``WARNING: All log messages before absl::InitializeLog()``), before and regardless of
  ``TF_CPP_MIN_LOG_LEVEL``. :func:`quiet_native_output` points descriptor 2 at ``/dev/null`` for the
  conversion and gives Python's ``sys.stderr`` a copy of the real one, so the converter's own lines
  (progress bars, the one ``error:`` line) still reach the user; TF's Python loggers and warnings
  are muted too. ``--verbose`` leaves everything as it is.
* SIGTERM (what ``timeout``, ``docker stop`` and Kubernetes send), SIGINT and SIGHUP raise
  :class:`Interrupted` in the main thread, so the conversion's ``finally`` / ``except`` blocks
  remove the temporary directory; a second signal during that clean-up is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from types import FrameType

# Python loggers TensorFlow, absl, tf_keras and h5py write their warnings through.
NOISY_LOGGERS = ("tensorflow", "absl", "tf_keras", "keras", "h5py")
# Signals that end a conversion cleanly (SIGKILL cannot be caught: the next run cleans up).
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# TF_CPP_MIN_LOG_LEVEL=3: only FATAL native messages (read once, when TensorFlow is imported).
QUIET_TF_LOG_LEVEL = "3"


class Interrupted(KeyboardInterrupt):
    """A handled signal arrived; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def raise_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM / SIGINT / SIGHUP raise :class:`Interrupted` (once)."""
    fired: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if fired:
            return  # already unwinding: let the clean-up finish
        fired.append(signum)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fd2_stream() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def quiet_native_output(verbose: bool) -> Iterator[None]:
    """Silences TensorFlow's native and Python logging for the block (unless ``verbose``)."""
    if verbose:
        yield
        return
    old_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_TF_LOG_LEVEL  # read when TensorFlow is imported
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    replace = _fd2_stream()
    saved_fd = -1
    old_stderr = sys.stderr
    sys.stderr.flush()
    if replace:
        saved_fd = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = open(  # closed in finally
            saved_fd,
            "w",
            buffering=1,
            encoding=old_stderr.encoding,
            errors="backslashreplace",
            closefd=False,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if replace:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = old_stderr
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if old_level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = old_level


def describe_os_error(err: OSError) -> str:
    """One sentence for a file-system failure: what happened, where, and what to do.

    >>> describe_os_error(OSError(28, "No space left on device", "/x/model.safetensors"))
    'no space left on device while writing /x/model.safetensors; free some space or choose another --out. Nothing was written.'
    """
    where = f" {err.filename}" if err.filename else ""
    hints = {
        errno.ENOSPC: "no space left on device while writing{w}; free some space or choose another --out",
        errno.EDQUOT: "disk quota exceeded while writing{w}; free some space or choose another --out",
        errno.EFBIG: "file too large while writing{w} (the file system's or the process's file-size "
        "limit, `ulimit -f`); raise the limit or choose another --out",
        errno.ENAMETOOLONG: "a path is too long for the file system:{w}; choose a shorter --out",
        errno.EROFS: "read-only file system:{w}; choose a writable --out",
        errno.EACCES: "permission denied:{w}; choose a writable --out",
        errno.EMFILE: "too many open files (`ulimit -n`) at{w}; raise the limit",
    }
    text = hints.get(err.errno or 0, f"{err.strerror or err}:{{w}}").format(w=where)
    return f"{text}. Nothing was written."
