"""Sharded checkpoints: fill shards from a converted TF checkpoint by slices, resume with DCP, export unsharded.

* :func:`load_sharded` reads a converter output (``python -m converters.tfrs_to_torch CKPT --out DIR``) with
  ``safetensors``' slice reader: each rank reads only the rows / columns of its own shards (weights and Keras
  Adagrad accumulators), never the whole table.
* :func:`save_checkpoint` / :func:`load_checkpoint` are ``torch.distributed.checkpoint`` (DCP): every rank
  writes its shards; loading into a model sharded by another plan (row-wise -> table-wise, another world size)
  re-shards. DCP's own ``.metadata`` file is written by torch with pickle: use these for resuming your own
  runs, and :func:`export_unsharded` (safetensors + JSON) for anything you exchange.
* :func:`export_unsharded` gathers every table to rank 0 and writes one torchrs directory under the unsharded
  model's parameter names; ``torchrs.load(DIR)`` returns its tensors for ``model.load_state_dict``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from torchrs.distributed._torchrec import require
from torchrs.distributed.embedding import WEIGHT_KEY, ShardedEmbedding
from torchrs.io import CONFIG_FILE, FORMAT_VERSION, OPTIMIZER_PREFIX, WEIGHTS_FILE
from torchrs.io.keras_numbering import TFLayer, layout, structural_key, weighted_layers_from_paths

#: ``torchrs.json["architecture"]["source"]`` of an :func:`export_unsharded` directory (tensors by torch name).
UNSHARDED_SOURCE = "torchrs.distributed.export_unsharded"
#: Keras Adagrad's slot name in converted checkpoints (``optimizer/<tf path>/accumulator``).
ACCUMULATOR_SLOT = "accumulator"
#: Variables of a TF checkpoint that belong to no model (``tf.train.Checkpoint``'s own counter).
_NOT_MODEL = frozenset({"save_counter"})


def _sharded_modules(model: nn.Module) -> dict[str, ShardedEmbedding]:
    return {path: m for path, m in model.named_modules() if isinstance(m, ShardedEmbedding)}


def _read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(
            f"{os.fspath(directory)!r} is not a torchrs checkpoint (no {CONFIG_FILE}); convert the TF "
            "checkpoint first: python -m converters.tfrs_to_torch CKPT --out DIR."
        )
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("model_kind") != "weights":
        raise ValueError(
            f"{os.fspath(directory)!r} holds a rebuilt {meta.get('model_kind')!r}; load_sharded reads a "
            "converted TF checkpoint (model_kind 'weights') or an export_unsharded directory."
        )
    return meta


def read_tensor_slice(
    file: str | os.PathLike[str], name: str, rows: slice, cols: slice | None = None
) -> Tensor:
    """Reads ``tensor[rows, cols]`` of one tensor of a safetensors file without loading the rest.

    Args:
        file: the ``.safetensors`` file.
        name: the tensor's name in it.
        rows: rows to read.
        cols: columns to read (all if ``None``; only for 2-D tensors).

    Returns:
        The block, a new CPU tensor.

    >>> import tempfile, os
    >>> from safetensors.torch import save_file
    >>> path = os.path.join(tempfile.mkdtemp(), "t.safetensors")
    >>> save_file({"w": torch.arange(12.0).reshape(4, 3)}, path)
    >>> read_tensor_slice(path, "w", slice(1, 3), slice(0, 2))
    tensor([[3., 4.],
            [6., 7.]])
    """
    from safetensors import safe_open

    with safe_open(os.fspath(file), framework="pt") as handle:
        block = handle.get_slice(name)
        return block[rows] if cols is None else block[rows, cols]


def _structural_index(meta: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """``{structural key: (tensor name, transpose)}`` of a converted checkpoint's weights."""
    architecture = meta.get("architecture") or {}
    if architecture.get("source") == UNSHARDED_SOURCE:
        return {key: (name, False) for key, name in architecture["structural_keys"].items()}
    index: dict[str, tuple[str, bool]] = {}
    for name, paths in architecture.get("paths", {}).items():
        if name.startswith(OPTIMIZER_PREFIX) or name in _NOT_MODEL:
            continue  # optimizer variables (their slots are read by spec) and TF's save counter
        for path in paths:
            found = structural_key(path)
            if found is not None:
                index.setdefault(found[0], (name, found[1]))
    return index


def _tf_layers(meta: dict[str, Any]) -> list[TFLayer]:
    """The TF layers with weights of a converted checkpoint (an adapted lookup shifts the numbers after it);
    none for an :func:`export_unsharded` directory, whose keys are the torch model's own numbering."""
    architecture = meta.get("architecture") or {}
    if architecture.get("source") == UNSHARDED_SOURCE:
        return []
    paths = architecture.get("paths", {})
    return weighted_layers_from_paths(
        [
            path
            for name, aliases in paths.items()
            if not name.startswith(OPTIMIZER_PREFIX) and name not in _NOT_MODEL
            for path in aliases
        ]
    )


def _strip_single_root(
    index: dict[str, Any], targets: set[str], layers: list[TFLayer] | None = None
) -> tuple[dict[str, Any], str]:
    """``tf.train.Checkpoint(model=...)`` nests the model one attribute down: strip it when that fits.

    Returns the index and the stripped prefix (``"model."`` or ``""``); ``layers`` are stripped in place.
    """
    roots = {key.split(".")[0] for key in index}
    if len(roots) == 1 and not any(key.split(".")[0] in roots for key in targets):
        root = roots.pop() + "."
        if layers is not None:
            layers[:] = [
                replace(layer, container=layer.container[len(root) :])
                for layer in layers
                if layer.container.startswith(root)
            ]
        return {key[len(root) :]: value for key, value in index.items()}, root
    return index, ""


def _targets(
    model: nn.Module, layers: list[TFLayer]
) -> tuple[dict[str, str], dict[str, ShardedEmbedding]]:
    """Dense ``{structural key: parameter name}`` and sharded ``{structural key: module}``, numbered as Keras
    numbers ``layers`` (the checkpoint's; ``[]``: the model's own numbering)."""
    sharded = _sharded_modules(model)
    numbered = layout(model, layers)
    dense = {
        key: name
        for key, name in numbered.parameters.items()
        if not any(name.startswith(f"{path}.") for path in sharded)
    }
    return dense, {numbered.modules[path] + "weight": module for path, module in sharded.items()}


@torch.no_grad()
def load_sharded(model: nn.Module, directory: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Fills a sharded model from a converted TF checkpoint (or an :func:`export_unsharded` directory).

    Each rank reads, by slices, only the blocks of its own shards: weights and, when the checkpoint holds Keras
    Adagrad state, the accumulators (turned into FBGEMM's state, see ``optimizer.py``). Replicated parameters
    are read whole, and their optimizer slots go to ``model.optimizer``. Matching is by structure, as
    ``converters.tfrs_to_torch.load_weights`` does, so the model must mirror the TF model.

    Args:
        model: a model returned by :func:`~torchrs.distributed.shard` (on every rank).
        directory: the converted checkpoint directory.

    Returns:
        ``{parameter or table path: [what was loaded]}`` for this rank.

    Raises:
        ValueError: not a torchrs ``weights`` directory, a parameter or table without a tensor, shapes that
            differ, or optimizer state of a kind the tables do not run.
    """
    meta = _read_meta(directory)
    file = Path(directory) / WEIGHTS_FILE
    layers = _tf_layers(meta)
    plain_dense, plain_sharded = _targets(model, [])
    index, root = _strip_single_root(
        _structural_index(meta), set(plain_dense) | set(plain_sharded), layers
    )
    # Numbered as the checkpoint numbers its layers: an adapted lookup before a table shifts it.
    dense, sharded = _targets(model, layers)
    missing = sorted([name for key, name in dense.items() if key not in index])
    missing += sorted(m.path for key, m in sharded.items() if key not in index)
    if missing:
        raise ValueError(
            f"{os.fspath(directory)!r} has no tensor for {missing}; its structural keys are "
            f"{sorted(index)[:20]}. The model must mirror the TF model's attributes and layer order."
        )
    from safetensors import safe_open

    loaded: dict[str, list[str]] = {}
    params = dict(model.named_parameters())
    with safe_open(os.fspath(file), framework="pt") as handle:
        for key, name in dense.items():
            tensor_name, transpose = index[key]
            value = handle.get_tensor(tensor_name)
            value = value.T if transpose else value
            _check_shape(name, tuple(params[name].shape), tensor_name, tuple(value.shape))
            params[name].copy_(value)
            loaded[name] = ["weight"]
        for key, module in sharded.items():
            tensor_name, _ = index[key]
            block = handle.get_slice(tensor_name)
            _check_shape(
                module.path,
                (module.input_dim, module.output_dim),
                tensor_name,
                tuple(block.get_shape()),
            )
            for shard in module.local_shards():
                rows, cols = shard.weight.shape
                shard.weight.copy_(
                    block[shard.row : shard.row + rows, shard.col : shard.col + cols]
                )
            loaded[module.path] = ["weight"]
        spec = (meta.get("architecture") or {}).get("optimizer")
        if spec:
            _load_optimizer(model, spec, handle, dense, sharded, loaded, root)
    return loaded


def _check_shape(name: str, expected: tuple[int, ...], source: str, got: tuple[int, ...]) -> None:
    if expected != got:
        raise ValueError(f"{name} has shape {expected} but the checkpoint's {source} has {got}.")


def _load_optimizer(
    model: nn.Module,
    spec: dict[str, Any],
    handle: Any,
    dense: dict[str, str],
    sharded: dict[str, ShardedEmbedding],
    loaded: dict[str, list[str]],
    root: str,
) -> None:
    prefix = spec.get("prefix", OPTIMIZER_PREFIX)
    by_key = {
        entry["key"][len(root) :]: (path, entry)
        for path, entry in spec["variables"].items()
        if entry["key"].startswith(root)
    }
    iterations = int(handle.get_tensor(prefix + "iterations"))
    # Optimizer-wide scalars (Nadam's u_product, legacy Nadam's momentum_cache): a copy in every parameter's
    # state, as torchrs.io.load_optimizer_state does.
    shared = {key: handle.get_tensor(prefix + key) for key in spec.get("shared", [])}
    for key, module in sharded.items():
        if key not in by_key:
            continue
        path, entry = by_key[key]
        shards = module.local_shards()
        if all(shard.momentum is None for shard in shards):
            continue  # exact SGD keeps no state (Keras SGD's momentum-0 slot is -lr*g, never read)
        if ACCUMULATOR_SLOT not in entry["slots"]:
            raise ValueError(
                f"Table {module.path!r} runs Adagrad but the checkpoint holds {spec['class_name']} slots "
                f"{entry['slots']} for it; shard with the optimizer the checkpoint was trained with."
            )
        block = handle.get_slice(f"{prefix}{path}/{ACCUMULATOR_SLOT}")
        for shard in shards:
            rows, cols = shard.weight.shape
            assert shard.momentum is not None
            accumulator = block[shard.row : shard.row + rows, shard.col : shard.col + cols]
            shard.momentum.copy_(accumulator + module.accumulator_offset)
        loaded[module.path].append(ACCUMULATOR_SLOT)
    optimizer = getattr(model, "optimizer", None)
    params = dict(model.named_parameters())
    for key, name in dense.items():
        if optimizer is None or key not in by_key:
            continue
        path, entry = by_key[key]
        state = optimizer.state[params[name]]
        for slot in entry["slots"]:
            value = handle.get_tensor(f"{prefix}{path}/{slot}")
            state[slot] = (value.T if entry["transpose"] else value).contiguous()
            loaded[name].append(slot)
        for key_name, value in shared.items():
            state[key_name] = value.clone()
            loaded[name].append(key_name)
        state["step"] = torch.tensor(iterations, dtype=torch.int64)


# --------------------------------------------------------------------------------------------------- DCP
def _dcp_state(
    model: nn.Module, create: Callable[[str, Any], Tensor] | None = None
) -> dict[str, Any]:
    """The state DCP saves / loads in place: model tensors, tables' FBGEMM state, replicated slots."""
    tables: dict[str, Any] = {}
    for path, module in _sharded_modules(model).items():
        momentum = module.momentum()
        if momentum is not None:
            tables[path] = momentum
    slots: dict[str, Tensor] = {}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for param, state in optimizer.state.items():
            for slot, value in state.items():
                if isinstance(value, Tensor) and id(param) in names:
                    slots[f"{names[id(param)]}/{slot}"] = value
    state = {"model": model.state_dict(), "tables": tables, "optimizer": slots}
    return {key: value for key, value in state.items() if value}  # DCP cannot load an empty dict


def save_checkpoint(model: nn.Module, directory: str | os.PathLike[str]) -> None:
    """Writes a resumable checkpoint with ``torch.distributed.checkpoint`` (call on every rank).

    Holds the model's tensors (each rank its shards), the tables' optimizer state and the replicated
    parameters' optimizer slots. Read it back with :func:`load_checkpoint`, under any sharding plan.

    Args:
        model: a sharded model.
        directory: where to write (created).
    """
    dcp = require("torch.distributed.checkpoint")
    dcp.save(_dcp_state(model), checkpoint_id=os.fspath(directory))


def load_checkpoint(model: nn.Module, directory: str | os.PathLike[str]) -> None:
    """Loads a :func:`save_checkpoint` directory into ``model`` in place, re-sharding to its plan.

    Call on every rank. Replicated parameters' optimizer slots missing from ``model.optimizer`` (a fresh
    optimizer) are created from the checkpoint's shapes.

    Args:
        model: a sharded model (any plan, same tables).
        directory: a :func:`save_checkpoint` directory.
    """
    dcp = require("torch.distributed.checkpoint")
    reader = dcp.FileSystemReader(os.fspath(directory))
    metadata = reader.read_metadata().state_dict_metadata
    state = _dcp_state(model)
    state.setdefault("optimizer", {})
    optimizer = getattr(model, "optimizer", None)
    params = dict(model.named_parameters())
    created: list[tuple[Any, str, Tensor]] = []
    for key, item in metadata.items():
        if not key.startswith("optimizer.") or optimizer is None:
            continue
        name, _, slot = key[len("optimizer.") :].rpartition("/")
        if key[len("optimizer.") :] not in state["optimizer"] and name in params:
            value = torch.zeros(tuple(item.size), dtype=item.properties.dtype)
            state["optimizer"][f"{name}/{slot}"] = value
            created.append((params[name], slot, value))
    dcp.load({key: value for key, value in state.items() if value}, storage_reader=reader)
    for param, slot, value in created:
        optimizer.state[param][slot] = value  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------------ export
@torch.no_grad()
def export_unsharded(model: nn.Module, directory: str | os.PathLike[str]) -> None:
    """Gathers every table to rank 0 and writes the whole model as one torchrs directory (call on every rank).

    The tensors keep the unsharded model's names (a table at ``user_model.1`` is ``user_model.1.weight``), so
    ``model.load_state_dict(torchrs.load(DIR))`` restores an unsharded twin; :func:`load_sharded` also reads
    it. Only rank 0 writes (to a temporary directory, then renamed); the others only take part in the gather.

    Args:
        model: a sharded model.
        directory: the output directory (replaced if it exists).
    """
    from safetensors.torch import save_file

    rank = torch.distributed.get_rank()
    sharded = _sharded_modules(model)
    tensors: dict[str, Tensor] = {}
    for name, value in model.state_dict().items():
        owner = next((path for path in sharded if name.startswith(f"{path}.")), None)
        if owner is None:
            tensors[name] = value.detach().cpu().contiguous()
    for path, module in sharded.items():
        collection: Any = module.collection  # a TorchRec ShardedEmbeddingCollection
        sharded_tensor = collection.state_dict()[WEIGHT_KEY]
        full = torch.empty(module.input_dim, module.output_dim) if rank == 0 else None
        sharded_tensor.gather(dst=0, out=full)
        if full is not None:
            tensors[f"{path}.weight"] = full
    if rank == 0:
        dense, tables = _targets(model, [])
        structural = {key: name for key, name in dense.items() if name in tensors}
        structural.update({key: f"{m.path}.weight" for key, m in tables.items()})
        root = Path(directory)
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent)
        )  # renamed when complete
        save_file(tensors, str(tmp / WEIGHTS_FILE))
        payload = {
            "format": "torchrs",
            "format_version": FORMAT_VERSION,
            "model_kind": "weights",
            "architecture": {
                "class_name": "Weights",  # the spec's node for model_kind "weights" (torchrs.io.spec)
                "layout": "torch",
                "source": UNSHARDED_SOURCE,
                "paths": {name: [name] for name in tensors},
                "structural_keys": structural,
            },
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    torch.distributed.barrier()
