"""The embedded default, SQLite (`make run`): the token check and the refresh take their
portable paths there (no prepared statements, no data-modifying CTEs: auth/services/rotation.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import jwt
import pytest
from flask import Flask

from authapp import create_app
from authapp.auth.principals import PRINCIPAL_STATEMENT
from authapp.auth.services import accounts
from authapp.cli.seed import seed_database
from authapp.delivery import offload
from authapp.platform import statements
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, TEST_SECRETS, auth_header, confirm_email

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "AUTHAPP_ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'authapp.db'}",
            "BCRYPT_ROUNDS": 4,
            "RATELIMIT_ENABLED": False,
            "OUTBOX_SWEEP_SECONDS": 0,
            **TEST_SECRETS,
        }
    )
    with app.app_context():
        flask_migrate.upgrade()
        seed_database()
    yield app
    offload.shutdown(app)
    with app.app_context():
        db.engine.dispose()


def test_sign_up_check_tokens_and_rotate_on_sqlite(sqlite_app):
    client = sqlite_app.test_client()
    pair = client.post(
        "/api/v1/auth/signup",
        json={"email": "ada@example.com", "password": PASSWORD, "organization_name": "Acme"},
    ).json

    me = client.get(ME, headers=auth_header(pair["access_token"]))
    rotated = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    retried = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})  # in the grace
    again = client.post(REFRESH, json={"refresh_token": rotated.json["refresh_token"]})
    replayed = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})

    assert me.status_code == 200
    assert me.json["user"]["roles"] == ["owner"]
    assert "users:manage" in me.json["user"]["permissions"]
    assert me.json["user"]["organization"]["name"] == "Acme"
    assert rotated.status_code == 200
    assert retried.status_code == 200
    assert _jti(retried.json["refresh_token"]) == _jti(rotated.json["refresh_token"])
    assert again.status_code == 200
    assert replayed.status_code == 401  # an older ancestor: the session is revoked
    assert replayed.json["error"]["code"] == "token_reused"
    after = client.get(ME, headers=auth_header(again.json["access_token"]))
    assert after.status_code == 401
    assert after.json["error"]["code"] == "token_revoked"


def test_an_api_key_is_bounded_by_its_members_rights_on_sqlite(sqlite_app):
    """AK-3: the key's statement intersects its scopes with its member's permissions (json_each
    and group_concat on SQLite)."""
    client = sqlite_app.test_client()
    settings = "/api/v1/settings"
    owner = client.post(
        "/api/v1/auth/signup",
        json={"email": "ada@example.com", "password": PASSWORD, "organization_name": "Acme"},
    ).json
    confirm_email(sqlite_app, "ada@example.com")
    owner_headers = auth_header(owner["access_token"])
    with sqlite_app.app_context():
        admin = accounts.create_user(
            email="bob@example.com",
            password=PASSWORD,
            organization=owner["user"]["organization"]["id"],
            role_names=("admin",),
        )
        admin_id = admin.id
    admin_token = client.post(
        "/api/v1/auth/login", json={"login": "bob@example.com", "password": PASSWORD}
    ).json["access_token"]
    made = client.post(
        f"{settings}/api-keys",
        json={"name": "bob's", "scopes": ["audit:read", "users:manage", "users:read"]},
        headers=auth_header(admin_token),
    ).json
    key = {"X-API-Key": made["key"]}
    reader = client.post(
        f"{settings}/roles",
        json={"name": "reader", "permissions": ["users:read"]},
        headers=owner_headers,
    )
    assert reader.status_code == 201, reader.json

    before = client.get(f"{settings}/audit-events", headers=key)
    demoted = client.patch(
        f"{settings}/members/{admin_id}", json={"roles": ["reader"]}, headers=owner_headers
    )
    members = client.get(f"{settings}/members", headers=key)
    audit = client.get(f"{settings}/audit-events", headers=key)
    listed = client.get(f"{settings}/api-keys", headers=owner_headers).json["api_keys"]
    disabled = client.patch(
        f"{settings}/members/{admin_id}", json={"is_active": False}, headers=owner_headers
    )
    stopped = client.get(f"{settings}/members", headers=key)

    assert before.status_code == 200
    assert demoted.status_code == 200, demoted.json
    assert members.status_code == 200
    assert audit.status_code == 403
    assert [(k["status"], k["effective_scopes"]) for k in listed] == [("active", ["users:read"])]
    assert disabled.status_code == 200, disabled.json
    assert stopped.status_code == 401
    assert stopped.json["error"]["code"] == "token_revoked"


def test_a_principals_row_from_the_driver_is_sqlalchemys_on_sqlite(sqlite_app):
    """platform/statements.py on SQLite: qmark parameters, and the columns' result processors
    (SQLite keeps no time zone and no UUID type)."""
    client = sqlite_app.test_client()
    pair = client.post(
        "/api/v1/auth/signup", json={"email": "ada@example.com", "password": PASSWORD}
    ).json
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    parameters = {"sub": claims["sub"], "sid": claims["sid"]}

    with sqlite_app.app_context():
        row = statements.first_row(db.engine, PRINCIPAL_STATEMENT, parameters)
        with db.engine.connect() as conn:
            expected = conn.execute(PRINCIPAL_STATEMENT, parameters).first()

    assert expected is not None
    assert tuple(row) == tuple(expected)
    assert row.expires_at.tzinfo is not None
