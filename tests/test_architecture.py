"""The package layout is the architecture: these tests keep the import direction true.

Every ``import`` in ``fgr_retriever`` (including imports inside functions and under
``TYPE_CHECKING``) is read with :mod:`ast`, and each one must follow :data:`MAY_IMPORT`. The
runtime path (foundation → evidence → model → index → retriever) never reaches the tool
packages (``distill``, ``evaluation``, ``cli``), so changing a loss, a metric or a command can
not change how a saved model searches. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fgr_retriever"

FOUNDATION = {"errors", "types", "validation", "_io"}
RUNTIME = FOUNDATION | {"evidence", "model", "index", "retriever", "fgr_retriever"}
TOOLS = {"distill", "evaluation", "cli"}

# component -> the components it may import (besides itself). "fgr_retriever" is the top-level
# __init__ (the curated public API).
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "types": {"errors"},
    "validation": {"errors"},
    "_io": {"errors"},
    "evidence": FOUNDATION,
    "model": FOUNDATION | {"evidence"},
    "index": FOUNDATION | {"evidence", "model"},
    "retriever": FOUNDATION | {"evidence", "model", "index"},
    "fgr_retriever": RUNTIME,
    "ingest": FOUNDATION | {"evidence"},
    "server": RUNTIME,
    "testing": RUNTIME,
    "distill": RUNTIME,
    "evaluation": RUNTIME,
    "cli": RUNTIME | {"ingest", "server", "distill", "evaluation"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (they never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out.update(id(n) for n in ast.walk(child))
    return out


def _imports(module: str, path: Path) -> list[tuple[str, bool]]:
    """``(imported fgr_retriever module, runs at import or call time)`` for every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    static_only = _type_checking_nodes(tree)
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        runs = id(node) not in static_only
        if isinstance(node, ast.Import):
            found += [(a.name, runs) for a in node.names if a.name.split(".")[0] == "fgr_retriever"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "fgr_retriever":
                continue
            # "from . import common" imports the module fgr_retriever.<...>.common
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found += [(m, runs) for m in submodules] or [(target, runs)]
    return found


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fgr_retriever"


IMPORTS = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_scan_sees_the_package():
    # guards the test itself: a broken scan would pass every rule below vacuously
    assert {"fgr_retriever.model.encoder", "fgr_retriever.retriever", "fgr_retriever.cli.app"} <= set(MODULES)
    assert ("fgr_retriever.model.encoder", True) in IMPORTS["fgr_retriever.retriever"]
    assert any(t == "fgr_retriever.evaluation" for t, _ in IMPORTS["fgr_retriever.cli.evaluate"])


def test_every_module_belongs_to_a_layer():
    unknown = sorted({_component(m) for m in MODULES} - set(MAY_IMPORT))
    assert not unknown, f"new top-level modules or packages need a layer in MAY_IMPORT: {unknown}"


def test_imports_follow_the_layers():
    violations = []
    for module, imports in IMPORTS.items():
        here = _component(module)
        for target, _ in imports:
            there = _component(target)
            if there != here and there not in MAY_IMPORT[here]:
                violations.append(f"{module} imports {target} ({here} may not import {there})")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("tool", sorted(TOOLS | {"testing"}))
def test_the_runtime_never_imports_a_tool_package(tool):
    offenders = [f"{m} -> {t}" for m, imports in IMPORTS.items() if _component(m) in RUNTIME
                 for t, _ in imports if _component(t) == tool]
    assert not offenders


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # imports that run (lazy ones included); importing a.b.c first runs the packages a.b and a,
    # except the top-level package, whose __init__ every module is inside of
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in IMPORTS.items():
        for target, runs in imports:
            if not runs or target == module:
                continue
            parts = target.split(".")
            for depth in range(2, len(parts) + 1):
                dep = ".".join(parts[:depth])
                if dep in MODULES and dep != module and not module.startswith(dep + "."):
                    edges[module].add(dep)
    assert _cycles(edges) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"
                                            and m != "fgr_retriever"))
def test_each_package_says_what_it_owns_and_may_import(package):
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8"))) or ""
    assert "Owns" in doc and "May import" in doc, f"{package}/__init__.py needs an 'Owns' / 'May import' docstring"
