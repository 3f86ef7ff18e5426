"""``python tools/import_cycles.py [PACKAGE ...]``: fails when modules of the packages import each other in a cycle.

Every import counts, those inside functions included (a cycle "broken" by a function-level import is still a
cycle: the two modules cannot be understood, tested or split apart alone); imports under ``TYPE_CHECKING`` do
not. The import graph is grimp's (the engine of import-linter). Part of ``make lint``; default packages:
``converters torchrs``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

DEFAULT_PACKAGES = ("converters", "torchrs")


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


def main(argv: Sequence[str] | None = None) -> int:
    packages = list(argv if argv is not None else sys.argv[1:]) or list(DEFAULT_PACKAGES)
    cycles = find_cycles(packages)
    for cycle in cycles:
        print("import cycle: " + " -> ".join(cycle), file=sys.stderr)
    if cycles:
        print(
            f"error: {len(cycles)} import cycle(s) in {', '.join(packages)}; move what both modules need into "
            "a third module they both import.",
            file=sys.stderr,
        )
        return 1
    print(f"no import cycles in {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
