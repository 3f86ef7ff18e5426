"""Translated ``tf.saved_model.save`` signatures (``torchrs.graph``) against TF's own serving function.

The models are two of the converter test corpus (:mod:`tests.converters.tfrs_to_torch._graph_corpus`):
the two-tower model's query signature (StringLookup + Embedding, a timestamp through Normalization
and Discretization) and the ranking tutorial's shape (two lookups + embeddings, Dense 16-8-1). Both
are exported with ``tf.saved_model.save``, translated by ``python -m converters.tfrs_to_torch
--graph always``, and called on raw inputs (strings included) at batch 1 (online serving: call
overhead dominates) and batch 1,024, TF and torchrs in the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks._common import run_case
from converters.tfrs_to_torch.cli import main
from tests.converters.tfrs_to_torch._graph_corpus import CORPUS
from torchrs.io import load

#: Calls per timed round, by batch size: rounds of about the same length.
CALLS = {1: 200, 1024: 20}
#: Timed rounds per case (the best is reported): rounds are short (~30 ms), so a few more than the
#: suite's default make a load spike on a shared machine less likely to decide a figure.
ROUNDS = 7
#: (corpus model, signature) pairs measured.
MODELS = [("two_tower_side_features", "query"), ("ranking_subclassed", "serving_default")]


@pytest.fixture(scope="module")
def exported(
    tf: Any, tfrs: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Path, dict[str, np.ndarray]]]:
    root = tmp_path_factory.mktemp("graph_bench")
    out = {}
    for name, _ in MODELS:
        export, inputs = CORPUS[name](tf, tfrs, root)
        target = root / f"{name}_torchrs"
        assert main([str(export), "--out", str(target), "--graph", "always", "--json"]) == 0
        out[name] = (export, target, inputs)
    return out


def _batch(inputs: dict[str, np.ndarray], names: list[str], size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(next(iter(inputs.values()))), size)
    return {n: inputs[n][rows] for n in names}


# Framework outermost: it varies fastest, so that each TF case and its torchrs case run back to
# back, under the same load of a shared machine.
@pytest.mark.parametrize("framework", ["tfrs", "torchrs"])
@pytest.mark.parametrize("model", [m for m, _ in MODELS])
@pytest.mark.parametrize("batch", [1, 1024])
def test_translated_signature(
    benchmark: Any,
    request: pytest.FixtureRequest,
    exported: Any,
    framework: str,
    model: str,
    batch: int,
) -> None:
    benchmark.group = f"graph translation: {model} signature, batch {batch}"
    export, target, inputs = exported[model]
    key = dict(MODELS)[model]
    calls = CALLS[batch]
    if framework == "tfrs":
        tf = request.getfixturevalue("tf")
        function = tf.saved_model.load(str(export)).signatures[key]
        specs = tf.nest.flatten(function.structured_input_signature)
        feed = {
            s.name: tf.constant(v, dtype=s.dtype)
            for s, v in zip(
                specs, _batch(inputs, [s.name for s in specs], batch).values(), strict=True
            )
        }

        def step() -> Any:
            for _ in range(calls):
                out = function(**feed)
            return {k: v.numpy() for k, v in out.items()}

    else:
        signature = load(target).signatures[key]
        feed = _batch(inputs, signature.input_names, batch)

        def step() -> Any:
            with torch.inference_mode():
                for _ in range(calls):
                    out = signature(**feed)
            return out

    run_case(
        benchmark, step, framework=framework, work=batch * calls, unit="examples/s", rounds=ROUNDS
    )
