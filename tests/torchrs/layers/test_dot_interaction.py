"""Tests for torchrs.layers.feature_interaction.DotInteraction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.torchrs.layers._tf_copy import assert_runs_match, tf_run, torch_run
from torchrs.layers.feature_interaction import DotInteraction
from torchrs.layers.feature_interaction.dot_interaction import dot_interaction

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics

# Three small features (TFRS dot_interaction_test.py uses 5-d ones; these keep the sums by hand).
E0 = [1.0, 2.0, 0.0]
E1 = [0.0, 1.0, -1.0]
E2 = [2.0, 0.0, 3.0]
# Pairwise dot products:
# <e0,e0> = 1 + 4 + 0 = 5    <e1,e0> = 0 + 2 + 0 = 2    <e1,e1> = 0 + 1 + 1 = 2
# <e2,e0> = 2 + 0 + 0 = 2    <e2,e1> = 0 + 0 - 3 = -3   <e2,e2> = 4 + 0 + 9 = 13
F00, F10, F11, F20, F21, F22 = 5.0, 2.0, 2.0, 2.0, -3.0, 13.0


def _features() -> list[torch.Tensor]:
    return [torch.tensor([e]) for e in (E0, E1, E2)]


@pytest.mark.parametrize(
    ("self_interaction", "skip_gather", "expected"),
    [
        # Lower triangle with the diagonal, row by row (tf.boolean_mask order).
        (True, False, [F00, F10, F11, F20, F21, F22]),
        # Whole 3x3 matrix, upper triangle zeroed.
        (True, True, [F00, 0, 0, F10, F11, 0, F20, F21, F22]),
        # Strict lower triangle.
        (False, False, [F10, F20, F21]),
        # Whole matrix with the diagonal zeroed too.
        (False, True, [0, 0, 0, F10, 0, 0, F20, F21, 0]),
    ],
)
def test_hand_values(self_interaction, skip_gather, expected):
    layer = DotInteraction(self_interaction=self_interaction, skip_gather=skip_gather)
    out = layer(_features())
    torch.testing.assert_close(out, torch.tensor([expected]), rtol=0, atol=0)


def test_defaults_and_name():
    layer = DotInteraction(name="interaction")
    assert (layer._self_interaction, layer._skip_gather, layer.name) == (
        False,
        False,
        "interaction",
    )
    assert list(layer.state_dict()) == []


def test_output_widths_for_many_features():
    # N = 5: N (N - 1) / 2 = 10, N (N + 1) / 2 = 15, N * N = 25.
    features = list(torch.randn(4, 5, 8).unbind(1))
    assert dot_interaction(features).shape == (4, 10)
    assert dot_interaction(features, self_interaction=True).shape == (4, 15)
    assert dot_interaction(features, skip_gather=True).shape == (4, 25)


def test_batch_rows_are_independent():
    # Row b of the output only depends on row b of each feature.
    features = [torch.randn(3, 4) for _ in range(3)]
    full = dot_interaction(features, self_interaction=True)
    row = dot_interaction([f[1:2] for f in features], self_interaction=True)
    torch.testing.assert_close(full[1:2], row, rtol=0, atol=0)


def test_single_feature_without_self_interaction_is_empty():
    assert DotInteraction()([torch.ones(2, 3)]).shape == (2, 0)


def test_gradient_of_a_dot_product():
    # d<e1, e0>/d e0 = e1 and d/d e1 = e0.
    e0 = torch.tensor([E0], requires_grad=True)
    e1 = torch.tensor([E1], requires_grad=True)
    DotInteraction()([e0, e1]).sum().backward()
    torch.testing.assert_close(e0.grad, torch.tensor([E1]))
    torch.testing.assert_close(e1.grad, torch.tensor([E0]))


# ------------------------------------------------------------------------------------------ errors


def test_feature_dimensions_must_match():
    features = [torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 2)]
    with pytest.raises(ValueError, match=r"dimensions must be equal.*\(1, 3\), \(1, 3\), \(1, 2\)"):
        DotInteraction()(features)


def test_batch_sizes_must_match():
    with pytest.raises(ValueError, match=r"dimensions must be equal.*\(2, 3\), \(1, 3\)"):
        DotInteraction()([torch.ones(2, 3), torch.ones(1, 3)])


def test_inputs_must_be_rank_2():
    with pytest.raises(ValueError, match=r"inputs\[1\] must have shape .* got shape \(2, 1, 3\)"):
        DotInteraction()([torch.ones(2, 3), torch.ones(2, 1, 3)])


def test_stacked_tensor_is_rejected_with_a_hint():
    with pytest.raises(TypeError, match=r"list\(x.unbind\(1\)\)"):
        DotInteraction()(torch.ones(2, 3, 4))


def test_empty_list_is_rejected():
    with pytest.raises(ValueError, match=r"at least one feature tensor"):
        DotInteraction()([])


def test_non_tensor_entry_is_rejected():
    with pytest.raises(TypeError, match=r"inputs\[0\] must be a torch.Tensor, got list"):
        DotInteraction()([[1.0, 2.0]])


# ------------------------------------------------------------------------- TensorFlow reference


@pytest.mark.tf
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("seed", "batch_size", "num_features", "dim"), [(0, 1, 2, 3), (1, 8, 5, 16), (2, 33, 9, 32)]
)
@pytest.mark.parametrize("skip_gather", [False, True])
@pytest.mark.parametrize("self_interaction", [False, True])
def test_matches_tfrs_outputs_and_gradients(
    tf, tfrs, self_interaction, skip_gather, seed, batch_size, num_features, dim, dtype
):
    # Tolerances (see _tf_copy.py): float64 1e-12; float32 1e-6 relative + 16 ulps of the largest
    # value (dot products summed in another order).
    rng = np.random.default_rng(seed)
    features = [rng.standard_normal((batch_size, dim)).astype(dtype) for _ in range(num_features)]
    tf_layer = tfrs.layers.feature_interaction.DotInteraction(
        self_interaction=self_interaction, skip_gather=skip_gather, dtype=dtype
    )
    layer = DotInteraction(self_interaction=self_interaction, skip_gather=skip_gather)
    width = (
        num_features * num_features
        if skip_gather
        else layer([torch.from_numpy(f) for f in features]).shape[1]
    )
    cotangent = rng.standard_normal((batch_size, width)).astype(dtype)

    def call(module, inputs):
        return module(list(inputs))

    expected = tf_run(tf, tf_layer, call, features, cotangent, layer)
    assert_runs_match(torch_run(layer, call, features, cotangent), expected)
