"""TF exports served by the tests: the converter suite's index, and a functional ranking model.

The index is the converter tests' session export (``tests/converters/conftest.py``: the basic-retrieval
tutorial's ``BruteForce`` over a StringLookup tower, with tricky tokens); the ranking model is the
basic-ranking tutorial's model written with the functional API and saved as a Keras SavedModel, so
that its converted form has a forward pass TF Serving's ``serving_default`` can be compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from converters.tfrs_to_torch.cli import main as convert
from tests.converters.conftest import exports  # noqa: F401  (the shared session export)

RANKING_USERS = [f"user {i}" for i in range(12)]
RANKING_MOVIES = [f"movie {i}" for i in range(15)]


@dataclass(frozen=True)
class Served:
    """A TF export, its converted directory and TF's own ``serving_default`` on it."""

    tf_dir: Path
    torchrs_dir: Path
    signature: Any  # tf.saved_model.load(tf_dir).signatures["serving_default"]


def _converted(tf_dir: Path, out: Path, tf: Any) -> Served:
    assert convert([str(tf_dir), "--out", str(out), "--json"]) == 0
    return Served(tf_dir, out, tf.saved_model.load(str(tf_dir)).signatures["serving_default"])


@pytest.fixture(scope="session")
def served_index(exports, tf, tmp_path_factory) -> Served:  # noqa: F811
    return _converted(exports.index, tmp_path_factory.mktemp("serve") / "index", tf)


@pytest.fixture(scope="session")
def served_bytes_index(exports, tf, tfrs, tmp_path_factory) -> Served:  # noqa: F811
    """A BruteForce whose identifiers are the users themselves: some are not UTF-8 (``b"\\xff\\xfe"``)."""
    root = tmp_path_factory.mktemp("serve_bytes_index")
    user_model = exports.models["user"]
    users = tf.constant(exports.users)
    index = tfrs.layers.factorized_top_k.BruteForce(user_model, k=len(exports.users))
    index.index(user_model(users), users)
    index(users[:1])
    tf.saved_model.save(index, str(root / "tf"))
    return _converted(root / "tf", root / "torchrs", tf)


@pytest.fixture(scope="session")
def served_ranking(tf, tmp_path_factory) -> Served:
    root = tmp_path_factory.mktemp("serve_ranking")
    tf.keras.utils.set_random_seed(3)
    layers = tf.keras.layers
    user_id = tf.keras.Input(shape=(), dtype=tf.string, name="user_id")
    movie_title = tf.keras.Input(shape=(), dtype=tf.string, name="movie_title")
    users = layers.StringLookup(vocabulary=RANKING_USERS)(user_id)
    movies = layers.StringLookup(vocabulary=RANKING_MOVIES, mask_token="")(movie_title)
    x = layers.Concatenate()(
        [
            layers.Embedding(len(RANKING_USERS) + 1, 6)(users),
            layers.Embedding(len(RANKING_MOVIES) + 2, 5)(movies),
        ]
    )
    x = layers.Dense(16, activation="relu")(x)
    x = layers.Dense(8, activation="relu")(x)
    rating = layers.Dense(1, name="rating")(x)
    model = tf.keras.Model([user_id, movie_title], rating)
    model.save(str(root / "tf"), save_format="tf")  # the Keras SavedModel TF Serving would load
    return _converted(root / "tf", root / "torchrs", tf)


@dataclass(frozen=True)
class ServedContainer:
    """The basic-ranking tutorial's ``tfrs.Model`` export (subclassed), converted: a container of towers."""

    torchrs_dir: Path
    model: Any  # the TF model, whose towers are the reference
    users: list[str]
    movies: list[str]


@pytest.fixture(scope="session")
def served_container(tf, tmp_path_factory) -> ServedContainer:
    import numpy as np

    from parity.scenarios import basic_ranking

    root = tmp_path_factory.mktemp("serve_container")
    users = np.array([str(i) for i in range(1, 30)])
    movies = np.array([f"Movie {i} (1995)" for i in range(40)])
    ratings = np.ones(len(users), np.float32)
    data = basic_ranking.RankingData(
        users, movies[: len(users)], ratings, users, movies[: len(users)], ratings
    )
    model = basic_ranking.build_tf(data, basic_ranking.BasicRankingConfig(seed=5))
    model({"user_id": users[:1], "movie_title": movies[:1]})
    tf.saved_model.save(model, str(root / "tf"))  # the tutorial's export
    assert convert([str(root / "tf"), "--out", str(root / "torchrs"), "--json"]) == 0
    return ServedContainer(root / "torchrs", model, list(users), list(movies))
