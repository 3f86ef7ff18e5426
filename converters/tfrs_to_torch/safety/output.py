"""Where a conversion may write: never into, onto or around its source; one writer per ``--out``.

* ``--out`` equal to, inside, or containing the model (resolved, symbolic links followed) is refused,
  with or without ``--overwrite``;
* ``--overwrite`` replaces only a previous torchrs conversion (a directory holding ``torchrs.json``);
* ``--out`` may not itself be a symbolic link, and its name must leave room for the temporary
  sibling (``.NAME.tmp-XXXXXXXX``) on the file system;
* a lock file (``.NAME.lock`` beside ``--out``) serialises conversions to one ``--out``: the second
  one fails at once, naming the process that holds it;
* under that lock, temporary directories left by a killed run (``.NAME.tmp-*``, ``.NAME.old-*``)
  are removed, with a message;
* during the conversion, Python's ``tempfile`` (and TensorFlow's autograph, which writes generated
  modules there and removes them only at exit) uses a directory inside the temporary sibling
  (:func:`temporary_files_in`): a SIGKILLed run leaves nothing in ``$TMPDIR``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from converters.tfrs_to_torch.errors import ConversionError

LOG = logging.getLogger("converters.tfrs_to_torch")
# What marks a directory as a torchrs conversion (writer.CONFIG_FILE; not imported: no cycle).
CONFIG_FILE = "torchrs.json"
# Longest suffix the writer adds to --out's name: ".NAME.tmp-XXXXXXXX" (tempfile's 8 characters),
# ".NAME.old-<pid>" (pid up to 7 digits), ".NAME.lock".
SIBLING_EXTRA_CHARS = len("..old-") + 10
# File-name length limit when the file system does not say (POSIX NAME_MAX on Linux file systems).
DEFAULT_NAME_MAX = 255


def _relation(out: Path, source: Path) -> str | None:
    if out == source:
        return "is"
    if source in out.parents:
        return "is inside"
    if out in source.parents:
        return "contains"
    return None


def _name_max(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX


def check_output(sources: Iterable[Path], out: Path, overwrite: bool) -> None:
    """Refuses an ``--out`` that would touch the source, a symlinked or over-long one, and an
    ``--overwrite`` of anything but a previous conversion.

    Args:
        sources: every file or directory of the model (resolved).
        out: the requested output directory.
        overwrite: whether ``--overwrite`` was given.

    Raises:
        ConversionError: naming the problem and the fix.
    """
    name_max = _name_max(out.absolute().parent)
    parts = out.absolute().parts
    for i, part in enumerate(parts):
        extra = SIBLING_EXTRA_CHARS if i == len(parts) - 1 else 0  # the last one gets siblings
        if len(os.fsencode(part)) + extra > name_max:
            raise ConversionError(
                f"--out has a path component of {len(os.fsencode(part))} bytes ({part[:40]}...); "
                f"this file system allows {name_max} per name"
                + (
                    f", and the converter needs {extra} more for its temporary sibling"
                    if extra
                    else ""
                )
                + ". Choose a shorter --out."
            )
    if out.is_symlink():
        raise ConversionError(
            f"--out {out} is a symbolic link (to {os.readlink(out)}); the converter replaces --out "
            "as a whole and will not follow a link. Give the real directory as --out."
        )
    real = out.resolve()
    for source in sources:
        relation = _relation(real, source)
        if relation is not None:
            raise ConversionError(
                f"--out {out} {relation} the model being converted ({source}); the converter never "
                "writes into, over or around its source. Choose an --out outside it."
            )
    if overwrite and out.is_dir() and any(out.iterdir()) and not (out / CONFIG_FILE).is_file():
        raise ConversionError(
            f"--overwrite replaces only a previous torchrs conversion (a directory holding "
            f"{CONFIG_FILE}); {out} is not one. Choose another --out, or empty it yourself."
        )


def source_paths(path: str, checkpoint_prefix: str | None) -> list[Path]:
    """The files and directories a conversion reads (resolved): the model path, and for a
    checkpoint its prefix's ``.index`` and data shards."""
    out = [Path(path).resolve()]
    if checkpoint_prefix is not None:
        prefix = Path(checkpoint_prefix)
        out += [p.resolve() for p in prefix.parent.glob(prefix.name + ".*")]
    return out


class OutputLock:
    """An exclusive ``flock`` on ``.NAME.lock`` beside ``target``, held until :meth:`release`.

    The lock file is removed on release; a run that opened it meanwhile notices (the path no longer
    names the file it locked) and retries on a fresh one, so two runs never both hold it.
    """

    def __init__(self, target: Path) -> None:
        self.path = target.with_name(f".{target.name}.lock")
        self.target = target
        self._fd: int | None = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise ConversionError(
                    f"Another conversion (process {holder}) is writing to {target}; wait for it to "
                    "finish or choose another --out."
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed the file between our open and our lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def remove_stale_siblings(target: Path) -> list[Path]:
    """Removes ``.NAME.tmp-*`` / ``.NAME.old-*`` directories left beside ``target`` by a killed run.

    Call only while holding :class:`OutputLock` (a live run holds it, so what is left is stale).

    Returns:
        The removed paths (each is also logged).
    """
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(tmp-[A-Za-z0-9_]{{8}}|old-\d+)$")
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        if pattern.match(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            LOG.warning("note: removed %s, left by an interrupted conversion to %s", entry, target)
    return removed


@contextlib.contextmanager
def temporary_files_in(directory: Path) -> Iterator[None]:
    """Within the block, ``tempfile``'s default directory is ``directory`` (created here).

    TensorFlow's autograph writes each converted function's source to a ``tempfile`` file that it
    removes only at interpreter exit; inside the conversion's temporary sibling of ``--out`` such
    files go with it, whatever ends the run. (Process-wide while the block runs, as ``tempfile``
    has one default.)

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with temporary_files_in(root / "tmp"):
    ...     pathlib.Path(tempfile.mkstemp()[1]).parent == root / "tmp"
    True
    """
    directory.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield
    finally:
        tempfile.tempdir = previous
