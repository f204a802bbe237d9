"""The operator's commands on SQLite too (the embedded default): a database migrated by the real
`flask db upgrade`, then the commands through the app's CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from authapp.delivery import offload
from authapp.platform.extensions import db
from tests.app.ops.operator_cli import add_message, message_status, ok, refused
from tests.conftest import PASSWORD, TEST_SECRETS, build_app

ROOT = Path(__file__).resolve().parents[3]
NEW_PASSWORD = "an operator's new passphrase, long enough"


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'authapp.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHAPP", "SEED"))}
    env |= {"AUTHAPP_ENV": "testing", "DATABASE_URL": url, **TEST_SECRETS}
    flask = str(Path(sys.executable).parent / "flask")
    migrated = subprocess.run(
        [flask, "--app", "authapp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    app = build_app(url, OUTBOX_SWEEP_SECONDS=0)
    yield app
    offload.shutdown(app)
    with app.app_context():
        db.engine.dispose()


def test_the_operator_commands_work_on_sqlite(sqlite_app):
    app = sqlite_app
    ok(app, "seed")
    stdin = f"{PASSWORD}\n"
    ok(app, "users", "create", "ada@example.com", "--username", "ada", "--password-stdin",
       input=stdin)  # fmt: skip
    client = app.test_client()
    login = {"login": "ada", "password": PASSWORD}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200

    listed = ok(app, "users", "list", "--search", "ADA")
    revoked = ok(app, "users", "revoke-sessions", "ada")
    set_password = ok(app, "users", "set-password", "ada", "--password-stdin",
                      input=f"{NEW_PASSWORD}\n")  # fmt: skip
    disabled = ok(app, "users", "disable", "ada@example.com")
    refused_login = client.post("/api/v1/auth/login", json={**login, "password": NEW_PASSWORD})
    enabled = ok(app, "users", "enable", "ada")
    hostile = refused(app, "users", "disable", "\udcff")

    assert listed.splitlines()[-1] == "1 account"
    assert revoked.startswith("revoked 1 session of ada")
    assert set_password.strip() == "password set for ada; 0 sessions revoked"
    assert "disabled ada@example.com" in disabled
    assert refused_login.json["error"]["code"] == "account_disabled"
    assert enabled.strip() == "enabled ada"
    assert "No account matches '\\udcff'." in hostile


def test_the_outbox_and_prune_commands_work_on_sqlite(sqlite_app):
    app = sqlite_app
    ok(app, "seed")
    due = add_message(app)
    dead = add_message(app, status="dead")
    linked = add_message(app, status="dead", template="password_reset")

    status = ok(app, "outbox", "status")
    retried = ok(app, "outbox", "retry-dead")
    worked = ok(app, "outbox", "work", "--once")
    dry = ok(app, "prune", "--dry-run")
    pruned = ok(app, "prune")

    assert "dead: 2" in status
    assert "pending  email" in status
    assert retried.startswith("1 dead message pending again")
    assert message_status(app, dead) == "sent"
    assert message_status(app, linked) == "dead"
    assert worked.startswith("one pass: 2 messages handed over")
    assert message_status(app, due) == "sent"
    assert dry.splitlines()[-1] == "would delete: 0 rows in all"
    assert pruned.splitlines()[-1] == "deleted: 0 rows in all"
