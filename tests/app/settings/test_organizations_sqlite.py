"""Switching and deleting an organization on SQLite (`make run`), where the rotation takes its
step-by-step path and foreign keys do not cascade (docs/api.md "Organizations")."""

from __future__ import annotations

import sqlalchemy as sa

from authapp.models import ApiKey, Membership, Organization, RefreshToken, Role, Session
from authapp.platform.extensions import db
from tests.app.auth import test_sqlite
from tests.app.settings.organizations import ME, ORGANIZATION, ORGANIZATIONS, REFRESH, switched
from tests.conftest import PASSWORD, auth_header, confirm_email

sqlite_app = test_sqlite.sqlite_app


def _count(model, *criteria):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*criteria))


def test_switch_then_delete_the_organization_on_sqlite(sqlite_app):
    client = sqlite_app.test_client()
    pair = client.post(
        "/api/v1/auth/signup",
        json={"email": "ada@example.com", "password": PASSWORD, "organization_name": "Acme"},
    ).json
    acme = pair["user"]["organization"]["id"]
    confirm_email(sqlite_app, "ada@example.com")
    created = client.post(
        ORGANIZATIONS, json={"name": "Beta"}, headers=auth_header(pair["access_token"])
    )
    assert created.status_code == 201, created.json
    beta = created.json["id"]

    moved = switched(client, pair["access_token"], beta)

    assert client.get(ME, headers=auth_header(pair["access_token"])).status_code == 401
    rotated = client.post(REFRESH, json={"refresh_token": moved["refresh_token"]})
    assert rotated.status_code == 200, rotated.json
    assert rotated.json["user"]["organization"]["id"] == beta
    headers = auth_header(rotated.json["access_token"])
    key = client.post(
        "/api/v1/settings/api-keys", json={"name": "k", "scopes": ["users:read"]}, headers=headers
    )
    assert key.status_code == 201

    deleted = client.delete(ORGANIZATION, json={"password": PASSWORD}, headers=headers)

    assert deleted.status_code == 204, deleted.json
    with sqlite_app.app_context():
        assert db.session.get(Organization, beta) is None
        for model in (Membership, Role, ApiKey, Session):
            assert _count(model, model.organization_id == beta) == 0, model
        orphans = RefreshToken.session_id.not_in(sa.select(Session.id))
        assert _count(RefreshToken, orphans) == 0
    login = client.post(
        "/api/v1/auth/login", json={"login": "ada@example.com", "password": PASSWORD}
    )
    assert login.json["user"]["organization"]["id"] == acme
