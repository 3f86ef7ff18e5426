"""``python tools/import_cycles.py [PACKAGE ...]``: fails when modules of the packages import each other in a cycle,
or when the library imports the tools built on it.

Every import counts, those inside functions included (a cycle "broken" by a function-level import is still a
cycle: the two modules cannot be understood, tested or split apart alone); imports under ``TYPE_CHECKING`` do
not. The import graph is grimp's (the engine of import-linter). Part of ``make lint``; default packages:
``converters torchrs``.

Layering: ``torchrs`` (the library) never imports ``converters`` or ``parity`` (tools built on it), at any level,
in a function or a ``try`` included: a torchrs installed alone must work, and what both need lives in torchrs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

DEFAULT_PACKAGES = ("converters", "torchrs")
#: Package -> the top-level packages it must not import.
FORBIDDEN_IMPORTS = {"torchrs": ("converters", "parity")}


def find_cycles(packages: Sequence[str]) -> list[tuple[str, ...]]:
    """One shortest cycle per set of modules importing each other, as ``(a, b, ..., a)``.

    Args:
        packages: top-level packages importable from ``sys.path``.

    Returns:
        The cycles, sorted; empty when there is none.
    """
    import grimp

    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True)
    seen: set[frozenset[str]] = set()
    cycles: list[tuple[str, ...]] = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back and frozenset(back) not in seen:
                seen.add(frozenset(back))
                cycles.append((module, *back))
    return sorted(cycles)


def find_forbidden_imports(packages: Sequence[str]) -> list[tuple[str, str]]:
    """``(importer, imported)`` for every import of :data:`FORBIDDEN_IMPORTS` in ``packages``.

    Args:
        packages: top-level packages importable from ``sys.path``.

    Returns:
        The forbidden imports, sorted; empty when there is none.
    """
    import grimp

    checked = [p for p in packages if p in FORBIDDEN_IMPORTS]
    if not checked:
        return []
    graph = grimp.build_graph(
        *checked,
        include_external_packages=True,
        exclude_type_checking_imports=True,
        cache_dir=None,  # grimp's cache missed a freshly added import here
    )
    found: list[tuple[str, str]] = []
    for package in checked:
        banned = FORBIDDEN_IMPORTS[package]
        for module in sorted(graph.find_descendants(package) | {package}):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported.split(".")[0] in banned:
                    found.append((module, imported))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    packages = list(argv if argv is not None else sys.argv[1:]) or list(DEFAULT_PACKAGES)
    cycles = find_cycles(packages)
    forbidden = find_forbidden_imports(packages)
    for importer, imported in forbidden:
        print(f"forbidden import: {importer} imports {imported}", file=sys.stderr)
    if forbidden:
        print(
            f"error: {len(forbidden)} import(s) of {', '.join(sorted({i for _, i in forbidden}))} from the "
            "library; torchrs must not depend on converters / parity: move what both need into torchrs.",
            file=sys.stderr,
        )
    for cycle in cycles:
        print("import cycle: " + " -> ".join(cycle), file=sys.stderr)
    if cycles:
        print(
            f"error: {len(cycles)} import cycle(s) in {', '.join(packages)}; move what both modules need into "
            "a third module they both import.",
            file=sys.stderr,
        )
        return 1
    if forbidden:
        return 1
    print(f"no import cycles in {', '.join(packages)}, no forbidden imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
