"""``load_weights``: a hand-written torchrs twin of a TF model, filled by structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from converters.tfrs_to_torch import ConversionError, LoadingInfo, load_weights
from converters.tfrs_to_torch.cli import main
from torchrs.layers.dense import KerasDense
from torchrs.layers.embedding import Embedding
from torchrs.preprocessing import StringLookup

pytestmark = pytest.mark.tf


def _twin(users: list[str]) -> nn.Sequential:
    return nn.Sequential(
        StringLookup(vocabulary=users, mask_token=""),
        Embedding(22, 5),
        KerasDense(4, activation="relu"),
        KerasDense(3, activation="sigmoid", use_bias=False),
    )


@pytest.mark.parametrize("source", ["weights", "tower_keras"])
def test_sequential_twin_matches_tf(exports, tf, source) -> None:
    users = [u.decode() for u in exports.users[:20]]
    module = _twin(users)
    info = load_weights(module, getattr(exports, source))
    assert isinstance(info, LoadingInfo) and info.ok
    assert set(info.matched) == {"1.weight", "2.weight", "2.bias", "3.weight"}
    inputs = ["1", "", "zz", "19"]
    expected = exports.models["tower"](tf.constant(inputs)).numpy()
    # 1e-6: see test_convert (one float32 matmul per Dense, summation order may differ).
    np.testing.assert_allclose(module(inputs).detach().numpy(), expected, atol=1e-6, rtol=0)


def test_converted_checkpoint_directory(exports, tmp_path) -> None:
    out = tmp_path / "w"
    assert main([str(exports.weights), "--out", str(out), "--json"]) == 0
    module = _twin([u.decode() for u in exports.users[:20]])
    assert load_weights(module, out).ok
    kernel = exports.models["tower"].layers[2].kernel.numpy()
    assert np.array_equal(module[2].weight.detach().numpy(), kernel.T)


def test_mismatch_reports_both_shapes_and_never_reshapes(exports) -> None:
    module = nn.Sequential(
        StringLookup(vocabulary=["a"]),
        Embedding(22, 5),
        KerasDense(4, input_dim=6),
        KerasDense(3, use_bias=False, input_dim=4),
    )
    before = module[2].weight.detach().clone()
    with pytest.raises(
        ConversionError, match=r"shape mismatch: 2\.weight \(4, 6\) vs TF .*kernel \(4, 5\)"
    ):
        load_weights(module, exports.weights)
    assert torch.equal(module[2].weight, before)  # strict: nothing copied
    info = load_weights(module, exports.weights, strict=False)
    assert info.mismatched == (("2.weight", (4, 6), "layer_with_weights-1/kernel", (4, 5)),)
    assert torch.equal(module[2].weight, before)


def test_missing_and_unexpected(exports) -> None:
    # No lookup (it has no parameters, so numbering is unchanged); the TF sigmoid layer is left out.
    module = nn.Sequential(Embedding(22, 5), KerasDense(4, input_dim=5))
    info = load_weights(module, exports.weights, strict=False)
    assert info.missing == () and info.unexpected == ("layer_with_weights-2/kernel",)
    with pytest.raises(
        ConversionError, match="unexpected TF variable: layer_with_weights-2/kernel"
    ):
        load_weights(module, exports.weights)
    # The last TF Dense has no bias: a torch layer with one is missing it.
    module = nn.Sequential(Embedding(22, 5), KerasDense(4, input_dim=5), KerasDense(3, input_dim=4))
    info = load_weights(module, exports.weights, strict=False)
    assert info.missing == ("2.bias",) and info.unexpected == ()
    with pytest.raises(ConversionError, match=r"missing in TF: 2\.bias"):
        load_weights(module, exports.weights)


def test_attribute_names_of_a_subclassed_model(tf, tmp_path) -> None:
    class TFModel(tf.keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.user_embedding = tf.keras.layers.Embedding(5, 3)
            self.head = tf.keras.Sequential([tf.keras.layers.Dense(2), tf.keras.layers.Dense(1)])

        def call(self, x):  # type: ignore[no-untyped-def]
            return self.head(self.user_embedding(x))

    model = TFModel()
    x = tf.constant([0, 3, 4])
    expected = model(x).numpy()
    tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt" / "ckpt"))

    class TorchModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.user_embedding = Embedding(5, 3)
            self.head = nn.Sequential(KerasDense(2), KerasDense(1))  # unbuilt: built from TF shapes

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.user_embedding(x))

    torch_model = TorchModel()
    info = load_weights(torch_model, tmp_path / "ckpt")
    assert info.ok and len(info.matched) == 5
    got = torch_model(torch.tensor([0, 3, 4])).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
