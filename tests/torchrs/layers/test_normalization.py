"""``torchrs.layers.LayerNormalization`` against hand-derived values and ``tf.keras.layers.LayerNormalization``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from torchrs.functional.normalization import layer_normalization
from torchrs.layers import LayerNormalization
from torchrs.layers.normalization import KERAS_EPSILON

# float32 outputs of unit scale: the two frameworks sum the moments in different orders (TF's fused kernel or
# tf.nn.moments), a few ulps (~1e-6) apart; a wrong epsilon (1e-3 vs 1e-5) or a wrong axis is off by >= 1e-4.
TOL = 2e-5


def test_hand_derived_values() -> None:
    # Row [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5, so y = (x - 3) / sqrt(3.5 + eps).
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    layer = LayerNormalization(input_dim=4)
    expected = (x - 3.0) / np.sqrt(3.5 + 1e-3)
    torch.testing.assert_close(layer(x), expected, atol=1e-6, rtol=0)
    assert KERAS_EPSILON == 1e-3 and layer.epsilon == 1e-3
    with torch.no_grad():
        layer.weight.fill_(2.0)  # type: ignore[union-attr]
        layer.bias.fill_(-1.0)  # type: ignore[union-attr]
    torch.testing.assert_close(layer(x), 2.0 * expected - 1.0, atol=1e-6, rtol=0)


def test_parameters_keras_names_and_lazy_build() -> None:
    layer = LayerNormalization(axis=[1, 2], center=False)
    assert layer.bias is None
    y = layer(torch.randn(3, 2, 5))
    assert y.shape == (3, 2, 5) and layer.weight.shape == (2, 5)  # type: ignore[union-attr]
    assert set(layer.state_dict()) == {"weight"}
    torch.testing.assert_close(y.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axis": []}, "one or more distinct axes"),
        ({"axis": [1, 1]}, "one or more distinct axes"),
        ({"epsilon": -1.0}, "epsilon must be >= 0"),
        ({"axis": [1, 2], "input_dim": 4}, "1 sizes for 2 normalized axes"),
    ],
)
def test_bad_arguments(kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LayerNormalization(**kwargs)


def test_axis_out_of_range() -> None:
    with pytest.raises(
        ValueError, match=r"axis \[3\] is out of range for inputs of shape \(2, 4\)"
    ):
        LayerNormalization(axis=3)(torch.ones(2, 4))


@pytest.mark.tf
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"epsilon": 1e-5},
        {"axis": 1},  # on a (B, T, F) input: normalize over the time axis
        {"axis": [1, 2]},
        {"center": False},
        {"scale": False},
    ],
)
def test_matches_keras(tf, kwargs) -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5, 3, 4)) * 3 + 1).astype(np.float32)
    keras = tf.keras.layers.LayerNormalization(**kwargs)
    keras.build(x.shape)
    for variable in keras.weights:  # not Keras's ones / zeros: the affine part is checked too
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    ours = LayerNormalization(**kwargs)
    ours(torch.from_numpy(x))
    with torch.no_grad():
        if keras.scale:
            ours.weight.copy_(torch.from_numpy(keras.gamma.numpy()))  # type: ignore[union-attr]
        if keras.center:
            ours.bias.copy_(torch.from_numpy(keras.beta.numpy()))  # type: ignore[union-attr]
    expected = keras(tf.constant(x)).numpy()
    np.testing.assert_allclose(
        ours(torch.from_numpy(x)).detach().numpy(), expected, atol=TOL, rtol=0
    )
    gamma = None if ours.weight is None else ours.weight.detach()
    beta = None if ours.bias is None else ours.bias.detach()
    functional = layer_normalization(torch.from_numpy(x), ours.axis, ours.epsilon, gamma, beta)
    np.testing.assert_allclose(functional.numpy(), expected, atol=TOL, rtol=0)
