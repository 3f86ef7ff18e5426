"""An MLP node's ``sublayer_regularizers`` (Keras regularizers on the Dense layers inside a TFRS MLP block):
rebuilt on the torchrs MLP's sublayers, or refused with the field named. The conversion itself is tested
against Keras's ``model.losses`` in tests/converters/tfrs_to_torch/test_regularizers.py."""

from __future__ import annotations

import pytest
import torch

from torchrs.io import CheckpointFormatError, build_module

L2 = {"class_name": "L2", "config": {"l2": 0.5}}


def _node(regularizers: object) -> dict[str, object]:
    return {
        "class_name": "MLP",
        "config": {"units": [2, 1], "activation": "relu", "sublayer_regularizers": regularizers},
        "shapes": {"_sublayers.0.weight": [2, 3]},
    }


def test_sublayer_regularizers_are_rebuilt() -> None:
    mlp = build_module(_node([{"kernel_regularizer": L2}, {"bias_regularizer": "l1"}]), {})
    with torch.no_grad():
        for param in mlp.parameters():
            param.fill_(2.0)
    # kernel 0: 0.5 * sum(2^2 over 6 weights) = 12; bias 1: Keras "l1" is L1(0.01): 0.01 * |2| = 0.02.
    torch.testing.assert_close(mlp.regularization_loss(), torch.tensor(12.02), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("regularizers", "match"),
    [
        ([{"kernel_regularizer": L2}], r"one dict per sublayer \(2\)"),
        (
            [{"kernel_regularizer": L2}, {"activity_regularizer": L2}],
            r"unknown keys \['activity_regularizer'\]",
        ),
    ],
)
def test_malformed_sublayer_regularizers_are_refused(regularizers: object, match: str) -> None:
    with pytest.raises(CheckpointFormatError, match=r"config\.sublayer_regularizers: .*" + match):
        build_module(_node(regularizers), {})
