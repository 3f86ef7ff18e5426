"""Training throughput (examples/s) of the tutorial models, TFRS and torchrs back to back in one process.

Each round runs ``STEPS`` optimisation steps on full batches of ``BATCH_SIZE`` synthetic MovieLens
examples, after one warm-up round (TF graph tracing, lazy torch optimizer state). Both frameworks read
raw string ids through their ``StringLookup``, as the tutorials do. TFRS runs through Keras's own
``make_train_function`` (what ``fit`` calls per step, without the callbacks); torchrs through
``Model.train_step`` (what its ``fit`` calls). With a CUDA device, the torchrs models also run there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import torchrs as trs
from benchmarks._common import run_case, synchronize, torch_devices
from parity.scenarios import basic_ranking, basic_retrieval
from torchrs.data._synthetic import synthetic_movies, synthetic_ratings
from torchrs.layers.feature_interaction import Cross
from torchrs.preprocessing.string_lookup import StringLookup

# The tutorials' batch size.
BATCH_SIZE = 8192
# Full batches per timed round: 9 x 8192 fits in the 80k training split of the 100k ratings.
STEPS = 9
# The tutorials' 80/20 split of the 100k ratings.
TRAIN_FRACTION = 0.8
# The DCN tutorial's deep part after the cross layer, and its optimizer (Adam, 0.01).
DCN_DEEP_UNITS = (192, 192)
DCN_LEARNING_RATE = 0.01
# The basic tutorials' optimizer (Adagrad, 0.1).
ADAGRAD_LEARNING_RATE = 0.1
EMBEDDING_DIM = 32


@dataclass(frozen=True)
class Split:
    """Raw columns of the training split, as both frameworks read them."""

    user_ids: np.ndarray
    movie_titles: np.ndarray
    ratings: np.ndarray


@pytest.fixture(scope="module")
def ratings() -> tuple[Split, Split, np.ndarray]:
    table = synthetic_ratings()
    n_train = int(len(table) * TRAIN_FRACTION)

    def split(rows: slice) -> Split:
        return Split(
            table["user_id"][rows].astype(str),
            table["movie_title"][rows].astype(str),
            table["user_rating"][rows].astype(np.float32),
        )

    movies = synthetic_movies()["movie_title"].astype(str)
    return split(slice(0, n_train)), split(slice(n_train, None)), movies


def _torch_batches(train: Split, device: str, with_ratings: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(STEPS):
        rows = slice(i * BATCH_SIZE, (i + 1) * BATCH_SIZE)
        batch: dict[str, Any] = {
            "user_id": train.user_ids[rows],
            "movie_title": train.movie_titles[rows],
        }
        if with_ratings:
            batch["user_rating"] = torch.from_numpy(train.ratings[rows]).to(device)
        out.append(batch)
    return out


def _tf_iterator(tf: Any, train: Split, with_ratings: bool) -> Any:
    columns: dict[str, Any] = {"user_id": train.user_ids, "movie_title": train.movie_titles}
    if with_ratings:
        columns["user_rating"] = train.ratings
    ds = tf.data.Dataset.from_tensor_slices(columns).batch(BATCH_SIZE, drop_remainder=True)
    return iter(ds.take(STEPS).cache().repeat())


def tf_steps(tf: Any, model: Any, train: Split, with_ratings: bool) -> Callable[[], float]:
    """One timed round for TFRS: ``STEPS`` calls of Keras's train function."""
    train_function = model.make_train_function()
    iterator = _tf_iterator(tf, train, with_ratings)

    def steps() -> float:
        logs = None
        for _ in range(STEPS):
            logs = train_function(iterator)
        return float(logs["loss"])  # reading the loss waits for the last step

    return steps


def torch_steps(
    model: trs.Model, batches: list[dict[str, Any]], device: str
) -> Callable[[], float]:
    """One timed round for torchrs: ``STEPS`` calls of ``Model.train_step``."""

    def steps() -> float:
        logs: dict[str, float] = {}
        for batch in batches:
            logs = model.train_step(batch)
        synchronize(device)
        return logs["loss"]

    return steps


def time_training(benchmark: Any, steps: Callable[[], float], framework: str, **extra: Any) -> None:
    """Times ``steps`` (one round of ``STEPS`` training steps) and records examples/s."""
    device = "cpu" if framework == "tfrs" else framework.split("-", 1)[1]
    run_case(
        benchmark,
        steps,
        framework="torchrs" if framework == "torchrs-cpu" else framework,
        work=STEPS * BATCH_SIZE,
        unit="examples/s",
        device=device,
        **extra,
    )


FRAMEWORKS = ["tfrs", *(f"torchrs-{d}" for d in torch_devices())]


# ---------------------------------------------------------------------------------------- basic retrieval
def basic_retrieval_steps(
    request: pytest.FixtureRequest, ratings: Any, framework: str
) -> Callable[[], float]:
    """The basic retrieval tutorial's model, one round of training steps for ``framework``."""
    train, test, movies = ratings
    data = basic_retrieval.RetrievalData(
        train.user_ids, train.movie_titles, test.user_ids, test.movie_titles, movies
    )
    config = basic_retrieval.BasicRetrievalConfig(
        embedding_dimension=EMBEDDING_DIM, batch_size=BATCH_SIZE
    )
    if framework == "tfrs":
        tf = request.getfixturevalue("tf")
        model = basic_retrieval.build_tf(data, config)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=ADAGRAD_LEARNING_RATE))
        return tf_steps(tf, model, train, with_ratings=False)
    device = framework.split("-", 1)[1]
    torch.manual_seed(config.seed)
    model = basic_retrieval.build_torch(data, config).to(device)
    model.compile(optimizer=lambda p: trs.optim.Adagrad(p, learning_rate=ADAGRAD_LEARNING_RATE))
    return torch_steps(model, _torch_batches(train, device, with_ratings=False), device)


@pytest.mark.benchmark(group="train: basic retrieval (batch 8192, dim 32)")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_basic_retrieval(
    benchmark: Any, request: pytest.FixtureRequest, ratings: Any, framework: str
) -> None:
    time_training(benchmark, basic_retrieval_steps(request, ratings, framework), framework)


# ------------------------------------------------------------------------------------------ basic ranking
def basic_ranking_steps(
    request: pytest.FixtureRequest, ratings: Any, framework: str
) -> Callable[[], float]:
    """The basic ranking tutorial's model, one round of training steps for ``framework``."""
    train, test, _ = ratings
    data = basic_ranking.RankingData(
        train.user_ids,
        train.movie_titles,
        train.ratings,
        test.user_ids,
        test.movie_titles,
        test.ratings,
    )
    config = basic_ranking.BasicRankingConfig(
        embedding_dimension=EMBEDDING_DIM, batch_size=BATCH_SIZE
    )
    if framework == "tfrs":
        tf = request.getfixturevalue("tf")
        model = basic_ranking.build_tf(data, config)
        model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=ADAGRAD_LEARNING_RATE))
        return tf_steps(tf, model, train, with_ratings=True)
    device = framework.split("-", 1)[1]
    torch.manual_seed(config.seed)
    model = basic_ranking.build_torch(data, config).to(device)
    model.compile(optimizer=lambda p: trs.optim.Adagrad(p, learning_rate=ADAGRAD_LEARNING_RATE))
    return torch_steps(model, _torch_batches(train, device, with_ratings=True), device)


@pytest.mark.benchmark(group="train: basic ranking (MLP 256-64-1, MSE)")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_basic_ranking(
    benchmark: Any, request: pytest.FixtureRequest, ratings: Any, framework: str
) -> None:
    time_training(benchmark, basic_ranking_steps(request, ratings, framework), framework)


# ------------------------------------------------------------------------------------------------- DCN
class TorchDCN(trs.Model):
    """Deep & Cross ranking model: user and movie embeddings, one full-rank ``Cross``, 192-192 MLP, MSE."""

    def __init__(self, users: np.ndarray, movies: np.ndarray) -> None:
        super().__init__()
        dim = EMBEDDING_DIM
        self.user_embeddings = nn.Sequential(
            StringLookup(vocabulary=users, mask_token=None),
            trs.layers.Embedding(len(users) + 1, dim),
        )
        self.movie_embeddings = nn.Sequential(
            StringLookup(vocabulary=movies, mask_token=None),
            trs.layers.Embedding(len(movies) + 1, dim),
        )
        self.cross = Cross(input_dim=2 * dim)
        dense = trs.layers.Dense
        self.deep = nn.Sequential(
            dense(DCN_DEEP_UNITS[0], activation="relu", input_dim=2 * dim),
            dense(DCN_DEEP_UNITS[1], activation="relu", input_dim=DCN_DEEP_UNITS[0]),
        )
        self.logit = dense(1, input_dim=DCN_DEEP_UNITS[1])
        self.task = trs.tasks.Ranking(
            loss=trs.losses.MeanSquaredError(), metrics=[trs.metrics.RootMeanSquaredError()]
        )

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        x0 = torch.cat(
            [
                self.user_embeddings(features["user_id"]),
                self.movie_embeddings(features["movie_title"]),
            ],
            dim=1,
        )  # (B, 2D)
        predictions = self.logit(self.deep(self.cross(x0)))  # (B, 1)
        return self.task(labels=features["user_rating"], predictions=predictions)


def _build_tf_dcn(tf: Any, tfrs: Any, users: np.ndarray, movies: np.ndarray) -> Any:
    dim = EMBEDDING_DIM

    class DCN(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=users, mask_token=None),
                    tf.keras.layers.Embedding(len(users) + 1, dim),
                ]
            )
            self.movie_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=movies, mask_token=None),
                    tf.keras.layers.Embedding(len(movies) + 1, dim),
                ]
            )
            self.cross = tfrs.layers.dcn.Cross()
            self.deep = tf.keras.Sequential(
                [tf.keras.layers.Dense(u, activation="relu") for u in DCN_DEEP_UNITS]
            )
            self.logit = tf.keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()],
            )

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            x0 = tf.concat(
                [
                    self.user_embeddings(features["user_id"]),
                    self.movie_embeddings(features["movie_title"]),
                ],
                axis=1,
            )
            predictions = self.logit(self.deep(self.cross(x0)))
            return self.task(labels=features["user_rating"], predictions=predictions)

    return DCN()


def dcn_steps(request: pytest.FixtureRequest, ratings: Any, framework: str) -> Callable[[], float]:
    """The deep & cross model, one round of training steps for ``framework``."""
    train, test, _ = ratings
    users = np.unique(np.concatenate([train.user_ids, test.user_ids]))
    movies = np.unique(np.concatenate([train.movie_titles, test.movie_titles]))
    if framework == "tfrs":
        tf, tfrs = request.getfixturevalue("tf"), request.getfixturevalue("tfrs")
        tf.keras.utils.set_random_seed(0)
        model = _build_tf_dcn(tf, tfrs, users, movies)
        model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=DCN_LEARNING_RATE))
        return tf_steps(tf, model, train, with_ratings=True)
    device = framework.split("-", 1)[1]
    torch.manual_seed(0)
    model = TorchDCN(users, movies).to(device)
    model.compile(optimizer=lambda p: trs.optim.Adam(p, learning_rate=DCN_LEARNING_RATE))
    return torch_steps(model, _torch_batches(train, device, with_ratings=True), device)


@pytest.mark.benchmark(group="train: DCN (Cross + MLP 192-192-1, MSE)")
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dcn(benchmark: Any, request: pytest.FixtureRequest, ratings: Any, framework: str) -> None:
    time_training(benchmark, dcn_steps(request, ratings, framework), framework)
