"""The package's layers: imports point one way (up the data flow never) and form no circle.

Read from the source (ast), every import counts, including those inside functions: a lazy import
that reaches up is still a dependency on the layer above.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nnc4rl"

# Lowest first. A module may import its own layer and those below it, never one above.
LAYERS = ("core", "compress", "export", "runs", "study", "cli")
# The package facade (lazy public names) and the ``python -m`` entry points kept for the
# commands the README names: above every layer.
TOP = ("nnc4rl", "nnc4rl.report", "nnc4rl.profiles.__main__")
DATA = ("nnc4rl.profiles", "nnc4rl.hyperparams")  # YAML folders: they import nothing


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path) -> dict[str, set[str]]:
    """``{module: nnc4rl modules it imports}`` for every module under ``root``."""
    modules = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from pkg import mod`` imports the module pkg.mod when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]  # fmt: skip
            else:
                continue
            deps |= {t for t in targets if t.split(".")[0] == "nnc4rl" and t != name}
        graph[name] = deps
    return graph


def layer_of(module: str) -> int:
    if module in TOP:
        return len(LAYERS)
    if module in DATA:
        return -1
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        raise AssertionError(f"{module} belongs to no layer: put it in one of {', '.join(LAYERS)}")
    return LAYERS.index(parts[1])


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a imports b"`` for every import from a lower layer to a higher one."""
    return [f"{a} imports {b} ({LAYERS[layer_of(a)] if layer_of(a) >= 0 else 'data'} -> "
            f"{LAYERS[layer_of(b)] if layer_of(b) < len(LAYERS) else 'top'})"
            for a, deps in sorted(graph.items()) for b in sorted(deps)
            if b != "nnc4rl" and layer_of(b) > layer_of(a)]  # fmt: skip


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (strongly connected component of more than one module), as a path
    ``a -> b -> ... -> a``. The facade ``nnc4rl`` is left out: importing any submodule runs it,
    and it imports nothing eagerly."""
    nodes = {m: {d for d in deps if d in graph and d != "nnc4rl"}
             for m, deps in graph.items() if m != "nnc4rl"}  # fmt: skip
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(nodes[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(_cycle_path(nodes, set(component)))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def _cycle_path(nodes: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    path, seen = [start], {start}
    while True:  # walk inside the component until the path closes
        nxt = sorted(nodes[path[-1]] & component)
        if start in nxt:
            return [*path, start]
        step = next((n for n in nxt if n not in seen), nxt[0])
        if step in seen:
            return [*path[path.index(step) :], step]
        path.append(step)
        seen.add(step)


def problems(root: Path) -> list[str]:
    graph = imports_of(root)
    return upward_imports(graph) + [" -> ".join(c) + " (import circle)" for c in circles(graph)]


def test_imports_follow_the_layers_and_form_no_circle():
    assert problems(PACKAGE) == []


def test_every_layer_says_what_it_owns_and_may_import():
    for layer in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
        assert "Owns:" in doc and "May import:" in doc, layer


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "nnc4rl"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "*.yml", "*.md"))
    return root


def _plant(root: Path, module: str, line: str) -> None:
    path = root.joinpath(*module.split(".")[1:]).with_suffix(".py")
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("nnc4rl.core.atomic", "from nnc4rl.study import results",
         "nnc4rl.core.atomic imports nnc4rl.study.results (core -> study)"),
        ("nnc4rl.compress.plan", "import nnc4rl.runs.store",
         "nnc4rl.compress.plan imports nnc4rl.runs.store (compress -> runs)"),
        ("nnc4rl.runs.spec", "from nnc4rl.runs.runner import train",
         "nnc4rl.runs.spec -> nnc4rl.runs.runner"),
    ],
)  # fmt: skip
def test_a_planted_upward_import_or_circle_is_named(tmp_path, module, line, expected):
    root = _copy(tmp_path)
    assert problems(root) == []
    _plant(root, module, line)
    found = problems(root)
    assert found and expected in found[0]  # an upward import comes first, then circles
    if "circle" not in found[0]:  # reaching up also closes a circle through the layer above
        assert all("import circle" in p for p in found[1:])


def test_a_module_outside_the_layers_is_named(tmp_path):
    root = _copy(tmp_path)
    (root / "loose.py").write_text("from nnc4rl.core import config\n")
    with pytest.raises(AssertionError, match="nnc4rl.loose belongs to no layer"):
        problems(root)
