"""What a scenario's TF side is made of, as a fingerprint a record carries (`parity.record`, `parity.replay`).

A record's TF run stays valid only while the code that produced it is unchanged: the scenario's ``build_tf`` and
TF hooks (``tf_variables``, ``tf_optimizer``, ``tf_outputs``), the data shaping both sides share (``make_data``,
``columns``, the config and data classes), and the harness's TF driver (``run_tf_side``, ``prepare_tables``).
`tf_side_sources` follows these roots through every name they use that is defined in this project (module-level
functions, classes and constants; imports from ``parity`` / ``torchrs`` / ``converters``, local imports and
``module.attribute`` chains included) and hashes each definition's syntax tree.

The hash covers the code, not its layout: comments, docstrings, blank lines and line breaks do not count, and the
tree is written out without the fields that differ between Python versions when empty (``type_params``), so a
record made under one Python replays under another. A torch-side change never touches these definitions, so it
does not make a record stale. The data a record was made from is checked separately, by its content
(`parity.record.fingerprint`): that covers the synthetic generator and the tutorial split exactly.

>>> parts = tf_side_sources("basic_ranking")
>>> "parity.scenarios.basic_ranking:build_tf" in parts and "parity.harness:run_tf_side" in parts
True
>>> "parity.scenarios.basic_ranking:build_torch" in parts  # the torch side is not part of it
False
>>> len(tf_side_fingerprint(parts))
64
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import importlib
import inspect
import json
import types
from collections.abc import Iterator, Mapping
from typing import Any

# Packages whose definitions are followed; anything else (numpy, TensorFlow, torch) is a versioned dependency.
PROJECT_PACKAGES = ("parity", "torchrs", "converters")
HARNESS = "parity.harness"
# The harness's TF driver, shared by every scenario (basic_retrieval / basic_ranking are wired into it).
HARNESS_ROOTS = ("run_tf_side", "prepare_tables")
# The harness's scenario registries: only the recorded scenario's entry counts (``SCENARIOS[dcn]``), so adding a
# scenario does not make every record stale.
REGISTRIES = ("SCENARIOS", "_GENERIC")
# A scenario module's TF side and the data shaping both sides share; absent names are skipped.
SCENARIO_ROOTS = (
    "build_tf",
    "tf_variables",
    "tf_optimizer",
    "tf_outputs",
    "make_data",
    "columns",
    "CONFIG",
)


def _is_project(module_name: str) -> bool:
    return module_name.split(".")[0] in PROJECT_PACKAGES


@functools.cache
def _definitions(module_name: str) -> dict[str, ast.AST]:
    """The module's top-level definitions by name: functions, classes, assignments (last one wins)."""
    module = importlib.import_module(module_name)
    tree = ast.parse(inspect.getsource(module))
    found: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found[name.id] = node
    return found


def _normalized(node: ast.AST) -> ast.AST:
    """A copy without docstrings and type annotations (neither changes what the code does)."""
    node = copy.deepcopy(node)
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg):
            sub.annotation = None
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
            sub.returns = None
        elif isinstance(sub, ast.AnnAssign):
            sub.annotation = ast.Constant(None)
        body = getattr(sub, "body", None)
        if (
            isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            sub.body = body[1:] or [ast.Pass()]
    return node


def canonical(node: Any) -> str:
    """A syntax tree as text without positions, leaving out fields that are None or empty.

    >>> canonical(ast.parse("x = 1  # one").body[0]) == canonical(ast.parse("x=(1)").body[0])
    True
    """
    if isinstance(node, ast.AST):
        fields = [
            f"{name}={canonical(value)}"
            for name in node._fields
            if (value := getattr(node, name, None)) is not None and value != []
        ]
        return f"({type(node).__name__} {' '.join(fields)})".replace(" )", ")")
    if isinstance(node, list):
        return "[" + ",".join(canonical(item) for item in node) + "]"
    return repr(node)


def _digest(node: ast.AST) -> str:
    return hashlib.sha256(canonical(node).encode("utf-8")).hexdigest()


def _attribute_chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """``a.b.c`` as ``("a", ["b", "c"])``; None when it does not start with a plain name."""
    attributes: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        attributes.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return current.id, attributes[::-1]


def _defined_at(obj: Any) -> tuple[str, str] | None:
    """``(module, top-level name)`` of a project function or class, else None."""
    if isinstance(obj, (types.FunctionType, type)):
        module = getattr(obj, "__module__", "") or ""
        name = getattr(obj, "__qualname__", "").split(".")[0]
        if _is_project(module) and name in _definitions(module):
            return module, name
    return None


class _Collector:
    def __init__(self) -> None:
        self.parts: dict[str, str] = {}

    def add(self, module_name: str, name: str) -> None:
        key = f"{module_name}:{name}"
        node = _definitions(module_name).get(name)
        if node is None or key in self.parts or (module_name == HARNESS and name in REGISTRIES):
            return
        node = _normalized(node)
        self.parts[key] = _digest(node)
        module = importlib.import_module(module_name)
        for target in self._references(module, node):
            self.add(*target)

    def _resolve(
        self, module: types.ModuleType, name: str, attributes: list[str]
    ) -> Iterator[tuple[str, str]]:
        if name in _definitions(module.__name__):
            yield module.__name__, name
            return
        obj = vars(module).get(name)
        # Walk module.attribute chains (``movielens.SYNTHETIC``, ``trs.layers.Dense``) through project modules.
        while isinstance(obj, types.ModuleType) and _is_project(obj.__name__) and attributes:
            attribute = attributes.pop(0)
            if attribute in _definitions(obj.__name__) and not isinstance(
                getattr(obj, attribute, None), types.ModuleType
            ):
                yield obj.__name__, attribute
                return
            obj = getattr(obj, attribute, None)
        located = _defined_at(obj)
        if located is not None:
            yield located

    def _references(self, module: types.ModuleType, node: ast.AST) -> Iterator[tuple[str, str]]:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                chain = _attribute_chain(sub)
                if chain is not None:
                    yield from self._resolve(module, chain[0], list(chain[1]))
            elif isinstance(sub, ast.Name):
                yield from self._resolve(module, sub.id, [])
            elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module:
                if not _is_project(sub.module):
                    continue
                source = importlib.import_module(sub.module)
                for alias in sub.names:
                    obj = getattr(source, alias.name, None)
                    if alias.name in _definitions(sub.module) and not isinstance(
                        obj, types.ModuleType
                    ):
                        yield sub.module, alias.name
                    else:
                        located = _defined_at(obj)
                        if located is not None:
                            yield located


def tf_side_sources(scenario: str) -> dict[str, str]:
    """``{"module:name": SHA-256}`` of every project definition ``scenario``'s TF side depends on, sorted.

    Raises:
        KeyError: an unknown scenario.
    """
    from parity.harness import SCENARIOS

    module = SCENARIOS[scenario]
    collector = _Collector()
    harness = importlib.import_module(HARNESS)
    for registry in REGISTRIES:
        entry = getattr(harness, registry)
        value = (
            getattr(entry.get(scenario), "__name__", None)
            if isinstance(entry, dict)
            else scenario in entry
        )
        collector.parts[f"{HARNESS}:{registry}[{scenario}]"] = hashlib.sha256(
            repr(value).encode()
        ).hexdigest()
    for name in HARNESS_ROOTS:
        collector.add(HARNESS, name)
    for name in SCENARIO_ROOTS:
        collector.add(module.__name__, name)
    return dict(sorted(collector.parts.items()))


def tf_side_fingerprint(parts: Mapping[str, str]) -> str:
    """One SHA-256 over `tf_side_sources`' parts."""
    return hashlib.sha256(json.dumps(dict(sorted(parts.items()))).encode("utf-8")).hexdigest()


def differences(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """What changed between two `tf_side_sources` results, one phrase per definition.

    >>> differences({"m:a": "1", "m:b": "2"}, {"m:a": "1", "m:b": "3", "m:c": "4"})
    ['m:b changed', 'm:c added']
    """
    out = []
    for key in sorted({*recorded, *current}):
        if key not in current:
            out.append(f"{key} removed")
        elif key not in recorded:
            out.append(f"{key} added")
        elif recorded[key] != current[key]:
            out.append(f"{key} changed")
    return out
