"""The layers of the package, checked from the source so they stay true.

Graph model at the bottom (the standard library only); the emulator on it; the addons and
the scenario runner beside each other on those; the command line on top. Function-local
imports count: a cycle hidden inside a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
# Where each part of the one package lives in a checkout (pyproject.toml's package-dir).
FOLDERS = {
    "exportjobs": ROOT / "src" / "exportjobs",
    "exportjobs.addons": ROOT / "addons",
    "exportjobs.simulator": ROOT / "simulator",
    "exportjobs.scenarios": ROOT / "scenarios",
}
GRAPH, YAMLDOC, SCENARIOS = "exportjobs.graph", "exportjobs.yamldoc", "exportjobs.scenarios"
EMULATOR, ADDONS, SIMULATOR = "exportjobs.simulator.emulator", "exportjobs.addons", "exportjobs.simulator"
# What each layer may import from the package (prefixes), most specific layer first.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (GRAPH, (GRAPH,)),
    (YAMLDOC, ()),
    (SCENARIOS, ()),
    (EMULATOR, (GRAPH, YAMLDOC, EMULATOR)),
    (ADDONS, (GRAPH, YAMLDOC, EMULATOR, ADDONS)),
    (SIMULATOR, (GRAPH, YAMLDOC, SCENARIOS, SIMULATOR)),
    ("exportjobs", ("exportjobs",)),  # the command line and the demo: anything
]
OLD_TOP_LEVEL = ("simulator", "addons", "bench")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if package == "exportjobs" and parts[0] in ("addons", "simulator", "scenarios"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """Every module ``name`` imports (absolute names, with line numbers)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, node.lineno))
            out.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
    return out


def _layer(module: str) -> tuple[str, tuple[str, ...]]:
    for prefix, allowed in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, allowed
    raise AssertionError(f"{module} belongs to no layer")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in sorted(modules.items()):
        layer, allowed = _layer(name)
        for imported, line in _imports(name, path):
            top = imported.partition(".")[0]
            if top in OLD_TOP_LEVEL:
                problems.append(f"{path}:{line}: imports {imported}; the package is exportjobs")
            elif (top == "exportjobs" and imported != "exportjobs"
                  and (imported in modules or imported.rpartition(".")[0] in modules)
                  and not any(_within(imported, p) for p in allowed)):
                problems.append(f"{path}:{line}: {layer} may not import {imported}")
    return problems


def import_cycles(modules: dict[str, Path]) -> list[list[str]]:
    graph = {name: sorted({m for m, _ in _imports(name, path) if m in modules and m != name})
             for name, path in modules.items()}
    # Tarjan's strongly connected components; a component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    # A package importing its own submodules (re-exports) is not a cycle worth naming.
    return [c for c in cycles if not all(_within(m, c[0]) for m in c)]


def test_every_module_keeps_to_its_layer():
    assert layer_violations(_modules()) == []


def test_no_module_imports_another_that_imports_it_back():
    assert import_cycles(_modules()) == []


@pytest.mark.parametrize("source, expected", [
    ("from exportjobs.addons.scope import Scope\n", "exportjobs.simulator.emulator may not import"),
    ("from simulator.routes import match_exportjobs\n", "the package is exportjobs"),
])
def test_the_layer_check_catches_a_bad_import(tmp_path, source, expected):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    modules = {**_modules(), "exportjobs.simulator.emulator.bad": bad}
    assert any(expected in problem for problem in layer_violations(modules))


def test_the_cycle_check_catches_a_hidden_cycle(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from exportjobs.graph.b import g\n")
    b.write_text("from exportjobs.graph.a import f\n")
    cycles = import_cycles({"exportjobs.graph.a": a, "exportjobs.graph.b": b})
    assert cycles == [["exportjobs.graph.a", "exportjobs.graph.b"]]
