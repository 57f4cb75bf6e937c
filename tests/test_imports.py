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
