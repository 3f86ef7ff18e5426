"""The sequential retrieval tutorial (TFRS ``docs/examples/sequential_retrieval.ipynb``) in TFRS and in torchrs.

Query tower: the last 10 movies watched (``StringLookup(mask_token=None)`` -> ``Embedding(len + 1, 32)`` ->
``GRU(32)``); candidate tower: the next movie (``StringLookup`` -> ``Embedding(len + 1, 32)``). ``Retrieval`` with
``FactorizedTopK`` over the movies in batches of 128; Adagrad(0.1); batch 12800; test batch 2560; 3 epochs.

Examples as TF Models' ``example_generation_movielens.py`` builds them, from the harness's ratings (train and test
rows together): each user's ratings by time form a timeline (users with < 3 ratings skipped); each movie after the
first is a label whose context is the up to 10 movies before it, padded at the end with movie id "0"; the
examples are shuffled (seed 42) and 90% train, 10% test.

torchrs uses ``torch.nn.GRU``: the same equations as Keras 2's ``GRU(reset_after=True)`` with gates stored in
the order (r, z, n) where Keras stores (z, r, h), kernels transposed, and Keras's ``bias`` of shape (2, 3 * units)
split into ``bias_ih`` / ``bias_hh``; `keras_to_torch` / `torch_to_keras` do that conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from converters.tfrs_to_torch import rules
from torchrs.preprocessing import StringLookup

# example_generation_movielens.py defaults used by the tutorial.
MAX_CONTEXT_LENGTH = 10
MIN_TIMELINE_LENGTH = 3
TRAIN_DATA_FRACTION = 0.9
# Padding of short contexts: movie id 0, read as a string by the tutorial.
PAD_MOVIE_ID = "0"
EMBEDDING_DIMENSION = 32
# How many candidates the exported index returns per query (the tutorials' ``index(..., k=10)`` default).
TOP_K = 10
# Seed of the example shuffle before the train / test split.
EXAMPLES_SEED = 42


@dataclass(frozen=True)
class SequentialRetrievalConfig:
    """Hyper-parameters of the tutorial; the defaults are the tutorial's."""

    learning_rate: float = 0.1
    batch_size: int = 12800
    test_batch_size: int = 2560
    candidate_batch_size: int = 128
    epochs: int = 3
    seed: int = 42


CONFIG = SequentialRetrievalConfig


@dataclass(frozen=True)
class SequenceData:
    """Train / test examples (``context_movie_id`` (N, 10), ``label_movie_id`` (N,)) and the movie corpus."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    movie_ids: np.ndarray
    unique_movie_ids: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unique_movie_ids", np.unique(self.movie_ids))


def _examples(users: np.ndarray, movies: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
    order = np.lexsort((times, users))  # by user, then by time
    users, movies = users[order], movies[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    contexts, labels = [], []
    for start, end in zip(starts, ends, strict=True):
        timeline = movies[start:end].tolist()
        if len(timeline) < MIN_TIMELINE_LENGTH:
            continue
        for i in range(1, len(timeline)):
            context = timeline[max(0, i - MAX_CONTEXT_LENGTH) : i]
            contexts.append(context + [PAD_MOVIE_ID] * (MAX_CONTEXT_LENGTH - len(context)))
            labels.append(timeline[i])
    return {
        "context_movie_id": np.array(contexts, dtype=str),  # (N, 10)
        "label_movie_id": np.array(labels, dtype=str),  # (N,)
    }


def make_data(train: Any, test: Any, movies: Any) -> SequenceData:
    """Builds the tutorial's examples from all the harness's ratings, then its own 90 / 10 split."""

    def col(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(train[name]), np.asarray(test[name])])

    examples = _examples(col("user_id").astype(str), col("movie_id").astype(str), col("timestamp"))
    shuffled = np.random.default_rng(EXAMPLES_SEED).permutation(len(examples["label_movie_id"]))
    cut = round(len(shuffled) * TRAIN_DATA_FRACTION)
    return SequenceData(
        {k: v[shuffled[:cut]] for k, v in examples.items()},
        {k: v[shuffled[cut:]] for k, v in examples.items()},
        np.asarray(movies["movie_id"]).astype(str),
    )


def columns(data: SequenceData, split: str) -> dict[str, np.ndarray]:
    """The columns of ``split`` ("train" or "test") as both frameworks consume them."""
    return getattr(data, split)


# ----------------------------------------------------------------------------------------------- torchrs
class LastStateGRU(nn.Module):
    """``tf.keras.layers.GRU(units)`` (``return_sequences=False``): ``torch.nn.GRU``'s last hidden state."""

    def __init__(self, input_size: int, units: int) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size, units, batch_first=True)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(sequences)  # (B, T, D) -> (1, B, units)
        return last[0]  # (B, units)


class TorchSequentialModel(trs.Model):
    """The tutorial's ``Model`` in torchrs."""

    def __init__(self, data: SequenceData, config: SequentialRetrievalConfig) -> None:
        super().__init__()
        dim, vocab = EMBEDDING_DIMENSION, data.unique_movie_ids
        self._query_model = nn.Sequential(
            StringLookup(vocabulary=vocab, mask_token=None),
            trs.layers.Embedding(len(vocab) + 1, dim),
            LastStateGRU(dim, dim),
        )
        self._candidate_model = nn.Sequential(
            StringLookup(vocabulary=vocab, mask_token=None),
            trs.layers.Embedding(len(vocab) + 1, dim),
        )
        step = config.candidate_batch_size
        corpus = [data.movie_ids[i : i + step] for i in range(0, len(data.movie_ids), step)]
        self._task = trs.tasks.Retrieval(
            metrics=trs.metrics.FactorizedTopK(
                candidates=trs.data.map_batches(corpus, self._candidate_model)
            )
        )

    def compute_loss(self, features: dict[str, Any], training: bool = False) -> torch.Tensor:
        query = self._query_model(features["context_movie_id"])  # (B, 32)
        candidate = self._candidate_model(features["label_movie_id"])  # (B, 32)
        return self._task(query, candidate, compute_metrics=not training)


def build_torch(data: SequenceData, config: SequentialRetrievalConfig) -> TorchSequentialModel:
    """Builds the torchrs model (Keras-like embeddings; the GRU's weights come from TF in lock-step)."""
    return TorchSequentialModel(data, config)


def torch_parameters(model: TorchSequentialModel) -> dict[str, nn.Parameter]:
    """Canonical name -> torch parameter, GRU in torch layout (see `keras_to_torch`)."""
    # query: lookup, embedding, LastStateGRU; candidate: lookup, embedding.
    query, candidate = model._query_model, model._candidate_model
    return {
        "query.embedding": query.get_parameter("1.weight"),
        "query.gru.weight_ih": query.get_parameter("2.gru.weight_ih_l0"),
        "query.gru.weight_hh": query.get_parameter("2.gru.weight_hh_l0"),
        "query.gru.bias_ih": query.get_parameter("2.gru.bias_ih_l0"),
        "query.gru.bias_hh": query.get_parameter("2.gru.bias_hh_l0"),
        "candidate.embedding": candidate.get_parameter("1.weight"),
    }


def keras_to_torch(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras GRU ``kernel`` [in, 3u], ``recurrent_kernel`` [u, 3u], ``bias`` [2, 3u] -> torch GRU tensors, by the
    converter's rules (:func:`converters.tfrs_to_torch.rules.keras_gru_to_torch`: gates (z, r, h) -> (r, z, n))."""
    out = {k: v for k, v in weights.items() if not k.startswith("query.gru.")}
    units = weights["query.gru.recurrent_kernel"].shape[0]
    out["query.gru.weight_ih"] = rules.keras_gru_to_torch(weights["query.gru.kernel"], units)
    out["query.gru.weight_hh"] = rules.keras_gru_to_torch(
        weights["query.gru.recurrent_kernel"], units
    )
    bias = weights["query.gru.bias"]  # (2, 3u): input bias, recurrent bias (reset_after=True)
    out["query.gru.bias_ih"] = rules.keras_gru_to_torch(bias[0], units)
    out["query.gru.bias_hh"] = rules.keras_gru_to_torch(bias[1], units)
    return out


def torch_to_keras(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of `keras_to_torch` (:func:`converters.tfrs_to_torch.rules.torch_gru_to_keras`)."""
    out = {k: v for k, v in weights.items() if not k.startswith("query.gru.")}
    units = weights["query.gru.weight_hh"].shape[1]
    out["query.gru.kernel"] = rules.torch_gru_to_keras(weights["query.gru.weight_ih"], units)
    out["query.gru.recurrent_kernel"] = rules.torch_gru_to_keras(
        weights["query.gru.weight_hh"], units
    )
    out["query.gru.bias"] = np.stack(
        [
            rules.torch_gru_to_keras(weights["query.gru.bias_ih"], units),
            rules.torch_gru_to_keras(weights["query.gru.bias_hh"], units),
        ]
    )
    return out


def torch_optimizer(params: Any, config: SequentialRetrievalConfig) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=config.learning_rate)


@torch.no_grad()
def torch_outputs(
    model: TorchSequentialModel,
    data: SequenceData,
    config: SequentialRetrievalConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Top-K scores and ids for every test context from a BruteForce index."""
    index = trs.layers.factorized_top_k.BruteForce(model._query_model, k=TOP_K)
    index.index(model._candidate_model(data.movie_ids), data.movie_ids)
    scores, ids = index(data.test["context_movie_id"])
    return {"predictions": scores.cpu().numpy(), "top_k_ids": np.asarray(ids).astype(str)}


# -------------------------------------------------------------------------------------------------- TFRS
def build_tf(data: SequenceData, config: SequentialRetrievalConfig) -> Any:
    """Builds the tutorial's TFRS model (TensorFlow imported here, never by torchrs)."""
    from parity._tf import import_tf

    tfrs: Any  # declared Any (TF has no type stubs) so that mypy accepts TF base classes
    tf, tfrs = import_tf()
    tf.keras.utils.set_random_seed(config.seed)
    dim, vocab = EMBEDDING_DIMENSION, data.unique_movie_ids
    query_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocab, mask_token=None),
            tf.keras.layers.Embedding(len(vocab) + 1, dim),
            tf.keras.layers.GRU(dim),
        ]
    )
    candidate_model = tf.keras.Sequential(
        [
            tf.keras.layers.StringLookup(vocabulary=vocab, mask_token=None),
            tf.keras.layers.Embedding(len(vocab) + 1, dim),
        ]
    )
    movies = tf.data.Dataset.from_tensor_slices(data.movie_ids)
    task = tfrs.tasks.Retrieval(
        metrics=tfrs.metrics.FactorizedTopK(
            candidates=movies.batch(config.candidate_batch_size).map(candidate_model)
        )
    )

    class Model(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self._query_model = query_model
            self._candidate_model = candidate_model
            self._task = task

        def compute_loss(self, features: dict[str, Any], training: bool = False) -> Any:
            query = self._query_model(features["context_movie_id"])
            candidate = self._candidate_model(features["label_movie_id"])
            return self._task(query, candidate, compute_metrics=not training)

    model = Model()
    # Build every variable now (Keras builds lazily), so initial weights can be read before training.
    query_model(tf.constant(data.train["context_movie_id"][:1]))
    candidate_model(tf.constant(data.movie_ids[:1]))
    return model


def tf_variables(model: Any) -> dict[str, Any]:
    """Canonical name -> Keras variable (Keras layouts)."""
    cell = model._query_model.layers[2].cell
    return {
        "query.embedding": model._query_model.layers[1].embeddings,
        "query.gru.kernel": cell.kernel,
        "query.gru.recurrent_kernel": cell.recurrent_kernel,
        "query.gru.bias": cell.bias,
        "candidate.embedding": model._candidate_model.layers[1].embeddings,
    }


def tf_optimizer(tf: Any, config: SequentialRetrievalConfig) -> Any:
    return tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate)


def tf_outputs(model: Any, data: SequenceData, config: SequentialRetrievalConfig) -> dict[str, Any]:
    """Top-K scores and ids for every test context from a BruteForce index."""
    from parity._tf import import_tf

    tf, tfrs = import_tf()
    index = tfrs.layers.factorized_top_k.BruteForce(model._query_model, k=TOP_K)
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices(data.movie_ids)
        .batch(config.candidate_batch_size)
        .map(lambda t: (t, model._candidate_model(t)))
    )
    scores, ids = index(tf.constant(data.test["context_movie_id"]))
    return {
        "predictions": scores.numpy(),
        "top_k_ids": np.char.decode(ids.numpy().astype(bytes), "utf-8"),
    }
