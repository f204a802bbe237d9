"""gunicorn.conf.py reads GUNICORN_* through authapp's own settings (platform/config.py): one
parser per kind, and a bad value stops the master in one line, like any other setting (CF-1)."""

from __future__ import annotations

import os
import subprocess

import pytest

from bench import launch
from tests.conftest import TEST_SECRETS
from tests.server.conftest import ROOT


def check_config(**settings: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GUNICORN")}
    env |= {"AUTHAPP_ENV": "testing", "DATABASE_URL": "sqlite://", **TEST_SECRETS, **settings}
    return subprocess.run(
        launch.gunicorn_command("wsgi:app", "--check-config"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("GUNICORN_WORKERS", "two", "GUNICORN_WORKERS='two' is not valid"),
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS must be between 1 and 10000"),
        ("GUNICORN_TIMEOUT", "30s", "GUNICORN_TIMEOUT='30s' is not valid"),
    ],
)
def test_a_bad_server_setting_stops_the_master_in_one_line(name, value, reason):
    result = check_config(**{name: value})

    output = result.stderr + result.stdout
    assert result.returncode != 0, output
    assert f"authapp refuses to start: {reason}" in output
    assert "Traceback" not in output


def test_good_server_settings_pass_the_check():
    result = check_config(GUNICORN_WORKERS="2", GUNICORN_THREADS="8", GUNICORN_TIMEOUT="20")

    assert result.returncode == 0, result.stderr + result.stdout
