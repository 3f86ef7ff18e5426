"""Signatures built from torchrs.json: names, dtypes and shapes as TF's SavedModel reports them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.layers.factorized_top_k import BruteForce
from torchrs.serve.signature import TensorSpec, signatures


def test_index_without_identifiers_returns_int32_positions() -> None:
    # TF's BruteForce without identifiers returns int32 candidate positions (tf.math.top_k indices).
    index = BruteForce(k=2)
    index.index(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    sig = signatures(index, {"class_name": "BruteForce", "config": {"k": 2}})["serving_default"]
    assert sig.inputs == {"input_1": TensorSpec("float32", (-1, -1))}
    assert sig.outputs == {
        "output_1": TensorSpec("float32", (-1, 2)),
        "output_2": TensorSpec("int32", (-1, 2)),
    }
    out = sig.run({"input_1": np.array([[0.0, 2.0]], np.float32)})
    np.testing.assert_allclose(out["output_1"], [[2.0, 1.0]])  # 0*1+2*0=0, 0*0+2*1=2, 0.5*0+0.5*2=1
    assert out["output_2"].dtype == np.int32 and out["output_2"].tolist() == [[1, 2]]


def test_index_with_int64_identifiers_keeps_them() -> None:
    index = BruteForce(k=1)
    index.index(torch.eye(2), identifiers=torch.tensor([10, 20]))
    spec = {"class_name": "BruteForce", "config": {"k": 1}, "identifiers_dtype": "int64"}
    sig = signatures(index, spec)["serving_default"]
    out = sig.run({"input_1": np.array([[0.0, 1.0]], np.float32)})
    assert sig.outputs["output_2"].dtype == "int64" and out["output_2"].tolist() == [[20]]


def test_unservable_model_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be served"):
        signatures(torch.nn.Linear(2, 2), {"class_name": "Linear"})
