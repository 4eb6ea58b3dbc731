"""The source tree's shape, checked on every run: no import cycle among tinct's modules, no
source file over 450 lines, and a CLI that only parses arguments and calls the modules
(no file-system logic of its own).

The import graph is read from the source (nothing is imported) and follows every
``import`` statement, those inside functions too: an import deferred into a function still
ties the two modules together. ``from pkg import sub`` counts as an import of ``pkg.sub``
when that is a module, otherwise of ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tinct"
MAX_LINES = 450


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


def test_no_import_cycles():
    found = cycles(import_graph(SRC))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(group) for group in found)


def test_cycle_finder_finds_a_cycle(tmp_path):
    """The check above can fail: a package whose two modules import each other."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: p.relative_to(SRC).as_posix())
def test_source_file_is_short(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(SRC)} has {n} lines (at most {MAX_LINES}: split it by idea)"


FS_CALLS = {"exists", "is_file", "is_dir", "glob", "rglob", "iterdir", "mkdir", "unlink", "rename", "replace",
            "stat", "open", "read_text", "write_text", "read_bytes", "write_bytes", "walk", "listdir", "remove"}


def test_cli_has_no_file_system_logic():
    """cli.py parses and calls; finding, planning and writing files live in batch, io and the commands' modules."""
    tree = ast.parse((SRC / "cli.py").read_text(encoding="utf-8"))
    calls = sorted({f"line {n.lineno}: {n.func.attr if isinstance(n.func, ast.Attribute) else n.func.id}"
                    for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and ((isinstance(n.func, ast.Attribute) and n.func.attr in FS_CALLS)
                         or (isinstance(n.func, ast.Name) and n.func.id in {"open", "glob"}))})
    assert not calls, f"file-system calls in cli.py: {calls}"
