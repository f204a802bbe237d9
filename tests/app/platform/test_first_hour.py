"""A newcomer's first hour: `flask secrets generate` prints secrets production accepts (also
without an app: `python -m authapp.cli`), and development logs for people, production for
machines (LOG_FORMAT)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from authapp.platform import config

ROOT = Path(__file__).resolve().parents[3]


def generated(output: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in output.splitlines() if not line.startswith("#")]
    return dict(pairs)


def production_with(secrets: dict[str, str], tmp_path: Path, monkeypatch) -> dict:
    for name in list(os.environ):
        if name.startswith("AUTHAPP") or name in secrets:
            monkeypatch.delenv(name)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    settings = config.load(str(tmp_path))
    config.check_production(settings)  # raises ConfigError on a weak or missing secret
    return settings


def test_flask_secrets_generate_prints_what_production_accepts(app, tmp_path, monkeypatch):
    first = app.test_cli_runner().invoke(args=["secrets", "generate"])
    second = app.test_cli_runner().invoke(args=["secrets", "generate"])

    assert first.exit_code == 0, first.output
    secrets = generated(first.output)
    assert set(secrets) == {*config.SECRET_NAMES, "DATA_ENCRYPTION_KEY"}
    Fernet(secrets["DATA_ENCRYPTION_KEY"])  # a Fernet key
    assert production_with(secrets, tmp_path, monkeypatch)["AUTHAPP_ENV"] == "production"
    assert set(secrets.values()).isdisjoint(generated(second.output).values())


def test_the_same_command_runs_where_no_app_can_start_yet():
    """A fresh production host: no secrets, so `flask` cannot load the app at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHAPP")}
    for name in (*config.SECRET_NAMES, "DATA_ENCRYPTION_KEY"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "authapp.cli", "secrets", "generate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert set(generated(result.stdout)) == {*config.SECRET_NAMES, "DATA_ENCRYPTION_KEY"}
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("environment", "explicit", "expected"),
    [
        ("development", None, "console"),
        ("testing", None, "json"),
        ("development", "json", "json"),
        ("testing", "console", "console"),
    ],
)
def test_logs_are_for_people_in_development_and_json_elsewhere(
    environment, explicit, expected, tmp_path, monkeypatch
):
    monkeypatch.setenv("AUTHAPP_ENV", environment)
    if explicit is None:
        monkeypatch.delenv("LOG_FORMAT", raising=False)
    else:
        monkeypatch.setenv("LOG_FORMAT", explicit)

    assert config.load(str(tmp_path))["LOG_FORMAT"] == expected


def test_an_unknown_log_format_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTHAPP_ENV", "testing")
    monkeypatch.setenv("LOG_FORMAT", "xml")

    with pytest.raises(config.ConfigError, match="LOG_FORMAT='xml' is not valid"):
        config.load(str(tmp_path))


def test_wsgi_reads_dotenv_but_the_environment_wins(tmp_path):
    """`.env` (docs/configuration.md): read by wsgi.py, as `flask` reads it; a variable already
    set in the environment is not overridden."""
    (tmp_path / ".env").write_text(
        "AUTHAPP_ENV=development\n"
        "PUBLIC_BASE_URL=https://from-dotenv.example\n"
        "MAIL_FROM=dotenv@example.com\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHAPP", "PUBLIC_", "MAIL"))}
    env |= {"PYTHONPATH": str(ROOT), "MAIL_FROM": "environment@example.com"}
    script = "import wsgi; c = wsgi.app.config; print(c['AUTHAPP_ENV'], c['PUBLIC_BASE_URL'])"
    script += "; print(c['MAIL_FROM'])"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "development",
        "https://from-dotenv.example",
        "environment@example.com",
    ]
