"""Token introspection (RFC 7662, `POST /api/v1/auth/introspect`): an API key with the
`tokens:introspect` scope learns whether an access token of its own organization is good now,
revocation included, which a JWKS alone cannot say (docs/protecting-services.md)."""

from __future__ import annotations

import pytest

from tests.app.settings.conftest import SETTINGS, key_header

INTROSPECT = "/api/v1/auth/introspect"
SCOPE = "tokens:introspect"


def ask(client, key: str, token: str, **form: str):
    return client.post(INTROSPECT, data={"token": token, **form}, headers=key_header(key))


@pytest.fixture
def acme_key(tenants, make_api_key) -> str:
    return make_api_key(tenants["acme"], [SCOPE])["key"]


def test_a_live_token_is_active_with_its_claims_and_current_permissions(client, tenants, acme_key):
    member = tenants["acme"]["member"]

    answer = ask(client, acme_key, member.access_token, token_type_hint="access_token")

    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["active"] is True
    assert body["token_type"] == "access_token"
    assert (body["sub"], body["org"]) == (member.id, tenants["acme"].id)
    assert body["sid"]
    assert body["jti"]
    assert body["exp"] > body["iat"]
    assert body["permissions"] == []  # a member holds no permission code
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_logged_out_session_is_inactive_at_once(client, tenants, acme_key):
    """What a JWKS cannot tell: the token still verifies, its session is gone."""
    member = tenants["acme"]["member"]
    assert ask(client, acme_key, member.access_token).json["active"] is True

    assert client.post("/api/v1/auth/logout", json={}, headers=member.headers).status_code == 204

    assert ask(client, acme_key, member.access_token).json == {"active": False}


def test_a_suspended_member_is_inactive(client, tenants, acme_key):
    acme = tenants["acme"]
    suspended = client.patch(
        f"{SETTINGS}/members/{acme['member'].id}",
        json={"is_active": False},
        headers=acme["owner"].headers,
    )
    assert suspended.status_code == 200, suspended.json

    assert ask(client, acme_key, acme["member"].access_token).json == {"active": False}


def test_another_organizations_token_is_inactive_like_a_forged_one(client, tenants, acme_key):
    """AC-2: Acme's key learns nothing about Globex's people."""
    globex_member = tenants["globex"]["member"]

    assert ask(client, acme_key, globex_member.access_token).json == {"active": False}


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "\ud800", "x" * 8193], ids=str.__len__)
def test_anything_but_an_access_token_is_inactive_or_a_field_error(
    client, tenants, acme_key, token
):
    answer = client.post(
        INTROSPECT,
        data={"token": token.encode("utf-8", "surrogatepass")},
        headers=key_header(acme_key),
    )

    assert answer.status_code in (200, 422), answer.get_data(as_text=True)
    if answer.status_code == 200:
        assert answer.json == {"active": False}


def test_a_refresh_token_is_not_an_access_token(client, tenants, acme_key):
    assert ask(client, acme_key, tenants["acme"]["member"].refresh_token).json == {"active": False}


def test_an_expired_token_is_inactive(client, tenants, acme_key):
    token = tenants["acme"]["member"].access_token
    assert client.post("/_testing/clock", json={"offset_seconds": 3600}).status_code == 200

    assert ask(client, acme_key, token).json == {"active": False}


def test_the_caller_needs_the_scope(client, tenants, make_api_key):
    """401 without credentials, 403 for a key without `tokens:introspect` or a member's
    token without the permission."""
    acme = tenants["acme"]
    other_key = make_api_key(acme, ["users:read"])["key"]
    token = acme["member"].access_token

    assert client.post(INTROSPECT, data={"token": token}).status_code == 401
    assert ask(client, other_key, token).status_code == 403
    as_member = client.post(INTROSPECT, data={"token": token}, headers=acme["member"].headers)
    assert as_member.status_code == 403


def test_the_body_is_a_form_as_rfc_7662_says(client, tenants, acme_key):
    token = tenants["acme"]["member"].access_token

    as_json = client.post(INTROSPECT, json={"token": token}, headers=key_header(acme_key))
    without_token = client.post(INTROSPECT, data={}, headers=key_header(acme_key))

    assert as_json.status_code == 415
    assert without_token.status_code == 422
    assert "token" in without_token.json["error"]["fields"]
