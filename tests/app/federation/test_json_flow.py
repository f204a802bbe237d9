"""The JSON flow for single-page and native clients (docs/federation.md "The JSON flow"),
against the real provider: the client keeps the sealed flow, the provider sends the person to
the client's own redirect URI, and the code comes back in a JSON body."""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, User
from authapp.platform.extensions import db
from authapp.security import secretbox
from tests.app.federation.conftest import APP_CALLBACK
from tests.conftest import auth_header
from tests.oidc_peer import sign_in_at_provider

API = "/api/v1/auth/federation"


def _authorize(client: FlaskClient, redirect_uri: str = APP_CALLBACK):
    return client.post(f"{API}/idp/authorize", json={"redirect_uri": redirect_uri})


def _signed_in(client: FlaskClient, login: str) -> tuple[dict[str, str], dict[str, str]]:
    """The whole flow as a client runs it: the flow it keeps and what its redirect received."""
    started = _authorize(client)
    assert started.status_code == 200, started.json
    back = sign_in_at_provider(
        started.json["authorization_url"], login, redirect_prefix=APP_CALLBACK
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    body = {"flow": started.json["flow"], "code": query["code"], "state": query["state"]}
    return body, query


def test_a_client_signs_in_with_the_json_flow(client: FlaskClient):
    login = f"spa-{uuid.uuid4().hex[:8]}"
    body, _ = _signed_in(client, login)

    answer = client.post(f"{API}/idp/token", json=body)

    assert answer.status_code == 200, answer.json
    assert answer.json["token_type"] == "Bearer"
    me = client.get("/api/v1/auth/me", headers=auth_header(answer.json["access_token"]))
    assert me.json["user"]["email"] == f"{login}@example.com"


def test_the_flow_is_sealed_from_the_client(app: Flask, client: FlaskClient):
    flow = _authorize(client).json["flow"]

    with app.app_context():
        opened = secretbox.open_sealed(flow)  # the service's key opens it; the client cannot

    verifier = json.loads(opened)["verifier"]
    assert verifier.encode() not in base64.urlsafe_b64decode(flow)  # encrypted, not just signed


def test_only_a_configured_redirect_uri_is_used(client: FlaskClient):
    answer = _authorize(client, "https://evil.example/steal")

    assert answer.status_code == 422
    assert answer.json["error"]["fields"]["redirect_uri"]


def test_a_code_with_another_flows_state_is_refused(client: FlaskClient):
    """An attacker's code injected into the victim's client: the victim's flow, their state."""
    victim, _ = _signed_in(client, f"victim-{uuid.uuid4().hex[:8]}")
    attacker, _ = _signed_in(client, f"attacker-{uuid.uuid4().hex[:8]}")

    answer = client.post(f"{API}/idp/token", json={**victim, "code": attacker["code"]})
    mixed = client.post(f"{API}/idp/token", json={**victim, "state": attacker["state"]})

    assert answer.status_code == 401  # the victim's state, the attacker's code: PKCE refuses it
    assert mixed.status_code == 401
    assert mixed.json["error"]["code"] == "federation_refused"


@pytest.mark.parametrize(
    "flow",
    ["not sealed", "gAAAAA" + "x" * 100, "x" * 9000, 5, None],
)
def test_a_flow_we_did_not_seal_is_refused(client: FlaskClient, flow):
    answer = client.post(f"{API}/idp/token", json={"flow": flow, "code": "c", "state": "s"})

    assert answer.status_code in (401, 422), answer.json
    assert answer.json["error"]["code"] in ("federation_refused", "validation_error")


def test_mfa_takes_the_ticket_and_the_code(app: Flask, client: FlaskClient):
    login = f"spa-{uuid.uuid4().hex[:8]}"
    body, _ = _signed_in(client, login)
    assert client.post(f"{API}/idp/token", json=body).status_code == 200
    secret = pyotp.random_base32()
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == f"{login}@example.com"))
        assert user is not None
        user.mfa_secret, user.mfa_enabled = secretbox.seal(secret), True
        db.session.commit()
    again, _ = _signed_in(client, login)

    required = client.post(f"{API}/idp/token", json=again)
    wrong = client.post(
        f"{API}/mfa", json={"mfa_ticket": required.json["mfa_ticket"], "totp_code": "000000"}
    )
    right = client.post(
        f"{API}/mfa",
        json={"mfa_ticket": required.json["mfa_ticket"], "totp_code": pyotp.TOTP(secret).now()},
    )

    assert required.status_code == 401
    assert required.json["error"]["code"] == "mfa_required"
    assert "access_token" not in required.json
    assert wrong.status_code in (401, 422)
    assert right.status_code == 200, right.json
    assert right.json["user"]["email"] == f"{login}@example.com"
    with app.app_context():
        methods = db.session.scalars(
            sa.select(AuditEvent.data["method"].as_string())
            .where(AuditEvent.event == "login.succeeded")
            .order_by(AuditEvent.created_at.desc())
        )
        assert next(iter(methods)) == "federated"


def test_a_ticket_that_is_not_one_is_refused(client: FlaskClient):
    flow = _authorize(client).json["flow"]  # sealed by us, but a flow, not a ticket

    answer = client.post(f"{API}/mfa", json={"mfa_ticket": flow, "totp_code": "123456"})

    assert answer.status_code == 401
    assert answer.json["error"]["code"] == "mfa_login_expired"
