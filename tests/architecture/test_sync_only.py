"""docs/architecture.md "Rules", rule 1: no async def, asyncio, gevent or eventlet anywhere in
authapp/."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "authapp"
BANNED_MODULES = {"asyncio", "gevent", "eventlet", "trio", "anyio"}


def _banned(module: str) -> bool:
    return module.split(".")[0] in BANNED_MODULES


def _violations(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            found.append(f"{name}:{node.lineno}: {type(node).__name__}")
        elif isinstance(node, ast.Import):
            found += [
                f"{name}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if _banned(alias.name)
            ]
        elif isinstance(node, ast.ImportFrom) and _banned(node.module or ""):
            found.append(f"{name}:{node.lineno}: from {node.module}")
    return found


def test_the_package_is_synchronous():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10  # the scan really looked at the package

    violations = [v for path in files for v in _violations(path.read_text(), str(path))]

    assert violations == []


def test_the_scan_catches_async_code():
    sample = "import asyncio\nfrom gevent import monkey\nasync def f():\n    await g()\n"

    assert len(_violations(sample, "sample.py")) == 4
