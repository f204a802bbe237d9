"""Operators' commands through the real `flask` CLI (subprocesses) and the app's CLI runner."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from authapp.platform import config
from authapp.platform.extensions import db
from tests.conftest import (
    PASSWORD,
    TEST_SECRETS,
    auth_header,
    build_app,
    scratch_database,
    worker_name,
)

ROOT = Path(__file__).resolve().parents[3]
FLASK = str(Path(sys.executable).parent / "flask")


def flask(*args, env=None, input=None):
    """`flask --app authapp ARGS` in testing; a None in `env` leaves that variable unset."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHAPP", "SEED"))}
    full_env |= {"AUTHAPP_ENV": "testing", "BCRYPT_ROUNDS": "4", **TEST_SECRETS, **(env or {})}
    full_env = {name: value for name, value in full_env.items() if value is not None}
    return subprocess.run(
        [FLASK, "--app", "authapp", *args],
        cwd=ROOT,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh_database():
    with scratch_database(worker_name("authapp_cli")) as url:
        migrated = flask("db", "upgrade", env={"DATABASE_URL": url})
        assert migrated.returncode == 0, migrated.stderr
        yield url


def test_seed_creates_then_changes_nothing_and_says_so(fresh_database):
    env = {"DATABASE_URL": fresh_database, "SEED_ADMIN_EMAIL": "root@example.org"}

    first = flask("seed", env=env)
    second = flask("seed", env=env)

    assert first.returncode == 0, first.stderr
    assert "created organization Default" in first.stdout
    assert "created role owner" in first.stdout
    assert "created permission audit:read" in first.stdout
    assert "created admin root@example.org" in first.stdout
    assert "admin password (shown once): " in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "Already seeded; nothing changed."


def test_seeded_admin_logs_in_with_the_printed_password(fresh_database):
    env = {"DATABASE_URL": fresh_database}
    output = flask("seed", env=env).stdout
    password = output.split("admin password (shown once): ")[1].split()[0]

    app = build_app(fresh_database)
    response = app.test_client().post(
        "/api/v1/auth/login", json={"login": "admin@example.com", "password": password}
    )

    assert response.status_code == 200, response.json
    assert response.json["user"]["roles"] == ["owner"]
    assert "users:manage" in response.json["user"]["permissions"]
    with app.app_context():
        db.engine.dispose()


def test_seed_refuses_a_weak_admin_password(fresh_database):
    result = flask("seed", env={"DATABASE_URL": fresh_database, "SEED_ADMIN_PASSWORD": "short"})

    assert result.returncode != 0
    assert "SEED_ADMIN_PASSWORD" in result.stderr
    assert "at least 15" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRET_KEY", None),
        ("SECRET_KEY", "too-short-secret"),
        ("JWT_SECRET_KEY", "changeme"),
        ("PASSWORD_PEPPER", "a" * 40),
        ("DATA_ENCRYPTION_KEY", None),
        ("DATA_ENCRYPTION_KEY", "not-a-fernet-key"),
    ],
)
def test_production_refuses_to_start_with_a_weak_secret(variable, value):
    """CF-1: the message names the variable."""
    env = {"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": "12", "DATABASE_URL": "sqlite://"}
    env[variable] = value or ""

    result = flask("routes", env=env)

    assert result.returncode != 0
    assert variable in result.stderr


def test_production_refuses_webhooks_to_private_addresses():
    """CF-2: the development escape hatch cannot reach production."""
    env = {"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": "12", "DATABASE_URL": "sqlite://"}
    env["WEBHOOK_ALLOW_PRIVATE"] = "true"

    result = flask("routes", env=env)

    assert result.returncode != 0
    assert "WEBHOOK_ALLOW_PRIVATE" in result.stderr


def test_an_unset_environment_is_production_and_says_what_is_missing():
    """Fail closed: AUTHAPP_ENV unset is production, so no secret is generated; the refusal is
    one line that names the variable and the way to run locally, not a traceback."""
    result = flask(
        "routes", env={"AUTHAPP_ENV": None, "SECRET_KEY": None, "DATABASE_URL": "sqlite://"}
    )

    assert result.returncode != 0
    assert result.stderr.startswith("Error: SECRET_KEY must be set in production"), result.stderr
    assert "AUTHAPP_ENV=development" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unset_environment_is_production(monkeypatch, tmp_path):
    monkeypatch.delenv("AUTHAPP_ENV", raising=False)

    settings = config.load(str(tmp_path), {"DATABASE_URL": "sqlite://", **TEST_SECRETS})

    assert settings["AUTHAPP_ENV"] == "production"
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["JWT_ACCESS_COOKIE_NAME"] == "__Host-access_token"


def test_production_starts_with_strong_secrets():
    env = {"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": "12", "DATABASE_URL": "sqlite://"}

    result = flask("routes", env=env)

    assert result.returncode == 0, result.stderr
    assert "/api/v1/auth/login" in result.stdout
    assert "/_testing" not in result.stdout


def test_create_user_then_log_in(app, client):
    runner = app.test_cli_runner()

    result = runner.invoke(
        args=["create-user", "--email", " Op@Example.com ", "--username", "operator",
              "--role", "admin"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "created user Op@Example.com" in result.output
    login = client.post("/api/v1/auth/login", json={"login": "OPERATOR", "password": PASSWORD})
    assert login.status_code == 200
    assert login.json["user"]["roles"] == ["admin"]
    assert login.json["user"]["email_verified"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email", "--password", PASSWORD], "email"),
        (["--email", "x@example.com", "--password", "short"], "at least 15"),
        (["--email", "x@example.com", "--password", PASSWORD, "--role", "king"], "Unknown role"),
        (["--email", "x@example.com", "--password", PASSWORD, "--organization", "Nope"], "Nope"),
    ],
)
def test_create_user_explains_bad_input(app, args, message):
    result = app.test_cli_runner().invoke(args=["create-user", *args])

    assert result.exit_code != 0
    assert message in result.output


def test_create_user_twice_is_refused(app, make_user):
    make_user(email="dup@example.com")

    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "DUP@example.com", "--password", PASSWORD]
    )

    assert result.exit_code != 0
    assert "already exists" in result.output


def test_disable_user_revokes_sessions_and_unknown_is_an_error(app, client, make_user, login):
    user = make_user(email="gone@example.com")
    access = login(user)["access_token"]
    runner = app.test_cli_runner()

    disabled = runner.invoke(args=["disable-user", "GONE@example.com"])
    unknown = runner.invoke(args=["disable-user", "nobody@example.com"])

    assert disabled.exit_code == 0
    assert client.get("/api/v1/auth/me", headers=auth_header(access)).status_code == 401
    assert unknown.exit_code != 0
    assert "No account matches" in unknown.output
