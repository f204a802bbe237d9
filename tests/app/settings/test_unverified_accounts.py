"""Pre-account hijacking: an account whose address is unconfirmed cannot turn on MFA, create
API keys or administer its organization (403 `email_not_verified`), and a password reset of
such an account ends what was set up in it: MFA, recovery codes, sessions and its API keys.

The attack: someone signs up with the victim's address (and an organization), sets the
account up, and waits for the victim to take it over by "forgot password"."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth import link_tokens
from authapp.auth.services import accounts
from authapp.models import ApiKey, RecoveryCode, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at
from tests.app.settings.conftest import SETTINGS
from tests.app.web.conftest import csrf_token, form_login, text
from tests.conftest import PASSWORD, auth_header, confirm_email

VICTIM = "victim@example.com"
NEW_PASSWORD = "the owner's own long passphrase"


def sign_up(client: FlaskClient, email: str = VICTIM) -> dict[str, Any]:
    """An account made by whoever typed the address: unconfirmed, owner of a new organization."""
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "organization_name": "Squat"},
    )
    assert response.status_code == 201, response.json
    assert response.json["user"]["email_verified"] is False
    return response.json


def member_of(app: Flask, organization_id: str) -> str:
    with app.app_context():
        return accounts.create_user(
            email="member@example.com", password=PASSWORD, organization=organization_id
        ).id


def refused(response: Any) -> None:
    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "email_not_verified"


ACTIONS = {
    "mfa enrolment": ("POST", "/mfa/totp", {"password": PASSWORD}),
    "mfa confirmation": ("POST", "/mfa/totp/confirm", {"code": "123456"}),
    "api key": ("POST", "/api-keys", {"name": "ci", "scopes": ["users:read"]}),
    "organization": ("PATCH", "/organization", {"name": "Renamed"}),
    "webhook secret": ("POST", "/webhooks/secret", None),
    "webhook test": ("POST", "/webhooks/test", None),
    "role": ("POST", "/roles", {"name": "auditor", "permissions": ["audit:read"]}),
    "member": ("PATCH", "/members/{member}", {"roles": ["admin"]}),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_an_unconfirmed_account_is_refused_then_allowed_once_confirmed(app, client, action):
    pair = sign_up(client)
    member = member_of(app, pair["user"]["organization"]["id"])
    method, path, body = ACTIONS[action]
    headers = auth_header(pair["access_token"])
    url = f"{SETTINGS}{path.format(member=member)}"
    with app.app_context():
        before = db.session.execute(sa.select(sa.func.count()).select_from(ApiKey)).scalar()

    refused(client.open(url, method=method, json=body, headers=headers))

    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(ApiKey)).scalar() == before
    confirm_email(app, VICTIM)
    after = client.open(url, method=method, json=body, headers=headers)
    assert after.status_code != 403, after.json
    if action in ("api key", "role", "organization", "member", "mfa enrolment"):
        assert after.status_code in (200, 201), after.json


def test_an_unconfirmed_owner_still_reads_the_organization(app, client):
    headers = auth_header(sign_up(client)["access_token"])

    for path in ("/organization", "/members", "/roles", "/api-keys", "/audit-events"):
        assert client.get(f"{SETTINGS}{path}", headers=headers).status_code == 200, path


def test_the_key_form_tells_an_unconfirmed_owner_why(app, client):
    sign_up(client)
    assert form_login(client, VICTIM).status_code == 303

    response = client.post(
        "/settings/api-keys",
        data={
            "name": "ci",
            "scopes": ["users:read"],
            "csrf_token": csrf_token(client, "/settings/api-keys"),
        },
    )

    assert response.status_code == 403, text(response)
    assert "Confirm your email address first" in text(response)
    with app.app_context():
        assert db.session.scalars(sa.select(ApiKey)).all() == []


def _squatted(app: Flask, client: FlaskClient) -> tuple[dict[str, Any], Account, str]:
    """The attacker's set-up: MFA with recovery codes, and a key. Done while confirmed (as an
    account set up before these rules were), then unconfirmed again."""
    pair = sign_up(client)
    confirm_email(app, VICTIM)
    attacker = Account(client, {"email": VICTIM, "password": PASSWORD}, pair)
    attacker.enrol()
    key = client.post(
        f"{SETTINGS}/api-keys",
        json={"name": "backdoor", "scopes": ["users:read"]},
        headers=attacker.headers,
    ).json["key"]
    with app.app_context():
        victim = User.email_normalized == VICTIM
        db.session.execute(sa.update(User).where(victim).values(email_verified_at=None))
        db.session.commit()
    return pair, attacker, key


def _reset(app: Flask, client: FlaskClient) -> None:
    """The owner's "forgot password": the link's token, then the reset."""
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email_normalized == VICTIM)).one()
        token = link_tokens.issue(user, "password_reset")
        db.session.commit()
    response = client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.json


def test_a_reset_of_an_unconfirmed_account_ends_what_was_set_up_in_it(app, client):
    pair, attacker, key = _squatted(app, client)

    _reset(app, client)

    owner = client.post("/api/v1/auth/login", json={"login": VICTIM, "password": NEW_PASSWORD})
    assert owner.status_code == 200, owner.json  # no code asked: the attacker's MFA is gone
    assert owner.json["user"]["mfa_enabled"] is False
    assert owner.json["user"]["email_verified"] is True  # the reset proved the mailbox
    assert client.get(f"{SETTINGS}/organization", headers={"X-API-Key": key}).status_code == 401
    me = client.get("/api/v1/auth/me", headers=auth_header(pair["access_token"]))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email_normalized == VICTIM)).one()
        assert user.mfa_secret is None
        assert db.session.scalars(sa.select(RecoveryCode)).all() == []
    assert attacker.secret is not None
    stale = client.post(
        "/api/v1/auth/login",
        json={"login": VICTIM, "password": NEW_PASSWORD, "totp_code": code_at(attacker.secret)},
    )
    assert stale.json["user"]["mfa_enabled"] is False


def test_a_reset_of_a_confirmed_account_keeps_its_mfa_and_keys(app, client):
    """RS-3: for the address's owner, a reset never turns MFA off nor ends their keys."""
    pair, _attacker, key = _squatted(app, client)
    confirm_email(app, VICTIM)

    _reset(app, client)

    asked = client.post("/api/v1/auth/login", json={"login": VICTIM, "password": NEW_PASSWORD})
    assert asked.status_code == 401
    assert asked.json["error"]["code"] == "mfa_required"
    assert client.get(f"{SETTINGS}/organization", headers={"X-API-Key": key}).status_code == 200
