"""The basic retrieval tutorial (TFRS ``docs/examples/basic_retrieval.ipynb``) in TFRS and in torchrs.

Two towers over ``user_id`` and ``movie_title``: ``StringLookup(vocabulary=unique ids, mask_token=None)`` then
``Embedding(len + 1, 32)``; ``Retrieval`` with ``FactorizedTopK`` over the movie corpus; Adagrad(0.1); batch 8192;
3 epochs; test batch 4096; ``compute_metrics=not training``.

Both frameworks receive the same examples in the same order (the harness builds the batches once, from the
same index arrays), so their runs differ only by what differs in the frameworks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.preprocessing.string_lookup import StringLookup


@dataclass(frozen=True)
class BasicRetrievalConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    embedding_dimension: int = 32
    learning_rate: float = 0.1
    batch_size: int = 8192
    test_batch_size: int = 4096
    candidate_batch_size: int = 128
    epochs: int = 3
    ks: tuple[int, ...] = (1, 5, 10, 50, 100)
    seed: int = 42


@dataclass(frozen=True)
class RetrievalData:
    """The examples both frameworks train and evaluate on, already split and ordered."""

    train_user_ids: np.ndarray
    train_movie_titles: np.ndarray
    test_user_ids: np.ndarray
    test_movie_titles: np.ndarray
    movie_titles: np.ndarray  # the candidate corpus, one entry per movie
    unique_user_ids: np.ndarray = field(init=False)
    unique_movie_titles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # The tutorial's vocabularies: np.unique over the (batched) corpus and the ratings' user ids.
        object.__setattr__(self, "unique_movie_titles", np.unique(self.movie_titles.astype(str)))
        all_users = np.concatenate([self.train_user_ids, self.test_user_ids]).astype(str)
        object.__setattr__(self, "unique_user_ids", np.unique(all_users))


@dataclass
class RunResult:
    """What one framework did: per-epoch training logs, test metrics, timings."""

    framework: str
    history: dict[str, list[float]]
    test: dict[str, float]
    train_seconds: float
    eval_seconds: float
    train_examples: int
    eval_examples: int

    @property
    def train_examples_per_second(self) -> float:
        return self.train_examples / self.train_seconds

    @property
    def eval_examples_per_second(self) -> float:
        return self.eval_examples / self.eval_seconds

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["train_examples_per_second"] = self.train_examples_per_second
        out["eval_examples_per_second"] = self.eval_examples_per_second
        return out


def _batches(users: np.ndarray, titles: np.ndarray, batch_size: int) -> list[dict[str, np.ndarray]]:
    return [
        {"user_id": users[i : i + batch_size], "movie_title": titles[i : i + batch_size]}
        for i in range(0, len(users), batch_size)
    ]


# ----------------------------------------------------------------------------------------------- torchrs
class TorchMovielensModel(trs.Model):
    """The tutorial's ``MovielensModel`` in torchrs."""

    def __init__(
        self, user_model: nn.Sequential, movie_model: nn.Sequential, task: trs.tasks.Retrieval
    ) -> None:
        super().__init__()
        self.movie_model = movie_model
        self.user_model = user_model
        self.task = task

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        user_embeddings = self.user_model(features["user_id"])  # (B, D)
        positive_movie_embeddings = self.movie_model(features["movie_title"])  # (B, D)
        return self.task(user_embeddings, positive_movie_embeddings, compute_metrics=not training)


def build_torch(data: RetrievalData, config: BasicRetrievalConfig) -> TorchMovielensModel:
    """Builds the torchrs model, initialised like Keras (uniform(-0.05, 0.05) embeddings)."""
    dim = config.embedding_dimension
    user_model = nn.Sequential(
        StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
        trs.layers.Embedding(len(data.unique_user_ids) + 1, dim),
    )
    movie_model = nn.Sequential(
        StringLookup(vocabulary=data.unique_movie_titles, mask_token=None),
        trs.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
    )
    corpus = [
        data.movie_titles[i : i + config.candidate_batch_size]
        for i in range(0, len(data.movie_titles), config.candidate_batch_size)
    ]
    task = trs.tasks.Retrieval(
        metrics=trs.metrics.FactorizedTopK(
            candidates=trs.data.map_batches(corpus, movie_model), ks=config.ks
        )
    )
    return TorchMovielensModel(user_model, movie_model, task)


def run_torch(
    data: RetrievalData,
    config: BasicRetrievalConfig,
    *,
    verbose: int = 0,
    model: TorchMovielensModel | None = None,
) -> RunResult:
    """Trains and evaluates the torchrs model; returns its logs and timings."""
    if model is None:
        torch.manual_seed(config.seed)
        model = build_torch(data, config)
    model.compile(
        optimizer=lambda params: trs.optim.Adagrad(params, learning_rate=config.learning_rate)
    )
    train = _batches(data.train_user_ids, data.train_movie_titles, config.batch_size)
    test = _batches(data.test_user_ids, data.test_movie_titles, config.test_batch_size)
    start = time.perf_counter()
    history = model.fit(train, epochs=config.epochs, verbose=verbose)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    logs = model.evaluate(test, return_dict=True, verbose=verbose)
    eval_seconds = time.perf_counter() - start
    return RunResult(
        "torchrs",
        history.history,
        dict(logs),
        train_seconds,
        eval_seconds,
        config.epochs * len(data.train_user_ids),
        len(data.test_user_ids),
    )


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: RetrievalData, config: BasicRetrievalConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tfrs: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim = config.embedding_dimension
    user_model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            tf.keras.layers.StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
            tf.keras.layers.Embedding(len(data.unique_user_ids) + 1, dim),
        ]
    )
    movie_model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(), dtype=tf.string),
            tf.keras.layers.StringLookup(vocabulary=data.unique_movie_titles, mask_token=None),
            tf.keras.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
        ]
    )
    movies = tf.data.Dataset.from_tensor_slices(data.movie_titles.astype(str))
    task = tfrs.tasks.Retrieval(
        metrics=tfrs.metrics.FactorizedTopK(
            candidates=movies.batch(config.candidate_batch_size).map(movie_model), ks=config.ks
        )
    )

    class MovielensModel(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.movie_model = movie_model
            self.user_model = user_model
            self.task = task

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            user_embeddings = self.user_model(features["user_id"])
            positive_movie_embeddings = self.movie_model(features["movie_title"])
            return self.task(
                user_embeddings, positive_movie_embeddings, compute_metrics=not training
            )

    return MovielensModel()


def run_tf(
    data: RetrievalData, config: BasicRetrievalConfig, *, verbose: int = 0, model: Any = None
) -> RunResult:
    """Trains and evaluates the TFRS model exactly as the tutorial does (batches built from the same order)."""
    from parity._tf import import_tf

    tf, _ = import_tf()
    model = model if model is not None else build_tf(data, config)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate))
    train = (
        tf.data.Dataset.from_tensor_slices(
            {
                "user_id": data.train_user_ids.astype(str),
                "movie_title": data.train_movie_titles.astype(str),
            }
        )
        .batch(config.batch_size)
        .cache()
    )
    test = (
        tf.data.Dataset.from_tensor_slices(
            {
                "user_id": data.test_user_ids.astype(str),
                "movie_title": data.test_movie_titles.astype(str),
            }
        )
        .batch(config.test_batch_size)
        .cache()
    )
    start = time.perf_counter()
    history = model.fit(train, epochs=config.epochs, verbose=verbose)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    logs = model.evaluate(test, return_dict=True, verbose=verbose)
    eval_seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    return RunResult(
        "tfrs",
        hist,
        {k: float(v) for k, v in logs.items()},
        train_seconds,
        eval_seconds,
        config.epochs * len(data.train_user_ids),
        len(data.test_user_ids),
    )


def top_k_names(config: BasicRetrievalConfig) -> Sequence[str]:
    return [f"factorized_top_k/top_{k}_categorical_accuracy" for k in config.ks]
