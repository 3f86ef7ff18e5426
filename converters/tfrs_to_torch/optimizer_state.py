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
* ``optimizer/<state key>``: an optimizer-wide scalar every parameter's state holds a copy of
  (Nadam's ``_u_product`` as ``u_product``, legacy Nadam's ``momentum_cache``);
* ``architecture["optimizer"]`` in ``torchrs.json``: the torchrs class, the Keras class, the
  hyperparameters found (keyword arguments of the torchrs class: a Keras SavedModel's config, then
  what the checkpoint stores: the learning rate, a legacy optimizer's hyperparameter variables,
  and what the slots say, ``amsgrad`` / ``centered``), the shared scalars' keys, and per slotted
  variable its structural key (how ``load_weights`` names it) and whether it is transposed.

``torchrs.io.load_optimizer_state(optimizer, module, OUT_DIR)`` reads them back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from converters.tfrs_to_torch.errors import ConversionError
from converters.tfrs_to_torch.optimizer_graph import (
    Found,
    GraphVariable,
    find_optimizer,
    graph_children,
    graph_value_key,
    identify,
    model_variables,
    read_legacy,
    read_new,
    subtree_ids,
    trainable_order,
)
from converters.tfrs_to_torch.optimizer_layouts import (
    BASE_ARGUMENTS,
    COMPOSITE_CHILD,
    EMA_LIST,
    LEGACY_BASE_ARGUMENTS,
    LEGACY_ITERATIONS,
    LEGACY_SPARSE_MOMENTUM_NOTE,
    LEGACY_TORCH_ARGUMENTS,
    LOSS_SCALE,
    TORCH_ARGUMENTS,
    Layout,
    UnsupportedOptimizerError,
)
from converters.tfrs_to_torch.plan import (
    Plan,
    ReportEntry,
    Status,
    TensorPlan,
)
from converters.tfrs_to_torch.tf_format import (
    read_tensor,
    strip_key,
)
from torchrs.io.keras_numbering import structural_key
from torchrs.io.spec import OPTIMIZER_PREFIX

# -------------------------------------------------------------------------------------------
# The plan.
# -------------------------------------------------------------------------------------------


def _optimizer_keys(graph: Any, subtree: set[int]) -> set[str]:
    return {
        strip_key(key)
        for node_id in subtree
        if (key := graph_value_key(graph, node_id)) is not None
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
            entry.status, entry.reason = Status.SKIPPED, reason
    plan.report.append(
        ReportEntry(path, Status.UNSUPPORTED, reason=f"Keras {class_name}: {detail}")
    )
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
    located = find_optimizer(graph)
    if located is None:
        return False
    opt_id, opt_path = located
    subtree = subtree_ids(graph, opt_id)
    keys = _optimizer_keys(graph, subtree)
    variables = model_variables(graph, subtree)
    by_full_name: dict[str, list[int]] = {}
    for variable in variables.values():
        by_full_name.setdefault(variable.full_name, []).append(variable.node_id)
    children = {name for name, _ in graph_children(graph, opt_id)}
    if LOSS_SCALE in children:
        detail = (
            "a mixed-precision LossScaleOptimizer (dynamic loss scale around the optimizer); "
            "torchrs.optim has no loss scaling"
        )
        return _refuse("LossScaleOptimizer", detail, opt_path, strict, plan, keys)
    if children and all(COMPOSITE_CHILD.fullmatch(name) for name in children):
        detail = (
            f"a tfrs.experimental.optimizers.CompositeOptimizer of {len(children)} optimizers "
            "(one per variable group); the converter writes the state of a single optimizer"
        )
        return _refuse("CompositeOptimizer", detail, opt_path, strict, plan, keys)
    if "_iterations" in children:
        found = read_new(graph, opt_id, by_full_name)
    elif LEGACY_ITERATIONS in children or graph.nodes[opt_id].slot_variables:
        found = read_legacy(graph, opt_id)
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
    shared = _map_shared(reader, found, layout, tensors, claimed)
    plan.tensors.extend(tensors)
    steps = np.asarray(iterations, dtype=np.int64)
    plan.tensors.append(
        TensorPlan(
            f"{OPTIMIZER_PREFIX}iterations",
            strip_key(found.iterations_key),
            (),
            steps.dtype,
            lambda: steps,
        )
    )
    claimed[strip_key(found.iterations_key)] = ReportEntry(
        strip_key(found.iterations_key), Status.CONVERTED, f"{OPTIMIZER_PREFIX}iterations", shape=[]
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
        "shared": shared,
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
    plan.notes.extend(_caveats(layout, found, config, hyper))
    return True


def _legacy_hyperparameters(reader: Any, found: Found) -> dict[str, float]:
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
    found: Found,
    layout: Layout,
    variables: dict[int, GraphVariable],
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
            key = graph_value_key(graph, slot_node)
            if key is not None:
                skipped[strip_key(key)] = layout.skipped[keras_slot]
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
            variable = path_of.get(var_key) or GraphVariable(-1, var_path, var_key, "")
        slot_key = graph_value_key(graph, slot_node)
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
                f"{layout.keras_class} slot {keras_slot!r} ({strip_key(slot_key)}) has shape "
                f"{slot_shape}, but its variable {variable.path} has shape {var_shape}: the "
                "optimizer was built on other variables than the model's."
            )
        name = f"{OPTIMIZER_PREFIX}{variable.path}/{torch_slot}"
        dtype = np.dtype(dtypes[slot_key].as_numpy_dtype)
        source = strip_key(slot_key)
        tensors.append(
            TensorPlan(name, source, tuple(slot_shape), dtype, _loader(reader, slot_key))
        )
        claimed[source] = ReportEntry(source, Status.CONVERTED, name, shape=slot_shape)
        structural = structural_key(variable.path)
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
        claimed[source] = ReportEntry(source, Status.SKIPPED, reason=reason)
    return tensors, claimed, slotted


def _map_shared(
    reader: Any,
    found: Found,
    layout: Layout,
    tensors: list[TensorPlan],
    claimed: dict[str, ReportEntry],
) -> list[str]:
    """Optimizer-wide scalars every parameter's state holds (Nadam's ``_u_product``), written as
    ``optimizer/<torchrs state key>``; their state keys.

    Raises:
        ConversionError: the class's scalar is missing from the checkpoint.
    """
    out = []
    for keras_name, torch_key in layout.shared.items():
        key = found.extra_keys.get(keras_name)
        if key is None:
            raise ConversionError(
                f"The Keras {layout.keras_class} optimizer's {keras_name!r} variable has no value "
                "in the checkpoint."
            )
        name = f"{OPTIMIZER_PREFIX}{torch_key}"
        shape = list(reader.get_variable_to_shape_map()[key])
        dtype = np.dtype(reader.get_variable_to_dtype_map()[key].as_numpy_dtype)
        tensors.append(TensorPlan(name, strip_key(key), tuple(shape), dtype, _loader(reader, key)))
        claimed[strip_key(key)] = ReportEntry(strip_key(key), Status.CONVERTED, name, shape=shape)
        out.append(torch_key)
    return out


def _loader(reader: Any, key: str) -> Callable[[], np.ndarray]:
    return lambda: read_tensor(reader, key)


# A slot kind whose presence says how the Keras optimizer was configured -> that keyword argument.
FLAG_SLOTS = {"vhat": "amsgrad", "average_gradient": "centered", "mg": "centered"}


def _hyperparameters(
    reader: Any,
    found: Found,
    layout: Layout,
    config: dict[str, Any],
    legacy_hyper: dict[str, float],
) -> dict[str, Any]:
    """Keyword arguments of the torchrs class, from the saved config then the checkpoint."""
    assert layout.torch_class is not None
    own = (LEGACY_TORCH_ARGUMENTS if found.legacy else TORCH_ARGUMENTS)[layout.torch_class]
    arguments = own + (LEGACY_BASE_ARGUMENTS if found.legacy else BASE_ARGUMENTS)
    config = {layout.hyper_names.get(k, k): v for k, v in config.items()}
    hyper = _config_hyperparameters(config, arguments)
    if layout.torch_class == "AdamW" and config.get("weight_decay") is not None:
        hyper["weight_decay"] = config["weight_decay"]  # AdamW's 0.0 is not its default (0.004)
    if found.legacy:
        # The float32 hyperparameter variables as stored (beta_2 = 0.9990000128746033): what the
        # legacy kernels compute with, and what torchrs.optim.legacy rounds its arguments to.
        stored = {layout.hyper_names.get(k, k): v for k, v in legacy_hyper.items()}
        hyper.update({k: v for k, v in stored.items() if k in own})
        if not hyper.get("decay"):
            hyper.pop("decay", None)  # the default
    elif found.learning_rate_key is not None:
        shape = reader.get_variable_to_shape_map()[found.learning_rate_key]
        if not shape:
            hyper["learning_rate"] = float(read_tensor(reader, found.learning_rate_key))
    # What the slots themselves say (a checkpoint stores no config): amsgrad, centered.
    kinds = {slot or layout.lists.get(attr, "") for slot, _, _, attr, _ in found.slots}
    for slot, flag in FLAG_SLOTS.items():
        if flag in own and slot in layout.slots:
            hyper[flag] = slot in kinds
    if any(attr == EMA_LIST for *_, attr, _ in found.slots):
        hyper["use_ema"] = True
    return hyper


def _caveats(
    layout: Layout, found: Found, config: dict[str, Any], hyper: dict[str, Any]
) -> list[str]:
    notes = []
    if "learning_rate" not in hyper:
        notes.append(
            "The Keras optimizer's learning rate is a schedule (not stored as a value): "
            "reproduce it with a torch.optim.lr_scheduler stepped from the converted iterations."
        )
    if layout.keras_class == "AdamW" and "weight_decay" not in hyper:
        notes.append(
            "Keras AdamW's weight_decay is not stored in a checkpoint: torchrs.optim.AdamW's "
            "default is Keras's (0.004); pass weight_decay= if the Keras AdamW used another."
        )
    if layout.keras_class == "Adam" and not config and found.name not in ("", "Adam"):
        notes.append(
            f"The optimizer was renamed {found.name!r}: its state resumes as torchrs.optim.Adam; "
            "if it was a Keras AdamW, pass its weight_decay (Keras's default 0.004)."
        )
    if layout.keras_class == "legacy.SGD" and hyper.get("momentum"):
        notes.append(LEGACY_SPARSE_MOMENTUM_NOTE)
    kinds = {slot or layout.lists.get(attr, "") for slot, _, _, attr, _ in found.slots}
    if layout.keras_class == "RMSprop" and "momentum" in kinds and "momentum" not in hyper:
        notes.append(
            "The Keras RMSprop kept momentum slots, so it ran with momentum > 0, whose value a "
            "checkpoint does not store: pass momentum= (the Keras value) to torchrs.optim.RMSprop."
        )
    if layout.keras_class == "Nadam":
        notes.append(
            "Keras 2's Nadam advances its momentum product `_u_product` once per step when "
            "apply_gradients runs eagerly, but can advance it once per variable inside a traced "
            "model.fit / train_on_batch; torchrs.optim.Nadam continues from the converted product "
            "with the eager rule (once per step)."
        )
    if layout.keras_class == "legacy.Ftrl" and not config:
        notes.append(
            "A legacy Ftrl checkpoint stores learning_rate_power, l1 / l2 regularization and beta, "
            "but not l2_shrinkage_regularization_strength: pass it if the Keras Ftrl used one "
            "(initial_accumulator_value does not matter once the accumulators are loaded)."
        )
    if not config:
        assert layout.torch_class is not None
        own = (LEGACY_TORCH_ARGUMENTS if found.legacy else TORCH_ARGUMENTS)[layout.torch_class]
        missing = ", ".join(a for a in own if a not in hyper)
        notes.append(
            f"A checkpoint does not store {missing + ', ' if missing else ''}clipping or weight "
            "decay: build the torchrs optimizer with the values the Keras one used (where it used "
            "Keras's defaults, torchrs's are the same)."
        )
    return notes
