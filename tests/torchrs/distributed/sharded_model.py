"""The model and data shared by test_sharded.py and its torchrun worker: the basic retrieval tutorial, small."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

import torchrs as trs
from parity.scenarios.basic_retrieval import (
    BasicRetrievalConfig,
    RetrievalData,
    TorchMovielensModel,
    build_torch,
)
from torchrs.layers._keras_init import KerasDense

WORLD = 2
USERS, MOVIES, EXAMPLES = 37, 29, 192
#: Global batch 48: each of the 2 ranks trains on 24 examples (equal halves; the last batch is not short).
CONFIG = replace(
    BasicRetrievalConfig(), batch_size=48, test_batch_size=32, candidate_batch_size=8, ks=(1, 5, 10)
)
STEPS_PER_EPOCH = EXAMPLES // CONFIG.batch_size
#: Where the "uneven" check splits each global batch of 48: rank 0 gets 20 examples, rank 1 gets 28.
UNEVEN_SPLIT = 20
LEARNING_RATE = CONFIG.learning_rate


def make_data() -> RetrievalData:
    rng = np.random.default_rng(11)
    users = np.array([f"user {i}" for i in range(USERS)])
    movies = np.array([f"movie {i}" for i in range(MOVIES)])
    return RetrievalData(
        train_user_ids=users[rng.integers(0, USERS, EXAMPLES)],
        train_movie_titles=movies[rng.integers(0, MOVIES, EXAMPLES)],
        test_user_ids=users[rng.integers(0, USERS, 64)],
        test_movie_titles=movies[rng.integers(0, MOVIES, 64)],
        movie_titles=movies,
    )


def make_model(seed: int = 42, dense: bool = False) -> TorchMovielensModel:
    """The tutorial's model; ``dense=True`` adds a Dense layer to the query tower (a replicated parameter)."""
    torch.manual_seed(seed)
    model = build_torch(make_data(), CONFIG)
    if dense:
        model.user_model.append(
            KerasDense(CONFIG.embedding_dimension, input_dim=CONFIG.embedding_dimension)
        )
    return model


def adagrad(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    return trs.optim.Adagrad(params, learning_rate=LEARNING_RATE)


def global_batches(data: RetrievalData | None = None) -> list[dict[str, Any]]:
    data = data or make_data()
    size = CONFIG.batch_size
    return [
        {
            "user_id": data.train_user_ids[i : i + size],
            "movie_title": data.train_movie_titles[i : i + size],
        }
        for i in range(0, EXAMPLES, size)
    ]


def half(batch: dict[str, Any], rank: int, world: int = WORLD) -> dict[str, Any]:
    size = len(batch["user_id"]) // world
    return {k: v[rank * size : (rank + 1) * size] for k, v in batch.items()}


def uneven(batch: dict[str, Any], rank: int) -> dict[str, Any]:
    return {k: (v[:UNEVEN_SPLIT] if rank == 0 else v[UNEVEN_SPLIT:]) for k, v in batch.items()}


def reference_steps(
    model: TorchMovielensModel,
    batches: list[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    split: Callable[[dict[str, Any], int], dict[str, Any]] = half,
) -> list[float]:
    """Unsharded, one process: each step the mean of the ranks' losses on their parts (what DDP / TorchRec
    average the gradients of), then one torchrs optimizer step. Returns the per-step losses."""
    losses = []
    model.train()
    for batch in batches:
        loss = sum(model.compute_loss(split(batch, r), training=True) for r in range(WORLD)) / WORLD
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def unsharded_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point
    }
