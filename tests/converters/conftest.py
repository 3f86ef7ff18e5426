"""TF exports shared by the converter tests: built once per session, the way users save them.

Every model is tiny (vocabularies of 10-30 tokens, 4-8 dimensional embeddings) so the whole
converter suite stays well under a minute; the cost is TensorFlow's import and tracing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Tokens that must survive the trip byte for byte: a newline, non-ASCII UTF-8, invalid UTF-8.
TRICKY_TOKENS = [b"a\nb", "é".encode(), b"\xff\xfe", b"tab\there"]
USERS = [str(i).encode() for i in range(20)] + TRICKY_TOKENS
MOVIES = [f"movie {i}".encode() for i in range(30)]


@dataclass
class Exports:
    root: Path
    index: Path  # tf.saved_model.save(BruteForce(user_model)) -- the basic-retrieval tutorial
    tower_saved_model: Path  # tf.saved_model.save(tower) with relu / sigmoid Dense layers
    tower_keras: Path  # tower.save(dir, save_format="tf")
    tower_keras_archive: Path  # IntegerLookup tower .save("tower.keras")
    weights: Path  # tower.save_weights(prefix) -> directory
    models: dict[str, Any]
    users: list[bytes]
    movies: list[bytes]


@pytest.fixture(scope="session")
def exports(tf, tfrs, tmp_path_factory) -> Exports:
    root = tmp_path_factory.mktemp("tf_exports")
    tf.keras.utils.set_random_seed(1)
    user_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=np.array(USERS, dtype=object)),
            tf.keras.layers.Embedding(len(USERS) + 1, 8),
            tf.keras.layers.Dense(6),
        ]
    )
    movie_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=np.array(MOVIES, dtype=object)),
            tf.keras.layers.Embedding(len(MOVIES) + 1, 6),
        ]
    )
    user_model(tf.constant(USERS[:2]))
    movie_model(tf.constant(MOVIES[:2]))
    index = tfrs.layers.factorized_top_k.BruteForce(user_model)
    movies = tf.data.Dataset.from_tensor_slices(MOVIES)
    index.index_from_dataset(movies.batch(7).map(lambda t: (t, movie_model(t))))
    index(tf.constant([b"42"]))
    tf.saved_model.save(index, str(root / "index"))

    tower = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(
                vocabulary=[u.decode() for u in USERS[:20]], mask_token=""
            ),
            tf.keras.layers.Embedding(22, 5),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.Dense(3, activation="sigmoid", use_bias=False),
        ]
    )
    tower(tf.constant(["1"]))
    tf.saved_model.save(tower, str(root / "tower_masked_sm"))  # mask config lost: refused
    tower.save(str(root / "tower_keras"), save_format="tf")
    tower.save_weights(str(root / "weights" / "w"))
    plain = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=[u.decode() for u in USERS[:20]]),
            tf.keras.layers.Embedding(21, 5),
            tf.keras.layers.Dense(4, activation="relu"),
            tf.keras.layers.Dense(3, activation="sigmoid", use_bias=False),
        ]
    )
    plain(tf.constant(["1"]))
    tf.saved_model.save(plain, str(root / "tower_sm"))

    int_tower = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.int64),
            tf.keras.layers.IntegerLookup(vocabulary=list(range(100, 130))),
            tf.keras.layers.Embedding(31, 4),
            tf.keras.layers.Dense(2, activation="tanh"),
        ]
    )
    int_tower(tf.constant([101], dtype=tf.int64))
    int_tower.save(str(root / "int_tower.keras"))
    return Exports(
        root=root,
        index=root / "index",
        tower_saved_model=root / "tower_sm",
        tower_keras=root / "tower_keras",
        tower_keras_archive=root / "int_tower.keras",
        weights=root / "weights",
        models={
            "user": user_model,
            "movie": movie_model,
            "index": index,
            "tower": tower,
            "plain": plain,
            "int_tower": int_tower,
        },
        users=USERS,
        movies=MOVIES,
    )


# ---- hostile-input helpers (tests/converters/tfrs_to_torch/test_hostile_*.py) -------------------


def tree_snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry below ``root`` (itself included): relative path -> (mode, content or link)."""
    import hashlib
    import os

    out: dict[str, tuple[int, bytes]] = {}
    if not root.exists() and not root.is_symlink():
        return out
    entries = (
        [root, *sorted(root.rglob("*"))] if root.is_dir() and not root.is_symlink() else [root]
    )
    for entry in entries:
        info = entry.lstat()
        if entry.is_symlink():
            body = os.readlink(entry).encode()
        elif entry.is_file():
            body = hashlib.sha256(entry.read_bytes()).digest()
        else:
            body = b""
        out[str(entry.relative_to(root.parent))] = (info.st_mode, body)
    return out


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def one_error(self, *phrases: str) -> None:
        """Exit 2, exactly one stderr line, an ``error:`` one holding every phrase, no traceback."""
        assert self.code == 2, (self.code, self.err)
        assert len(self.err_lines) == 1 and self.err_lines[0].startswith("error: "), self.err
        for phrase in phrases:
            assert phrase in self.err, (phrase, self.err)


@pytest.fixture
def run_cli(capsys):
    """Runs the converter's CLI in this process; returns a :class:`CliRun`."""
    from converters.tfrs_to_torch.cli import main

    def run(*argv: Any) -> CliRun:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    return run


def nothing_left(out: Path) -> bool:
    """No ``out``, no temporary sibling, no lock file beside it."""
    leftovers = list(out.parent.glob(f".{out.name}.*"))
    return not out.exists() and not leftovers


@pytest.fixture
def tree():
    """``tree.snapshot(root)`` and ``tree.nothing_left(out)`` for the hostile-input tests."""
    from types import SimpleNamespace

    return SimpleNamespace(snapshot=tree_snapshot, nothing_left=nothing_left)
