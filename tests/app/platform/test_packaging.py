"""The built wheel carries everything an installed authapp reads from its package: templates
(mail's text parts too), static files, data and the migrations (`flask db upgrade` after
`pip install`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "authapp"
SUFFIXES = {".html", ".txt", ".css", ".js", ".py", ".ini", ".mako", ".LICENSE"}


def shipped_files() -> set[str]:
    """Every file of the package that is not Python bytecode, as the wheel should name it."""
    return {
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in SUFFIXES
    } | {str(p.relative_to(ROOT)) for p in (PACKAGE / "migrations").glob("*") if p.is_file()}


def test_the_wheel_carries_templates_static_data_and_migrations(tmp_path):
    # From a copy without the editable install's authapp.egg-info, whose file list setuptools
    # would otherwise take for the package data: a clean checkout has none.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "authapp", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=source, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("authapp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    expected = shipped_files()
    assert {
        "authapp/templates/authapp/mail/verify_email.txt",
        "authapp/migrations/env.py",
    } <= expected
    assert any(name.startswith("authapp/migrations/versions/") for name in expected)
    assert expected - names == set()
