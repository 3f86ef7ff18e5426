"""Finding a Keras optimizer in a checkpoint's object graph and identifying its :class:`Layout` from the
slots it holds (tf_keras 2.x slot lists, or ``tf.keras.optimizers.legacy`` slot references).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from converters.tfrs_to_torch.optimizer_layouts import (
    EMA_LIST,
    LAYER_ALIAS,
    LEGACY_HYPER,
    LEGACY_ITERATIONS,
    LEGACY_LAYOUTS,
    NEW_BASE_VARIABLES,
    NEW_BOOKKEEPING,
    NEW_LAYOUTS,
    NON_TRAINABLE_NAMES,
    NOT_MODEL,
    OPTIMIZER_ATTRIBUTE,
    SLOT_NAMES,
    Layout,
    UnsupportedOptimizerError,
)
from converters.tfrs_to_torch.plan import (
    VariableRole,
    variable_role,
)
from converters.tfrs_to_torch.tf_format import (
    TRACKING_NAMES,
    VARIABLE_ATTRIBUTE,
)

# -------------------------------------------------------------------------------------------
# Object-graph helpers.
# -------------------------------------------------------------------------------------------


def graph_children(graph: Any, node_id: int) -> list[tuple[str, int]]:
    return [(c.local_name, c.node_id) for c in graph.nodes[node_id].children]


def graph_value_attribute(graph: Any, node_id: int) -> Any:
    for attribute in graph.nodes[node_id].attributes:
        if attribute.name == VARIABLE_ATTRIBUTE:
            return attribute
    return None


def graph_value_key(graph: Any, node_id: int) -> str | None:
    attribute = graph_value_attribute(graph, node_id)
    return None if attribute is None else str(attribute.checkpoint_key)


def variable_full_name(graph: Any, node_id: int) -> str:
    attribute = graph_value_attribute(graph, node_id)
    return "" if attribute is None else str(attribute.full_name)


def find_optimizer(graph: Any) -> tuple[int, str] | None:
    """The node and path of the shallowest object tracked as ``optimizer`` (breadth first)."""
    queue, seen = [(0, "")], {0}
    while queue:
        node_id, path = queue.pop(0)
        for name, child in graph_children(graph, node_id):
            child_path = f"{path}/{name}" if path else name
            if name == OPTIMIZER_ATTRIBUTE and graph_children(graph, child):
                return child, child_path
            if child not in seen and name not in TRACKING_NAMES:
                seen.add(child)
                queue.append((child, child_path))
    return None


def subtree_ids(graph: Any, root: int) -> set[int]:
    out, stack = {root}, [root]
    while stack:
        for _, child in graph_children(graph, stack.pop()):
            if child not in out:
                out.add(child)
                stack.append(child)
    for node_id in list(out):  # legacy slot variables hang off the optimizer by reference
        for ref in graph.nodes[node_id].slot_variables:
            out.add(ref.slot_variable_node_id)
    return out


@dataclass(frozen=True)
class GraphVariable:
    node_id: int
    path: str  # object path, layer_with_weights-N form when there is one
    key: str  # checkpoint key
    full_name: str  # the tf.Variable's name (``dense/kernel``)


def model_variables(graph: Any, excluded: set[int]) -> dict[int, GraphVariable]:
    """Every variable reachable from the root outside ``excluded``, under its canonical path.

    Breadth first, so the path is the shortest; Keras's ``layer-N`` aliases are followed only for
    variables no other path reaches (``load_weights`` keys layers by ``layer_with_weights-N``).
    """
    out: dict[int, GraphVariable] = {}
    for follow_aliases in (False, True):
        queue, seen = [(0, "")], {0}
        while queue:
            node_id, path = queue.pop(0)
            for name, child in graph_children(graph, node_id):
                if child in seen or child in excluded or name in TRACKING_NAMES:
                    continue
                if name == "save_counter" or (not follow_aliases and LAYER_ALIAS.fullmatch(name)):
                    continue
                seen.add(child)
                child_path = f"{path}/{name}" if path else name
                key = graph_value_key(graph, child)
                if key is None:
                    queue.append((child, child_path))
                elif child not in out:
                    out[child] = GraphVariable(
                        child, child_path, key, variable_full_name(graph, child)
                    )
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
        for name, child in graph_children(graph, node_id):
            if child in seen or name in TRACKING_NAMES or name in NOT_MODEL:
                continue
            seen.add(child)
            child_path = f"{path}/{name}" if path else name
            key = graph_value_key(graph, child)
            if key is not None:
                if (
                    name not in NON_TRAINABLE_NAMES
                    and variable_role(child_path) is VariableRole.MODEL
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
class Found:
    """The optimizer's state as read from the graph, before its class is decided."""

    legacy: bool
    name: str  # the optimizer's ``name`` (its class unless renamed), "" when unknown
    iterations_key: str | None
    # (Keras slot name, slot node, model variable node or None, list attribute, list position)
    slots: list[tuple[str, int, int | None, str, int]] = field(default_factory=list)
    extra: set[str] = field(default_factory=set)  # non-slot, non-base variables / lists
    extra_keys: dict[str, str] = field(default_factory=dict)  # extra variable -> checkpoint key
    hyper: dict[str, str] = field(default_factory=dict)  # legacy hyperparameter -> checkpoint key
    learning_rate_key: str | None = None


def read_new(graph: Any, opt_id: int, by_full_name: dict[str, list[int]]) -> Found:
    children = dict(graph_children(graph, opt_id))
    found = Found(False, "", graph_value_key(graph, children["_iterations"]))
    if "_learning_rate" in children:
        found.learning_rate_key = graph_value_key(graph, children["_learning_rate"])
    names: set[str] = set()
    for attr, node in graph_children(graph, opt_id):
        if attr in NEW_BASE_VARIABLES or attr in NEW_BOOKKEEPING:
            continue
        key = graph_value_key(graph, node)
        if key is not None:  # a variable of its own (Nadam's _u_product)
            found.extra.add(attr)
            found.extra_keys[attr] = key
            continue
        items = sorted(
            ((name, child) for name, child in graph_children(graph, node) if name.isdigit()),
            key=lambda item: int(item[0]),
        )
        if not items:
            if graph_children(
                graph, node
            ):  # an object of its own (a LossScaleOptimizer's loss_scale)
                found.extra.add(attr)
            continue  # else an empty list (RMSprop without momentum keeps `_momentums = []`)
        for position, (_, slot_node) in enumerate(items):
            name, slot, variable = parse_slot_name(
                variable_full_name(graph, slot_node), attr, by_full_name
            )
            if name:
                names.add(name)
            found.slots.append((slot, slot_node, variable, attr, position))
    found.name = names.pop() if len(names) == 1 else ""
    return found


def parse_slot_name(
    full_name: str, attr: str, by_full_name: dict[str, list[int]]
) -> tuple[str, str, int | None]:
    """``Adam/m/dense/kernel`` -> (``Adam``, ``m``, node of ``dense/kernel``).

    The optimizer's name is missing when the optimizer was built outside ``apply_gradients``
    (``m/dense/kernel``); the variable node is ``None`` when no single model variable has the name.
    """
    parts = full_name.split("/")
    expected = SLOT_NAMES.get(attr)
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


def read_legacy(graph: Any, opt_id: int) -> Found:
    children = dict(graph_children(graph, opt_id))
    iterations = children.get(LEGACY_ITERATIONS)
    found = Found(True, "", None if iterations is None else graph_value_key(graph, iterations))
    if iterations is not None:
        found.name = variable_full_name(graph, iterations).rpartition("/")[0]
    for name, node in children.items():
        if name == LEGACY_ITERATIONS:
            continue
        key = graph_value_key(graph, node)
        if name in LEGACY_HYPER and key is not None:
            found.hyper[name] = key
        else:
            found.extra.add(name)
            if key is not None:  # legacy Nadam's momentum_cache
                found.extra_keys[name] = key
    found.learning_rate_key = found.hyper.get("learning_rate")
    for ref in graph.nodes[opt_id].slot_variables:
        found.slots.append(
            (ref.slot_name, ref.slot_variable_node_id, ref.original_variable_node_id, "", 0)
        )
    return found


def candidate_layouts(found: Found) -> list[Layout]:
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


def identify(found: Found, config_class: str | None) -> Layout:
    """The layout of the optimizer, or :class:`UnsupportedOptimizerError` (path filled by caller).

    ``config_class`` (the class a Keras SavedModel's ``training_config`` names) or else the
    optimizer's name decides between classes that store the same slots (Adam / Adamax, SGD / Lion);
    when neither does, a class that is a variant of another (AdamW of Adam) resumes as that one.
    """
    family = "legacy." if found.legacy else ""
    layouts = LEGACY_LAYOUTS if found.legacy else NEW_LAYOUTS
    candidates = candidate_layouts(found)
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
    # A class that stores another candidate's state resumes as that one (a renamed AdamW as Adam).
    candidates = [c for c in candidates if layouts.get(c.variant_of) not in candidates]
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
