"""``shard(model, plan, optimizer)``: replaces a model's embedding tables by TorchRec-sharded ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from torchrs.distributed._torchrec import require
from torchrs.distributed.embedding import FEATURE, TABLE, ShardedEmbedding
from torchrs.distributed.optimizer import FusedOptimizer, fused_optimizer_for
from torchrs.io.keras_numbering import layout

#: Plan values ``shard`` accepts. ``data_parallel`` keeps the table whole on every rank (DDP, any optimizer).
SHARDING_TYPES = ("row_wise", "table_wise", "column_wise", "data_parallel")
#: What ``plan="auto"`` lets TorchRec's planner choose from: the sharded kinds, with the fused CPU kernel.
AUTO_SHARDING_TYPES = ("row_wise", "table_wise", "column_wise")
#: TorchRec's compute kernel that runs the optimizer inside backward (FBGEMM's CPU TBE).
FUSED_KERNEL = "fused"

OptimizerArg = torch.optim.Optimizer | Callable[[list[nn.Parameter]], torch.optim.Optimizer] | str


class ShardingError(ValueError):
    """``shard`` cannot shard this model as asked; the message names the table and the fix."""


def _embeddings(model: nn.Module) -> dict[str, nn.Embedding]:
    return {path: m for path, m in model.named_modules() if isinstance(m, nn.Embedding) and path}


def _resolve_plan(plan: str | Mapping[str, str], tables: dict[str, nn.Embedding]) -> dict[str, str]:
    if isinstance(plan, str):
        if plan != "auto":
            raise ShardingError(
                f"plan={plan!r}: pass 'auto' or a dict {{module path: one of {SHARDING_TYPES}}}."
            )
        return dict.fromkeys(tables, "auto")
    unknown = sorted(set(plan) - set(tables))
    if unknown:
        raise ShardingError(
            f"plan names {unknown}, which are not embedding layers of the model; its tables are {sorted(tables)}."
        )
    for path, kind in plan.items():
        if kind not in SHARDING_TYPES:
            raise ShardingError(f"plan[{path!r}]={kind!r}: expected one of {SHARDING_TYPES}.")
    return {path: kind for path, kind in plan.items() if kind != "data_parallel"}


def _check_table(path: str, layer: nn.Embedding) -> None:
    reasons = []
    if getattr(layer, "embeddings_regularizer", None) is not None:
        reasons.append(
            "it has an embeddings_regularizer (its penalty needs the whole table on one rank)"
        )
    if getattr(layer, "mask_zero", False):
        reasons.append(
            "mask_zero=True: a converted tower derives its Keras mask from the nn.Embedding it calls, which a "
            "sharded table is not"
        )
    if layer.max_norm is not None:
        reasons.append("max_norm renormalizes rows outside the optimizer")
    if layer.padding_idx is not None:
        reasons.append("padding_idx freezes a row, FBGEMM updates it")
    if reasons:
        raise ShardingError(
            f"Cannot shard table {path!r}: {'; '.join(reasons)}. Remove that option or keep the table "
            "replicated with plan={path: 'data_parallel'}."
        )


def _build_optimizer(
    optimizer: OptimizerArg, dense: list[nn.Parameter], sharded_ids: set[int]
) -> torch.optim.Optimizer:
    """The optimizer of the parameters that stay replicated (DDP); also the one the tables' rule is read from."""
    from torchrs.models.base import _named_optimizer

    if isinstance(optimizer, torch.optim.Optimizer):
        for group in optimizer.param_groups:  # the tables are updated by FBGEMM from now on
            group["params"] = [p for p in group["params"] if id(p) not in sharded_ids]
        return optimizer
    factory = _named_optimizer(optimizer) if isinstance(optimizer, str) else optimizer
    # A model whose only parameters are tables still needs an optimizer object to read the rule from.
    return factory(dense or [nn.Parameter(torch.zeros(0))])


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent_path, _, name = path.rpartition(".")
    return (model.get_submodule(parent_path) if parent_path else model), name


def _generators(kinds: dict[str, str], world_size: int) -> dict[str, Any]:
    plan_module = require("torchrec.distributed.sharding_plan")
    out: dict[str, Any] = {}
    table_wise_count = 0
    for path, kind in kinds.items():
        if kind == "row_wise":
            out[path] = plan_module.row_wise(compute_kernel=FUSED_KERNEL)
        elif kind == "table_wise":  # spread whole tables over the ranks in model order
            out[path] = plan_module.table_wise(
                rank=table_wise_count % world_size, compute_kernel=FUSED_KERNEL
            )
            table_wise_count += 1
        else:
            out[path] = plan_module.column_wise(
                ranks=list(range(world_size)), compute_kernel=FUSED_KERNEL
            )
    return out


def _auto_plans(
    collections: dict[str, nn.Module], sharder: Any, world_size: int, group: Any
) -> dict[str, Any]:
    planner_module = require("torchrec.distributed.planner")
    types_module = require("torchrec.distributed.planner.types")
    container = nn.ModuleDict({path.replace(".", "__"): ec for path, ec in collections.items()})
    constraints = {
        TABLE: types_module.ParameterConstraints(
            sharding_types=list(AUTO_SHARDING_TYPES), compute_kernels=[FUSED_KERNEL]
        )
    }
    planner = planner_module.EmbeddingShardingPlanner(
        topology=planner_module.Topology(
            world_size=world_size, local_world_size=world_size, compute_device="cpu"
        ),
        constraints=constraints,
    )
    plan = planner.collective_plan(container, [sharder], group)
    return {path: plan.get_plan_for_module(path.replace(".", "__")) for path in collections}


def shard(
    model: nn.Module,
    plan: str | Mapping[str, str] = "auto",
    optimizer: OptimizerArg = "adagrad",
    *,
    process_group: Any = None,
) -> nn.Module:
    """Shards the model's embedding tables over the ranks of ``torch.distributed`` with TorchRec.

    Every ``nn.Embedding`` (``trs.layers.Embedding`` included) named by ``plan`` becomes a
    :class:`ShardedEmbedding` in place; lookups (``StringLookup``, ``IntegerLookup``, ``Hashing``) and dense
    layers stay as they are on every rank. Call it on every rank, after ``init_process_group``, with the same
    model (same initial weights on every rank, e.g. the same seed, or tables built on the ``meta`` device and
    filled by :func:`~torchrs.distributed.load_sharded`).

    The optimizer is fixed here: sharded tables are updated inside ``backward`` by FBGEMM with the same numbers
    as the torchrs optimizer (``Adagrad`` with Keras's rule, or ``SGD`` without momentum; anything else is
    refused, see :mod:`torchrs.distributed.optimizer`); the other parameters keep the torchrs optimizer, which
    becomes the model's (``model.compile(optimizer=...)`` is done here for a ``trs.Model``). Later changes of
    the optimizer's learning rate do not reach the tables.

    Args:
        model: the model, built as for one process.
        plan: ``"auto"`` (TorchRec's planner chooses among row-, table- and column-wise) or
            ``{module path: "row_wise" | "table_wise" | "column_wise" | "data_parallel"}``; tables not named
            stay whole on every rank (as ``"data_parallel"``: DDP averages their gradients).
        optimizer: a ``torchrs.optim`` optimizer over the model's parameters, a factory ``params -> optimizer``
            or a name (``"adagrad"``, ``"sgd"``, Keras defaults).
        process_group: the group to shard over (default: the world).

    Returns:
        ``model`` itself, sharded.

    Raises:
        ShardingError: a plan entry that names no table or an unknown type, or a table option FBGEMM cannot
            reproduce (regularizer, ``mask_zero``, ``max_norm``, ``padding_idx``).
        UnsupportedShardedOptimizerError: the optimizer's numbers cannot be reproduced on sharded tables.
        TorchRecNotInstalledError: TorchRec is not installed (``make torchrec``).
        RuntimeError: ``torch.distributed`` is not initialized.
    """
    # Everything that can be refused is checked before TorchRec or a collective is touched.
    tables = _embeddings(model)
    kinds = _resolve_plan(plan, tables)
    for path in kinds:
        _check_table(path, tables[path])
    sharded_ids = {id(tables[path].weight) for path in kinds}
    dense = [p for p in model.parameters() if p.requires_grad and id(p) not in sharded_ids]
    if (
        kinds
    ):  # refuse an optimizer FBGEMM cannot follow; a factory is probed on a throwaway parameter
        probe = optimizer
        if not isinstance(probe, torch.optim.Optimizer):
            probe = _build_optimizer(probe, [], set())
        fused_optimizer_for(probe, sorted(kinds))
    require("torchrec")
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise RuntimeError(
            "shard() needs torch.distributed: launch with torchrun and call "
            "torch.distributed.init_process_group('gloo' or 'nccl', timeout=...) first."
        )
    group = process_group or torch.distributed.group.WORLD
    world_size = torch.distributed.get_world_size(group)
    dense_optimizer = _build_optimizer(optimizer, dense, sharded_ids)
    fused = fused_optimizer_for(dense_optimizer, sorted(kinds)) if kinds else None
    # The model's own numbering (Keras's, without a checkpoint); load_sharded renumbers by the checkpoint's.
    keys = {name: key for key, name in layout(model, []).parameters.items()}

    embedding_module = require("torchrec.modules.embedding_modules")
    configs = require("torchrec.modules.embedding_configs")
    sharder_module = require("torchrec.distributed.embedding")
    types = require("torchrec.distributed.types")
    plan_module = require("torchrec.distributed.sharding_plan")
    collections = {
        path: embedding_module.EmbeddingCollection(
            tables=[
                configs.EmbeddingConfig(
                    name=TABLE,
                    embedding_dim=tables[path].embedding_dim,
                    num_embeddings=tables[path].num_embeddings,
                    feature_names=[FEATURE],
                )
            ],
            device=torch.device(
                "meta"
            ),  # shards are allocated by the sharder, the whole table never
        )
        for path in kinds
    }
    if not kinds:
        return _finish(model, dense_optimizer)
    assert fused is not None
    sharder = sharder_module.EmbeddingCollectionSharder(fused_params=fused.fused_params())
    if isinstance(plan, str):
        module_plans = _auto_plans(collections, sharder, world_size, group)
    else:
        generators = _generators(kinds, world_size)
        module_plans = {
            path: plan_module.construct_module_sharding_plan(
                collections[path],
                {TABLE: generators[path]},
                sharder=sharder,
                local_size=world_size,
                world_size=world_size,
                device_type="cpu",
            )
            for path in kinds
        }
    env = types.ShardingEnv.from_process_group(group)
    for path, collection in collections.items():
        layer = tables[path]
        sharded = sharder.shard(collection, module_plans[path], env, torch.device("cpu"), path)
        module = ShardedEmbedding(
            sharded,
            input_dim=layer.num_embeddings,
            output_dim=layer.embedding_dim,
            path=path,
            structural_key=keys.get(f"{path}.weight", f"{path}.weight"),
            sharding_type=module_plans[path][TABLE].sharding_type,
            accumulator_offset=fused.accumulator_offset,
        )
        _fill(module, layer, fused)
        parent, name = _parent(model, path)
        setattr(parent, name, module)
    return _finish(model, dense_optimizer)


@torch.no_grad()
def _fill(module: ShardedEmbedding, layer: nn.Embedding, fused: FusedOptimizer) -> None:
    """Copies the rank's blocks from the unsharded table (or draws them with its initializer if on ``meta``)."""
    initializer = getattr(layer, "embeddings_initializer", None)
    for shard in module.local_shards():
        rows, cols = shard.weight.shape
        if layer.weight.is_meta:
            if initializer is None:
                raise ShardingError(
                    f"Table {module.path!r} is on the meta device and has no Keras initializer to draw its "
                    "shards from; build it as trs.layers.Embedding or load it with load_sharded()."
                )
            shard.weight.copy_(initializer((rows, cols)))
        else:
            shard.weight.copy_(
                layer.weight[shard.row : shard.row + rows, shard.col : shard.col + cols]
            )
        if shard.momentum is not None and fused.initial_state is not None:
            shard.momentum.fill_(fused.initial_state)


def _finish(model: nn.Module, dense_optimizer: torch.optim.Optimizer) -> nn.Module:
    compile_ = getattr(model, "compile", None)
    if callable(compile_) and hasattr(model, "_optimizer_factory"):  # a trs.Model
        compile_(optimizer=dense_optimizer)
    return model
