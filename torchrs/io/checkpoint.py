"""Reading and writing a torchrs checkpoint directory: :func:`load`, :func:`save`, :func:`read_spec`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchrs import _safe_io
from torchrs.io.nodes import ContainerNode, IndexNode, Node
from torchrs.io.registry import build_module, index_tensor_keys, parse, validate
from torchrs.io.spec import (
    CONFIG_FILE,
    OPTIMIZER_PREFIX,
    WEIGHTS_FILE,
    CheckpointSpec,
    ModelKind,
)
from torchrs.io.tensors import read_tensors

__all__ = ["load", "read_spec", "save"]


def read_spec(directory: str | os.PathLike[str]) -> CheckpointSpec:
    """The checked ``torchrs.json`` of a checkpoint directory (architecture nodes included, except for weights).

    Raises:
        ValueError: no ``torchrs.json`` there, a newer format version, or (as
            :class:`~torchrs.io.spec.CheckpointFormatError`) a malformed file.
    """
    root = Path(directory)
    if not (root / CONFIG_FILE).is_file():
        raise ValueError(
            f"{os.fspath(directory)!r} is not a torchrs checkpoint (no {CONFIG_FILE}). Convert a TF "
            "model first: python -m converters.tfrs_to_torch MODEL_DIR --out DIR."
        )
    # A regular file inside the directory (no symlink out, no FIFO), bounded in size and nesting.
    config_path = _safe_io.regular_file_inside(root, CONFIG_FILE)
    payload = _safe_io.read_json(config_path, CONFIG_FILE)
    spec = CheckpointSpec.from_json(payload)
    if spec.model_kind not in (
        ModelKind.WEIGHTS,
        ModelKind.GRAPH,
    ):  # a graph: torchrs.graph checks it
        validate(spec.architecture)
    return spec


def _load_states(
    module: nn.Module, node: Node, tensors: dict[str, torch.Tensor], prefix: str
) -> None:
    """Loads every parameter / vocabulary below ``module`` strictly (index data excluded)."""
    if isinstance(node, IndexNode):
        if node.query_model is not None:
            _load_states(module.query_model, node.query_model, tensors, prefix + "query_model.")  # type: ignore[arg-type]
        return
    if isinstance(node, ContainerNode):
        for name, child in node.children.items():
            _load_states(getattr(module, name), child, tensors, f"{prefix}{name}.")
        return
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    module.load_state_dict(state, strict=True)


def load(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Loads a torchrs checkpoint directory into a ready module.

    ``torchrs.json`` is checked against :class:`~torchrs.io.spec.CheckpointSpec` and the layer-kind registry
    before anything is built.

    Args:
        directory: the output of ``python -m converters.tfrs_to_torch MODEL_DIR --out DIR``.
        map_location: device to put the tensors on.

    Returns:
        An ``nn.Module`` (index, tower or container of towers) in eval mode, or for a converted TF
        checkpoint (``model_kind == "weights"``) a ``dict`` of tensors by TF object path. Optimizer
        state, when the export held one, is not loaded here: see :func:`torchrs.io.load_optimizer_state`.

    Raises:
        ValueError: the directory is not a torchrs checkpoint, or has a newer format version;
            :class:`~torchrs.io.spec.CheckpointFormatError` (a ``ValueError``): ``torchrs.json`` names an unknown
            kind, lacks a field or holds one of the wrong type.
    """
    spec = read_spec(directory)
    # Every declared shape and dtype is checked against the safetensors header (and the memory
    # guard) before a byte of tensor data is allocated.
    weights = _safe_io.regular_file_inside(Path(directory), WEIGHTS_FILE)
    header = _safe_io.read_safetensors_header(weights)
    if spec.model_kind not in (ModelKind.WEIGHTS, ModelKind.GRAPH):
        _safe_io.check_spec(spec.architecture, header)
    tensors = read_tensors(weights, device=map_location)
    if spec.model_kind is ModelKind.WEIGHTS:
        return tensors
    if spec.model_kind is ModelKind.GRAPH:  # a translated tf.saved_model.save export
        from torchrs.graph.storage import load_graph_model

        return load_graph_model(spec.architecture, tensors)
    module = _safe_io.build_checked(build_module, spec.architecture, tensors, header)
    index_data = index_tensor_keys(spec.architecture)
    states = {
        k: v
        for k, v in tensors.items()
        if k not in index_data
        and not k.startswith(OPTIMIZER_PREFIX)  # optimizer: load_optimizer_state
    }
    _load_states(module, parse(spec.architecture), states, "")
    return module.eval()


def save(
    module: nn.Module,
    directory: str | os.PathLike[str],
    architecture: dict[str, Any],
    model_kind: str = "tower",
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes ``module.state_dict()`` and an architecture spec as a torchrs checkpoint directory.

    Args:
        module: the module whose state is saved (its names must match ``architecture``).
        directory: created if missing; files inside are replaced.
        architecture: the spec :func:`~torchrs.io.registry.build_module` understands (checked first).
        model_kind: ``"tower"``, ``"index"``, ``"model"``.
        extra: more keys for ``torchrs.json``.
    """
    from safetensors.torch import save_file

    kind = ModelKind(model_kind)
    if kind is not ModelKind.WEIGHTS:
        validate(architecture)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(root / WEIGHTS_FILE))
    payload = {**CheckpointSpec(kind, architecture).to_json(), **(extra or {})}
    (root / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
