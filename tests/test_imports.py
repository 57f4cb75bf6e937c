"""The import graph of pyqueue's small modules: no circles between them."""

from __future__ import annotations

import ast
from pathlib import Path

import pyqueue

PACKAGE = Path(pyqueue.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every pyqueue module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyqueue."):
            found.add(node.module.split(".")[1])  # type: ignore[union-attr]
    return found


def test_backoff_and_options_do_not_import_each_other() -> None:
    # options validates backoff specs with backoff.encode; backoff needs only
    # the duration check, which lives in _duration.
    assert "backoff" in imported_modules(PACKAGE / "options.py")
    assert "options" not in imported_modules(PACKAGE / "backoff.py")


def test_duration_ms_is_the_same_function_everywhere() -> None:
    from pyqueue import _duration, backoff, options

    assert options.duration_ms is _duration.duration_ms
    assert backoff.duration_ms is _duration.duration_ms  # type: ignore[attr-defined]


def _module_graph() -> dict[str, set[str]]:
    """Module-level imports between pyqueue's modules (``from . import x``
    imports the submodule, not the package)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
                deps |= subs or ({target} & modules.keys())
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & modules.keys()
        graph[name] = deps - {name}
    return graph


def test_no_import_circles_anywhere() -> None:
    graph = _module_graph()
    assert "pyqueue._runner" in graph["pyqueue.queue"]  # the walk sees real edges
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep):], dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
