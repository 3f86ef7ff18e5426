"""Keras's ``layer_with_weights-N`` numbering (torchrs.io.keras_numbering), shared by load_weights,
load_optimizer_state and torchrs.distributed.load_sharded. Hand-built TF paths; the tf.keras references
are tests/converters/tfrs_to_torch/test_load_weights_state.py."""

from __future__ import annotations

import pytest
from torch import nn

from torchrs.distributed.embedding import ShardedEmbedding
from torchrs.io.keras_numbering import (
    STRUCTURAL_LEAVES,
    layout,
    structural_key,
    weighted_layers_from_paths,
)
from torchrs.layers.dense import KerasDense
from torchrs.layers.embedding import Embedding
from torchrs.preprocessing import StringLookup

# save_weights of Sequential([adapted StringLookup, Embedding, Dense]): the lookup's token_counts table makes it
# layer_with_weights-0, so the Embedding is -1 and the Dense -2.
ADAPTED_PATHS = [
    "user_model/layer_with_weights-0/token_counts",
    "user_model/layer_with_weights-1/embeddings",
    "user_model/layer_with_weights-2/kernel",
    "user_model/layer_with_weights-2/bias",
]


class Twin(nn.Module):
    def __init__(self, table: nn.Module) -> None:
        super().__init__()
        self.user_model = nn.Sequential(
            StringLookup(vocabulary=["a"]), table, KerasDense(2, input_dim=3)
        )


def test_structural_keys_of_paths() -> None:
    assert [structural_key(p) for p in ADAPTED_PATHS[1:]] == [
        ("user_model.#1.weight", False),
        ("user_model.#2.weight", True),
        ("user_model.#2.bias", False),
    ]
    assert structural_key("user_model/layer-2/kernel") is None  # an alias of layer_with_weights-2


def test_adapted_lookup_shifts_the_layers_after_it() -> None:
    numbered = layout(Twin(Embedding(5, 3)), weighted_layers_from_paths(ADAPTED_PATHS))
    assert numbered.parameters == {
        "user_model.#1.weight": "user_model.1.weight",
        "user_model.#2.weight": "user_model.2.weight",
        "user_model.#2.bias": "user_model.2.bias",
    }
    assert numbered.modules["user_model.1"] == "user_model.#1."
    # without the checkpoint's layers: the model's own numbering (lookups own no parameter)
    assert layout(Twin(Embedding(5, 3)), []).modules["user_model.1"] == "user_model.#0."


def test_a_sharded_table_keeps_the_number_of_the_embedding_it_replaced() -> None:
    """A ShardedEmbedding holds its shards in a TorchRec collection, not as parameters of the module tree; it
    still takes the Embedding's number (load_sharded finds its tensor by it). No TorchRec needed here: the
    collection is only stored."""
    table = ShardedEmbedding(
        nn.Module(),
        input_dim=5,
        output_dim=3,
        path="user_model.1",
        structural_key="user_model.#0.weight",
        sharding_type="row_wise",
        accumulator_offset=0.0,
    )
    numbered = layout(Twin(table), weighted_layers_from_paths(ADAPTED_PATHS))
    assert numbered.modules["user_model.1"] == "user_model.#1."
    assert numbered.parameters["user_model.#2.weight"] == "user_model.2.weight"


@pytest.mark.parametrize("attribute", sorted(STRUCTURAL_LEAVES))
def test_leaves_agree_with_the_converters_rules_table(attribute: str) -> None:
    rules = pytest.importorskip("converters.tfrs_to_torch.rules", reason="converters not installed")
    assert STRUCTURAL_LEAVES[attribute] == rules.attribute_rule(attribute)
