"""No import circle among the session store modules (issue 23, item 4): every import
counts, lazy ones inside functions and those under ``TYPE_CHECKING`` too."""

from __future__ import annotations

import ast
from pathlib import Path

import agent_lib.sessions.stores as stores

PACKAGE = "agent_lib.sessions.stores"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_store_modules_import_no_circle() -> None:
    folder = Path(stores.__file__).parent
    modules = {f"{PACKAGE}.{p.stem}": p for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path) & modules.keys() for name, path in modules.items()}
    assert graph[f"{PACKAGE}.memory"], "the graph should see memory's own imports"

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " -> ".join((*trail, name))
        for other in graph[name]:
            visit(other, (*trail, name))

    for name in graph:
        visit(name, ())
