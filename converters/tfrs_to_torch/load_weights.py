"""``load_weights(module, MODEL_DIR)``: TF weights into a torchrs module rewritten by hand, by structure.

For subclassed TFRS models (a custom ``call``) no converter can rebuild the module; the user writes
the torchrs twin and this function fills it. Names are matched by *structure*, the way TF itself
names checkpoint objects:

* attribute names are kept (``self.user_model`` in TF <-> ``self.user_model`` in torch);
* inside a Keras ``Sequential`` / functional model, TF numbers the layers that own weights
  (``layer_with_weights-1``), an *adapted* lookup / Normalization / Discretization included (their
  tables and statistics are Keras weights); inside a torch ``nn.Sequential`` the children are
  numbered the same way, aligned with what the checkpoint holds (see
  :mod:`torchrs.io.keras_numbering`), so ``[StringLookup, Embedding, Dense]`` matches on
  both sides whether the Keras lookup was adapted or built with its vocabulary;
* state that is not a parameter is restored where the export holds it (Normalization statistics,
  Discretization summaries, a BruteForce index, lookup vocabularies from a SavedModel) and listed
  in ``LoadingInfo.restored_state``; what the export lacks is in ``state_not_restored``;
* list attributes keep their index (``_sublayers/0`` <-> ``_sublayers.0``);
* the variable itself goes through the rules table: ``embeddings`` -> ``weight``, ``kernel`` ->
  ``weight`` transposed, ``bias`` -> ``bias``.

Shapes must agree after the transpose; nothing is ever reshaped. Strict by default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from converters.tfrs_to_torch import formats, rules, tf_format
from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.plan import VariableRole, variable_role
from torchrs.io import keras_numbering
from torchrs.io.keras_numbering import StateTarget, TFLayer


@dataclass(frozen=True)
class LoadingInfo:
    """What :func:`load_weights` matched.

    Attributes:
        matched: torch names that received a TF value.
        missing: torch names with no TF variable.
        unexpected: TF variable paths with no torch parameter.
        mismatched: ``(torch_name, torch_shape, tf_path, tf_shape)`` where shapes disagree
            (``tf_shape`` after the Dense transpose).
        restored_state: torch names of the state that is not a parameter and was restored
            (``0.vocabulary``, ``1.adapt_mean``, ``index.candidates``...).
        state_not_restored: ``(torch module name or TF path, why)`` for state not restored: the
            export does not hold it (an adapted vocabulary in a TF checkpoint: Keras empties its
            ``token_counts`` table once adapted), or no torch layer stands for the TF layer.
    """

    matched: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], str, tuple[int, ...]], ...]
    restored_state: tuple[str, ...] = ()
    state_not_restored: tuple[tuple[str, str], ...] = ()

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


def _tensor_getter(handle: Any, name: str) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(handle.get_tensor(name))


def _variable_getter(reader: Any, key: str) -> Callable[[], np.ndarray]:
    return lambda: tf_format.read_tensor(reader, key)


def _tf_sources(
    model_dir: str | os.PathLike[str],
) -> tuple[list[_Source], list[TFLayer], formats.SourceFormat | None]:
    """Every variable of the export (structural key, shape, loader), its weighted layers, its format."""
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
                found = keras_numbering.structural_key(path)
                if found is not None:
                    shape = tuple(handle.get_slice(name).get_shape())
                    sources.append(
                        _Source(path, found[0], shape, found[1], _tensor_getter(handle, name))
                    )
        all_paths = [path for name in names for path in paths.get(name, [name])]
        return sources, keras_numbering.weighted_layers_from_paths(all_paths), None
    fmt = formats.detect_format(model_dir)
    if fmt.checkpoint_prefix is None:
        raise ConversionError(
            f"load_weights reads TF checkpoints and SavedModels; {model_dir} is a {fmt.kind}. "
            "Convert it first (python -m converters.tfrs_to_torch) or save it with save_weights."
        )
    reader = tf_format.open_checkpoint(fmt.checkpoint_prefix)
    shapes = reader.get_variable_to_shape_map()
    graph = tf_format.checkpoint_object_graph(reader)
    sources = []
    for key, var_paths in tf_format.variable_paths(graph).items():
        for path in var_paths:
            found = keras_numbering.structural_key(path)
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
    return sources, keras_numbering.weighted_layers(graph), fmt


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


_Mismatch = tuple[str, tuple[int, ...], str, tuple[int, ...]]


@dataclass
class _StatePlan:
    """What restoring one state target will do (checked before anything is copied)."""

    restored: list[str]
    not_restored: list[tuple[str, str]]
    mismatched: list[_Mismatch]
    consumed: set[str]  # structural keys of the TF sources it takes
    apply: list[Callable[[], None]]


def _tensor_like(array: np.ndarray, like: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    value = torch.from_numpy(np.ascontiguousarray(array))
    return value.to(dtype=like.dtype if like is not None else dtype, device=_device(like))


def _device(like: torch.Tensor | None) -> torch.device:
    return like.device if like is not None else torch.device("cpu")


def _qualified(name: str, leaf: str) -> str:
    """``0`` + ``adapt_mean`` -> ``0.adapt_mean``; at the root just ``adapt_mean``."""
    return f"{name}.{leaf}" if name else leaf


def _normalization(target: StateTarget, found: dict[str, _Source], plan: _StatePlan) -> None:
    mod: Any = target.module
    mean, variance, count = found.get("mean"), found.get("variance"), found.get("count")
    if mean is None or variance is None:
        plan.not_restored.append(
            (target.name or "<root>", f"no mean / variance under TF {target.layer.path}")
        )
        return
    plan.consumed |= {s.key for s in found.values()}  # under every name (mean, adapt_mean...)
    if mod.input_mean is not None:
        plan.not_restored.append(
            (
                target.name or "<root>",
                f"TF {target.layer.path} holds adapted statistics but the torchrs Normalization was "
                "built with mean= / variance=; create it without them to take TF's",
            )
        )
        return
    if mod.adapt_mean is not None and tuple(mod.adapt_mean.shape) != mean.shape:
        plan.mismatched.append(
            (
                _qualified(target.name, "adapt_mean"),
                tuple(mod.adapt_mean.shape),
                mean.path,
                mean.shape,
            )
        )
        return
    if not mod.built and tuple(mod.axis) not in ((-1,), ()):
        raise ConversionError(
            f"load_weights: the torchrs Normalization {target.name} (axis={mod.axis}) is not built, "
            "so the rank of its inputs is unknown; call it once on an input (or .build(shape)) "
            "before load_weights."
        )

    def apply() -> None:
        if not mod.built:  # axis -1 (or None): the statistics' shape is the last input axis
            mod.build((None, *mean.shape) if mean.shape else (None,))
        mod.adapt_mean = _tensor_like(mean.load(), mod.adapt_mean, torch.float32)
        mod.adapt_variance = _tensor_like(variance.load(), mod.adapt_variance, torch.float32)
        if count is not None:
            mod.count = _tensor_like(count.load(), mod.count, torch.int64)
        mod.finalize_state()

    plan.apply.append(apply)
    plan.restored += [_qualified(target.name, n) for n in ("adapt_mean", "adapt_variance")]
    plan.restored += [_qualified(target.name, "count")] if count is not None else []


def _discretization(target: StateTarget, found: dict[str, _Source], plan: _StatePlan) -> None:
    mod: Any = target.module
    summary = found.get("summary")
    if summary is None:
        plan.not_restored.append(
            (target.name or "<root>", f"no summary under TF {target.layer.path}")
        )
        return
    plan.consumed |= {s.key for s in found.values()}
    if mod.input_bin_boundaries is not None or not mod.num_bins:
        plan.not_restored.append(
            (
                target.name or "<root>",
                f"TF {target.layer.path} was adapted (its boundaries come from its quantile "
                "summary and num_bins); create the torchrs Discretization with the same num_bins "
                "and no bin_boundaries to take them",
            )
        )
        return

    def apply() -> None:
        mod.summary = _tensor_like(summary.load(), None, torch.float32)
        mod.finalize_state()  # the boundaries, from the summary as Keras computes them

    plan.apply.append(apply)
    plan.restored += [_qualified(target.name, "summary"), _qualified(target.name, "bin_boundaries")]


def _lookup(
    target: StateTarget, found: dict[str, _Source], plan: _StatePlan, vocabularies: _Vocabularies
) -> None:
    from torchrs.preprocessing import TextVectorization

    mod: Any = target.module
    inner: Any = mod._lookup_layer if isinstance(mod, TextVectorization) else mod
    idf = found.get("idf_weights") or found.get("_lookup_layer.idf_weights")
    plan.consumed |= {s.key for s in found.values()}  # token counts, document counts, idf
    tokens = vocabularies.tokens(target.layer.path, isinstance(mod, TextVectorization))
    if tokens is None:
        why = (
            "the SavedModel has no lookup_table under it"
            if vocabularies.saved_model
            else "Keras keeps no vocabulary in a TF checkpoint (adapt() empties its token_counts "
            "table); load from the SavedModel to restore it"
        )
        plan.not_restored.append(
            (
                target.name or "<root>",
                f"TF {target.layer.path} is an adapted lookup and {why}; the torchrs layer keeps "
                "the vocabulary it was built with",
            )
        )
    use_idf = idf is not None and inner.output_mode == "tf_idf"
    if idf is not None and use_idf and tokens is None and inner.idf_weights is not None:
        if tuple(inner.idf_weights.shape) != idf.shape:
            plan.mismatched.append(
                (
                    _qualified(target.name, "idf_weights"),
                    tuple(inner.idf_weights.shape),
                    idf.path,
                    idf.shape,
                )
            )
            return

    def apply() -> None:
        weights = idf.load() if use_idf and idf is not None else None
        if tokens is not None:
            specials = inner._token_start_index() if weights is not None else 0
            mod.set_vocabulary(tokens, idf_weights=None if weights is None else weights[specials:])
        elif weights is not None:
            inner.idf_weights = _tensor_like(weights, inner.idf_weights, torch.float32)

    plan.apply.append(apply)
    plan.restored += [_qualified(target.name, "vocabulary")] if tokens is not None else []
    plan.restored += [_qualified(target.name, "idf_weights")] if use_idf else []


def _index(target: StateTarget, found: dict[str, _Source], plan: _StatePlan) -> None:
    from torchrs.layers.factorized_top_k import Streaming

    mod: Any = target.module
    if isinstance(mod, Streaming):
        # Its only own variable is TFRS's internal counter, which the torchrs layer has no use for.
        plan.consumed |= {s.key for n, s in found.items() if n in ("counter", "_counter")}
        plan.not_restored.append(
            (
                target.name or "<root>",
                "a Streaming index keeps its candidates in a tf.data pipeline, never in a "
                "checkpoint; call index_from_dataset on the torchrs twin",
            )
        )
        return
    candidates = found.get("candidates") or found.get("_candidates")
    identifiers = found.get("identifiers") or found.get("_identifiers")
    if candidates is None:
        plan.not_restored.append(
            (
                target.name or "<root>",
                "the TF BruteForce was never indexed: no candidates in the export",
            )
        )
        return
    plan.consumed |= {
        s.key
        for n, s in found.items()
        if n in ("candidates", "_candidates", "identifiers", "_identifiers")
    }

    def apply() -> None:
        ids = None if identifiers is None else identifiers.load()
        if ids is not None and ids.dtype == object:
            ids = np.asarray([_text(x) for x in ids], dtype=object)
        mod.index(candidates.load(), ids)

    plan.apply.append(apply)
    plan.restored += [_qualified(target.name, "candidates")]
    plan.restored += [_qualified(target.name, "identifiers")] if identifiers is not None else []


def _text(value: Any) -> Any:
    """TF string tensors come back as bytes: UTF-8 text as ``str``, other bytes unchanged."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


class _Vocabularies:
    """Lookup vocabularies read from a SavedModel's tables (a TF checkpoint holds none)."""

    def __init__(self, fmt: formats.SourceFormat | None, trust_model: bool) -> None:
        self.fmt = fmt
        self.trust_model = trust_model
        self._reader: Any = None

    @property
    def saved_model(self) -> bool:
        """Whether the export is a SavedModel (which keeps the lookup tables)."""
        fmt = self.fmt
        return fmt is not None and fmt.kind in (formats.SAVED_MODEL, formats.KERAS_SAVED_MODEL)

    def tokens(self, path: str, text_vectorization: bool) -> list[Any] | None:
        fmt = self.fmt
        if fmt is None or not self.saved_model:
            return None
        if self._reader is None:
            from converters.tfrs_to_torch.safety.graph_ops import audit_saved_model

            # tf.saved_model.load runs the export's functions: the op audit first, as convert does.
            try:
                audit_saved_model(fmt.path, trust_model=self.trust_model)
            except ConversionError as err:
                first = str(err).split(". The converter")[0]
                raise ConversionError(
                    f"{first}. load_weights restores adapted vocabularies by running the export's "
                    "table functions, so it refuses this model. If you trust its author, pass "
                    "trust_model=True."
                ) from None
            self._reader = tf_format.SavedModelReader(
                fmt.path, str(fmt.checkpoint_prefix), fmt.path
            )
        sm = self._reader
        table_path = f"{path}/_lookup_layer" if text_vectorization else path
        node = 0
        for part in f"{table_path}/lookup_table".split("/"):
            child = sm.child(node, part)
            if child is None:
                return None
            node = child
        cls = "StringLookup" if text_vectorization else "_Lookup"
        table = sm.restored(f"{table_path}/lookup_table")
        keys, values = tf_format.export_table(table, cls, table_path, sm.table_key_dtype(node))
        ordered = keys[np.argsort(values, kind="stable")]
        return [_text(k) for k in ordered]


def _plan_state(
    targets: tuple[StateTarget, ...],
    sources: list[_Source],
    vocabularies: _Vocabularies,
) -> _StatePlan:
    plan = _StatePlan([], [], [], set(), [])
    for target in targets:
        found = {s.key[len(target.key) :]: s for s in sources if s.key.startswith(target.key)}
        kind = target.layer.kind
        if kind == keras_numbering.NORMALIZATION:
            _normalization(target, found, plan)
        elif kind == keras_numbering.DISCRETIZATION:
            _discretization(target, found, plan)
        elif kind == keras_numbering.LOOKUP:
            _lookup(target, found, plan, vocabularies)
        else:
            _index(target, found, plan)
    return plan


def _strip_root(sources: list[_Source], targets: dict[str, str]) -> str:
    """``tf.train.Checkpoint(model=...)`` nests everything under one attribute: the prefix to strip
    (``"model."``) when that fits the torch keys better, else ``""``."""
    roots = {s.key.split(".")[0] for s in sources}
    if len(roots) == 1 and not any(k.split(".")[0] in roots for k in targets):
        return roots.pop() + "."
    return ""


def load_weights(
    module: nn.Module,
    model_dir: str | os.PathLike[str],
    strict: bool = True,
    trust_model: bool = False,
) -> LoadingInfo:
    """Copies TF weights into ``module`` by structure (attribute names, weighted-layer order), and
    the state that is not a parameter where the export holds it.

    Args:
        module: the torchrs model rewritten to mirror the TF model's attributes and layer order.
        model_dir: a TF checkpoint (prefix or directory), a SavedModel, or a converted checkpoint
            directory (``model_kind == "weights"``).
        strict: raise when anything is missing, unexpected or mismatched (nothing is copied then).
        trust_model: run a SavedModel's table functions (to read adapted vocabularies) even when
            its graph holds ops that can act outside this process (the converter's --trust-model).

    Returns:
        The :class:`LoadingInfo`.

    Raises:
        ConversionError: in strict mode, the lists of problems (with both shapes for mismatches,
            and which layer is shifted against Keras's numbering, and why).
    """
    everything, tf_layers, fmt = _tf_sources(model_dir)
    model_sources = [s for s in everything if not _ignorable(s.path)]
    root = _strip_root(model_sources, keras_numbering.layout(module, []).parameters)
    if root:
        everything = [
            replace(s, key=s.key[len(root) :]) for s in everything if s.key.startswith(root)
        ]
        model_sources = [s for s in everything if not _ignorable(s.path)]
        tf_layers = [
            replace(layer, container=layer.container[len(root) :])
            for layer in tf_layers
            if layer.container.startswith(root)
        ]
    layout = keras_numbering.layout(module, tf_layers)
    targets = layout.parameters
    state = _plan_state(layout.states, everything, _Vocabularies(fmt, trust_model))
    sources = _gru_sources([s for s in model_sources if s.key not in state.consumed])
    params = dict(module.named_parameters())
    by_key: dict[str, _Source] = {}
    for source in sources:
        by_key.setdefault(source.key, source)
    matched: list[str] = []
    missing: list[str] = []
    mismatched: list[_Mismatch] = list(state.mismatched)
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
    info = LoadingInfo(
        tuple(matched),
        tuple(missing),
        tuple(sorted(unexpected)),
        tuple(mismatched),
        tuple(state.restored),
        tuple(state.not_restored)
        + tuple(
            (
                layer.path,
                f"{keras_numbering.KIND_TEXT[layer.kind]}, but the torchrs twin has no such "
                "layer at that place",
            )
            for layer in layout.unmatched
        ),
    )
    if strict and not info.ok:
        lines = [f"load_weights({type(module).__name__}, {os.fspath(model_dir)!r}) does not match:"]
        lines += [f"  missing in TF: {n}" for n in info.missing]
        lines += [f"  unexpected TF variable: {p}" for p in info.unexpected]
        lines += [f"  shape mismatch: {n} {s} vs TF {p} {t}" for n, s, p, t in info.mismatched]
        if layout.numbering and (info.missing or info.unexpected or info.mismatched):
            lines.append(
                "  Keras numbers the layers that own weights (layer_with_weights-N), adapted "
                "lookups / Normalization / Discretization included; the torchrs layers lined up as:"
            )
            lines += [f"    {line}" for line in layout.numbering]
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
        for apply in state.apply:
            apply()
    return info
