"""The basic ranking tutorial (TFRS ``docs/examples/basic_ranking.ipynb``) in TFRS and in torchrs.

``RankingModel``: ``StringLookup(mask_token=None)`` + ``Embedding(len + 1, 32)`` for ``user_id`` and
``movie_title``, concatenated, then ``Dense(256, relu)``, ``Dense(64, relu)``, ``Dense(1)``. The task is
``Ranking(loss=MeanSquaredError(), metrics=[RootMeanSquaredError()])``; Adagrad(0.1); batch 8192; 3 epochs;
test batch 4096. The tutorial shuffles the training set before batching; lock-step parity feeds both frameworks
the same unshuffled batches instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.preprocessing.string_lookup import StringLookup

# The tutorial's tower: two hidden ReLU layers then one linear output (the predicted rating).
HIDDEN_UNITS = (256, 64)


@dataclass(frozen=True)
class BasicRankingConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    embedding_dimension: int = 32
    learning_rate: float = 0.1
    batch_size: int = 8192
    test_batch_size: int = 4096
    epochs: int = 3
    seed: int = 42


@dataclass(frozen=True)
class RankingData:
    """The rated (user, movie) pairs both frameworks train and evaluate on, already split and ordered."""

    train_user_ids: np.ndarray
    train_movie_titles: np.ndarray
    train_ratings: np.ndarray
    test_user_ids: np.ndarray
    test_movie_titles: np.ndarray
    test_ratings: np.ndarray
    unique_user_ids: np.ndarray = field(init=False)
    unique_movie_titles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # The tutorial's vocabularies: np.unique over the ratings' titles and user ids (train and test).
        titles = np.concatenate([self.train_movie_titles, self.test_movie_titles]).astype(str)
        users = np.concatenate([self.train_user_ids, self.test_user_ids]).astype(str)
        object.__setattr__(self, "unique_movie_titles", np.unique(titles))
        object.__setattr__(self, "unique_user_ids", np.unique(users))


# ----------------------------------------------------------------------------------------------- torchrs
class TorchRankingModel(nn.Module):
    """The tutorial's ``RankingModel`` (embeddings + MLP) in torch."""

    def __init__(self, data: RankingData, config: BasicRankingConfig) -> None:
        super().__init__()
        dim = config.embedding_dimension
        self.user_embeddings = nn.Sequential(
            StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
            trs.layers.Embedding(len(data.unique_user_ids) + 1, dim),
        )
        self.movie_embeddings = nn.Sequential(
            StringLookup(vocabulary=data.unique_movie_titles, mask_token=None),
            trs.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
        )
        dense = trs.layers.Dense
        self.ratings = nn.Sequential(
            dense(HIDDEN_UNITS[0], activation="relu", input_dim=2 * dim),
            dense(HIDDEN_UNITS[1], activation="relu", input_dim=HIDDEN_UNITS[0]),
            dense(1, input_dim=HIDDEN_UNITS[1]),
        )

    def forward(self, user_id: Any, movie_title: Any) -> torch.Tensor:
        user = self.user_embeddings(user_id)  # (B, D)
        movie = self.movie_embeddings(movie_title)  # (B, D)
        return self.ratings(torch.cat([user, movie], dim=1))  # (B, 1)


class TorchMovielensRankingModel(trs.Model):
    """The tutorial's ``MovielensModel`` (ranking model + ``Ranking`` task) in torchrs."""

    def __init__(self, ranking_model: TorchRankingModel, task: trs.tasks.Ranking) -> None:
        super().__init__()
        self.ranking_model = ranking_model
        self.task = task

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        predictions = self.ranking_model(features["user_id"], features["movie_title"])  # (B, 1)
        return self.task(labels=features["user_rating"], predictions=predictions)


def build_torch(data: RankingData, config: BasicRankingConfig) -> TorchMovielensRankingModel:
    """Builds the torchrs model, initialised like Keras (uniform embeddings, glorot kernels)."""
    task = trs.tasks.Ranking(
        loss=trs.losses.MeanSquaredError(), metrics=[trs.metrics.RootMeanSquaredError()]
    )
    return TorchMovielensRankingModel(TorchRankingModel(data, config), task)


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: RankingData, config: BasicRankingConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tf: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tfrs: Any
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim = config.embedding_dimension

    class RankingModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=data.unique_user_ids, mask_token=None),
                    tf.keras.layers.Embedding(len(data.unique_user_ids) + 1, dim),
                ]
            )
            self.movie_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(
                        vocabulary=data.unique_movie_titles, mask_token=None
                    ),
                    tf.keras.layers.Embedding(len(data.unique_movie_titles) + 1, dim),
                ]
            )
            self.ratings = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(HIDDEN_UNITS[0], activation="relu"),
                    tf.keras.layers.Dense(HIDDEN_UNITS[1], activation="relu"),
                    tf.keras.layers.Dense(1),
                ]
            )

        def call(self, inputs: Any) -> Any:
            user_id, movie_title = inputs
            user = self.user_embeddings(user_id)
            movie = self.movie_embeddings(movie_title)
            return self.ratings(tf.concat([user, movie], axis=1))

    class MovielensModel(tfrs.models.Model):
        def __init__(self) -> None:
            super().__init__()
            self.ranking_model = RankingModel()
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError()],
            )

        def call(self, features: dict[str, Any]) -> Any:
            # The tutorial's serving signature: tf.saved_model.save(model) then loaded(features).
            return self.ranking_model((features["user_id"], features["movie_title"]))

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            predictions = self.ranking_model((features["user_id"], features["movie_title"]))
            return self.task(labels=features["user_rating"], predictions=predictions)

    model = MovielensModel()
    # Build every variable now (Keras builds lazily), so initial weights can be read before training.
    model.ranking_model(
        (tf.constant(data.unique_user_ids[:1]), tf.constant(data.unique_movie_titles[:1]))
    )
    return model
