"""Sharded embedding tables (TorchRec) with Keras numerics: ``shard``, checkpoints, unsharded export.

TorchRec is imported when a function here runs, never by ``import torchrs``; install it with ``make torchrec``.
"""

from torchrs.distributed._torchrec import TorchRecNotInstalledError, torchrec_available
from torchrs.distributed.checkpoint import (
    export_unsharded,
    load_checkpoint,
    load_sharded,
    save_checkpoint,
)
from torchrs.distributed.embedding import LocalShard, ShardedEmbedding
from torchrs.distributed.optimizer import FusedOptimizer, UnsupportedShardedOptimizerError
from torchrs.distributed.shard import ShardingError, shard

__all__ = [
    "FusedOptimizer",
    "LocalShard",
    "ShardedEmbedding",
    "ShardingError",
    "TorchRecNotInstalledError",
    "UnsupportedShardedOptimizerError",
    "export_unsharded",
    "load_checkpoint",
    "load_sharded",
    "save_checkpoint",
    "shard",
    "torchrec_available",
]
