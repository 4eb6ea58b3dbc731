"""Import cycles between the modules of a package: every group of modules that import each other.

Reads the source (nothing is imported) and follows every ``import`` statement, those inside
functions too: an import deferred into a function still ties the two modules together.
``from pkg import sub`` counts as an import of ``pkg.sub`` when that is a module, otherwise
of ``pkg``. Exits 1 when there is a cycle.

Usage:
    python scripts/import_cycles.py [src/tinct] [--ignore tinct.train tinct.tasks]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    mods = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def imported(mod: str, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> list[str]:
    """The names an import statement in module ``mod`` asks for, absolute and dotted."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = mod.split(".") if mods[mod].name == "__init__.py" else mod.split(".")[:-1]
    if node.level:
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    mods = module_files(root)
    graph = {}
    for mod, f in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in imported(mod, node, mods):
                    while name and name not in mods:  # tinct.io.load_image -> tinct.io
                        name = name.rpartition(".")[0]
                    if name and name != mod:
                        deps.add(name)
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", default="src/tinct", type=Path)
    ap.add_argument("--ignore", nargs="*", default=[], metavar="MODULE", help="leave these modules out")
    args = ap.parse_args()
    graph = {m: deps - set(args.ignore) for m, deps in import_graph(args.package).items() if m not in args.ignore}
    found = cycles(graph)
    for group in found:
        print("cycle: " + " <-> ".join(group))
    print(f"{len(graph)} modules, {len(found)} import cycles")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
