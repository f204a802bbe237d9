"""Helpers for the organization tests (test_organizations.py, test_switch_organization.py,
test_member_removal.py, test_organization_deletion.py): a second membership for a person, and
the routes of docs/api.md "Organizations"."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.auth.services import memberships
from authapp.models import Organization, OutboxMessage, User
from authapp.platform.extensions import db
from authapp.security import secretbox
from tests.conftest import auth_header

ORGANIZATIONS = "/api/v1/organizations"
SWITCH = "/api/v1/auth/switch-organization"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"
LEAVE = "/api/v1/settings/organization/leave"
TRANSFER = "/api/v1/settings/organization/transfer"
ORGANIZATION = "/api/v1/settings/organization"
MEMBERS = "/api/v1/settings/members"
AUDIT = "/api/v1/settings/audit-events?limit=100"
API_KEYS = "/api/v1/settings/api-keys"


def add_membership(app: Flask, user_id: str, organization_id: str, *roles: str) -> None:
    """The person joins an existing organization with built-in roles (default `member`)."""
    with app.app_context():
        memberships.join(
            db.session.get(User, user_id),
            db.session.get(Organization, organization_id),
            [memberships.builtin_role(role) for role in roles or ("member",)],
        )
        db.session.commit()


def switch(client: FlaskClient, token: str, organization_id: Any) -> TestResponse:
    return client.post(
        SWITCH, json={"organization_id": organization_id}, headers=auth_header(token)
    )


def switched(client: FlaskClient, token: str, organization_id: str) -> dict[str, Any]:
    response = switch(client, token, organization_id)
    assert response.status_code == 200, response.json
    assert response.json["user"]["organization"]["id"] == organization_id
    return response.json


def member_ids(client: FlaskClient, token: str) -> set[str]:
    response = client.get(f"{MEMBERS}?limit=100", headers=auth_header(token))
    assert response.status_code == 200, response.json
    return {member["id"] for member in response.json["members"]}


def events(client: FlaskClient, token: str) -> list[dict[str, Any]]:
    response = client.get(AUDIT, headers=auth_header(token))
    assert response.status_code == 200, response.json
    return list(response.json["audit_events"])


def error_code(response: TestResponse) -> str:
    return str(response.json["error"]["code"])


def hook(app: Flask, organization_id: str) -> None:
    """Give the organization a webhook receiver (nobody listens: the outbox rows are what the
    tests read)."""
    with app.app_context():
        organization = db.session.get(Organization, organization_id)
        organization.webhook_url = "https://127.0.0.1:9/hook"
        organization.webhook_secret = secretbox.seal("whsec_test")
        db.session.commit()


def webhook_events(app: Flask, organization_id: str, event: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboxMessage).where(OutboxMessage.kind == "webhook"))
        return [
            row.payload["data"]
            for row in rows
            if row.payload["event"] == event and row.payload["organization_id"] == organization_id
        ]
