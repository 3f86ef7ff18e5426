"""Keras optimizer state of a converted checkpoint, loaded into a ``torchrs.optim`` optimizer, matched to the
module's parameters by structure (:func:`structural_parameter_keys`, the way TF names checkpoint objects).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchrs import _safe_io
from torchrs.io.checkpoint import read_spec
from torchrs.io.keras_numbering import PARAMETERS, TFLayer, layout, parameter_layers
from torchrs.io.spec import CONFIG_FILE, OPTIMIZER_PREFIX, WEIGHTS_FILE

__all__ = ["load_optimizer_state", "structural_parameter_keys"]


def structural_parameter_keys(
    module: nn.Module, tf_keys: Iterable[str] | None = None
) -> dict[str, str]:
    """Structural key -> parameter name, the way TF names checkpoint objects.

    Attribute names are kept; inside an ``nn.Sequential`` (or a converted
    :class:`~torchrs.io.Functional`'s ``layers``) the children that own parameters are numbered
    ``#0, #1, ...`` like Keras's ``layer_with_weights-N`` (:func:`torchrs.io.keras_numbering.layout`).
    Keras also numbers layers whose only weights are no parameters (an adapted ``StringLookup``'s
    table, an adapted ``Normalization``'s statistics), so given the TF side's structural keys (``tf_keys``), the
    children with parameters take, in order, the numbers TF's parameters have at that place.

    Args:
        module: any module.
        tf_keys: the TF side's structural keys (``#1.weight``...), or None for plain numbering.

    Returns:
        ``{structural key: parameter name}``.

    >>> structural_parameter_keys(nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    {'#0.weight': '1.weight', '#0.bias': '1.bias'}
    >>> structural_parameter_keys(nn.Sequential(nn.Linear(2, 1)), ["#1.weight", "#1.bias"])
    {'#1.weight': '0.weight', '#1.bias': '0.bias'}
    """
    layers: dict[tuple[str, int], TFLayer] = {}
    for key in tf_keys or ():
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            if part.startswith("#") and part[1:].isdigit():
                container = "".join(f"{p}." for p in parts[:i])
                path = "/".join(parts[: i + 1])
                layers.setdefault(
                    (container, int(part[1:])), TFLayer(container, int(part[1:]), path, PARAMETERS)
                )
    ordered = sorted(layers.values(), key=lambda layer: (layer.container, layer.index))
    return layout(module, ordered).parameters


def _layers_with_parameters(checkpoint: Any) -> list[str]:
    """Structural keys (``#1.x``) of the TF layers with parameters in a converted weights
    directory, frozen ones included (they have no optimizer slot but keep their number); the
    layers whose only weights are state (adapted lookups, Normalization) are left out."""
    paths = checkpoint.architecture.get("paths")
    if not isinstance(paths, dict):
        return []
    every = [p for aliases in paths.values() for p in aliases if isinstance(p, str)]
    return [f"{layer.container}#{layer.index}.x" for layer in parameter_layers(every)]


def _check_lazy_momentum_embeddings(
    optimizer: torch.optim.Optimizer, module: nn.Module, package: str, class_name: str
) -> None:
    """Legacy Keras momentum moves only the embedding rows a batch touched (TF's gradient of a gather is
    sparse); a dense torch gradient cannot tell an untouched row from a zero gradient, so it would move every
    row by its velocity and leave TF's trajectory."""
    if package != "torchrs.optim.legacy" or class_name != "SGD":
        return
    if not any(group.get("momentum", 0.0) for group in optimizer.param_groups):
        return
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    dense = [
        name
        for name, layer in module.named_modules()
        if isinstance(layer, nn.Embedding) and not layer.sparse and id(layer.weight) in optimized
    ]
    if dense:
        raise ValueError(
            f"Legacy Keras SGD with momentum updates embedding rows lazily, which needs sparse gradients, but "
            f"these embeddings produce dense ones: {dense}. Set `.sparse = True` on them before training."
        )


# Slots a Keras optimizer creates only with a setting: the torchrs argument with the slot, and without it.
_SLOT_SETTINGS = {
    "momentum": ("momentum > 0", "momentum=0"),
    "average_gradient": ("centered=True", "centered=False"),
    "mg": ("centered=True", "centered=False"),
    "vhat": ("amsgrad=True", "amsgrad=False"),
}


def _check_slot_kinds(
    optimizer: torch.optim.Optimizer,
    param: nn.Parameter,
    name: str,
    slots: dict[str, torch.Tensor],
    spec: dict[str, Any],
) -> None:
    """The slots the optimizer would create for ``param`` (its ``_init_slots``, with its settings) must be the
    ones the checkpoint holds: a momentum slot under ``momentum=0`` would be ignored, a missing one started at
    zero, and either leaves Keras's trajectory."""
    init_slots = getattr(optimizer, "_init_slots", None)
    group = next((g for g in optimizer.param_groups if any(p is param for p in g["params"])), None)
    if init_slots is None or group is None:
        return
    probe: dict[str, Any] = {}
    init_slots(param, probe, group)
    # per-parameter slots only (ClippyAdagrad's scalar clipping factor is output, not state)
    wanted = {k for k, v in probe.items() if k in slots or tuple(v.shape) == tuple(param.shape)}
    held = set(slots) - {
        "average"
    }  # use_ema's average is created by the base class, not _init_slots
    if wanted != held:
        hints = sorted(
            {_SLOT_SETTINGS[k][0] for k in held - wanted if k in _SLOT_SETTINGS}
            | {_SLOT_SETTINGS[k][1] for k in wanted - held if k in _SLOT_SETTINGS}
        )
        raise ValueError(
            f"The checkpoint holds Keras {spec.get('keras_class', spec['class_name'])} slots {sorted(held)} for "
            f"{name}, but this {type(optimizer).__name__}'s settings use {sorted(wanted)}: build it with the "
            f"Keras optimizer's settings{' (' + ', '.join(hints) + ')' if hints else ''}, as in torchrs.json's "
            "architecture.optimizer.hyperparameters."
        )


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, module: nn.Module, directory: str | os.PathLike[str]
) -> dict[str, list[str]]:
    """Fills a ``torchrs.optim`` optimizer with the Keras optimizer state of a converted checkpoint.

    The directory is what ``python -m converters.tfrs_to_torch CKPT --out DIR`` writes for a TF
    checkpoint saved with its optimizer (``model.save_weights`` after ``fit``, or
    ``tf.train.Checkpoint(model=model, optimizer=optimizer)``). Slots are stored in TF layout under
    ``optimizer/<tf variable path>/<slot>`` and Keras's ``iterations`` under
    ``optimizer/iterations``; they are matched to ``module``'s parameters by structure (as
    ``converters.tfrs_to_torch.load_weights`` matches weights), Dense kernels transposed. Every
    parameter gets ``state["step"] = iterations``, so the next step is Keras's step
    ``iterations + 1``, and a copy of each optimizer-wide scalar (``optimizer/<key>``: Nadam's
    ``u_product``, legacy Nadam's ``momentum_cache``). Load the weights first
    (``load_weights(module, DIR)``).

    Args:
        optimizer: a ``torchrs.optim`` optimizer (``torchrs.optim.legacy`` for
            ``tf.keras.optimizers.legacy`` state) over ``module``'s parameters, of the class
            ``torchrs.json`` names, built with its ``hyperparameters`` (the settings that decide which
            slots exist, ``amsgrad``, ``centered``, ``momentum > 0``, must match the slots).
        module: the torchrs model mirroring the TF model's attributes and layer order.
        directory: the converted checkpoint directory.

    Returns:
        ``{parameter name: [slot names loaded]}``.

    Raises:
        ValueError: no optimizer state in the directory, another optimizer class, settings that use
            other slots than the checkpoint holds, or a slot that matches no parameter / a parameter
            without a slot / different shapes.
    """
    from safetensors import safe_open

    root = Path(directory)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(
            f"directory={os.fspath(directory)!r} is not a torchrs checkpoint (no {CONFIG_FILE})."
        )
    checkpoint = read_spec(root)
    # The same checks as torchrs.load: the declared shapes against the safetensors header first.
    weights = _safe_io.regular_file_inside(root, WEIGHTS_FILE)
    if checkpoint.model_kind.value not in ("weights", "graph"):
        _safe_io.check_spec(checkpoint.architecture, _safe_io.read_safetensors_header(weights))
    spec = checkpoint.architecture.get("optimizer")
    if not spec:
        raise ValueError(
            f"{root} holds no optimizer state: convert a TF checkpoint saved with its optimizer "
            "(tf.train.Checkpoint(model=..., optimizer=...) or model.save_weights after fit)."
        )
    expected, package = spec["class_name"], spec.get("module", "torchrs.optim")
    # The class or an ancestor, from the same package: torchrs.optim.legacy.Adam is not torchrs.optim.Adam.
    if not any(
        cls.__name__ == expected and package in (cls.__module__, cls.__module__.rpartition(".")[0])
        for cls in type(optimizer).__mro__
    ):
        raise ValueError(
            f"optimizer is a {type(optimizer).__module__}.{type(optimizer).__name__} but the checkpoint "
            f"holds {package}.{expected} state; build {package}.{expected}(module.parameters(), ...) "
            "instead."
        )
    amsgrad = any(group.get("amsgrad", False) for group in optimizer.param_groups)
    if expected in ("Adam", "AdamW") and amsgrad != bool(spec.get("amsgrad")):
        raise ValueError(
            f"optimizer has amsgrad={amsgrad} but the Keras Adam had amsgrad={spec.get('amsgrad')}; "
            "build the optimizer with the same setting."
        )
    _check_lazy_momentum_embeddings(optimizer, module, package, expected)
    variables: dict[str, dict[str, Any]] = spec["variables"]
    by_key = {entry["key"]: (path, entry) for path, entry in variables.items()}
    targets = structural_parameter_keys(module)
    roots = {key.split(".")[0] for key in by_key}
    layer_keys = _layers_with_parameters(checkpoint)
    if len(roots) == 1 and not any(k.split(".")[0] in roots for k in targets):
        root = roots.pop() + "."  # tf.train.Checkpoint(model=...) nests the model one level down
        by_key = {key[len(root) :]: value for key, value in by_key.items()}
        layer_keys = [k[len(root) :] for k in layer_keys if k.startswith(root)]
    # Numbered as TF numbers them (an adapted lookup before an Embedding shifts its number).
    targets = structural_parameter_keys(module, [*by_key, *layer_keys])
    params = dict(module.named_parameters())
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = sorted(  # no variables at all: a slotless optimizer (legacy SGD with decay), iterations only
        name
        for key, name in targets.items()
        if variables and key not in by_key and id(params[name]) in optimized
    )
    unexpected = sorted(path for key, (path, _) in by_key.items() if key not in targets)
    if missing or unexpected:
        raise ValueError(
            f"Optimizer state does not match the module: parameters without a slot {missing}, "
            f"slots without a parameter {unexpected}. The module must mirror the TF model's "
            "attributes and layer order (as for load_weights)."
        )
    loaded: dict[str, list[str]] = {}
    prefix = spec.get("prefix", OPTIMIZER_PREFIX)
    with safe_open(str(weights), framework="pt") as handle:  # a regular file inside root (above)
        iterations = int(handle.get_tensor(prefix + "iterations"))
        # optimizer-wide scalars (Nadam's u_product), a copy in every parameter's state
        shared = {key: handle.get_tensor(prefix + key) for key in spec.get("shared", [])}
        pending: list[tuple[nn.Parameter, dict[str, torch.Tensor]]] = []
        for key, name in targets.items():
            param = params[name]
            if id(param) not in optimized:
                continue
            slotless: dict[str, Any] = {"slots": [], "transpose": False}  # iterations only
            path, entry = by_key[key] if variables else (key, slotless)
            slots: dict[str, torch.Tensor] = {}
            for slot in entry["slots"]:
                value = handle.get_tensor(f"{prefix}{path}/{slot}")
                if entry["transpose"]:
                    value = value.T.contiguous()
                if tuple(value.shape) != tuple(param.shape):
                    raise ValueError(
                        f"Slot {slot!r} of {path} has shape {tuple(value.shape)} (after transpose) "
                        f"but parameter {name} has shape {tuple(param.shape)}."
                    )
                slots[slot] = value.to(device=param.device, dtype=param.dtype)
            for key, value in shared.items():
                slots[key] = value.to(device=param.device, dtype=param.dtype, copy=True)
            _check_slot_kinds(optimizer, param, name, slots, spec)
            pending.append((param, slots))
            loaded[name] = list(entry["slots"])
    for param_tensor, slots in pending:
        state = optimizer.state[param_tensor]
        state.update(slots)
        state["step"] = torch.tensor(iterations, dtype=torch.int64)
    return loaded
