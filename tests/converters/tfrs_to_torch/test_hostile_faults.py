"""Hostile inputs, classes 5 and 6: clean under real-world faults, and quiet.

Signals and resource limits use real converter processes (``os.kill``, ``resource.setrlimit``):
SIGTERM / SIGINT remove the temporary directory and exit 128 + signal; a SIGKILLed run's leftovers
are removed by the next run, with a message (a ``.keras`` conversion keeps its unpacked assets and
re-saved model there too: nothing is left in ``$TMPDIR``); a lock file serialises two conversions
to one ``--out``; a full disk (a real, small tmpfs), a file-size limit, an over-long or symlinked
``--out``, a bad ``--vocab`` file or layer name and a corrupt ``keras_metadata.pb`` each give one
``error:`` line (TensorFlow's own logging hidden), exit 2, and leave nothing behind.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from converters.tfrs_to_torch.writer import SCRATCH_DIR

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[3]
# 2M x 16 float32 = 128 MB: writing and verifying it keeps the temporary directory alive for about
# a second, long enough to signal the process while it exists.
BIG_ROWS, BIG_DIM = 2_000_000, 16
# TensorFlow's import alone takes 10-30 s on a busy 2-core machine.
PROCESS_TIMEOUT_S = 300
# File-size limit for the EFBIG case: far below the 128 MB table.
FSIZE_LIMIT = 1 << 20
POLL_S = 0.005
# The .keras archive of the SIGKILL case: 1M x 16 float32 = 64 MB, so that re-saving, writing and
# verifying it keeps the conversion inside its window for seconds.
ARCHIVE_ROWS = 1_000_000
# The full-disk case: a tmpfs of 1 MiB and weights of 1000 x 1000 float32 = 4 MB that cannot fit.
TMPFS_SIZE = "1m"
FULL_DISK_ROWS, FULL_DISK_DIM = 1000, 1000


@pytest.fixture(scope="module")
def big_checkpoint(tf, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big")
    checkpoint = tf.train.Checkpoint(table=tf.Variable(tf.zeros([BIG_ROWS, BIG_DIM])))
    return Path(checkpoint.write(str(root / "ckpt" / "w")))


@pytest.fixture(scope="module")
def big_archive(tf, tmp_path_factory) -> Path:
    """A 64 MB ``.keras`` tower whose adapted lookup stores its vocabulary as an asset (the member
    tf_keras extracted, with everything else, to ``$TMPDIR``)."""
    root = tmp_path_factory.mktemp("big_keras")
    lookup = tf.keras.layers.StringLookup()
    lookup.adapt(tf.constant(["a", "b", "c"]))
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            lookup,
            tf.keras.layers.Embedding(ARCHIVE_ROWS, BIG_DIM),
        ]
    )
    model(tf.constant(["a"]))
    model.save(str(root / "big.keras"))
    with zipfile.ZipFile(root / "big.keras") as zf:
        assert any(name.startswith("assets/") for name in zf.namelist())
    return root / "big.keras"


def _spawn(
    *argv: object, limit_fsize: bool = False, tmpdir: Path | None = None
) -> subprocess.Popen[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tmpdir is not None:  # where tempfile (and TensorFlow) put their temporary files
        env["TMPDIR"] = str(tmpdir)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell: TF would log at its default level
    return subprocess.Popen(
        [sys.executable, "-m", "converters.tfrs_to_torch", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=limit if limit_fsize else None,
    )


def _wait_for(
    process: subprocess.Popen[str], where: Path, pattern: str, exclude: set[Path]
) -> Path:
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    while time.monotonic() < deadline:
        found = [p for p in where.glob(pattern) if p not in exclude]
        if found:
            return found[0]
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(
                f"the converter ended ({process.returncode}) before {pattern} appeared: {err}"
            )
        time.sleep(POLL_S)
    process.kill()
    pytest.fail(f"{pattern} never appeared")


def _signal_while_writing(process: subprocess.Popen[str], signum: int) -> None:
    """Freezes the converter (SIGSTOP) so that it is surely inside its write window, then signals it."""
    process.send_signal(signal.SIGSTOP)
    process.send_signal(signum)
    process.send_signal(signal.SIGCONT)


def _finish(process: subprocess.Popen[str]) -> tuple[int, list[str]]:
    _, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    return process.returncode, [line for line in err.splitlines() if line.strip()]


class TestSignals:
    def test_sigkill_leftovers_are_removed_by_the_next_run_which_sigterm_cleans(
        self, big_checkpoint, tmp_path, tree
    ) -> None:
        out = tmp_path / "out"
        first = _spawn(big_checkpoint, "--out", out)
        stale = _wait_for(first, tmp_path, ".out.tmp-*", set())
        _signal_while_writing(first, signal.SIGKILL)  # nothing can clean up
        first.wait(PROCESS_TIMEOUT_S)
        assert stale.exists()

        second = _spawn(big_checkpoint, "--out", out)
        _wait_for(second, tmp_path, ".out.tmp-*", {stale})
        _signal_while_writing(second, signal.SIGTERM)
        code, lines = _finish(second)
        assert code == 128 + signal.SIGTERM, lines
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and "SIGTERM" in errors[0], lines
        assert all(line.startswith(("error: ", "note: ")) for line in lines), lines
        assert any(line.startswith("note: removed") and stale.name in line for line in lines), lines
        assert tree.nothing_left(out)

    def test_sigkilled_keras_conversion_leaves_nothing_in_tmpdir(
        self, big_archive, tmp_path, tree
    ) -> None:
        tmpdir = tmp_path / "tmpdir"
        tmpdir.mkdir()
        source_before = tree.snapshot(big_archive.parent)
        out = tmp_path / "out"
        first = _spawn(big_archive, "--out", out, tmpdir=tmpdir)
        # The archive's assets and re-saved SavedModel exist: the old converter had them in $TMPDIR.
        inside = _wait_for(first, tmp_path, f".out.tmp-*/{SCRATCH_DIR}/model/variables", set())
        _signal_while_writing(first, signal.SIGKILL)
        first.wait(PROCESS_TIMEOUT_S)
        stale = inside.parents[2]
        assert stale.name.startswith(".out.tmp-") and (stale / SCRATCH_DIR / "assets").is_dir()
        assert list(tmpdir.iterdir()) == []

        code, lines = _finish(_spawn(big_archive, "--out", out, tmpdir=tmpdir))
        assert code == 0, lines
        assert len(lines) == 1 and lines[0].startswith("note: removed") and stale.name in lines[0]
        assert list(tmpdir.iterdir()) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tmpdir"]
        assert sorted(p.name for p in out.iterdir()) == [
            "model.safetensors",
            "report.json",
            "torchrs.json",
        ]
        assert tree.snapshot(big_archive.parent) == source_before

    def test_sigint(self, big_checkpoint, tmp_path, tree) -> None:
        out = tmp_path / "out"
        process = _spawn(big_checkpoint, "--out", out)
        _wait_for(process, tmp_path, ".out.tmp-*", set())
        _signal_while_writing(process, signal.SIGINT)
        code, lines = _finish(process)
        assert code == 128 + signal.SIGINT and len(lines) == 1, lines
        assert lines[0].startswith("error: interrupted by SIGINT")
        assert tree.nothing_left(out)


class TestConcurrentConversions:
    def test_second_conversion_to_the_same_out_fails_at_once(
        self, big_checkpoint, tmp_path, run_cli
    ) -> None:
        out = tmp_path / "out"
        first = _spawn(big_checkpoint, "--out", out)
        _wait_for(first, tmp_path, ".out.tmp-*", set())
        first.send_signal(signal.SIGSTOP)  # frozen while it holds the lock: no race with its end
        try:
            run = run_cli(big_checkpoint, "--out", out)
        finally:
            first.send_signal(signal.SIGCONT)
        run.one_error("Another conversion", f"process {first.pid}")
        code, lines = _finish(first)
        assert code == 0, lines
        assert (out / "torchrs.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.fixture
def full_disk(tmp_path) -> Iterator[Path]:
    """A real tmpfs of :data:`TMPFS_SIZE` mounted at ``tmp_path / "disk"``; always unmounted."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount / umount command on this machine: cannot make a small file system")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); this test runs unprivileged")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (no CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture(scope="module")
def sources_too_big_for_the_disk(tf, tmp_path_factory) -> dict[str, Path]:
    """A 4 MB table as a TF checkpoint and as a ``.keras`` archive."""
    root = tmp_path_factory.mktemp("too_big")
    table = tf.Variable(tf.random.uniform([FULL_DISK_ROWS, FULL_DISK_DIM]))
    checkpoint = Path(tf.train.Checkpoint(table=table).write(str(root / "ckpt" / "w"))).parent
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.int64),
            tf.keras.layers.Embedding(FULL_DISK_ROWS, FULL_DISK_DIM),
        ]
    )
    model.save(str(root / "tower.keras"))
    return {"checkpoint": checkpoint, "keras archive": root / "tower.keras"}


class TestFileSystemFaults:
    @pytest.mark.parametrize("kind", ["checkpoint", "keras archive"])
    def test_full_disk_is_one_error_line(
        self, kind, sources_too_big_for_the_disk, full_disk, run_cli, tree
    ) -> None:
        source = sources_too_big_for_the_disk[kind]
        before = tree.snapshot(source.parent)
        run = run_cli(source, "--out", full_disk / "out")
        run.one_error("no space left on device", "free some space or choose another --out")
        assert list(full_disk.iterdir()) == []  # no partial file, temporary directory or lock
        assert tree.snapshot(source.parent) == before

    def test_file_size_limit_is_one_quiet_error_line(self, big_checkpoint, tmp_path, tree) -> None:
        out = tmp_path / "out"
        code, lines = _finish(_spawn(big_checkpoint, "--out", out, limit_fsize=True))
        # One line: no TensorFlow / absl logging around it (class 6), no traceback.
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith("error: file too large") and "ulimit -f" in lines[0]
        assert tree.nothing_left(out)

    def test_name_too_long(self, exports, run_cli, tmp_path) -> None:
        out = tmp_path / ("x" * 300)
        run_cli(exports.tower_keras, "--out", out).one_error("path component of 300 bytes")
        assert list(tmp_path.iterdir()) == []

    def test_long_parent_name_is_fine(self, exports, run_cli, tmp_path) -> None:
        parent = tmp_path / ("p" * 250)  # only --out's own name needs room for its siblings
        parent.mkdir()
        assert run_cli(exports.tower_keras, "--out", parent / "out").code == 0

    def test_symlinked_out(self, exports, run_cli, tree, tmp_path) -> None:
        target = tmp_path / "real"
        target.mkdir()
        (tmp_path / "link").symlink_to(target)
        before = tree.snapshot(tmp_path)
        run_cli(exports.tower_keras, "--out", tmp_path / "link").one_error("symbolic link")
        assert tree.snapshot(tmp_path) == before

    def test_corrupt_keras_metadata(self, exports, run_cli, tree, tmp_path) -> None:
        model = tmp_path / "model"
        shutil.copytree(exports.tower_keras, model)
        (model / "keras_metadata.pb").write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + bytes(16))
        run = run_cli(model, "--out", tmp_path / "out")
        run.one_error("keras_metadata.pb cannot be parsed")
        assert tree.nothing_left(tmp_path / "out")


class TestVocabularyFlags:
    def test_bad_vocab_file(self, exports, run_cli, tree, tmp_path) -> None:
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("a\n\nb\n")  # TensorFlow rejects empty lines
        run = run_cli(exports.tower_keras, "--out", tmp_path / "out", "--vocab", f"layer-0={vocab}")
        run.one_error("--vocab layer-0", "empty line")
        assert tree.nothing_left(tmp_path / "out")

    def test_fifo_vocab_file(self, exports, run_cli, tmp_path) -> None:
        os.mkfifo(tmp_path / "vocab.txt")
        run = run_cli(
            exports.tower_keras, "--out", tmp_path / "out", "--vocab", f"x={tmp_path / 'vocab.txt'}"
        )
        run.one_error("--vocab x")

    def test_unknown_layer_lists_the_lookup_layers(self, exports, run_cli, tree, tmp_path) -> None:
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("\n".join(u.decode() for u in exports.users[:20]) + "\n")
        run = run_cli(
            exports.tower_keras, "--out", tmp_path / "out", "--vocab", f"no_such_layer={vocab}"
        )
        run.one_error("--vocab no_such_layer", "Layers that take a vocabulary: ")
        assert tree.nothing_left(tmp_path / "out")
        listed = re.search(r"Layers that take a vocabulary: (.*)\.$", run.err_lines[0])
        assert listed is not None
        first = listed.group(1).split(", ")[0]
        ok = run_cli(exports.tower_keras, "--out", tmp_path / "out", "--vocab", f"{first}={vocab}")
        assert ok.code == 0, ok.err

    def test_failed_conversion_removes_the_parents_it_created(
        self, exports, run_cli, tmp_path
    ) -> None:
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("a\n")
        out = tmp_path / "new" / "deeper" / "out"
        run = run_cli(exports.tower_keras, "--out", out, "--vocab", f"no_such_layer={vocab}")
        run.one_error("--vocab no_such_layer")  # found while reading the model, after the lock
        assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.txt"]

    def test_vocab_with_a_checkpoint(self, exports, run_cli, tmp_path) -> None:
        vocab = tmp_path / "vocab.txt"
        vocab.write_text("a\n")
        run = run_cli(exports.weights, "--out", tmp_path / "out", "--vocab", f"users={vocab}")
        run.one_error("--vocab users", "a TF checkpoint holds no lookup layers")
