"""A TFRS two-tower retrieval model, trained with ``fit`` as in the basic-retrieval tutorial, resumes in torchrs.

``tfrs.Model`` with ``user_model`` / ``movie_model`` towers (StringLookup -> Embedding) and a
``Retrieval`` task, compiled with ``Adagrad(0.1)`` (the tutorial's optimizer), fitted for 5 batches,
saved with ``model.save_weights``; converted with the CLI; the torchrs twin (same attribute names)
is filled with ``load_weights`` + ``load_optimizer_state``; both run 20 more batches.

Checks what the tiny Sequential of ``test_optimizer_state.py`` cannot: slots of nested towers
(``user_model/layer_with_weights-0/embeddings``) under a root model, found by name, and sparse
Embedding gradients with repeated rows through the in-batch softmax loss.

Tolerance 1e-5, as in ``test_optimizer_state.py`` (measured 2.3e-8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

import torchrs
from converters.tfrs_to_torch import load_weights
from converters.tfrs_to_torch.cli import main
from tests.converters.tfrs_to_torch.test_optimizer_state import (
    MORE_STEPS,
    PRE_STEPS,
    TOL,
    optimizer_spec,
    resume,
)
from torchrs.layers.embedding import Embedding
from torchrs.preprocessing import StringLookup

pytestmark = pytest.mark.tf

USERS = [f"u{i}" for i in range(10)]
MOVIES = [f"m{i}" for i in range(15)]
DIM, BATCH, LR = 6, 8, 0.1


def _batches(seed: int, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "user": rng.choice([*USERS, "unknown"], BATCH).astype(object),
            "movie": rng.choice(MOVIES, BATCH).astype(object),
        }
        for _ in range(n)
    ]


class _TorchTwoTower(torchrs.Model):
    def __init__(self) -> None:
        super().__init__()
        self.user_model = nn.Sequential(
            StringLookup(vocabulary=USERS), Embedding(len(USERS) + 1, DIM, sparse=True)
        )
        self.movie_model = nn.Sequential(
            StringLookup(vocabulary=MOVIES), Embedding(len(MOVIES) + 1, DIM, sparse=True)
        )
        self.task = torchrs.tasks.Retrieval()

    def compute_loss(self, features, training: bool = False):
        return self.task(
            self.user_model(list(features["user"])), self.movie_model(list(features["movie"]))
        )


def test_tfrs_retrieval_model_resumes(tf, tfrs, tmp_path: Path) -> None:
    class TwoTower(tfrs.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_model = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=USERS),
                    tf.keras.layers.Embedding(len(USERS) + 1, DIM),
                ]
            )
            self.movie_model = tf.keras.Sequential(
                [
                    tf.keras.layers.StringLookup(vocabulary=MOVIES),
                    tf.keras.layers.Embedding(len(MOVIES) + 1, DIM),
                ]
            )
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            return self.task(self.user_model(features["user"]), self.movie_model(features["movie"]))

    tf.keras.utils.set_random_seed(0)
    model = TwoTower()
    model.compile(optimizer=tf.keras.optimizers.Adagrad(LR))
    data = _batches(0, PRE_STEPS + MORE_STEPS)

    def dataset(part):
        return tf.data.Dataset.from_tensor_slices(
            {k: np.concatenate([b[k] for b in part]) for k in ("user", "movie")}
        ).batch(BATCH)

    model.fit(dataset(data[:PRE_STEPS]), verbose=0)
    source = tmp_path / "ckpt" / "weights"
    model.save_weights(str(source))
    out = tmp_path / "out"
    assert main([str(source), "--out", str(out), "--json"]) == 0
    variables = optimizer_spec(out)["variables"]
    assert variables["user_model/layer_with_weights-0/embeddings"]["key"] == "user_model.#0.weight"

    module = _TorchTwoTower()
    assert load_weights(module, out).ok
    torch_opt, _ = resume(out, module)
    model.fit(dataset(data[PRE_STEPS:]), verbose=0)
    for batch in data[PRE_STEPS:]:
        torch_opt.zero_grad()
        module.compute_loss(batch, training=True).backward()
        torch_opt.step()
    pairs = [
        (model.user_model.layers[1].embeddings, module.user_model[1].weight),
        (model.movie_model.layers[1].embeddings, module.movie_model[1].weight),
    ]
    diff = max(float(np.abs(t.detach().numpy() - v.numpy()).max()) for v, t in pairs)
    assert diff <= TOL, f"TF and torchrs differ by {diff:.3g} after {MORE_STEPS} steps"
    assert torch_opt.iterations == int(model.optimizer.iterations.numpy()) == PRE_STEPS + MORE_STEPS
