"""Keras preprocessing lookups (tokens/s), tf.keras and torchrs in one process, plus synthetic data generation.

The lookups are the first step of every tower: ``StringLookup`` over a 50k-title vocabulary with 4 hashed OOV
buckets (~17% of the inputs unknown) and ``IntegerLookup`` over 500k ids with 3 OOV buckets. These used to be
timed assertions in the unit tests; timing belongs here, where TF runs the same work in the same run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks._common import run_case
from torchrs.data._synthetic import synthetic_ratings
from torchrs.preprocessing import IntegerLookup, StringLookup

N_STRING_TOKENS = 100_000
STRING_VOCABULARY = 50_000
N_INTEGERS = 1_000_000
INTEGER_VOCABULARY = 500_000


def _lookup_call(
    request: pytest.FixtureRequest, framework: str, layer_name: str, inputs: Any, **kwargs: Any
) -> Callable[[], np.ndarray]:
    """One lookup of ``inputs`` by tf.keras's layer (``tfrs``) or torchrs's of the same name and arguments."""
    if framework == "tfrs":
        tf = request.getfixturevalue("tf")
        tf_layer = getattr(tf.keras.layers, layer_name)(**kwargs)
        tf_inputs = tf.constant(inputs.numpy() if isinstance(inputs, torch.Tensor) else inputs)
        return lambda: tf_layer(tf_inputs).numpy()
    layer = {"StringLookup": StringLookup, "IntegerLookup": IntegerLookup}[layer_name](**kwargs)
    return lambda: layer(inputs).numpy()


@pytest.mark.benchmark(group="preprocessing: StringLookup, 100k tokens, 50k vocabulary")
@pytest.mark.parametrize("framework", ["tfrs", "torchrs"])
def test_string_lookup(benchmark: Any, request: pytest.FixtureRequest, framework: str) -> None:
    rng = random.Random(0)
    vocabulary = [f"movie_{i}" for i in range(STRING_VOCABULARY)]
    tokens = [f"movie_{rng.randrange(60_000)}" for _ in range(N_STRING_TOKENS)]  # ~17% unknown
    call = _lookup_call(
        request, framework, "StringLookup", tokens, vocabulary=vocabulary, num_oov_indices=4
    )
    out = run_case(benchmark, call, framework=framework, work=len(tokens), unit="tokens/s")
    assert int(out[tokens.index("movie_7")]) == 4 + 7


@pytest.mark.benchmark(group="preprocessing: IntegerLookup, 1M ids, 500k vocabulary")
@pytest.mark.parametrize("framework", ["tfrs", "torchrs"])
def test_integer_lookup(benchmark: Any, request: pytest.FixtureRequest, framework: str) -> None:
    generator = torch.Generator().manual_seed(0)
    vocabulary = torch.randperm(2_000_000, generator=generator)[:INTEGER_VOCABULARY]
    inputs = torch.randint(0, 2_000_000, (N_INTEGERS,), generator=generator)
    inputs[0] = vocabulary[123]
    call = _lookup_call(
        request,
        framework,
        "IntegerLookup",
        inputs,
        vocabulary=vocabulary.numpy(),
        num_oov_indices=3,
    )
    out = run_case(benchmark, call, framework=framework, work=N_INTEGERS, unit="ids/s")
    assert int(out[0]) == 3 + 123


@pytest.mark.benchmark(group="data: synthetic MovieLens-100k generation")
def test_synthetic_generation(benchmark: Any) -> None:
    table = run_case(
        benchmark, lambda: synthetic_ratings(seed=5), framework="torchrs", work=1, unit="tables/s"
    )
    assert len(table) == 100_000
