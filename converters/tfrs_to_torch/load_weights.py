"""``load_weights(module, MODEL_DIR)``: TF weights into a torchrs module rewritten by hand, by structure.

For subclassed TFRS models (a custom ``call``) no converter can rebuild the module; the user writes
the torchrs twin and this function fills it. Names are matched by *structure*, the way TF itself
names checkpoint objects:

* attribute names are kept (``self.user_model`` in TF <-> ``self.user_model`` in torch);
* inside a Keras ``Sequential`` / functional model, TF numbers the layers that own weights
  (``layer_with_weights-1``); inside a torch ``nn.Sequential`` the children that own parameters are
  numbered the same way, so ``[StringLookup, Embedding, Dense]`` matches on both sides;
* list attributes keep their index (``_sublayers/0`` <-> ``_sublayers.0``);
* the variable itself goes through the rules table: ``embeddings`` -> ``weight``, ``kernel`` ->
  ``weight`` transposed, ``bias`` -> ``bias``.

Shapes must agree after the transpose; nothing is ever reshaped. Strict by default.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from converters.tfrs_to_torch import formats, rules, tf_format
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.plan import VariableRole, variable_role
from torchrs.io import structural_parameter_keys

_WEIGHTED_LAYER = re.compile(r"layer_with_weights-(\d+)")
_ANY_LAYER = re.compile(r"layer-(\d+)")


@dataclass(frozen=True)
class LoadingInfo:
    """What :func:`load_weights` matched.

    Attributes:
        matched: torch names that received a TF value.
        missing: torch names with no TF variable.
        unexpected: TF variable paths with no torch parameter.
        mismatched: ``(torch_name, torch_shape, tf_path, tf_shape)`` where shapes disagree
            (``tf_shape`` after the Dense transpose).
    """

    matched: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], str, tuple[int, ...]], ...]

    @property
    def ok(self) -> bool:
        """True when everything matched."""
        return not (self.missing or self.unexpected or self.mismatched)


@dataclass(frozen=True)
class _Source:
    path: str  # one object path (the one used in messages)
    key: str  # structural key
    shape: tuple[int, ...]
    transpose: bool
    load: Callable[[], np.ndarray]


def _structural_key(path: str) -> tuple[str, bool] | None:
    """``user_model/layer_with_weights-1/kernel`` -> (``user_model.#1.weight``, True)."""
    parts = path.split("/")
    out = []
    for part in parts[:-1]:
        if part in tf_format.TRACKING_NAMES or _ANY_LAYER.fullmatch(part):
            return None  # an alias path: the layer_with_weights-N path is used instead
        found = _WEIGHTED_LAYER.fullmatch(part)
        out.append(f"#{found.group(1)}" if found else part)
    leaf, transpose = rules.attribute_rule(parts[-1]) or (parts[-1], False)
    out.append(leaf)
    return ".".join(out), transpose


def _torch_keys(module: nn.Module) -> dict[str, str]:
    """Structural key -> real parameter name of every parameter of ``module``."""
    return structural_parameter_keys(module)


def _tensor_getter(handle: Any, name: str) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(handle.get_tensor(name))


def _variable_getter(reader: Any, key: str) -> Callable[[], np.ndarray]:
    return lambda: tf_format.read_tensor(reader, key)


def _tf_sources(model_dir: str | os.PathLike[str]) -> list[_Source]:
    root = Path(model_dir)
    if (root / "torchrs.json").is_file():  # a converted checkpoint directory (model_kind "weights")
        from safetensors import safe_open

        meta = json.loads((root / "torchrs.json").read_text(encoding="utf-8"))
        if meta.get("model_kind") != "weights":
            raise ConversionError(
                f"{root} holds a rebuilt {meta.get('model_kind')}; load it with torchrs.io.load, "
                "or pass the TF export / a converted TF checkpoint to load_weights."
            )
        paths: dict[str, list[str]] = meta["architecture"]["paths"]
        handle = safe_open(str(root / "model.safetensors"), framework="numpy")
        names = set(handle.keys())
        sources = []
        for name in names:
            for path in paths.get(name, [name]):
                found = _structural_key(path)
                if found is not None:
                    shape = tuple(handle.get_slice(name).get_shape())
                    sources.append(
                        _Source(path, found[0], shape, found[1], _tensor_getter(handle, name))
                    )
        return sources
    fmt = formats.detect_format(model_dir)
    if fmt.checkpoint_prefix is None:
        raise ConversionError(
            f"load_weights reads TF checkpoints and SavedModels; {model_dir} is a {fmt.kind}. "
            "Convert it first (python -m converters.tfrs_to_torch) or save it with save_weights."
        )
    reader = tf_format.open_checkpoint(fmt.checkpoint_prefix)
    shapes = reader.get_variable_to_shape_map()
    sources = []
    for key, var_paths in tf_format.variable_paths(
        tf_format.checkpoint_object_graph(reader)
    ).items():
        for path in var_paths:
            found = _structural_key(path)
            if found is not None:
                shape = tuple(int(d) for d in shapes[key])
                sources.append(
                    _Source(
                        path,
                        found[0],
                        shape,
                        found[1],
                        _variable_getter(reader, key),
                    )
                )
    return sources


def _gru_sources(sources: list[_Source]) -> list[_Source]:
    """Keras GRU cells (``X/cell/kernel``, ``recurrent_kernel [u, 3u]``, ``bias [2, 3u]``) become
    the ``torch.nn.GRU`` tensors of a :class:`torchrs.layers.GRU` at ``X``
    (``X.gru.weight_ih_l0``...), gate blocks reordered from Keras (z, r, h) to torch (r, z, n).
    """
    by_key = {s.key: s for s in sources}
    out: list[_Source] = []
    replaced: set[str] = set()
    for source in sources:
        if (
            not source.key.endswith(".cell.recurrent_kernel")
            and source.key != "cell.recurrent_kernel"
        ):
            continue
        base = source.key[: -len("recurrent_kernel")]  # "X.cell."
        kernel, bias = by_key.get(base + "weight"), by_key.get(base + "bias")
        units = source.shape[0]
        if kernel is None or len(source.shape) != 2 or source.shape[1] != 3 * units:
            continue  # not a GRU (an LSTM has 4 gates, a SimpleRNN one)
        if bias is not None and bias.shape != (2, 3 * units):
            continue  # reset_after=False has no torch.nn.GRU equivalent: left unexpected
        layer = base[: -len("cell.")]
        parts: list[tuple[str, _Source, int | None, tuple[int, ...]]] = [
            ("weight_ih_l0", kernel, None, (3 * units, kernel.shape[0])),
            ("weight_hh_l0", source, None, (3 * units, units)),
        ]
        if bias is not None:
            parts += [("bias_ih_l0", bias, 0, (3 * units,)), ("bias_hh_l0", bias, 1, (3 * units,))]
        for torch_name, src, row, shape in parts:

            def load(src: _Source = src, row: int | None = row, units: int = units) -> np.ndarray:
                array = src.load()
                return rules.keras_gru_to_torch(array if row is None else array[row], units)

            out.append(_Source(src.path, f"{layer}gru.{torch_name}", shape, False, load))
        replaced |= {kernel.key, source.key} | ({bias.key} if bias is not None else set())
    return [s for s in sources if s.key not in replaced] + out


def _ignorable(path: str) -> bool:
    return variable_role(path) is not VariableRole.MODEL


def load_weights(
    module: nn.Module, model_dir: str | os.PathLike[str], strict: bool = True
) -> LoadingInfo:
    """Copies TF weights into ``module`` by structure (attribute names, weighted-layer order).

    Args:
        module: the torchrs model rewritten to mirror the TF model's attributes and layer order.
        model_dir: a TF checkpoint (prefix or directory), a SavedModel, or a converted checkpoint
            directory (``model_kind == "weights"``).
        strict: raise when anything is missing, unexpected or mismatched (nothing is copied then).

    Returns:
        The :class:`LoadingInfo`.

    Raises:
        ConversionError: in strict mode, the lists of problems (with both shapes for mismatches).
    """
    sources = _gru_sources([s for s in _tf_sources(model_dir) if not _ignorable(s.path)])
    targets = _torch_keys(module)
    params = dict(module.named_parameters())
    by_key: dict[str, _Source] = {}
    for source in sources:
        by_key.setdefault(source.key, source)
    # tf.train.Checkpoint(model=...) nests everything under one attribute: strip it if that fits better.
    roots = {s.key.split(".")[0] for s in by_key.values()}
    if len(roots) == 1 and not any(k.split(".")[0] in roots for k in targets):
        root = roots.pop() + "."
        by_key = {k[len(root) :]: s for k, s in by_key.items()}
    matched: list[str] = []
    missing: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], str, tuple[int, ...]]] = []
    assignments: list[tuple[Any, _Source]] = []
    for key, name in targets.items():
        found_source = by_key.get(key)
        if found_source is None:
            missing.append(name)
            continue
        source = found_source
        shape = source.shape[::-1] if source.transpose else source.shape
        param = params[name]
        if not is_lazy(param) and tuple(param.shape) != tuple(shape):
            mismatched.append((name, tuple(param.shape), source.path, tuple(shape)))
            continue
        matched.append(name)
        assignments.append((param, source))
    used = {key for key in targets if key in by_key}
    seen_paths: set[str] = set()
    unexpected = []
    for key, source in by_key.items():
        if key not in used and source.path not in seen_paths:
            seen_paths.add(source.path)
            unexpected.append(source.path)
    info = LoadingInfo(tuple(matched), tuple(missing), tuple(sorted(unexpected)), tuple(mismatched))
    if strict and not info.ok:
        lines = [f"load_weights({type(module).__name__}, {os.fspath(model_dir)!r}) does not match:"]
        lines += [f"  missing in TF: {n}" for n in info.missing]
        lines += [f"  unexpected TF variable: {p}" for p in info.unexpected]
        lines += [f"  shape mismatch: {n} {s} vs TF {p} {t}" for n, s, p, t in info.mismatched]
        lines.append(
            "Fix the torchrs module's attribute names / layer order, or pass strict=False."
        )
        raise ConversionError("\n".join(lines))
    with torch.no_grad():
        for param, source in assignments:
            array = source.load()
            value = torch.from_numpy(np.ascontiguousarray(array.T if source.transpose else array))
            if is_lazy(param):
                param.materialize(tuple(value.shape), dtype=value.dtype)
            param.copy_(value)
    return info
