import base64
import json

import jwt
import pytest
from marshmallow import Schema

from authapp.auth.principals import Account, membership_with_access
from authapp.auth.schemas import UserOut
from authapp.models import Membership
from authapp.platform import clock
from authapp.platform.extensions import db
from tests.conftest import TEST_SECRETS, auth_header


def test_me_returns_the_caller_without_secrets(client, make_user, login):
    access = login(make_user(email="Ada@Example.com", username="ada"))["access_token"]

    response = client.get("/api/v1/auth/me", headers=auth_header(access))

    assert response.status_code == 200
    user = response.json["user"]
    assert set(user) == {
        "id", "email", "username", "full_name", "email_verified", "mfa_enabled",
        "organization", "roles", "permissions", "created_at", "last_login_at",
    }  # fmt: skip
    assert user["email"] == "Ada@Example.com"
    assert user["username"] == "ada"
    assert user["roles"] == ["member"]
    assert user["organization"]["name"] == "Default"
    assert user["created_at"].endswith("Z")
    assert "hash" not in response.get_data(as_text=True)


def test_me_costs_at_most_two_statements(client, make_user, login, count_sql):
    access = login(make_user())["access_token"]

    with count_sql() as statements:
        response = client.get("/api/v1/auth/me", headers=auth_header(access))

    assert response.status_code == 200
    assert len(statements) <= 2, "\n".join(statements)  # session, then user with roles


def test_me_without_token_is_401_missing_token(client):
    response = client.get("/api/v1/auth/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json["error"]["code"] == "missing_token"


def test_garbage_token_is_401_invalid_token_never_500(client):
    """JW-8."""
    for token in ("abc", "a.b.c", "x" * 5000, "eyJhbGciOiJIUzI1NiJ9..", "Bearer"):
        response = client.get("/api/v1/auth/me", headers=auth_header(token))
        assert response.status_code == 401, token
        assert response.json["error"]["code"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def _segments(token: str) -> list[dict]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return [json.loads(base64.urlsafe_b64decode(pad(part))) for part in (head, body)]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_and_tampered_tokens_are_rejected(client, make_user, login):
    """JW-1, JW-3."""
    access = login(make_user())["access_token"]
    header, claims = _segments(access)
    unsigned = f"{_b64(header | {'alg': 'none'})}.{_b64(claims)}."
    tampered = f"{_b64(header)}.{_b64(claims | {'roles': ['owner']})}.{access.split('.')[2]}"

    for token in (unsigned, tampered):
        response = client.get("/api/v1/auth/me", headers=auth_header(token))
        assert response.status_code == 401
        assert response.json["error"]["code"] == "invalid_token"


def test_wrong_issuer_audience_or_key_is_rejected(client, make_user, login):
    """JW-6: signed with our key but for another issuer or audience; or with another key."""
    access = login(make_user())["access_token"]
    _, claims = _segments(access)
    key = TEST_SECRETS["JWT_SECRET_KEY"]
    forged = [
        jwt.encode(claims | {"iss": "someone-else"}, key, algorithm="HS256"),
        jwt.encode(claims | {"aud": "another-api"}, key, algorithm="HS256"),
        jwt.encode(claims, "another-key-0123456789abcdefghijklmnop", algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256"),
    ]
    for token in forged:
        response = client.get("/api/v1/auth/me", headers=auth_header(token))
        assert response.status_code == 401
        assert response.json["error"]["code"] == "invalid_token"


def test_refresh_token_is_not_an_access_token(client, make_user, login):
    """JW-4."""
    refresh = login(make_user())["refresh_token"]

    response = client.get("/api/v1/auth/me", headers=auth_header(refresh))

    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_disabled_user_token_is_revoked_at_once(app, client, make_user, login):
    """SE-4: `flask disable-user` ends every session on the next request."""
    user = make_user(username="grace")
    access = login(user)["access_token"]

    result = app.test_cli_runner().invoke(args=["disable-user", "grace"])

    assert result.exit_code == 0, result.output
    response = client.get("/api/v1/auth/me", headers=auth_header(access))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_revoked"


@pytest.mark.parametrize(("username", "logged_in"), [("ada", True), (None, False)])
def test_the_direct_user_answer_equals_marshmallows(app, make_user, username, logged_in):
    """UserOut.dump builds the answer itself: it must be what the declared fields make."""
    user = make_user(username=username)
    with app.app_context():
        statement = membership_with_access(Membership.user_id == user["id"])
        membership = db.session.scalars(statement).unique().one()
        membership.user.last_login_at = clock.now() if logged_in else None
        account = Account.of(membership)
        direct = UserOut().dump(account)
        assert direct == Schema.dump(UserOut(), account)
        assert UserOut(many=True).dump([account]) == [direct]
        assert (direct["last_login_at"] is None) is not logged_in
