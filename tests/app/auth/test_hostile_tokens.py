"""Hostile strings where the JSON API takes a token: never a 500 (JW-8, IN-2).

JSON can carry what no URL or header can: a lone surrogate (`"\\ud800"`), which Python can
hold but not encode. A mailed link's token that is not one is `400 invalid_token` (docs/api.md),
a refresh token `401 invalid_token`; a value longer than the field allows is `422`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask.testing import FlaskClient

from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header, build_app

HOSTILE = {
    "lone surrogate": "\ud800",
    "surrogate in a token": "abc\udfffdef" * 4,
    "surrogates in a jwt": "eyJhbGciOiJIUzI1NiJ9.\ud800.\udc00",
    "nul": "\x00" * 43,
    "controls": "\x01\x1b\x7f" * 15,
    "non-ascii": "é" * 43,
    "token-length surrogates": "\ud800" * 43,
}
NEW_PASSWORD = "a long new passphrase of mine"


def post(client: FlaskClient, path: str, body: dict[str, Any], **kwargs: Any) -> Any:
    # json.dumps writes a lone surrogate as the escape "\ud800", as any JSON client may.
    return client.post(path, data=json.dumps(body), content_type="application/json", **kwargs)


@pytest.mark.parametrize("token", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_verify_token_is_400_invalid_token(client, token):
    response = post(client, "/api/v1/auth/email/verify", {"token": token})

    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("token", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_reset_token_is_400_invalid_token(client, token):
    body = {"token": token, "new_password": NEW_PASSWORD}

    response = post(client, "/api/v1/auth/password/reset", body)

    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_token"


def test_a_link_token_longer_than_the_field_is_422(client):
    response = post(client, "/api/v1/auth/email/verify", {"token": "\ud800" * 257})

    assert response.status_code == 422
    assert "token" in response.json["error"]["fields"]


@pytest.fixture(params=["HS256", "EdDSA"])
def signing(request, tmp_path):
    """No setting (HS256), or a key ring, whose `kid` is read from the token's header."""
    if request.param == "HS256":
        return {}
    private = tmp_path / "ed.key"
    private.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"JWT_PRIVATE_KEY_FILE": str(private)}


@pytest.fixture
def signed_client(database_url, signing, make_user):
    """A client of an app with that signing, on the test database, where Ada has an account."""
    make_user(email="ada@example.com")
    other = build_app(database_url, **signing)
    yield other.test_client()
    with other.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("token", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_refresh_token_is_401_invalid_token(signed_client, token):
    response = post(signed_client, "/api/v1/auth/refresh", {"refresh_token": token})

    assert response.status_code == 401, response.json
    assert response.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("token", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_refresh_token_at_logout_is_401_and_ends_nothing(signed_client, token):
    pair = post(
        signed_client,
        "/api/v1/auth/login",
        {"login": "ada@example.com", "password": PASSWORD},
    ).json
    headers = auth_header(pair["access_token"])

    response = post(signed_client, "/api/v1/auth/logout", {"refresh_token": token}, headers=headers)

    assert response.status_code == 401, response.json
    assert response.json["error"]["code"] == "invalid_token"
    assert signed_client.get("/api/v1/auth/me", headers=headers).status_code == 200
