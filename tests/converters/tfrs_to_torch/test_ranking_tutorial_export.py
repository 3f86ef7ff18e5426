"""The basic ranking tutorial's own export, ``tf.saved_model.save(model, "export")``, arrives in torchrs.

The tutorial trains ``MovielensModel`` (a ``tfrs.Model`` around a subclassed ``RankingModel``: two
StringLookup -> Embedding towers and a Dense 256-64-1 ReLU stack), exports it with ``tf.saved_model.save``
and serves ``loaded({"user_id": ..., "movie_title": ...})``. Both torchrs routes must predict what that
served model predicts: the CLI's converted towers (Dense activations read from the traced calls, since a
plain SavedModel keeps no layer configs) and ``load_weights`` into the torchrs twin from
``parity.scenarios.basic_ranking``.

Tolerance 1e-6 (the issue's bar): lookups and embedding gathers are exact; the three float32 matmuls sum
in another order than TF's (a few ulps of ratings near 3-4). Observed: <= 4.8e-7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from parity.scenarios import basic_ranking
from torchrs.io import load

pytestmark = pytest.mark.tf

TOL = 1e-6  # see module docstring
N_RATINGS = 600
BATCH = 128


def _data(seed: int) -> basic_ranking.RankingData:
    rng = np.random.default_rng(seed)
    users = rng.integers(1, 60, N_RATINGS).astype(str)
    titles = np.array([f"Movie {i} (1995)" for i in rng.integers(0, 90, N_RATINGS)])
    ratings = rng.integers(1, 6, N_RATINGS).astype(np.float32)
    split = N_RATINGS * 4 // 5
    return basic_ranking.RankingData(
        users[:split],
        titles[:split],
        ratings[:split],
        users[split:],
        titles[split:],
        ratings[split:],
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_served_predictions_match(tf, tmp_path: Path, seed: int) -> None:
    data = _data(seed)
    config = basic_ranking.BasicRankingConfig(batch_size=BATCH, seed=seed)
    model = basic_ranking.build_tf(data, config)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=config.learning_rate))
    train = tf.data.Dataset.from_tensor_slices(
        {
            "user_id": data.train_user_ids,
            "movie_title": data.train_movie_titles,
            "user_rating": data.train_ratings,
        }
    ).batch(BATCH)
    model.fit(train, epochs=2, verbose=0)
    model(
        {"user_id": np.array(["42"]), "movie_title": data.unique_movie_titles[:1]}
    )  # as the tutorial does
    export = tmp_path / "export"
    tf.saved_model.save(model, str(export))  # the tutorial's export

    # Served by TF as the tutorial does, on test pairs plus a user and a title the vocabularies lack.
    users = np.append(data.test_user_ids, "unknown user")
    titles = np.append(data.test_movie_titles, "Unknown Movie (2030)")
    served = tf.saved_model.load(str(export))
    expected = served({"user_id": users, "movie_title": titles}).numpy()  # (N, 1)

    out = tmp_path / "converted"
    assert main([str(export), "--out", str(out), "--json"]) == 0
    towers = load(out).ranking_model
    with torch.no_grad():
        embedded = torch.cat(
            [towers.user_embeddings(users), towers.movie_embeddings(titles)], dim=1
        )  # (N, 2D)
        converted = towers.ratings(embedded).numpy()  # (N, 1)
    np.testing.assert_allclose(converted, expected, rtol=0, atol=TOL)

    twin = basic_ranking.build_torch(data, config)
    info = load_weights(twin, export)
    assert info.ok and len(info.matched) == 8  # 2 embeddings + 3 x (kernel, bias)
    with torch.no_grad():
        predicted = twin.ranking_model(users, titles).numpy()  # (N, 1)
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=TOL)
    # Trained: the untrained stack predicts ~0, the ratings average 3.
    assert float(expected.mean()) > 1.0
