"""What the invitation tests (test_invitation*.py, and the pages' in tests/app/web) share."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import Invitation, Membership, User
from authapp.platform.extensions import db
from tests.app.settings.conftest import SETTINGS, Account, Tenant
from tests.conftest import PASSWORD

INVITATIONS = f"{SETTINGS}/invitations"
ACCEPT = "/api/v1/invitations/accept"
SUBJECT = "You are invited to join an organization"


def invite(
    client: FlaskClient, inviter: Account, email: str, roles: list[str] | None = None
) -> Any:
    body: dict[str, Any] = {"email": email} | ({"roles": roles} if roles is not None else {})
    return client.post(INVITATIONS, json=body, headers=inviter.headers)


def mailed_token(mailbox: Any, email: str) -> str:
    """The token of the newest invitation mailed to `email`."""
    message = mailbox.last(to=email, subject=SUBJECT)
    [link] = [x for x in mailbox.links(message) if "/invitations/accept?token=" in x]
    return parse_qs(urlsplit(link).query)["token"][0]


def invited(client: FlaskClient, mailbox: Any, inviter: Account, email: str, *roles: str) -> str:
    """Invite `email` (with `roles`, default member) and answer the mailed token."""
    response = invite(client, inviter, email, list(roles) if roles else None)
    assert response.status_code in (200, 201), response.json
    return mailed_token(mailbox, email)


def sign_up_through(client: FlaskClient, token: str, **fields: Any) -> Any:
    return client.post(ACCEPT, json={"token": token, "password": PASSWORD, **fields})


def logged_in_again(client: FlaskClient, account: Account) -> Account:
    """A new login of `account` (after the testing clock jumped past its access token)."""
    response = client.post(
        "/api/v1/auth/login", json={"login": account.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.json
    pair = response.json
    return Account(account.id, account.email, pair["access_token"], pair["refresh_token"])


def pending(client: FlaskClient, account: Account) -> list[dict[str, Any]]:
    response = client.get(INVITATIONS, headers=account.headers)
    assert response.status_code == 200, response.json
    invitations: list[dict[str, Any]] = response.json["invitations"]
    return invitations


def audit_events(client: FlaskClient, tenant: Tenant, event: str) -> list[dict[str, Any]]:
    response = client.get(
        f"{SETTINGS}/audit-events", query_string={"limit": 100}, headers=tenant["owner"].headers
    )
    assert response.status_code == 200, response.json
    return [e for e in response.json["audit_events"] if e["event"] == event]


def member_roles(client: FlaskClient, tenant: Tenant, email: str) -> list[str] | None:
    """The roles of `email` among the tenant's members (None: not a member)."""
    response = client.get(
        f"{SETTINGS}/members", query_string={"limit": 100}, headers=tenant["owner"].headers
    )
    assert response.status_code == 200, response.json
    found = [m["roles"] for m in response.json["members"] if m["email"] == email]
    return found[0] if found else None


def organizations_of(app: Flask, email: str) -> list[str]:
    """The ids of the organizations the account with `email` belongs to."""
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Membership.organization_id)
                .join(User, User.id == Membership.user_id)
                .where(User.email_normalized == email.lower())
            )
        )


def invitation_rows(app: Flask, email: str) -> list[Invitation]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Invitation).where(Invitation.email_normalized == email.lower())
        )
        return list(rows)
