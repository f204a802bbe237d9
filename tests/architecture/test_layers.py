"""The house rules that import-linter's contracts (pyproject.toml [tool.importlinter]) cannot say,
and the contracts themselves, kept: docs/architecture.md "Layers" and "Conventions".

Each check has a twin that feeds it a planted violation, so a check that stopped looking would
fail instead of passing on nothing.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "authapp"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# What a service or a security primitive must not read: the request is the entry point's.
REQUEST_STATE = {"request", "g", "session"}


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _long_functions(source: str, name: str) -> list[str]:
    return [
        f"{name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(source, filename=name))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def _request_state_imports(source: str, name: str) -> list[str]:
    return [
        f"{name}:{node.lineno}: from flask import {alias.name}"
        for node in ast.walk(ast.parse(source, filename=name))
        if isinstance(node, ast.ImportFrom) and node.module in {"flask", "flask.globals"}
        for alias in node.names
        if alias.name in REQUEST_STATE | {"request_ctx", "has_request_context"}
    ]


def _commits(source: str, name: str) -> list[str]:
    return [
        f"{name}:{node.lineno}: commit()"
        for node in ast.walk(ast.parse(source, filename=name))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            if group:
                groups.append(sorted([module, *group]))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_import_linter_contracts_are_kept():
    """`make lint` runs them too; here they hold for `make test` and its report."""
    configuration.configure()  # what the lint-imports command does before it lints
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)


def test_every_package_of_authapp_sits_in_a_layer():
    """A new folder cannot escape the layers by being left out of the contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    named = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    packages = {
        p.parent.name if p.name == "__init__.py" else p.stem for p in PACKAGE.glob("*/__init__.py")
    } | {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}

    assert packages - named == set()


def test_no_module_over_300_lines():
    files = _sources()
    assert len(files) > 50

    long = [f"{_relative(p)}: {n}" for p in files if (n := len(p.read_text().splitlines())) > 300]

    assert long == []


def test_no_function_over_40_lines():
    found = [v for p in _sources() for v in _long_functions(p.read_text(), _relative(p))]

    assert found == []


def test_the_function_check_sees_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert _long_functions(f"def f():\n{body}", "sample.py") != []
    assert _long_functions("def f():\n    return 1\n", "sample.py") == []


@pytest.mark.parametrize("folder", ["auth/services", "settings/services", "security", "models"])
def test_services_and_primitives_never_read_the_request(folder):
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files

    found = [v for p in files for v in _request_state_imports(p.read_text(), _relative(p))]

    assert found == []


def test_the_request_check_sees_an_import_of_g():
    assert _request_state_imports("from flask import current_app, g\n", "x.py") != []
    assert _request_state_imports("from flask import current_app\n", "x.py") == []


def test_only_services_entry_points_and_delivery_commit():
    """Building blocks (auth/*.py beside services/), guards, primitives and tables never
    commit: a use case in services/ commits once at its end, so a caller can compose them.
    The entry points commit their own work: commands, ops.py, and the test plugin's users."""
    never = [
        p
        for p in _sources()
        if not any(part in p.parts for part in ("services", "delivery", "cli", "testing"))
        and p.name not in {"ops.py"}
    ]
    assert any(p.name == "guards.py" for p in never)

    found = [v for p in never for v in _commits(p.read_text(), _relative(p))]

    assert found == []


def test_the_commit_check_sees_a_commit():
    assert _commits("db.session.commit()\n", "x.py") != []


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("authapp")
    assert len(graph.modules) > 50

    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.c", imported="a.d")

    assert _cycles(graph) == [["a.b", "a.c"]]
