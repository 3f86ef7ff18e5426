"""The context features tutorial (TFRS ``docs/examples/context_features.ipynb``) in TFRS and in torchrs.

Query tower: ``user_id`` (``StringLookup(mask_token=None)`` + ``Embedding(len + 1, 32)``), the timestamp
bucketized (``Discretization`` over 1000 evenly spaced boundaries + ``Embedding(1001, 32)``) and standardised
(``Normalization(axis=None)`` adapted on the timestamps), concatenated, then ``Dense(32)``. Candidate tower: the
title as an id (``StringLookup`` + ``Embedding(len + 1, 32)``) and as text (``TextVectorization(max_tokens=10000)``
adapted on the titles, ``Embedding(10000, 32, mask_zero=True)``, ``GlobalAveragePooling1D``), concatenated, then
``Dense(32)``. ``Retrieval`` with ``FactorizedTopK`` over the movies in batches of 128; Adagrad(0.1); batch 2048;
test batch 4096; 3 epochs (the tutorial's ``use_timestamps=True`` model). Top-K is checked for every test query
(user id and timestamp), since the query depends on the time. Lock-step: the same unshuffled batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.preprocessing import Discretization, Normalization, StringLookup, TextVectorization

# The tutorial's sizes: 1000 timestamp bucket boundaries, a 10,000-token title vocabulary, 32-d everything.
NUM_TIMESTAMP_BOUNDARIES = 1000
MAX_TOKENS = 10_000
EMBEDDING_DIMENSION = 32
# How many candidates the exported index returns per query (the tutorials' ``index(..., k=10)`` default).
TOP_K = 10


@dataclass(frozen=True)
class ContextFeaturesConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    learning_rate: float = 0.1
    batch_size: int = 2048
    test_batch_size: int = 4096
    candidate_batch_size: int = 128
    epochs: int = 3
    seed: int = 42


CONFIG = ContextFeaturesConfig


@dataclass(frozen=True)
class ContextData:
    """Train / test columns (``user_id``, ``movie_title``, ``timestamp``), the corpus, vocabularies, buckets."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    movie_titles: np.ndarray
    timestamps: np.ndarray = field(init=False)
    timestamp_buckets: np.ndarray = field(init=False)
    unique_user_ids: np.ndarray = field(init=False)
    unique_movie_titles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # The tutorial: every rating's timestamp, linspace(min, max, 1000) boundaries, np.unique vocabularies.
        stamps = np.concatenate([self.train["timestamp"], self.test["timestamp"]])
        users = np.concatenate([self.train["user_id"], self.test["user_id"]])
        buckets = np.linspace(stamps.min(), stamps.max(), num=NUM_TIMESTAMP_BOUNDARIES)
        object.__setattr__(self, "timestamps", stamps)
        object.__setattr__(self, "timestamp_buckets", buckets)
        object.__setattr__(self, "unique_user_ids", np.unique(users))
        object.__setattr__(self, "unique_movie_titles", np.unique(self.movie_titles))


def make_data(train: Any, test: Any, movies: Any) -> ContextData:
    """Selects the tutorial's columns from the harness's train / test ``Ratings`` and the movies table."""

    def cols(split: Any) -> dict[str, np.ndarray]:
        return {
            "user_id": np.asarray(split["user_id"]).astype(str),
            "movie_title": np.asarray(split["movie_title"]).astype(str),
            "timestamp": np.asarray(split["timestamp"]).astype(np.int64),
        }

    return ContextData(cols(train), cols(test), np.asarray(movies["movie_title"]).astype(str))


def columns(data: ContextData, split: str) -> dict[str, np.ndarray]:
    """The columns of ``split`` ("train" or "test") as both frameworks consume them."""
    return getattr(data, split)


# ----------------------------------------------------------------------------------------------- torchrs
class TorchUserModel(nn.Module):
    """The tutorial's ``UserModel(use_timestamps=True)``."""

    def __init__(self, data: ContextData) -> None:
        super().__init__()
        dim = EMBEDDING_DIMENSION
        self.user_embedding = nn.Sequential(
            StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
            trs.layers.Embedding(len(data.unique_user_ids) + 1, dim),
        )
        self.timestamp_embedding = nn.Sequential(
            Discretization(data.timestamp_buckets.tolist()),
            trs.layers.Embedding(len(data.timestamp_buckets) + 1, dim),
        )
        self.normalized_timestamp = Normalization(axis=None)
        self.normalized_timestamp.adapt(data.timestamps)

    def forward(self, inputs: dict[str, Any]) -> torch.Tensor:
        return torch.cat(
            [
                self.user_embedding(inputs["user_id"]),  # (B, 32)
                self.timestamp_embedding(inputs["timestamp"]),  # (B, 32)
                torch.reshape(self.normalized_timestamp(inputs["timestamp"]), (-1, 1)),  # (B, 1)
            ],
            dim=1,
        )  # (B, 65)


class TorchMovieModel(nn.Module):
    """The tutorial's ``MovieModel``: title id embedding and bag-of-words title text embedding."""

    def __init__(self, data: ContextData) -> None:
        super().__init__()
        dim = EMBEDDING_DIMENSION
        self.title_embedding = nn.Sequential(
            StringLookup(vocabulary=data.unique_movie_titles, mask_token=None),
            trs.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
        )
        self.title_vectorizer = TextVectorization(max_tokens=MAX_TOKENS)
        self.title_vectorizer.adapt(data.movie_titles)
        self.title_text_embedding = trs.layers.Embedding(MAX_TOKENS, dim, mask_zero=True)

    def forward(self, titles: Any) -> torch.Tensor:
        tokens = self.title_vectorizer(titles)  # (B, T), 0 = padding
        mask = (tokens != 0).unsqueeze(-1).to(torch.float32)  # (B, T, 1)
        # Keras GlobalAveragePooling1D under mask_zero=True: the mean over the unmasked tokens only.
        bag = (self.title_text_embedding(tokens) * mask).sum(dim=1) / mask.sum(dim=1)  # (B, 32)
        return torch.cat([self.title_embedding(titles), bag], dim=1)  # (B, 64)


class TorchContextModel(trs.Model):
    """The tutorial's ``MovielensModel(use_timestamps=True)`` in torchrs."""

    def __init__(self, data: ContextData, config: ContextFeaturesConfig) -> None:
        super().__init__()
        dim = EMBEDDING_DIMENSION
        self.query_model = nn.Sequential(
            TorchUserModel(data), trs.layers.Dense(dim, input_dim=2 * dim + 1)
        )
        self.candidate_model = nn.Sequential(
            TorchMovieModel(data), trs.layers.Dense(dim, input_dim=2 * dim)
        )
        step = config.candidate_batch_size
        corpus = [data.movie_titles[i : i + step] for i in range(0, len(data.movie_titles), step)]
        self.task = trs.tasks.Retrieval(
            metrics=trs.metrics.FactorizedTopK(
                candidates=trs.data.map_batches(corpus, self.candidate_model)
            )
        )

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        query = self.query_model(
            {"user_id": features["user_id"], "timestamp": features["timestamp"]}
        )  # (B, 32)
        movie = self.candidate_model(features["movie_title"])  # (B, 32)
        return self.task(query, movie, compute_metrics=not training)


def build_torch(data: ContextData, config: ContextFeaturesConfig) -> TorchContextModel:
    """Builds the torchrs model, initialised like Keras."""
    return TorchContextModel(data, config)


def torch_parameters(model: TorchContextModel) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter (``.kernel`` names hold ``weight [out, in]``)."""
    # query: TorchUserModel, Dense; candidate: TorchMovieModel, Dense. Their id and timestamp towers:
    # lookup, embedding.
    query, candidate = model.query_model, model.candidate_model
    return {
        "query.user_embedding": query.get_parameter("0.user_embedding.1.weight"),
        "query.timestamp_embedding": query.get_parameter("0.timestamp_embedding.1.weight"),
        "query.dense.kernel": query.get_parameter("1.weight"),
        "query.dense.bias": query.get_parameter("1.bias"),
        "candidate.title_embedding": candidate.get_parameter("0.title_embedding.1.weight"),
        "candidate.title_text_embedding": candidate.get_parameter("0.title_text_embedding.weight"),
        "candidate.dense.kernel": candidate.get_parameter("1.weight"),
        "candidate.dense.bias": candidate.get_parameter("1.bias"),
    }


def torch_optimizer(params: Any, config: ContextFeaturesConfig) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=config.learning_rate)


@torch.no_grad()
def torch_outputs(
    model: TorchContextModel, data: ContextData, config: ContextFeaturesConfig, device: torch.device
) -> dict[str, Any]:
    """Top-K scores and ids for every test query (user id and timestamp) from a BruteForce index."""
    index = trs.layers.factorized_top_k.BruteForce(model.query_model, k=TOP_K)
    index.index(model.candidate_model(data.movie_titles), data.movie_titles)
    queries = {
        "user_id": data.test["user_id"],
        "timestamp": torch.tensor(data.test["timestamp"], device=device),
    }
    scores, ids = index(queries)
    return {"predictions": scores.cpu().numpy(), "top_k_ids": np.asarray(ids).astype(str)}


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: ContextData, config: ContextFeaturesConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tf: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tfrs: Any
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim = EMBEDDING_DIMENSION

    class UserModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_embedding = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
                    tf.keras.layers.Embedding(len(data.unique_user_ids) + 1, dim),
                ]
            )
            self.timestamp_embedding = tf.keras.Sequential(
                [
                    tf.keras.layers.Discretization(data.timestamp_buckets.tolist()),
                    tf.keras.layers.Embedding(len(data.timestamp_buckets) + 1, dim),
                ]
            )
            self.normalized_timestamp = tf.keras.layers.Normalization(axis=None)
            self.normalized_timestamp.adapt(data.timestamps)

        def call(self, inputs: Any) -> Any:
            return tf.concat(
                [
                    self.user_embedding(inputs["user_id"]),
                    self.timestamp_embedding(inputs["timestamp"]),
                    tf.reshape(self.normalized_timestamp(inputs["timestamp"]), (-1, 1)),
                ],
                axis=1,
            )

    class MovieModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.title_embedding = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(
                        vocabulary=data.unique_movie_titles, mask_token=None
                    ),
                    tf.keras.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
                ]
            )
            self.title_vectorizer = tf.keras.layers.TextVectorization(max_tokens=MAX_TOKENS)
            self.title_text_embedding = tf.keras.Sequential(
                [
                    self.title_vectorizer,
                    tf.keras.layers.Embedding(MAX_TOKENS, dim, mask_zero=True),
                    tf.keras.layers.GlobalAveragePooling1D(),
                ]
            )
            self.title_vectorizer.adapt(data.movie_titles)

        def call(self, titles: Any) -> Any:
            return tf.concat(
                [self.title_embedding(titles), self.title_text_embedding(titles)], axis=1
            )

    class MovielensModel(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.query_model = tf.keras.Sequential([UserModel(), tf.keras.layers.Dense(dim)])
            self.candidate_model = tf.keras.Sequential([MovieModel(), tf.keras.layers.Dense(dim)])
            movies = tf.data.Dataset.from_tensor_slices(data.movie_titles)
            self.task = tfrs.tasks.Retrieval(
                metrics=tfrs.metrics.FactorizedTopK(
                    candidates=movies.batch(config.candidate_batch_size).map(self.candidate_model)
                )
            )

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            query = self.query_model(
                {"user_id": features["user_id"], "timestamp": features["timestamp"]}
            )
            movie = self.candidate_model(features["movie_title"])
            return self.task(query, movie, compute_metrics=not training)

    model = MovielensModel()
    # Build every variable now (Keras builds lazily), so initial weights can be read before training.
    model.query_model(
        {
            "user_id": tf.constant(data.train["user_id"][:1]),
            "timestamp": tf.constant(data.train["timestamp"][:1]),
        }
    )
    model.candidate_model(tf.constant(data.movie_titles[:1]))
    return model


def tf_variables(model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable (kernels ``[in, out]``)."""
    user, query_dense = model.query_model.layers
    movie, candidate_dense = model.candidate_model.layers
    return {
        "query.user_embedding": user.user_embedding.layers[-1].embeddings,
        "query.timestamp_embedding": user.timestamp_embedding.layers[-1].embeddings,
        "query.dense.kernel": query_dense.kernel,
        "query.dense.bias": query_dense.bias,
        "candidate.title_embedding": movie.title_embedding.layers[-1].embeddings,
        "candidate.title_text_embedding": movie.title_text_embedding.layers[1].embeddings,
        "candidate.dense.kernel": candidate_dense.kernel,
        "candidate.dense.bias": candidate_dense.bias,
    }


def tf_optimizer(tf: Any, config: ContextFeaturesConfig) -> Any:
    return tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate)


def tf_outputs(model: Any, data: ContextData, config: ContextFeaturesConfig) -> dict[str, Any]:
    """Top-K scores and ids for every test query (user id and timestamp) from a BruteForce index."""
    from parity._tf import import_tf

    tf, tfrs = import_tf()
    index = tfrs.layers.factorized_top_k.BruteForce(model.query_model, k=TOP_K)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices(data.movie_titles)
        .batch(config.candidate_batch_size)
        .map(lambda t: (t, model.candidate_model(t)))
    )
    scores, ids = index(
        {
            "user_id": tf.constant(data.test["user_id"]),
            "timestamp": tf.constant(data.test["timestamp"]),
        }
    )
    return {
        "predictions": scores.numpy(),
        "top_k_ids": np.char.decode(ids.numpy().astype(bytes), "utf-8"),
    }
