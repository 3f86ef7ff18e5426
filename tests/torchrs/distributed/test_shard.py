"""``shard``'s refusals, checked before TorchRec or any collective is touched (one process, no torchrun)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import torchrs as trs
from torchrs.distributed import (
    ShardingError,
    UnsupportedShardedOptimizerError,
    shard,
    torchrec_available,
)


class _Towers(trs.Model):
    def __init__(self) -> None:
        super().__init__()
        self.user = nn.Sequential(trs.layers.Embedding(10, 4))
        self.item = trs.layers.Embedding(8, 4, embeddings_regularizer="l2")


def test_import_torchrs_never_imports_torchrec() -> None:
    code = (
        "import sys, torchrs, torchrs.distributed; assert 'torchrec' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plan_must_name_embedding_layers() -> None:
    with pytest.raises(
        ShardingError, match=r"names \['users'\].*its tables are \['item', 'user.0'\]"
    ):
        shard(_Towers(), {"users": "row_wise"})


def test_plan_values_are_checked() -> None:
    with pytest.raises(ShardingError, match=r"plan\['user.0'\]='rowwise': expected one of"):
        shard(_Towers(), {"user.0": "rowwise"})
    with pytest.raises(ShardingError, match="pass 'auto' or a dict"):
        shard(_Towers(), "manual")


def test_regularized_table_is_refused_with_its_name() -> None:
    with pytest.raises(
        ShardingError, match=r"Cannot shard table 'item': it has an embeddings_regularizer"
    ):
        shard(_Towers(), {"item": "row_wise"})


def test_masking_table_is_refused() -> None:
    model = _Towers()
    model.user[0].mask_zero = True
    with pytest.raises(ShardingError, match=r"Cannot shard table 'user.0': mask_zero=True"):
        shard(model, {"user.0": "row_wise"})


def test_optimizer_refused_before_anything_is_sharded() -> None:
    with pytest.raises(UnsupportedShardedOptimizerError, match=r"\['user.0'\].*Adam"):
        shard(_Towers(), {"user.0": "row_wise"}, optimizer=lambda p: trs.optim.Adam(p))


@pytest.mark.skipif(
    not torchrec_available(), reason="TorchRec is not installed (optional: `make torchrec`)"
)
def test_needs_an_initialized_process_group() -> None:
    assert not torch.distributed.is_initialized()
    with pytest.raises(RuntimeError, match="init_process_group"):
        shard(_Towers(), {"user.0": "row_wise"})
