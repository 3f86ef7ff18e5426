"""The listwise ranking tutorial (TFRS ``docs/examples/listwise_ranking.ipynb``) in TFRS and in torchrs.

Ratings become lists (``sample_listwise``: 50 lists of 5 movies per user from the training ratings, 1 per user
from the test ratings, seed 42; with ``--scale`` the 50 shrink alike, see :data:`TRAIN_LISTS_PER_USER`). One ``RankingModel`` per loss, as in the tutorial: ``StringLookup`` (Keras
default ``mask_token=None``) + ``Embedding(len + 2, 32)`` for users and for movies, the user embedding repeated
along the list and concatenated with each movie's, then ``Dense(256, relu) -> Dense(64, relu) -> Dense(1)``
scores every item; ``Ranking(loss, metrics=[NDCGMetric("ndcg_metric"), RootMeanSquaredError()])``;
Adagrad(0.1); batch 8192; test batch 4096; 30 epochs. The three losses of the tutorial are trained side by side:
``tf.keras.losses.MeanSquaredError`` (``mse``), ``tfr.keras.losses.PairwiseHingeLoss`` (``hinge``) and
``tfr.keras.losses.ListMLELoss`` (``listmle``); the TF side runs tensorflow-ranking's own code.

How the three models run in one lock-step run: one ``tfrs.Model`` (one ``trs.Model``) holds the three
``RankingModel``s and its loss is the sum of their losses. Their parameters are disjoint, so the gradient of the
sum with respect to a model's parameters is that model's own gradient, and Adagrad's update is per variable:
each model is trained exactly as if alone, on the same batches. The per-step loss checked is the sum; each
model's own loss is in the logs as ``{name}/loss`` (a ``loss_metrics`` Mean), next to its ``{name}/ndcg_metric``
and ``{name}/root_mean_squared_error``, and its weights and test scores are checked one by one.

Determinism (ListMLE and ties). tfr's ListMLE sorts the items by label and breaks ties *at random on every call*
(``tf.random.uniform`` inside the loss); MovieLens ratings are integers, so 99% of the 5-item lists hold ties,
and TF's random stream cannot be replayed inside Keras ``fit``. So the ListMLE model's loss (only its loss: the
model, its metrics and the other models see the ratings unchanged) receives its lists with the ties broken by
list position, ``rating - 1e-3 * position``: earlier items rank first among equal ratings. ListMLE uses labels
only to order the items (no ``sample_weight`` here), so the loss is exactly the value tfr computes when its
draw orders the ties that way, one of its possible outcomes; since ``sample_listwise`` places the movies of a
list in random order, the tie order is still uniformly random, drawn once per list instead of once per step.
Both frameworks wrap their loss identically (:class:`TieBreak`), and the losses themselves are untouched.

Lock-step feeds both frameworks the same batches: the tutorial's ``train.shuffle(100_000)`` becomes one fixed
NumPy permutation of the training lists (seed 42), applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import nn

import torchrs as trs
from torchrs.data import movielens
from torchrs.examples.movielens import sample_listwise
from torchrs.losses.listwise import ListMLELoss, PairwiseHingeLoss
from torchrs.metrics.ranking import NDCGMetric
from torchrs.preprocessing import StringLookup

# The tutorial's three models: mse_model, hinge_model and listwise_model, in its order.
LOSSES = ("mse", "hinge", "listmle")
# The tutorial's score model: two hidden ReLU layers, then one linear output per item.
HIDDEN_UNITS = (256, 64)
# sample_listwise(train, num_list_per_user=50, num_examples_per_list=5, seed=42); the test split gets 1 list.
# The 50 lists per user are for the tutorial's 80,000 training ratings; a --scale'd split gets proportionally
# fewer (at least 1), so an epoch keeps about the tutorial's number of steps, as in the other scenarios.
TRAIN_LISTS_PER_USER = 50
TEST_LISTS_PER_USER = 1
EXAMPLES_PER_LIST = 5
SAMPLE_SEED = 42
# The tutorial's train.shuffle(100_000) as one fixed permutation of the training lists (same on both sides).
SHUFFLE_SEED = 42
# ListMLE's tie-break: label - step * position. Must stay below (gap between distinct labels) / (list size - 1)
# so it never reorders different ratings: MovieLens ratings differ by >= 0.5 (ml-latest) or 1 (100k / 1m).
TIE_BREAK_STEP = 1e-3
# Embedding(len(vocabulary) + 2, ...) as in the tutorial (one row more than StringLookup's OOV + vocabulary).
EXTRA_EMBEDDING_ROWS = 2


@dataclass(frozen=True)
class ListwiseConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    embedding_dimension: int = 32
    learning_rate: float = 0.1
    batch_size: int = 8192
    test_batch_size: int = 4096
    epochs: int = 30
    losses: tuple[str, ...] = LOSSES
    tie_break_step: float = TIE_BREAK_STEP
    seed: int = 42


CONFIG = ListwiseConfig


@dataclass(frozen=True)
class ListwiseData:
    """Train / test lists (``user_id (N,)``, ``movie_title (N, 5)``, ``user_rating (N, 5)``) and vocabularies."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    movie_titles: np.ndarray
    unique_user_ids: np.ndarray = field(init=False)
    unique_movie_titles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        users = np.concatenate([self.train["user_id"], self.test["user_id"]])
        object.__setattr__(self, "unique_user_ids", np.unique(users))
        object.__setattr__(self, "unique_movie_titles", np.unique(self.movie_titles))


def make_data(train: Any, test: Any, movies: Any) -> ListwiseData:
    """The tutorial's lists from the harness's train / test ``Ratings``; the corpus from the movies table.

    Raises:
        ValueError: ratings so close together that :data:`TIE_BREAK_STEP` could reorder two of them.
    """

    def lists(split: Any, per_user: int) -> dict[str, np.ndarray]:
        ratings = {
            "user_id": np.asarray(split["user_id"]).astype(str),
            "movie_title": np.asarray(split["movie_title"]).astype(str),
            "user_rating": np.asarray(split["user_rating"], np.float32),
        }
        out = sample_listwise(
            ratings,
            num_list_per_user=per_user,
            num_examples_per_list=EXAMPLES_PER_LIST,
            seed=SAMPLE_SEED,
        )
        return {
            name: values.astype(np.float32 if name == "user_rating" else str)
            for name, values in out.items()
        }

    scale = len(np.asarray(train["user_id"])) / movielens.TUTORIAL_TRAIN_SIZE
    train_lists = lists(train, max(1, round(TRAIN_LISTS_PER_USER * scale)))
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(train_lists["user_id"]))
    train_lists = {name: values[order] for name, values in train_lists.items()}
    test_lists = lists(test, TEST_LISTS_PER_USER)
    values = np.unique(
        np.concatenate([train_lists["user_rating"].ravel(), test_lists["user_rating"].ravel()])
    )
    gap = float(np.diff(values).min()) if len(values) > 1 else np.inf
    if TIE_BREAK_STEP * (EXAMPLES_PER_LIST - 1) >= gap:
        raise ValueError(
            f"Ratings {values[:10].tolist()}... are as close as {gap}; the ListMLE tie-break offsets "
            f"(up to {TIE_BREAK_STEP * (EXAMPLES_PER_LIST - 1)}) would reorder them."
        )
    return ListwiseData(train_lists, test_lists, np.asarray(movies["movie_title"]).astype(str))


def columns(data: ListwiseData, split: str) -> dict[str, np.ndarray]:
    """The columns of ``split`` ("train" or "test") as both frameworks consume them."""
    return getattr(data, split)


# ----------------------------------------------------------------------------------------------- torchrs
class TorchTieBreak:
    """Wraps a loss so that it sees ``label - step * position`` (padding, label < 0, left alone).

    Args:
        loss: a Keras-style loss ``loss(y_true, y_pred, sample_weight=None)``.
        step: the offset per list position.
    """

    def __init__(self, loss: Any, step: float) -> None:
        self.loss = loss
        self.step = step

    def __call__(
        self, y_true: torch.Tensor, y_pred: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        positions = torch.arange(y_true.shape[1], dtype=y_true.dtype, device=y_true.device)  # (L,)
        broken = torch.where(y_true >= 0, y_true - self.step * positions, y_true)  # (B, L)
        return self.loss(broken, y_pred, sample_weight=sample_weight)


def _torch_loss(name: str, config: ListwiseConfig) -> Any:
    if name == "mse":
        return trs.losses.MeanSquaredError()
    if name == "hinge":
        return PairwiseHingeLoss()
    return TorchTieBreak(ListMLELoss(), config.tie_break_step)


class TorchRankingModel(trs.Model):
    """The tutorial's ``RankingModel`` in torchrs, its metrics named ``{name}/...``."""

    def __init__(self, name: str, data: ListwiseData, config: ListwiseConfig) -> None:
        super().__init__()
        dim = config.embedding_dimension
        self.user_embeddings = nn.Sequential(
            StringLookup(vocabulary=data.unique_user_ids),
            trs.layers.Embedding(len(data.unique_user_ids) + EXTRA_EMBEDDING_ROWS, dim),
        )
        self.movie_embeddings = nn.Sequential(
            StringLookup(vocabulary=data.unique_movie_titles),
            trs.layers.Embedding(len(data.unique_movie_titles) + EXTRA_EMBEDDING_ROWS, dim),
        )
        self.score_model = nn.Sequential(
            trs.layers.Dense(HIDDEN_UNITS[0], activation="relu", input_dim=2 * dim),
            trs.layers.Dense(HIDDEN_UNITS[1], activation="relu", input_dim=HIDDEN_UNITS[0]),
            trs.layers.Dense(1, input_dim=HIDDEN_UNITS[1]),
        )
        self.task = trs.tasks.Ranking(
            loss=_torch_loss(name, config),
            metrics=[
                NDCGMetric(name=f"{name}/ndcg_metric"),
                trs.metrics.RootMeanSquaredError(name=f"{name}/root_mean_squared_error"),
            ],
            loss_metrics=[trs.metrics.Mean(name=f"{name}/loss")],
        )

    def call(self, features: dict[str, Any]) -> torch.Tensor:
        user_embeddings = self.user_embeddings(features["user_id"])  # (B, 32)
        movie_embeddings = self.movie_embeddings(features["movie_title"])  # (B, L, 32)
        list_length = movie_embeddings.shape[1]
        repeated = user_embeddings.unsqueeze(1).expand(-1, list_length, -1)  # (B, L, 32)
        concatenated = torch.cat([repeated, movie_embeddings], dim=2)  # (B, L, 64)
        return self.score_model(concatenated)  # (B, L, 1)

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        scores = self.call(features)  # (B, L, 1)
        return self.task(labels=features["user_rating"], predictions=scores.squeeze(-1))


class TorchListwiseModels(trs.Model):
    """The tutorial's models side by side; the loss is the sum of theirs (disjoint parameters)."""

    def __init__(self, data: ListwiseData, config: ListwiseConfig) -> None:
        super().__init__()
        self.ranking_models = nn.ModuleDict(
            {name: TorchRankingModel(name, data, config) for name in config.losses}
        )

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        losses = [m.compute_loss(features, training) for m in _ranking_models(self).values()]
        return torch.stack(losses).sum()


def _ranking_models(model: TorchListwiseModels) -> dict[str, TorchRankingModel]:
    # nn.ModuleDict types its values as plain nn.Module; these are the TorchRankingModels built above.
    return {name: cast(TorchRankingModel, m) for name, m in model.ranking_models.items()}


def build_torch(data: ListwiseData, config: ListwiseConfig) -> TorchListwiseModels:
    """Builds the torchrs models, initialised like Keras."""
    _check_losses(config)
    return TorchListwiseModels(data, config)


def torch_parameters(model: TorchListwiseModels) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter (``.kernel`` names hold ``weight [out, in]``)."""
    out = {}
    for name, m in _ranking_models(model).items():
        out[f"{name}.user_embeddings.embedding"] = m.user_embeddings.get_parameter("1.weight")
        out[f"{name}.movie_embeddings.embedding"] = m.movie_embeddings.get_parameter("1.weight")
        for i, layer in enumerate(m.score_model):
            out[f"{name}.score_model.dense_{i}.kernel"] = layer.get_parameter("weight")
            out[f"{name}.score_model.dense_{i}.bias"] = layer.get_parameter("bias")
    return out


def torch_optimizer(params: Any, config: ListwiseConfig) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=config.learning_rate)


@torch.no_grad()
def torch_outputs(
    model: TorchListwiseModels, data: ListwiseData, config: ListwiseConfig, device: torch.device
) -> dict[str, np.ndarray]:
    """Every model's scores of the test lists ``(N, 5)``; the last model's are the "predictions"."""
    test = {
        k: torch.tensor(v, device=device) if v.dtype.kind in "fiu" else v
        for k, v in data.test.items()
    }
    scores = {
        name: m.call(test).squeeze(-1).cpu().numpy() for name, m in _ranking_models(model).items()
    }
    return _outputs(scores, config)


def _outputs(scores: dict[str, np.ndarray], config: ListwiseConfig) -> dict[str, np.ndarray]:
    *others, last = config.losses
    return {
        "predictions": scores[last],
        **{f"{name} test-list scores": scores[name] for name in others},
    }


def _check_losses(config: ListwiseConfig) -> None:
    unknown = [name for name in config.losses if name not in LOSSES]
    if unknown or not config.losses or len(set(config.losses)) != len(config.losses):
        raise ValueError(
            f"ListwiseConfig.losses must be distinct names from {LOSSES}, got {config.losses!r}."
        )


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: ListwiseData, config: ListwiseConfig) -> Any:
    """Builds the tutorial's TFRS models (TensorFlow and tensorflow-ranking imported here, never by torchrs)."""
    from parity._tf import import_tf, import_tfr

    tfrs: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    tfr = import_tfr()
    _check_losses(config)
    tf.keras.utils.set_random_seed(config.seed)
    dim = config.embedding_dimension

    class TieBreak:
        """The TF twin of :class:`TorchTieBreak` (same float32 offsets, same order of operations)."""

        def __init__(self, loss: Any, step: float) -> None:
            self.loss = loss
            self.step = step

        def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            positions = tf.cast(tf.range(tf.shape(y_true)[1]), y_true.dtype)
            broken = tf.where(y_true >= 0, y_true - self.step * positions, y_true)
            return self.loss(broken, y_pred, sample_weight=sample_weight)

    def make_loss(name: str) -> Any:
        if name == "mse":
            return tf.keras.losses.MeanSquaredError()
        if name == "hinge":
            return tfr.losses.PairwiseHingeLoss()
        return TieBreak(tfr.losses.ListMLELoss(), config.tie_break_step)

    class RankingModel(tfrs.Model):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.user_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=data.unique_user_ids),
                    tf.keras.layers.Embedding(
                        len(data.unique_user_ids) + EXTRA_EMBEDDING_ROWS, dim
                    ),
                ]
            )
            self.movie_embeddings = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=data.unique_movie_titles),
                    tf.keras.layers.Embedding(
                        len(data.unique_movie_titles) + EXTRA_EMBEDDING_ROWS, dim
                    ),
                ]
            )
            self.score_model = tf.keras.Sequential(
                [
                    tf.keras.layers.Dense(HIDDEN_UNITS[0], activation="relu"),
                    tf.keras.layers.Dense(HIDDEN_UNITS[1], activation="relu"),
                    tf.keras.layers.Dense(1),
                ]
            )
            self.task = tfrs.tasks.Ranking(
                loss=make_loss(name),
                metrics=[
                    tfr.metrics.NDCGMetric(name=f"{name}/ndcg_metric"),
                    tf.keras.metrics.RootMeanSquaredError(name=f"{name}/root_mean_squared_error"),
                ],
                loss_metrics=[tf.keras.metrics.Mean(name=f"{name}/loss")],
            )

        def call(self, features: dict[str, Any]) -> Any:
            user_embeddings = self.user_embeddings(features["user_id"])
            movie_embeddings = self.movie_embeddings(features["movie_title"])
            list_length = features["movie_title"].shape[1]
            user_embedding_repeated = tf.repeat(
                tf.expand_dims(user_embeddings, 1), [list_length], axis=1
            )
            concatenated_embeddings = tf.concat([user_embedding_repeated, movie_embeddings], 2)
            return self.score_model(concatenated_embeddings)

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            # The tutorial pops "user_rating" from the features; the models here share them, so it is read.
            scores = self(features)
            return self.task(
                labels=features["user_rating"], predictions=tf.squeeze(scores, axis=-1)
            )

    class ListwiseModels(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.ranking_models = {name: RankingModel(name) for name in config.losses}

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            return tf.add_n(
                [m.compute_loss(features, training) for m in self.ranking_models.values()]
            )

    model = ListwiseModels()
    # Build every variable now (Keras builds lazily), on strings, so initial weights can be read before training.
    sample = {k: tf.constant(v[:1]) for k, v in data.train.items()}
    for m in model.ranking_models.values():
        m(sample)
    return model


def tf_variables(model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable (kernels ``[in, out]``)."""
    out = {}
    for name, m in model.ranking_models.items():
        out[f"{name}.user_embeddings.embedding"] = m.user_embeddings.layers[-1].embeddings
        out[f"{name}.movie_embeddings.embedding"] = m.movie_embeddings.layers[-1].embeddings
        for i, layer in enumerate(m.score_model.layers):
            out[f"{name}.score_model.dense_{i}.kernel"] = layer.kernel
            out[f"{name}.score_model.dense_{i}.bias"] = layer.bias
    return out


def tf_optimizer(tf: Any, config: ListwiseConfig) -> Any:
    return tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate)


def tf_outputs(model: Any, data: ListwiseData, config: ListwiseConfig) -> dict[str, np.ndarray]:
    """Every model's scores of the test lists ``(N, 5)``; the last model's are the "predictions"."""
    from parity._tf import import_tf

    tf, _ = import_tf()
    test = {k: tf.constant(v) for k, v in data.test.items()}
    scores = {
        name: tf.squeeze(m(test), axis=-1).numpy() for name, m in model.ranking_models.items()
    }
    return _outputs(scores, config)
