"""The multi-task tutorial (TFRS ``docs/examples/multitask.ipynb``) in TFRS and in torchrs.

User and movie towers (``StringLookup(mask_token=None)`` + ``Embedding(len + 1, 32)``) shared by a retrieval
task (``Retrieval`` with ``FactorizedTopK`` over the movie corpus in batches of 128) and a rating task
(``Ranking(MSE, metrics=[RootMeanSquaredError()])`` on ``Dense(256, relu) -> Dense(128, relu) -> Dense(1)`` over
the concatenated embeddings). Loss ``rating_weight * rating_loss + retrieval_weight * retrieval_loss`` (the joint
model: 1.0 and 1.0); Adagrad(0.1); batch 8192; test batch 4096; 3 epochs. Like the basic retrieval scenario the
top-K metrics are computed in evaluation only (``compute_metrics=not training``), which leaves the losses as they
are. Lock-step parity feeds both frameworks the same unshuffled batches.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.preprocessing import StringLookup

# The tutorial's rating tower: two hidden ReLU layers then one linear output.
HIDDEN_UNITS = (256, 128)
# How many candidates the exported index returns per user (the tutorials' ``index(..., k=10)`` default).
TOP_K = 10


@dataclass(frozen=True)
class MultitaskConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's joint model."""

    embedding_dimension: int = 32
    learning_rate: float = 0.1
    batch_size: int = 8192
    test_batch_size: int = 4096
    candidate_batch_size: int = 128
    epochs: int = 3
    rating_weight: float = 1.0
    retrieval_weight: float = 1.0
    seed: int = 42


CONFIG = MultitaskConfig


@dataclass(frozen=True)
class MultitaskData:
    """Train / test columns (``user_id``, ``movie_title``, ``user_rating``), the corpus and the vocabularies."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    movie_titles: np.ndarray
    unique_user_ids: np.ndarray = field(init=False)
    unique_movie_titles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        users = np.concatenate([self.train["user_id"], self.test["user_id"]])
        object.__setattr__(self, "unique_user_ids", np.unique(users))
        object.__setattr__(self, "unique_movie_titles", np.unique(self.movie_titles))


def make_data(train: Any, test: Any, movies: Any) -> MultitaskData:
    """Selects the tutorial's columns from the harness's train / test ``Ratings`` and the movies table."""

    def cols(split: Any) -> dict[str, np.ndarray]:
        return {
            "user_id": np.asarray(split["user_id"]).astype(str),
            "movie_title": np.asarray(split["movie_title"]).astype(str),
            "user_rating": np.asarray(split["user_rating"], np.float32),
        }

    return MultitaskData(cols(train), cols(test), np.asarray(movies["movie_title"]).astype(str))


def columns(data: MultitaskData, split: str) -> dict[str, np.ndarray]:
    """The columns of ``split`` ("train" or "test") as both frameworks consume them."""
    return getattr(data, split)


# ----------------------------------------------------------------------------------------------- torchrs
class TorchMultitaskModel(trs.Model):
    """The tutorial's ``MovielensModel(rating_weight, retrieval_weight)`` in torchrs."""

    def __init__(self, data: MultitaskData, config: MultitaskConfig) -> None:
        super().__init__()
        dim = config.embedding_dimension
        self.movie_model = nn.Sequential(
            StringLookup(vocabulary=data.unique_movie_titles, mask_token=None),
            trs.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
        )
        self.user_model = nn.Sequential(
            StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
            trs.layers.Embedding(len(data.unique_user_ids) + 1, dim),
        )
        sizes = (2 * dim, *HIDDEN_UNITS)
        self.rating_model = nn.Sequential(
            *[
                trs.layers.Dense(out, activation="relu", input_dim=inp)
                for inp, out in itertools.pairwise(sizes)
            ],
            trs.layers.Dense(1, input_dim=sizes[-1]),
        )
        self.rating_task = trs.tasks.Ranking(
            loss=trs.losses.MeanSquaredError(), metrics=[trs.metrics.RootMeanSquaredError()]
        )
        step = config.candidate_batch_size
        corpus = [data.movie_titles[i : i + step] for i in range(0, len(data.movie_titles), step)]
        self.retrieval_task = trs.tasks.Retrieval(
            metrics=trs.metrics.FactorizedTopK(
                candidates=trs.data.map_batches(corpus, self.movie_model)
            )
        )
        self.rating_weight = config.rating_weight
        self.retrieval_weight = config.retrieval_weight

    def call(self, features: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        user = self.user_model(features["user_id"])  # (B, D)
        movie = self.movie_model(features["movie_title"])  # (B, D)
        return user, movie, self.rating_model(torch.cat([user, movie], dim=1))  # (B, 1)

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        user, movie, rating = self.call(features)
        rating_loss = self.rating_task(labels=features["user_rating"], predictions=rating)
        retrieval_loss = self.retrieval_task(user, movie, compute_metrics=not training)
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss


def build_torch(data: MultitaskData, config: MultitaskConfig) -> TorchMultitaskModel:
    """Builds the torchrs model, initialised like Keras."""
    return TorchMultitaskModel(data, config)


def torch_parameters(model: TorchMultitaskModel) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter (``.kernel`` names hold ``weight [out, in]``)."""
    # Each tower: lookup, embedding.
    out = {
        "user_model.embedding": model.user_model.get_parameter("1.weight"),
        "movie_model.embedding": model.movie_model.get_parameter("1.weight"),
    }
    for i, layer in enumerate(model.rating_model):
        out[f"rating_model.dense_{i}.kernel"] = layer.get_parameter("weight")
        out[f"rating_model.dense_{i}.bias"] = layer.get_parameter("bias")
    return out


def torch_optimizer(params: Any, config: MultitaskConfig) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=config.learning_rate)


@torch.no_grad()
def torch_outputs(
    model: TorchMultitaskModel, data: MultitaskData, config: MultitaskConfig, device: torch.device
) -> dict[str, Any]:
    """Top-K scores and ids of every user from a BruteForce index; rating predictions of every test pair."""
    index = trs.layers.factorized_top_k.BruteForce(model.user_model, k=TOP_K)
    index.index(model.movie_model(data.movie_titles), data.movie_titles)
    scores, ids = index(data.unique_user_ids)
    test = {"user_id": data.test["user_id"], "movie_title": data.test["movie_title"]}
    ratings = model.call(test)[2]  # (N, 1)
    return {
        "predictions": scores.cpu().numpy(),
        "top_k_ids": np.asarray(ids).astype(str),
        "rating predictions": ratings.cpu().numpy().reshape(-1),
    }


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: MultitaskData, config: MultitaskConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tfrs: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim = config.embedding_dimension

    class MovielensModel(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.movie_model = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(
                        vocabulary=data.unique_movie_titles, mask_token=None
                    ),
                    tf.keras.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
                ]
            )
            self.user_model = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
                    tf.keras.layers.Embedding(len(data.unique_user_ids) + 1, dim),
                ]
            )
            self.rating_model = tf.keras.Sequential(
                [tf.keras.layers.Dense(n, activation="relu") for n in HIDDEN_UNITS]
                + [tf.keras.layers.Dense(1)]
            )
            self.rating_task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()],
            )
            movies = tf.data.Dataset.from_tensor_slices(data.movie_titles)
            self.retrieval_task = tfrs.tasks.Retrieval(
                metrics=tfrs.metrics.FactorizedTopK(
                    candidates=movies.batch(config.candidate_batch_size).map(self.movie_model)
                )
            )

        def call(self, features: dict[str, Any]) -> Any:
            user = self.user_model(features["user_id"])
            movie = self.movie_model(features["movie_title"])
            return user, movie, self.rating_model(tf.concat([user, movie], axis=1))

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            user, movie, rating = self(features)
            rating_loss = self.rating_task(labels=features["user_rating"], predictions=rating)
            retrieval_loss = self.retrieval_task(user, movie, compute_metrics=not training)
            return config.rating_weight * rating_loss + config.retrieval_weight * retrieval_loss

    model = MovielensModel()
    # Build every variable now (Keras builds lazily), so initial weights can be read before training.
    model({k: tf.constant(v[:1]) for k, v in data.train.items()})
    return model


def tf_variables(model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable (kernels ``[in, out]``)."""
    out = {
        "user_model.embedding": model.user_model.layers[-1].embeddings,
        "movie_model.embedding": model.movie_model.layers[-1].embeddings,
    }
    for i, layer in enumerate(model.rating_model.layers):
        out[f"rating_model.dense_{i}.kernel"] = layer.kernel
        out[f"rating_model.dense_{i}.bias"] = layer.bias
    return out


def tf_optimizer(tf: Any, config: MultitaskConfig) -> Any:
    return tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate)


def tf_outputs(model: Any, data: MultitaskData, config: MultitaskConfig) -> dict[str, Any]:
    """Top-K scores and ids of every user from a BruteForce index; rating predictions of every test pair."""
    from parity._tf import import_tf

    tf, tfrs = import_tf()
    index = tfrs.layers.factorized_top_k.BruteForce(model.user_model, k=TOP_K)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices(data.movie_titles)
        .batch(config.candidate_batch_size)
        .map(lambda t: (t, model.movie_model(t)))
    )
    scores, ids = index(tf.constant(data.unique_user_ids))
    test = {
        "user_id": tf.constant(data.test["user_id"]),
        "movie_title": tf.constant(data.test["movie_title"]),
    }
    return {
        "predictions": scores.numpy(),
        "top_k_ids": np.char.decode(ids.numpy().astype(bytes), "utf-8"),
        "rating predictions": model(test)[2].numpy().reshape(-1),
    }
