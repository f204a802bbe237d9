"""Browser cookies: their flags (WB-3), transparent refresh, logout clearing them (SE-1), and
the double-submit header on cookie-authenticated JSON (WB-2).

This part: cookie-authenticated JSON and refresh with the cookie (WB-2), and the API logout
clearing the cookies (SE-1).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from authapp.platform.extensions import db
from tests.app.web.conftest import claims, cookie, csrf_token, set_cookies
from tests.app.web.cookies import AUTH_COOKIES, ME, REFRESH, assert_cleared
from tests.conftest import PASSWORD, auth_header

PROFILE = "/api/v1/settings/profile"


# WB-2: cookie-authenticated JSON


def full_name(app: Flask, email: str = "ada@example.com") -> str:
    with app.app_context():
        return db.session.execute(
            sa.text("SELECT full_name FROM users WHERE email = :email"), {"email": email}
        ).scalar_one()


def test_cookie_json_change_without_the_csrf_header_is_403(app, logged_in_client):
    """WB-2."""
    response = logged_in_client.patch(PROFILE, json={"full_name": "Changed"})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_failed"
    assert full_name(app) == ""


@pytest.mark.parametrize("wrong", ["garbage", "the refresh csrf cookie", "empty"])
def test_cookie_json_change_with_a_wrong_csrf_header_is_403(app, logged_in_client, wrong):
    """WB-2."""
    value = {
        "garbage": "0123456789abcdef",
        "the refresh csrf cookie": cookie(logged_in_client, "csrf_refresh_token"),
        "empty": "",
    }[wrong]

    response = logged_in_client.patch(
        PROFILE, json={"full_name": "Changed"}, headers={"X-CSRF-TOKEN": value}
    )

    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_failed"
    assert full_name(app) == ""


def test_cookie_json_change_with_the_csrf_cookie_echoed_is_200(app, logged_in_client):
    """WB-2: double submit."""
    response = logged_in_client.patch(
        PROFILE,
        json={"full_name": "Changed"},
        headers={"X-CSRF-TOKEN": cookie(logged_in_client, "csrf_access_token")},
    )

    assert response.status_code == 200, response.json
    assert response.json["user"]["full_name"] == "Changed"
    assert full_name(app) == "Changed"


def test_cookie_reads_need_no_csrf_header(logged_in_client):
    """WB-2: GET is safe and changes nothing."""
    response = logged_in_client.get(ME)

    assert response.status_code == 200
    assert response.json["user"]["email"] == "ada@example.com"
    assert logged_in_client.get("/api/v1/settings/sessions").status_code == 200


def test_bearer_requests_need_no_csrf_header(app, client, make_user, login):
    """WB-2: a bearer token is not sent by a browser on its own, so no header is needed."""
    access = login(make_user(email="ada@example.com"))["access_token"]

    response = client.patch(PROFILE, json={"full_name": "Changed"}, headers=auth_header(access))

    assert response.status_code == 200, response.json
    assert full_name(app) == "Changed"


def rows(app: Flask) -> dict[str, list[str]]:
    with app.app_context(), db.engine.connect() as conn:
        return {
            name: sorted(repr(tuple(row)) for row in conn.execute(sa.text(f"SELECT * FROM {name}")))
            for name in ("users", "sessions", "refresh_tokens", "api_keys", "roles")
        }


def cookie_changes(other_session_id: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    return {
        "profile": ("PATCH", PROFILE, {"full_name": "Changed"}),
        "password": (
            "POST",
            "/api/v1/settings/password",
            {"current_password": PASSWORD, "new_password": "another long passphrase to use"},
        ),
        "session delete": ("DELETE", f"/api/v1/settings/sessions/{other_session_id}", None),
        "logout": ("POST", "/api/v1/auth/logout", None),
        "logout-all": ("POST", "/api/v1/auth/logout-all", None),
        "api key create": ("POST", "/api/v1/settings/api-keys", {"name": "k", "scopes": []}),
    }


@pytest.mark.parametrize(
    "change", ["profile", "password", "session delete", "logout", "logout-all", "api key create"]
)
def test_every_cookie_json_change_needs_the_csrf_header(app, logged_in_client, login, change):
    """WB-2: nothing changes without the header, whatever the endpoint."""
    other = login({"email": "ada@example.com", "password": PASSWORD})
    method, path, body = cookie_changes(claims(other["access_token"])["sid"])[change]
    before = rows(app)

    response = logged_in_client.open(path, method=method, json=body)

    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "csrf_failed"
    assert rows(app) == before
    assert "access_token" not in set_cookies(response)
    assert logged_in_client.get(ME).status_code == 200
    assert logged_in_client.get(ME, headers=auth_header(other["access_token"])).status_code == 200


# WB-2: refresh with the cookie


def test_cookie_refresh_without_the_csrf_header_is_403(app, logged_in_client):
    """WB-2: the refresh cookie alone rotates nothing."""
    before = rows(app)

    response = logged_in_client.post(REFRESH, json={})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_failed"
    assert rows(app) == before
    assert "refresh_token" not in set_cookies(response)


def test_cookie_refresh_with_the_access_csrf_value_is_403(app, logged_in_client):
    before = rows(app)

    response = logged_in_client.post(
        REFRESH, json={}, headers={"X-CSRF-TOKEN": cookie(logged_in_client, "csrf_access_token")}
    )

    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_failed"
    assert rows(app) == before


def test_cookie_refresh_with_the_csrf_header_renews_the_cookies(logged_in_client):
    """WB-2, RT-1."""
    old_refresh = cookie(logged_in_client, "refresh_token")

    response = logged_in_client.post(
        REFRESH, json={}, headers={"X-CSRF-TOKEN": cookie(logged_in_client, "csrf_refresh_token")}
    )

    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "Bearer"
    renewed = set_cookies(response)
    assert renewed["access_token"]["value"] == response.json["access_token"]
    assert renewed["refresh_token"]["value"] == response.json["refresh_token"]
    assert claims(response.json["refresh_token"])["jti"] != claims(old_refresh)["jti"]
    assert cookie(logged_in_client, "refresh_token") == response.json["refresh_token"]
    assert logged_in_client.get(ME).status_code == 200


def test_refresh_without_any_cookie_or_token_is_401(client):
    response = client.post(REFRESH, json={})

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


# SE-1: API logout clears the cookies


@pytest.mark.parametrize("path", ["/api/v1/auth/logout", "/api/v1/auth/logout-all"])
def test_api_logout_with_the_cookie_and_header_clears_the_cookies(logged_in_client, path):
    """SE-1, SE-2."""
    access = cookie(logged_in_client, "access_token")
    refresh = cookie(logged_in_client, "refresh_token")

    response = logged_in_client.post(
        path, headers={"X-CSRF-TOKEN": cookie(logged_in_client, "csrf_access_token")}
    )

    assert response.status_code == 204
    assert_cleared(response)
    for name in AUTH_COOKIES:
        assert logged_in_client.get_cookie(name) is None, name
    me = logged_in_client.get(ME, headers=auth_header(access))
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    assert logged_in_client.post(REFRESH, json={"refresh_token": refresh}).status_code == 401


def test_only_a_request_with_the_session_cookie_builds_the_session_signer(
    client, make_user, login, monkeypatch
):
    """web.FormSessions: API calls carry no form session, so Flask's signer is not built for
    them; a form's session still round-trips (its CSRF token is accepted)."""
    built: list[object] = []
    original = SecureCookieSessionInterface.get_signing_serializer

    def counting(self, app):  # noqa: ANN001
        built.append(app)
        return original(self, app)

    monkeypatch.setattr(SecureCookieSessionInterface, "get_signing_serializer", counting)
    access = login(make_user())["access_token"]
    built.clear()

    me = client.get("/api/v1/auth/me", headers=auth_header(access))

    assert me.status_code == 200
    assert built == []  # only save_session would build one, for a session that changed
    token = csrf_token(client)  # the login page puts a CSRF secret in a new session cookie
    built.clear()
    posted = client.post(
        "/login", data={"login": "ada@example.com", "password": "wrong", "csrf_token": token}
    )
    assert posted.status_code == 401  # past the CSRF check: the session was read back
    assert built
