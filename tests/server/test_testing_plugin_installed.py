"""The "done when" of authapp.testing (docs/testing.md): in a fresh virtualenv outside the
checkout, with authapp installed from its sources (not editable) and pytest, a copy of
examples/host_app passes its suite on the installed plugin alone: first with its conftest's
`authapp_factory`, then with the `authapp_app_factory` ini option instead. pip installs
requirements.lock from the configured index (about 30 s)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns("__pycache__", "instance", "*.pyc", "*.db")


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with requirements.lock, authapp built from a copy of its sources, pytest."""
    work = tmp_path_factory.mktemp("fresh")
    source = work / "authapp-source"
    shutil.copytree(ROOT / "authapp", source / "authapp", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=work)
    lock = ROOT / "requirements.lock"
    run(venv / "bin/pip", "install", "-q", "-r", lock, source, "pytest", cwd=work)
    return venv


def clean_environment() -> dict[str, str]:
    """This run's own settings (pytest's, authapp's, the checkout's path) stay out."""
    drop = ("PYTEST_", "AUTHAPP_", "PYTHONPATH", "FLASK_", "TEST_DATABASE_URL")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def host_copy(folder: Path) -> Path:
    copy = folder / "host_app"
    shutil.copytree(ROOT / "examples/host_app", copy, ignore=SKIP)
    return copy


def test_the_example_host_passes_on_the_installed_plugin(fresh, tmp_path):
    copy = host_copy(tmp_path)

    output = run(fresh / "bin/pytest", "-p", "no:cacheprovider", cwd=copy, env=clean_environment())

    assert "plugins: authapp" in output
    assert "5 passed" in output


def test_the_ini_option_names_the_factory(fresh, tmp_path):
    copy = host_copy(tmp_path)
    (copy / "conftest.py").unlink()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nauthapp_app_factory = "host_app.app:create_app"\n'
        'pythonpath = ["."]\nfilterwarnings = ["error"]\naddopts = "--strict-markers"\n'
    )
    check = 'import authapp.testing as t; print(t.__file__); assert "site-packages" in t.__file__'

    output = run(
        fresh / "bin/pytest", "-p", "no:cacheprovider", cwd=tmp_path, env=clean_environment()
    )
    where = run(fresh / "bin/python", "-c", check, cwd=tmp_path, env=clean_environment())

    assert "5 passed" in output
    assert "site-packages" in where
