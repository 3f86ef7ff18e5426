"""``ShardedEmbedding``: one Keras-style table held as a one-table TorchRec ``EmbeddingCollection``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from torchrs.distributed._torchrec import require

#: Name of the single table and feature inside each one-table collection (unique within it).
TABLE = "table"
FEATURE = "ids"
#: Key of the table in the collection's ``state_dict()`` / fused optimizer state.
WEIGHT_KEY = f"embeddings.{TABLE}.weight"
MOMENTUM_KEY = f"{TABLE}.momentum1"


@dataclass(frozen=True)
class LocalShard:
    """One block of a table held by this rank: rows ``[row, row + rows)``, columns ``[col, col + cols)``.

    ``weight`` (and ``momentum``, FBGEMM's Adagrad state, when there is one) are views of the live storage:
    writing into them changes the table.
    """

    row: int
    col: int
    weight: Tensor
    momentum: Tensor | None


class ShardedEmbedding(nn.Module):
    """``trs.layers.Embedding`` whose table lives in shards across ranks (built by :func:`~torchrs.distributed.shard`).

    Ids of any shape go in, ``(*shape, output_dim)`` comes out, like ``nn.Embedding``. Every rank must call it
    the same number of times (each call is a collective all-to-all); ranks may pass different numbers of ids.
    The table is updated during ``backward`` by its fused optimizer (FBGEMM), gradients averaged over ranks.

    Attributes:
        input_dim: rows of the whole table.
        output_dim: embedding size.
        path: the module path the table had in the unsharded model (names it in messages and checkpoints).
        structural_key: the structural key of its weight in the unsharded model's own numbering
            (``user_model.#0.weight``); :func:`~torchrs.distributed.load_sharded` renumbers by the checkpoint's.
        sharding_type: ``"row_wise"``, ``"table_wise"`` or ``"column_wise"``.
        accumulator_offset: FBGEMM's ``momentum1`` minus the Keras accumulator (see ``optimizer.py``).
    """

    #: Marks modules whose parameters each rank holds a different part of: ``Model.fit`` leaves them out of DDP.
    torchrs_sharded = True

    def __init__(
        self,
        collection: nn.Module,
        *,
        input_dim: int,
        output_dim: int,
        path: str,
        structural_key: str,
        sharding_type: str,
        accumulator_offset: float,
    ) -> None:
        super().__init__()
        self.collection = collection
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.path = path
        self.structural_key = structural_key
        self.sharding_type = sharding_type
        self.accumulator_offset = accumulator_offset

    def forward(self, inputs: Any) -> Tensor:
        kjt_module = require("torchrec.sparse.jagged_tensor")
        ids = torch.as_tensor(inputs)
        if ids.dtype.is_floating_point:
            ids = ids.long()  # Keras casts float indices to int
        flat = ids.reshape(-1).to(torch.int64)  # (N,)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.input_dim):
            raise IndexError(
                f"Embedding {self.path!r}: ids must be in [0, {self.input_dim}) (got min {int(flat.min())}, "
                f"max {int(flat.max())}); check the lookup in front of it."
            )
        count = flat.numel()
        if count == 0:
            # The call is a collective: send one id (its output is dropped, so its row gets a zero gradient,
            # which leaves it unchanged under exact Adagrad and SGD) rather than no KJT at all.
            flat = torch.zeros(1, dtype=torch.int64)
        # One id per "sample": int64 lengths (int32 ones break the sequence all-to-all's split sizes).
        kjt = kjt_module.KeyedJaggedTensor.from_lengths_sync(
            keys=[FEATURE], values=flat, lengths=torch.ones_like(flat)
        )
        values = self.collection(kjt)[FEATURE].values()[:count]  # (N, D)
        return values.reshape(*ids.shape, self.output_dim)

    def momentum(self) -> Any:
        """FBGEMM's Adagrad state of the whole table as a TorchRec ``ShardedTensor`` (``None`` for SGD)."""
        collection: Any = self.collection  # a TorchRec ShardedEmbeddingCollection
        return (
            collection.fused_optimizer.state_dict()["state"].get(WEIGHT_KEY, {}).get(MOMENTUM_KEY)
        )

    def local_shards(self) -> list[LocalShard]:
        """The blocks of the table this rank holds, as live views."""
        collection: Any = self.collection  # a TorchRec ShardedEmbeddingCollection
        weight = collection.state_dict()[WEIGHT_KEY]
        momenta: dict[tuple[int, int], Tensor] = {}
        momentum = self.momentum()
        if momentum is not None:
            for shard in momentum.local_shards():
                row, col = shard.metadata.shard_offsets
                momenta[(row, col)] = shard.tensor
        out = []
        for shard in weight.local_shards():
            row, col = shard.metadata.shard_offsets
            out.append(LocalShard(row, col, shard.tensor, momenta.get((row, col))))
        return out

    def extra_repr(self) -> str:
        return f"{self.input_dim}, {self.output_dim}, path={self.path!r}, sharding_type={self.sharding_type!r}"
