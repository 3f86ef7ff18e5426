"""Keras optimizer state in a TF checkpoint or SavedModel -> tensors ``torchrs.optim`` resumes from.

Where the state lives. Every format keeps it in a TF2 checkpoint under the object the optimizer was
tracked as, ``optimizer``: ``model.save_weights`` / ``tf.train.Checkpoint(model=..., optimizer=...)``
/ ``ModelCheckpoint(save_weights_only=True)`` write it in the checkpoint itself; Keras
``model.save(dir, save_format="tf")`` (``include_optimizer=True``, the default),
``ModelCheckpoint(save_weights_only=False)`` and ``tf.saved_model.save`` of a compiled model write it
in the SavedModel's ``variables/variables`` checkpoint, next to the model's variables.

Two layouts, told apart by the optimizer node's children:

* tf_keras 2.x optimizers (``tf.keras.optimizers.Adam`` under ``TF_USE_LEGACY_KERAS=1``) keep
  ``_iterations`` and one *list* per slot kind (``optimizer/_momentums/3``) in the order of the
  ``var_list`` they were built with. Each slot variable is named ``<optimizer name>/<slot>/<model
  variable name>`` (``Adam/m/dense/kernel``), so it is matched to its model variable by name, or,
  when names are not unique, by position in ``model.trainable_variables`` order;
* ``tf.keras.optimizers.legacy`` (Keras 2's ``OptimizerV2``) keeps ``iter``, its hyperparameters as
  variables (``beta_1``, ``decay``...) and *slot references* that name the model variable of each
  slot (``<var>/.OPTIMIZER_SLOT/optimizer/m``). They resume in ``torchrs.optim.legacy``, whose
  classes follow the legacy TF kernels (Adagrad's epsilon outside the square root, lazy momentum on
  embedding rows), ``decay`` and the legacy clipping order; legacy SGD without momentum keeps no
  slot, and only its ``iterations`` matter, when it has a ``decay``.

The optimizer class is read from the structure (which slot kinds exist), with the optimizer's name
(or, in a Keras SavedModel, its saved config) to tell apart classes that store the same slots. What
``torchrs.optim`` (and ``torchrs.optim.legacy``) can resume exactly is the table :data:`SUPPORTED`; anything else is refused with
the reason (or, with ``--no-strict``, listed in the report). The plan gets:

* ``optimizer/<tf variable path>/<slot>``: each slot in TF layout (Dense kernels ``[in, out]``);
* ``optimizer/iterations``: Keras's ``iterations`` (int64 scalar), torchrs's ``step``;
* ``architecture["optimizer"]`` in ``torchrs.json``: the torchrs class, the Keras class, the
  hyperparameters found (keyword arguments of the torchrs class), and per slotted variable its
  structural key (how ``load_weights`` names it) and whether it is transposed.

``torchrs.io.load_optimizer_state(optimizer, module, OUT_DIR)`` reads them back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.load_weights import _structural_key
from converters.tfrs_to_torch.readers import (
    TRACKING_NAMES,
    VARIABLE_ATTRIBUTE,
    Plan,
    ReportEntry,
    TensorPlan,
    _skip_reason,
    _strip_key,
    read_tensor,
)

#: Prefix of every optimizer tensor in ``model.safetensors``.
OPTIMIZER_PREFIX = "optimizer/"
#: The attribute name under which Keras models and ``tf.train.Checkpoint`` track an optimizer.
OPTIMIZER_ATTRIBUTE = "optimizer"
# Non-trainable variables Keras layers create (never in an optimizer's var_list).
NON_TRAINABLE_NAMES = frozenset(
    {"mean", "variance", "count", "moving_mean", "moving_variance", "adapt_mean", "adapt_variance"}
)
# Object-graph children that never hold trainable variables of the model.
_NOT_MODEL = frozenset({"save_counter", "optimizer", "loss", "compiled_loss", "compiled_metrics"})
# Keras's alias of a layer inside Sequential / functional models (layer_with_weights-N is the key).
_LAYER_ALIAS = re.compile(r"layer-\d+")

# tf_keras 2.x optimizer base: variables every optimizer owns besides its slot lists.
_NEW_BASE_VARIABLES = frozenset({"_iterations", "_learning_rate", "_current_learning_rate"})
# tf_keras 2.x optimizer base: bookkeeping children that hold nothing (or only aliases).
_NEW_BOOKKEEPING = frozenset({"_variables", "_index_dict", "_update_step_xla"})
# tf_keras 2.x ``use_ema=True``: one moving average per variable, any optimizer class.
EMA_LIST = "_model_variables_moving_average"
# tf.keras.mixed_precision.LossScaleOptimizer: the child holding the dynamic loss scale.
LOSS_SCALE = "loss_scale"
# tfrs.experimental.optimizers.CompositeOptimizer tracks its optimizers as Optimizer0, Optimizer1...
_COMPOSITE_CHILD = re.compile(r"Optimizer\d+")
# OptimizerV2 (legacy): the iteration counter child.
_LEGACY_ITERATIONS = "iter"
# OptimizerV2 (legacy) hyperparameter variables ``_set_hyper`` creates, by class.
_LEGACY_HYPER = frozenset(
    {
        "learning_rate",
        "decay",
        "beta_1",
        "beta_2",
        "momentum",
        "rho",
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    }
)


@dataclass(frozen=True)
class Layout:
    """How one Keras optimizer class stores its state, and whether ``torchrs.optim`` resumes it.

    Attributes:
        keras_class: the Keras class (``Adam``; ``legacy.Adam`` for ``tf.keras.optimizers.legacy``).
        slots: Keras slot name -> torchrs state key (every slot kind this class may create).
        required: Keras slot names always present once the optimizer has been built.
        lists: tf_keras 2.x only: slot-list attribute -> Keras slot name.
        extra: variables (not slots) that only this class creates (Nadam's ``_u_product``).
        torch_class: the ``torchrs.optim`` class that resumes it, or ``None`` (unsupported).
        reason: why it is unsupported.
        skipped: Keras slot name -> why it is not needed to resume (not converted).
        module: where ``torch_class`` lives.
    """

    keras_class: str
    slots: dict[str, str]
    required: frozenset[str]
    lists: dict[str, str] = field(default_factory=dict)
    extra: frozenset[str] = frozenset()
    torch_class: str | None = None
    reason: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    module: str = "torchrs.optim"


def _new(keras_class: str, lists: dict[str, str], required: set[str], **kw: Any) -> Layout:
    slots = {slot: slot for slot in lists.values()}
    slots.update(kw.pop("rename", {}))
    return Layout(keras_class, slots, frozenset(required), lists, **kw)


#: tf_keras 2.x (``tf.keras.optimizers.*``) layouts, by Keras class (the optimizer's default name).
NEW_LAYOUTS = {
    layout.keras_class: layout
    for layout in (
        _new("Adagrad", {"_accumulators": "accumulator"}, {"accumulator"}, torch_class="Adagrad"),
        _new(
            "Adam",
            {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat"},
            {"m", "v"},
            torch_class="Adam",
        ),
        # AdamW is Adam with the base class's decoupled weight decay, which torchrs Adam has too.
        _new(
            "AdamW",
            {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat"},
            {"m", "v"},
            torch_class="Adam",
        ),
        _new("SGD", {"momentums": "m"}, {"m"}, torch_class="SGD", rename={"m": "momentum"}),
        # tfrs.experimental.optimizers.ClippyAdagrad: Adagrad's slots (+ monitoring output).
        _new(
            "ClippyAdagrad",
            {"_accumulators": "accumulator", "clipping_factors": "clipping_factor"},
            {"accumulator"},
            torch_class="ClippyAdagrad",
            module="torchrs.experimental.optimizers",
            skipped={
                "clipping_factor": "ClippyAdagrad's export_clipping_factors output: written by "
                "each step, never read by it"
            },
        ),
        _new(
            "Lion",
            {"momentums": "m"},
            {"m"},
            reason="Lion's sign-of-interpolation update has no torchrs.optim class",
        ),
        _new(
            "RMSprop",
            {
                "_velocities": "velocity",
                "_momentums": "momentum",
                "_average_gradients": "average_gradient",
            },
            {"velocity"},
            reason="torchrs.optim has no RMSprop",
        ),
        _new(
            "Nadam",
            {"_momentums": "m", "_velocities": "v"},
            {"m", "v"},
            extra=frozenset({"_u_product"}),
            reason="torchrs.optim has no Nadam (its momentum schedule `_u_product` is not Adam's)",
        ),
        _new("Adamax", {"_m": "m", "_u": "u"}, {"m", "u"}, reason="torchrs.optim has no Adamax"),
        _new(
            "Ftrl",
            {"_accumulators": "accumulator", "_linears": "linear"},
            {"accumulator", "linear"},
            reason="torchrs.optim has no Ftrl",
        ),
        _new(
            "Adadelta",
            {
                "_accumulated_grads": "accumulated_grad",
                "_accumulated_delta_vars": "accumulated_delta_var",
            },
            {"accumulated_grad", "accumulated_delta_var"},
            reason="torchrs.optim has no Adadelta",
        ),
        _new(
            "Adafactor",
            {"_r": "r", "_c": "c", "_v": "v"},
            {"r", "c", "v"},
            reason="torchrs.optim has no Adafactor",
        ),
    )
}

#: Where the ``tf.keras.optimizers.legacy`` twins live (epsilon outside Adagrad's root, lazy sparse momentum,
#: ``decay``, the legacy clipping order: the tf_keras 2.x classes of ``torchrs.optim`` differ in all four).
LEGACY_MODULE = "torchrs.optim.legacy"


#: Legacy momentum is lazy on IndexedSlices rows, which only a sparse torch gradient can reproduce.
LEGACY_SPARSE_MOMENTUM_NOTE = (
    "Keras legacy SGD with momentum updates embedding rows lazily (a row without gradient in the "
    "batch keeps its velocity and does not move); torchrs.optim.legacy.SGD does the same for "
    "sparse gradients only, so build the Embedding layers with sparse=True (or set "
    "`embedding.sparse = True` on a module from torchrs.load): a dense gradient cannot tell a "
    "missing row from a zero gradient."
)


def _legacy(
    keras_class: str, slots: dict[str, str], required: set[str], **kw: Any
) -> tuple[str, Layout]:
    if kw.get("torch_class"):
        kw.setdefault("module", LEGACY_MODULE)
    return keras_class, Layout(f"legacy.{keras_class}", slots, frozenset(required), **kw)


# tf_keras 2.x slot-list attribute -> the slot names Keras gives its variables, over all classes.
_SLOT_NAMES: dict[str, set[str]] = {EMA_LIST: {"average"}}
for _layout in NEW_LAYOUTS.values():
    for _attr, _slot in _layout.lists.items():
        _SLOT_NAMES.setdefault(_attr, set()).add(_slot)

#: ``tf.keras.optimizers.legacy`` (OptimizerV2) layouts, by class (the optimizer's default name).
LEGACY_LAYOUTS = dict(
    (
        _legacy("Adam", {"m": "m", "v": "v", "vhat": "vhat"}, {"m", "v"}, torch_class="Adam"),
        _legacy("Adagrad", {"accumulator": "accumulator"}, {"accumulator"}, torch_class="Adagrad"),
        _legacy("SGD", {"momentum": "momentum"}, set(), torch_class="SGD"),
        _legacy("Adamax", {"m": "m", "v": "v"}, {"m", "v"}, reason="torchrs.optim has no Adamax"),
        _legacy(
            "Nadam",
            {"m": "m", "v": "v"},
            {"m", "v"},
            extra=frozenset({"momentum_cache"}),
            reason="torchrs.optim has no Nadam",
        ),
        _legacy(
            "RMSprop",
            {"rms": "rms", "momentum": "momentum", "mg": "mg"},
            {"rms"},
            reason="torchrs.optim has no RMSprop",
        ),
        _legacy(
            "Ftrl",
            {"accumulator": "accumulator", "linear": "linear"},
            {"accumulator", "linear"},
            reason="torchrs.optim has no Ftrl",
        ),
        _legacy(
            "Adadelta",
            {"accum_grad": "accum_grad", "accum_var": "accum_var"},
            {"accum_grad", "accum_var"},
            reason="torchrs.optim has no Adadelta",
        ),
    )
)

#: What the error message lists as convertible.
SUPPORTED = (
    "tf.keras.optimizers.Adagrad, Adam (amsgrad too), AdamW (as torchrs Adam with weight_decay) "
    "and SGD (momentum too), with or without use_ema; tfrs.experimental.optimizers.ClippyAdagrad; "
    "tf.keras.optimizers.legacy.Adagrad, Adam (amsgrad too) and SGD (momentum too), with or "
    "without decay (as torchrs.optim.legacy)"
)
#: torchrs.optim class -> keyword arguments it takes that a Keras config / checkpoint may give.
TORCH_ARGUMENTS = {
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon"),
    "ClippyAdagrad": (
        "learning_rate",
        "initial_accumulator_value",
        "variable_relative_threshold",
        "accumulator_relative_threshold",
        "absolute_threshold",
        "epsilon",
        "export_clipping_factors",
        "clip_accumulator_update",
        "use_standard_accumulator_update",
    ),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
    "SGD": ("learning_rate", "momentum", "nesterov"),
}
#: torchrs.optim.legacy class -> keyword arguments a legacy Keras config / checkpoint may give.
LEGACY_TORCH_ARGUMENTS = {
    "Adagrad": ("learning_rate", "initial_accumulator_value", "epsilon", "decay"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad", "decay"),
    "SGD": ("learning_rate", "momentum", "nesterov", "decay"),
}
# Keyword arguments every torchrs.optim class shares with the tf_keras 2.x base optimizer.
_BASE_ARGUMENTS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
)
# Legacy OptimizerV2 keyword arguments torchrs.optim.legacy shares (no weight decay, no EMA there).
_LEGACY_BASE_ARGUMENTS = ("clipnorm", "clipvalue", "global_clipnorm")


class UnsupportedOptimizerError(ConversionError):
    """Optimizer state ``torchrs.optim`` cannot resume; ``--no-strict`` turns it into a report entry.

    Attributes:
        class_name: the Keras optimizer class (``RMSprop``, ``legacy.Adagrad``) or a description.
        path: the optimizer's object path in the checkpoint.
    """

    def __init__(self, class_name: str, path: str, detail: str) -> None:
        self.class_name = class_name
        self.path = path
        self.detail = detail
        super().__init__(
            f"Unsupported optimizer state: Keras {class_name} at {path!r}: {detail}. torchrs.optim "
            f"resumes {SUPPORTED}. Pass --no-strict to convert the weights without the optimizer "
            "state (listed in report.json), then start a fresh torchrs.optim optimizer."
        )


# -------------------------------------------------------------------------------------------
# Object-graph helpers.
# -------------------------------------------------------------------------------------------


def _children(graph: Any, node_id: int) -> list[tuple[str, int]]:
    return [(c.local_name, c.node_id) for c in graph.nodes[node_id].children]


def _value_attribute(graph: Any, node_id: int) -> Any:
    for attribute in graph.nodes[node_id].attributes:
        if attribute.name == VARIABLE_ATTRIBUTE:
            return attribute
    return None


def _value_key(graph: Any, node_id: int) -> str | None:
    attribute = _value_attribute(graph, node_id)
    return None if attribute is None else str(attribute.checkpoint_key)


def _full_name(graph: Any, node_id: int) -> str:
    attribute = _value_attribute(graph, node_id)
    return "" if attribute is None else str(attribute.full_name)


def _find_optimizer(graph: Any) -> tuple[int, str] | None:
    """The node and path of the shallowest object tracked as ``optimizer`` (breadth first)."""
    queue, seen = [(0, "")], {0}
    while queue:
        node_id, path = queue.pop(0)
        for name, child in _children(graph, node_id):
            child_path = f"{path}/{name}" if path else name
            if name == OPTIMIZER_ATTRIBUTE and _children(graph, child):
                return child, child_path
            if child not in seen and name not in TRACKING_NAMES:
                seen.add(child)
                queue.append((child, child_path))
    return None


def _subtree(graph: Any, root: int) -> set[int]:
    out, stack = {root}, [root]
    while stack:
        for _, child in _children(graph, stack.pop()):
            if child not in out:
                out.add(child)
                stack.append(child)
    for node_id in list(out):  # legacy slot variables hang off the optimizer by reference
        for ref in graph.nodes[node_id].slot_variables:
            out.add(ref.slot_variable_node_id)
    return out


@dataclass(frozen=True)
class _Variable:
    node_id: int
    path: str  # object path, layer_with_weights-N form when there is one
    key: str  # checkpoint key
    full_name: str  # the tf.Variable's name (``dense/kernel``)


def model_variables(graph: Any, excluded: set[int]) -> dict[int, _Variable]:
    """Every variable reachable from the root outside ``excluded``, under its canonical path.

    Breadth first, so the path is the shortest; Keras's ``layer-N`` aliases are followed only for
    variables no other path reaches (``load_weights`` keys layers by ``layer_with_weights-N``).
    """
    out: dict[int, _Variable] = {}
    for follow_aliases in (False, True):
        queue, seen = [(0, "")], {0}
        while queue:
            node_id, path = queue.pop(0)
            for name, child in _children(graph, node_id):
                if child in seen or child in excluded or name in TRACKING_NAMES:
                    continue
                if name == "save_counter" or (not follow_aliases and _LAYER_ALIAS.fullmatch(name)):
                    continue
                seen.add(child)
                child_path = f"{path}/{name}" if path else name
                key = _value_key(graph, child)
                if key is None:
                    queue.append((child, child_path))
                elif child not in out:
                    out[child] = _Variable(child, child_path, key, _full_name(graph, child))
    return out


def trainable_order(graph: Any, optimizer_id: int) -> list[tuple[str, str]]:
    """``(object path, checkpoint key)`` of the model's variables in ``trainable_variables`` order.

    Depth-first from the root, children in their stored (tracking) order, each node once, without
    the optimizer, the save counter, metrics and known non-trainable variables. Used only when
    slot names do not identify their variable (two model variables with the same name).
    """
    out: list[tuple[str, str]] = []
    seen = {0, optimizer_id}

    def walk(node_id: int, path: str) -> None:
        for name, child in _children(graph, node_id):
            if child in seen or name in TRACKING_NAMES or name in _NOT_MODEL:
                continue
            seen.add(child)
            child_path = f"{path}/{name}" if path else name
            key = _value_key(graph, child)
            if key is not None:
                if name not in NON_TRAINABLE_NAMES and _skip_reason(child_path) == (
                    "not used by the rebuilt module"
                ):
                    out.append((child_path, key))
                continue
            walk(child, child_path)

    walk(0, "")
    return out


# -------------------------------------------------------------------------------------------
# What the optimizer node holds.
# -------------------------------------------------------------------------------------------


@dataclass
class _Found:
    """The optimizer's state as read from the graph, before its class is decided."""

    legacy: bool
    name: str  # the optimizer's ``name`` (its class unless renamed), "" when unknown
    iterations_key: str | None
    # (Keras slot name, slot node, model variable node or None, list attribute, list position)
    slots: list[tuple[str, int, int | None, str, int]] = field(default_factory=list)
    extra: set[str] = field(default_factory=set)  # non-slot, non-base variables / lists
    hyper: dict[str, str] = field(default_factory=dict)  # legacy hyperparameter -> checkpoint key
    learning_rate_key: str | None = None


def _read_new(graph: Any, opt_id: int, by_full_name: dict[str, list[int]]) -> _Found:
    children = dict(_children(graph, opt_id))
    found = _Found(False, "", _value_key(graph, children["_iterations"]))
    if "_learning_rate" in children:
        found.learning_rate_key = _value_key(graph, children["_learning_rate"])
    names: set[str] = set()
    for attr, node in _children(graph, opt_id):
        if attr in _NEW_BASE_VARIABLES or attr in _NEW_BOOKKEEPING:
            continue
        if _value_key(graph, node) is not None:  # a variable of its own (Nadam's _u_product)
            found.extra.add(attr)
            continue
        items = sorted(
            ((name, child) for name, child in _children(graph, node) if name.isdigit()),
            key=lambda item: int(item[0]),
        )
        if not items:
            if _children(graph, node):  # an object of its own (a LossScaleOptimizer's loss_scale)
                found.extra.add(attr)
            continue  # else an empty list (RMSprop without momentum keeps `_momentums = []`)
        for position, (_, slot_node) in enumerate(items):
            name, slot, variable = _parse_slot_name(
                _full_name(graph, slot_node), attr, by_full_name
            )
            if name:
                names.add(name)
            found.slots.append((slot, slot_node, variable, attr, position))
    found.name = names.pop() if len(names) == 1 else ""
    return found


def _parse_slot_name(
    full_name: str, attr: str, by_full_name: dict[str, list[int]]
) -> tuple[str, str, int | None]:
    """``Adam/m/dense/kernel`` -> (``Adam``, ``m``, node of ``dense/kernel``).

    The optimizer's name is missing when the optimizer was built outside ``apply_gradients``
    (``m/dense/kernel``); the variable node is ``None`` when no single model variable has the name.
    """
    parts = full_name.split("/")
    expected = _SLOT_NAMES.get(attr)
    best: tuple[str, str, int | None] = ("", "", None)
    for split in (1, 0):
        if len(parts) <= split + 1 or (expected is not None and parts[split] not in expected):
            continue
        matches = by_full_name.get("/".join(parts[split + 1 :]), [])
        parsed = ("/".join(parts[:split]), parts[split], matches[0] if len(matches) == 1 else None)
        if parsed[2] is not None:
            return parsed
        best = best if best[1] else parsed
    return best


def _read_legacy(graph: Any, opt_id: int) -> _Found:
    children = dict(_children(graph, opt_id))
    iterations = children.get(_LEGACY_ITERATIONS)
    found = _Found(True, "", None if iterations is None else _value_key(graph, iterations))
    if iterations is not None:
        found.name = _full_name(graph, iterations).rpartition("/")[0]
    for name, node in children.items():
        if name == _LEGACY_ITERATIONS:
            continue
        key = _value_key(graph, node)
        if name in _LEGACY_HYPER and key is not None:
            found.hyper[name] = key
        else:
            found.extra.add(name)
    found.learning_rate_key = found.hyper.get("learning_rate")
    for ref in graph.nodes[opt_id].slot_variables:
        found.slots.append(
            (ref.slot_name, ref.slot_variable_node_id, ref.original_variable_node_id, "", 0)
        )
    return found


def _candidates(found: _Found) -> list[Layout]:
    """Every layout whose slots / lists / extra variables match what the optimizer holds."""
    slot_names = {slot for slot, *_ in found.slots}
    out = []
    if found.legacy:
        for layout in LEGACY_LAYOUTS.values():
            if (
                slot_names <= set(layout.slots)
                and layout.required <= slot_names
                and layout.extra == found.extra
            ):
                out.append(layout)
        return out
    lists = {attr: slot for slot, _, _, attr, _ in found.slots}
    ema = lists.pop(EMA_LIST, None)
    for layout in NEW_LAYOUTS.values():
        matches = all(
            attr in layout.lists and (not slot or slot == layout.lists[attr])
            for attr, slot in lists.items()
        )
        required = {layout.lists[a] for a in lists if a in layout.lists}
        if matches and layout.required <= required and layout.extra == found.extra:
            out.append(layout)
    if ema not in (None, "", "average"):
        return []
    return out


def identify(found: _Found, config_class: str | None) -> Layout:
    """The layout of the optimizer, or :class:`UnsupportedOptimizerError` (path filled by caller).

    ``config_class`` (the class a Keras SavedModel's ``training_config`` names) or else the
    optimizer's name decides between classes that store the same slots (Adam / Adamax, SGD / Lion).
    """
    family = "legacy." if found.legacy else ""
    layouts = LEGACY_LAYOUTS if found.legacy else NEW_LAYOUTS
    candidates = _candidates(found)
    slot_kinds = sorted({slot or attr for slot, _, _, attr, _ in found.slots})
    for hint in (config_class, found.name):
        chosen = layouts.get(hint or "")
        if chosen is not None and chosen in candidates:
            return chosen
        if chosen is not None and not candidates:
            # A known class whose state does not look like it (a changed tf_keras version?).
            raise UnsupportedOptimizerError(
                f"{family}{hint}",
                "",
                f"its state (slots {slot_kinds}, other variables {sorted(found.extra)}) is not "
                f"the layout converters.tfrs_to_torch knows for {family}{hint}",
            )
    supported = {layout.torch_class for layout in candidates}
    if len(candidates) == 1 or (len(supported) == 1 and None not in supported):
        return candidates[0]
    label = f"{family.replace('.', ' ')}optimizer" + (
        f" named {found.name!r}" if found.name else ""
    )
    if not candidates:
        raise UnsupportedOptimizerError(
            label,
            "",
            f"its state (slots {slot_kinds}, other variables {sorted(found.extra)}) matches no "
            "Keras optimizer class converters.tfrs_to_torch knows",
        )
    raise UnsupportedOptimizerError(
        label,
        "",
        f"its slots {slot_kinds} could belong to any of "
        f"{[c.keras_class for c in candidates]}, and its name "
        "does not say which (it was renamed); save it with the class's default name",
    )


# -------------------------------------------------------------------------------------------
# The plan.
# -------------------------------------------------------------------------------------------


def _optimizer_keys(graph: Any, subtree: set[int]) -> set[str]:
    return {
        _strip_key(key) for node_id in subtree if (key := _value_key(graph, node_id)) is not None
    }


def _refuse(
    class_name: str, detail: str, path: str, strict: bool, plan: Plan, keys: set[str]
) -> bool:
    """Raises (strict), else reports the optimizer as unsupported and its variables as skipped."""
    if strict:
        raise UnsupportedOptimizerError(class_name, path, detail)
    reason = f"state of unsupported optimizer Keras {class_name}"
    for entry in plan.report:
        if entry.source in keys:
            entry.status, entry.reason = "skipped", reason
    plan.report.append(ReportEntry(path, "unsupported", reason=f"Keras {class_name}: {detail}"))
    plan.notes.append(
        f"Optimizer state not converted: Keras {class_name} ({detail}); resume with a fresh "
        "torchrs.optim optimizer."
    )
    return False


def _config_hyperparameters(config: dict[str, Any], arguments: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in arguments:
        value = config.get(name)
        if name == "learning_rate" and isinstance(value, dict):
            continue  # a LearningRateSchedule: reported in the notes
        if value is not None and (name != "weight_decay" or value):
            out[name] = value
    return out


def plan_optimizer(
    reader: Any,
    graph: Any,
    plan: Plan,
    *,
    strict: bool = True,
    keras_config: dict[str, Any] | None = None,
) -> bool:
    """Adds the optimizer's slots and iterations to ``plan`` (returns False when there are none).

    Args:
        reader: the open checkpoint reader (a checkpoint, or a SavedModel's ``variables/variables``).
        graph: its ``TrackableObjectGraph``.
        plan: the plan; tensors, report entries and ``architecture["optimizer"]`` are added, and
            earlier "optimizer state" skip entries for planned keys are replaced.
        strict: raise on optimizer state ``torchrs.optim`` cannot resume (else report it).
        keras_config: a Keras SavedModel's ``training_config`` (its ``optimizer_config`` names the
            class and gives the hyperparameters), or ``None``.

    Returns:
        Whether optimizer state was planned.

    Raises:
        UnsupportedOptimizerError: (strict) an optimizer class or setting torchrs cannot resume.
        ConversionError: slots whose shapes do not match the model's variables.
    """
    located = _find_optimizer(graph)
    if located is None:
        return False
    opt_id, opt_path = located
    subtree = _subtree(graph, opt_id)
    keys = _optimizer_keys(graph, subtree)
    variables = model_variables(graph, subtree)
    by_full_name: dict[str, list[int]] = {}
    for variable in variables.values():
        by_full_name.setdefault(variable.full_name, []).append(variable.node_id)
    children = {name for name, _ in _children(graph, opt_id)}
    if LOSS_SCALE in children:
        detail = (
            "a mixed-precision LossScaleOptimizer (dynamic loss scale around the optimizer); "
            "torchrs.optim has no loss scaling"
        )
        return _refuse("LossScaleOptimizer", detail, opt_path, strict, plan, keys)
    if children and all(_COMPOSITE_CHILD.fullmatch(name) for name in children):
        detail = (
            f"a tfrs.experimental.optimizers.CompositeOptimizer of {len(children)} optimizers "
            "(one per variable group); the converter writes the state of a single optimizer"
        )
        return _refuse("CompositeOptimizer", detail, opt_path, strict, plan, keys)
    if "_iterations" in children:
        found = _read_new(graph, opt_id, by_full_name)
    elif _LEGACY_ITERATIONS in children or graph.nodes[opt_id].slot_variables:
        found = _read_legacy(graph, opt_id)
    else:
        detail = f"no iteration counter; it holds {sorted(children)}"
        return _refuse("optimizer", detail, opt_path, strict, plan, keys)
    if found.iterations_key is None:
        raise ConversionError(f"The optimizer at {opt_path!r} has no value for its iterations.")
    iterations = int(read_tensor(reader, found.iterations_key))
    if not found.slots and iterations == 0:
        plan.notes.append(
            f"The optimizer at {opt_path!r} never took a step (no slots): nothing to resume; "
            "start a fresh torchrs.optim optimizer."
        )
        return False
    optimizer_config = (keras_config or {}).get("optimizer_config") or {}
    config_class = str(optimizer_config.get("class_name", "")).rpartition(">")[2] or None
    config = dict(optimizer_config.get("config") or {})
    try:
        layout = identify(found, config_class)
        legacy_hyper = _legacy_hyperparameters(reader, found)
        if layout.torch_class is None:
            raise UnsupportedOptimizerError(layout.keras_class, "", layout.reason)
    except UnsupportedOptimizerError as err:
        return _refuse(err.class_name, err.detail, opt_path, strict, plan, keys)
    if not found.slots and not legacy_hyper.get("decay"):
        # legacy SGD without momentum nor decay: `iterations` changes nothing it does
        return _stateless(layout, legacy_hyper, plan, keys)
    try:
        # no slots: legacy SGD without momentum whose decayed learning rate needs `iterations`
        tensors, claimed, slotted = (
            _map_slots(reader, graph, opt_id, found, layout, variables)
            if found.slots
            else ([], {}, {})
        )
    except ConversionError as err:  # slots that do not fit the model's variables
        if strict:
            raise ConversionError(
                f"{err} Pass --no-strict to convert the weights without the optimizer state."
            ) from None
        return _refuse(layout.keras_class, str(err), opt_path, strict, plan, keys)
    torch_class = layout.torch_class
    assert torch_class is not None  # refused above
    plan.tensors.extend(tensors)
    steps = np.asarray(iterations, dtype=np.int64)
    plan.tensors.append(
        TensorPlan(
            f"{OPTIMIZER_PREFIX}iterations",
            _strip_key(found.iterations_key),
            (),
            steps.dtype,
            lambda: steps,
        )
    )
    claimed[_strip_key(found.iterations_key)] = ReportEntry(
        _strip_key(found.iterations_key), "converted", f"{OPTIMIZER_PREFIX}iterations", shape=[]
    )
    hyper = _hyperparameters(reader, found, layout, config, legacy_hyper)
    slot_kinds = sorted({s for entry in slotted.values() for s in entry["slots"]})
    plan.architecture["optimizer"] = {
        "class_name": torch_class,
        "module": layout.module,
        "keras_class": layout.keras_class,
        "amsgrad": "vhat" in slot_kinds,
        "iterations": iterations,
        "hyperparameters": hyper,
        "prefix": OPTIMIZER_PREFIX,
        "variables": slotted,
    }
    plan.report[:] = [claimed.pop(e.source, e) for e in plan.report]
    plan.report.extend(claimed.values())
    plan.notes.append(
        f"Optimizer state (Keras {layout.keras_class}, {iterations} iterations, slots "
        f"{slot_kinds}) written under {OPTIMIZER_PREFIX!r}: build {layout.module}.{torch_class}"
        f"(module.parameters(), **hyperparameters) with torchrs.json's "
        f"architecture.optimizer.hyperparameters {hyper}, then "
        "torchrs.io.load_optimizer_state(optimizer, module, OUT_DIR)."
    )
    plan.notes.extend(_caveats(layout, config, hyper))
    return True


def _legacy_hyperparameters(reader: Any, found: _Found) -> dict[str, float]:
    """A legacy optimizer's scalar hyperparameter variables (float32 values as Python floats)."""
    shapes = reader.get_variable_to_shape_map()
    return {
        name: float(read_tensor(reader, key))
        for name, key in found.hyper.items()
        if not shapes[key]
    }


def _stateless(layout: Layout, legacy_hyper: dict[str, float], plan: Plan, keys: set[str]) -> bool:
    reason = f"Keras {layout.keras_class} without momentum nor decay keeps no state to resume"
    for entry in plan.report:
        if entry.source in keys:
            entry.reason = reason
    plan.notes.append(
        f"{reason}: continue with a fresh {layout.module}.{layout.torch_class}"
        f"(module.parameters(), learning_rate={legacy_hyper.get('learning_rate')!r})."
    )
    return False


def _map_slots(
    reader: Any,
    graph: Any,
    opt_id: int,
    found: _Found,
    layout: Layout,
    variables: dict[int, _Variable],
) -> tuple[list[TensorPlan], dict[str, ReportEntry], dict[str, dict[str, Any]]]:
    """Each slot's model variable, checked shape for shape: tensors, report entries, spec.

    Raises:
        ConversionError: a slot of no model variable, two slots on one, or a shape mismatch.
    """
    order: list[tuple[str, str]] | None = None
    path_of = {v.key: v for v in variables.values()}
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    tensors: list[TensorPlan] = []
    claimed: dict[str, ReportEntry] = {}
    skipped: dict[str, str] = {}
    slotted: dict[str, dict[str, Any]] = {}
    list_lengths: dict[str, int] = {}
    for _, _, _, attr, position in found.slots:
        list_lengths[attr] = max(list_lengths.get(attr, 0), position + 1)
    targets: set[tuple[str, str]] = set()
    for slot, slot_node, variable_node, attr, position in found.slots:
        keras_slot = slot or layout.lists.get(attr, "") or ("average" if attr == EMA_LIST else "")
        if keras_slot in layout.skipped:
            key = _value_key(graph, slot_node)
            if key is not None:
                skipped[_strip_key(key)] = layout.skipped[keras_slot]
            continue
        torch_slot = "average" if attr == EMA_LIST else layout.slots[keras_slot]
        variable = variables.get(variable_node) if variable_node is not None else None
        if variable is None and found.legacy:
            raise ConversionError(
                f"A {keras_slot!r} slot of the {layout.keras_class} optimizer belongs to a variable "
                f"(node {variable_node}) that is not part of the saved model."
            )
        if variable is None:  # not identified by name: the list position in trainable order
            if order is None:
                order = trainable_order(graph, opt_id)
            if list_lengths[attr] != len(order):
                raise ConversionError(
                    f"The {layout.keras_class} optimizer holds {list_lengths[attr]} {keras_slot!r} "
                    f"slots but the model has {len(order)} trainable variables "
                    f"({[p for p, _ in order]}), and the slots' names do not say which variable "
                    "each belongs to: the optimizer was saved with another model than the one "
                    "it trained."
                )
            var_path, var_key = order[position]
            variable = path_of.get(var_key) or _Variable(-1, var_path, var_key, "")
        slot_key = _value_key(graph, slot_node)
        if slot_key is None:
            raise ConversionError(
                f"Optimizer slot node {slot_node} has no value in the checkpoint."
            )
        if (variable.path, torch_slot) in targets:
            raise ConversionError(
                f"Two {keras_slot!r} slots of the {layout.keras_class} optimizer map to "
                f"{variable.path}; the checkpoint's variable names are ambiguous."
            )
        targets.add((variable.path, torch_slot))
        var_shape, slot_shape = list(shapes[variable.key]), list(shapes[slot_key])
        if var_shape != slot_shape:
            raise ConversionError(
                f"{layout.keras_class} slot {keras_slot!r} ({_strip_key(slot_key)}) has shape "
                f"{slot_shape}, but its variable {variable.path} has shape {var_shape}: the "
                "optimizer was built on other variables than the model's."
            )
        name = f"{OPTIMIZER_PREFIX}{variable.path}/{torch_slot}"
        dtype = np.dtype(dtypes[slot_key].as_numpy_dtype)
        source = _strip_key(slot_key)
        tensors.append(
            TensorPlan(name, source, tuple(slot_shape), dtype, _loader(reader, slot_key))
        )
        claimed[source] = ReportEntry(source, "converted", name, shape=slot_shape)
        structural = _structural_key(variable.path)
        entry = slotted.setdefault(
            variable.path,
            {
                "key": structural[0] if structural else variable.path,
                "transpose": bool(structural[1]) if structural else False,
                "slots": [],
            },
        )
        entry["slots"].append(torch_slot)
    for source, reason in skipped.items():
        claimed[source] = ReportEntry(source, "skipped", reason=reason)
    return tensors, claimed, slotted


def _loader(reader: Any, key: str) -> Callable[[], np.ndarray]:
    return lambda: read_tensor(reader, key)


def _hyperparameters(
    reader: Any,
    found: _Found,
    layout: Layout,
    config: dict[str, Any],
    legacy_hyper: dict[str, float],
) -> dict[str, Any]:
    """Keyword arguments of the torchrs class, from the saved config then the checkpoint."""
    assert layout.torch_class is not None
    own = (LEGACY_TORCH_ARGUMENTS if found.legacy else TORCH_ARGUMENTS)[layout.torch_class]
    arguments = own + (_LEGACY_BASE_ARGUMENTS if found.legacy else _BASE_ARGUMENTS)
    hyper = _config_hyperparameters(config, arguments)
    if found.legacy:
        # The float32 hyperparameter variables as stored (beta_2 = 0.9990000128746033): what the
        # legacy kernels compute with, and what torchrs.optim.legacy rounds its arguments to.
        hyper.update({k: v for k, v in legacy_hyper.items() if k in own})
        if not hyper.get("decay"):
            hyper.pop("decay", None)  # the default
    elif found.learning_rate_key is not None:
        shape = reader.get_variable_to_shape_map()[found.learning_rate_key]
        if not shape:
            hyper["learning_rate"] = float(read_tensor(reader, found.learning_rate_key))
    # What the slots themselves say (a checkpoint stores no config).
    if layout.torch_class == "Adam":
        hyper["amsgrad"] = any(
            slot == "vhat" or attr == "_velocity_hats" for slot, _, _, attr, _ in found.slots
        )
    if any(attr == EMA_LIST for *_, attr, _ in found.slots):
        hyper["use_ema"] = True
    return hyper


def _caveats(layout: Layout, config: dict[str, Any], hyper: dict[str, Any]) -> list[str]:
    notes = []
    if "learning_rate" not in hyper:
        notes.append(
            "The Keras optimizer's learning rate is a schedule (not stored as a value): "
            "reproduce it with a torch.optim.lr_scheduler stepped from the converted iterations."
        )
    if layout.keras_class == "AdamW" and "weight_decay" not in hyper:
        notes.append(
            "Keras AdamW is torchrs.optim.Adam with weight_decay: pass the AdamW's weight_decay "
            "(Keras default 0.004), which checkpoints do not store."
        )
    if layout.keras_class == "legacy.SGD" and hyper.get("momentum"):
        notes.append(LEGACY_SPARSE_MOMENTUM_NOTE)
    if not config:
        notes.append(
            "A checkpoint does not store epsilon, amsgrad, nesterov, clipping or weight decay: "
            "build the torchrs optimizer with the values the Keras one used."
        )
    return notes
