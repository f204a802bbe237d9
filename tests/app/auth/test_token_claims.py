"""JW-4 and JW-5 in every environment: a token without `type`, or whose `nbf` is still to
come, is 401 `invalid_token` wherever one is read (the header, the refresh body), in
development and in production alike."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from flask_jwt_extended import create_access_token, create_refresh_token

from authapp.auth.services import accounts
from authapp.models.base import new_id
from authapp.platform import clock
from authapp.security import tokens
from tests.conftest import TEST_SECRETS, auth_header, seeded_app

ENVIRONMENTS = [
    pytest.param({"AUTHAPP_ENV": "development"}, id="development"),
    pytest.param({"AUTHAPP_ENV": "production", "BCRYPT_ROUNDS": 10}, id="production"),
]
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"


def _claims(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def _signed(claims: dict[str, Any]) -> str:
    """Signed with the service's own key: only the claims are wrong."""
    return jwt.encode(claims, TEST_SECRETS["JWT_SECRET_KEY"], algorithm="HS256")


def _refused(response: Any) -> None:
    assert response.status_code == 401, response.json
    assert response.json["error"]["code"] == "invalid_token"


@pytest.fixture(params=ENVIRONMENTS)
def pair(request, database_url):
    """A fresh login on an app of the environment under test: (client, token pair)."""
    with seeded_app(database_url, **request.param) as app:
        with app.app_context():
            accounts.create_user(email="ada@example.com", password="a long passphrase of hers")
        client = app.test_client()
        answer = client.post(
            "/api/v1/auth/login",
            json={"login": "ada@example.com", "password": "a long passphrase of hers"},
        )
        assert answer.status_code == 200, answer.json
        yield client, answer.json


def test_the_signed_tokens_work_unchanged(pair):
    """The control: re-signing the claims as they are keeps them valid."""
    client, tokens = pair

    me = client.get(ME, headers=auth_header(_signed(_claims(tokens["access_token"]))))
    refresh = _signed(_claims(tokens["refresh_token"]))
    refreshed = client.post(REFRESH, json={"refresh_token": refresh})

    assert me.status_code == 200, me.json
    assert refreshed.status_code == 200, refreshed.json


def test_an_access_token_without_type_is_refused(pair):
    client, tokens = pair
    claims = _claims(tokens["access_token"])
    del claims["type"]

    _refused(client.get(ME, headers=auth_header(_signed(claims))))


def test_a_refresh_token_without_type_is_refused(pair):
    client, tokens = pair
    claims = _claims(tokens["refresh_token"])
    del claims["type"]

    _refused(client.post(REFRESH, json={"refresh_token": _signed(claims)}))


def test_an_access_token_not_valid_yet_is_refused(pair):
    client, tokens = pair
    claims = _claims(tokens["access_token"]) | {"nbf": int(clock.now().timestamp()) + 300}

    _refused(client.get(ME, headers=auth_header(_signed(claims))))


def test_a_refresh_token_not_valid_yet_is_refused(pair):
    client, tokens = pair
    claims = _claims(tokens["refresh_token"]) | {"nbf": int(clock.now().timestamp()) + 300}

    _refused(client.post(REFRESH, json={"refresh_token": _signed(claims)}))


@pytest.mark.parametrize("nbf", ["soon", 1.5, None, [1]])
def test_a_malformed_nbf_is_refused(pair, nbf):
    client, tokens = pair
    claims = _claims(tokens["access_token"]) | {"nbf": nbf}

    _refused(client.get(ME, headers=auth_header(_signed(claims))))


@pytest.mark.parametrize("token_type", ["access", "refresh"])
def test_tokens_carry_the_claims_and_header_flask_jwt_extended_gives_them(app, token_type):
    """authapp/security/tokens.py signs with PyJWT directly: the same claim names, fixed
    values and header as flask-jwt-extended's create_*_token with the same extra claims."""
    user_id, session_id, jti = new_id(), new_id(), new_id()
    with app.app_context(), app.test_request_context():
        if token_type == "access":
            ours = tokens.access_token(
                user_id=user_id, session_id=session_id, organization_id=jti, roles=["member"]
            )
            extra = {"sid": session_id, "org": jti, "roles": ["member"]}
            theirs = create_access_token(identity=user_id, additional_claims=extra)
        else:
            expires_at = clock.now() + timedelta(hours=1)
            ours = tokens.refresh_token(
                user_id=user_id, session_id=session_id, jti=jti, expires_at=expires_at
            )
            theirs = create_refresh_token(identity=user_id, additional_claims={"sid": session_id})
        decoded = (
            tokens.decode_access(ours) if token_type == "access" else tokens.decode_refresh(ours)
        )

    mine, expected = _claims(ours), _claims(theirs)
    assert set(mine) == set(expected)
    for name in ("fresh", "type", "sub", "sid", "iss", "aud"):
        assert mine[name] == expected[name], name
    assert jwt.get_unverified_header(ours) == jwt.get_unverified_header(theirs)
    assert decoded["sub"] == user_id
