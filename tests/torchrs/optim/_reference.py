"""Shared problems of the optimizer tests: the same gradients fed to a Keras optimizer (Keras 2 or legacy) and to
torchrs.

Gradients are computed element-wise from the current parameters in each framework (no autograd, no reductions),
so both frameworks see bit-identical gradients as long as their parameters agree; any difference that appears is
the optimizers' own, and the feedback (``COUPLING * (p - target)``) lets it compound over the steps.

* dense: four parameters of different ranks, ``grad = COUPLING * (p - target) + noise_t``;
* embedding: a ``(VOCAB, DIM)`` table with a row-sparse gradient of ``BATCH`` lookups per step (repeats
  included; the last ``UNUSED`` rows never looked up, the others only some steps), as ``tf.IndexedSlices`` in TF
  and an uncoalesced ``sparse_coo`` tensor (what ``nn.Embedding(sparse=True)`` gives) in torch, row values
  ``upstream_t + COUPLING * table[id]``; plus a dense ``(DIM,)`` vector, so global clipping spans both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

SHAPES = [(), (3,), (4, 5), (2, 3, 2)]
STEPS = 100
SEEDS = [0, 1, 2]
#: Pull towards a target (the gradient depends on the trajectory, so an error compounds) plus fresh noise.
COUPLING = 0.5
VOCAB, DIM, BATCH, UNUSED = 12, 3, 6, 2
#: Max abs difference allowed between Keras and torchrs parameters after 100 float32 steps: both run the same
#: float32 operations, up to the order of a few roundings, so the measured differences are 0 to a few 1e-7 (see
#: each test file); 1e-5 leaves room for a TF build that vectorises differently, and is 100x below what a wrong
#: rule gives.
TOLERANCE = 1e-5


def dense_problem(seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray]]]:
    """``(init, target, noise)``: four parameters of the ``SHAPES``, their targets and ``STEPS`` noise draws."""
    rng = np.random.default_rng(seed)
    init = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    target = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    noise = [
        [rng.normal(scale=0.5, size=s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)
    ]
    return init, target, noise


def run_dense_keras(
    tf, optimizer: Any, seed: int, scale: float = 1.0, finalize: bool = False
) -> list[np.ndarray]:
    """``STEPS`` Keras steps of ``optimizer`` on the dense problem, gradients scaled by ``scale``;
    ``finalize`` copies the EMA into the variables at the end (``use_ema``)."""
    init, target, noise = dense_problem(seed)
    variables = [tf.Variable(x) for x in init]
    for t in range(STEPS):
        grads = [
            scale * (COUPLING * (v - c) + n)
            for v, c, n in zip(variables, target, noise[t], strict=True)
        ]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
    if finalize:
        optimizer.finalize_variable_values(variables)
    return [v.numpy() for v in variables]


def run_dense_torch(
    make: Callable[[list[torch.nn.Parameter]], Any],
    seed: int,
    scale: float = 1.0,
    finalize: bool = False,
) -> list[np.ndarray]:
    """The same steps with the torch optimizer ``make(params)``."""
    init, target, noise = dense_problem(seed)
    params = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt = make(params)
    for t in range(STEPS):
        for p, c, n in zip(params, target, noise[t], strict=True):
            p.grad = scale * (COUPLING * (p.detach() - torch.from_numpy(c)) + torch.from_numpy(n))
        opt.step()
    if finalize:
        opt.finalize_variable_values()
    return [p.detach().numpy() for p in params]


def _embedding_problem(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "table": rng.uniform(-0.05, 0.05, size=(VOCAB, DIM)).astype(np.float32),
        "vector": rng.normal(size=DIM).astype(np.float32),
        "target": rng.normal(size=DIM).astype(np.float32),
        "ids": [rng.integers(0, VOCAB - UNUSED, size=BATCH) for _ in range(STEPS)],
        "upstream": [rng.normal(size=(BATCH, DIM)).astype(np.float32) for _ in range(STEPS)],
        "noise": [rng.normal(scale=0.5, size=DIM).astype(np.float32) for _ in range(STEPS)],
    }


def run_embedding_keras(tf, optimizer: Any, seed: int) -> list[np.ndarray]:
    """``STEPS`` Keras steps of ``optimizer`` on the embedding problem (``tf.IndexedSlices`` gradients)."""
    data = _embedding_problem(seed)
    table, vector = tf.Variable(data["table"]), tf.Variable(data["vector"])
    for t in range(STEPS):
        ids = tf.constant(data["ids"][t], dtype=tf.int64)
        rows = data["upstream"][t] + COUPLING * tf.gather(table, ids)  # (B, D)
        sparse = tf.IndexedSlices(rows, ids, dense_shape=tf.constant([VOCAB, DIM], tf.int64))
        dense = COUPLING * (vector - data["target"]) + data["noise"][t]  # (D,)
        optimizer.apply_gradients([(sparse, table), (dense, vector)])
    return [table.numpy(), vector.numpy()]


def run_embedding_torch(
    make: Callable[[list[torch.nn.Parameter]], Any], seed: int
) -> list[np.ndarray]:
    data = _embedding_problem(seed)
    table = torch.nn.Parameter(torch.from_numpy(data["table"].copy()))
    vector = torch.nn.Parameter(torch.from_numpy(data["vector"].copy()))
    opt = make([table, vector])
    for t in range(STEPS):
        ids = torch.from_numpy(data["ids"][t])  # (B,)
        rows = torch.from_numpy(data["upstream"][t]) + COUPLING * table.detach()[ids]  # (B, D)
        table.grad = torch.sparse_coo_tensor(
            ids[None], rows, (VOCAB, DIM), check_invariants=True
        )  # uncoalesced, like Embedding
        vector.grad = COUPLING * (
            vector.detach() - torch.from_numpy(data["target"])
        ) + torch.from_numpy(data["noise"][t])
        opt.step()
    return [table.detach().numpy(), vector.detach().numpy()]


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
