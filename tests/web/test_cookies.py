"""Browser cookies: their flags (WB-3), transparent refresh, logout clearing them (SE-1), and
the double-submit header on cookie-authenticated JSON (WB-2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient

from authapp.models import RefreshToken
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header
from tests.web.conftest import (
    claims,
    cookie,
    csrf_token,
    form_login,
    form_signup,
    set_clock,
    set_cookies,
    submit,
)

ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
PROFILE = "/api/v1/settings/profile"
DAY = 86400
AUTH_COOKIES = ("access_token", "refresh_token", "csrf_access_token", "csrf_refresh_token")
HTTP_ONLY = ("access_token", "refresh_token", "session")
CSRF_COOKIES = ("csrf_access_token", "csrf_refresh_token")
HTTPS = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/login"}}


def headers_of(*responses: Any) -> tuple[dict[str, dict[str, str | None]], list[str]]:
    """The cookies the responses set (later ones win), and the raw Set-Cookie lines."""
    merged: dict[str, dict[str, str | None]] = {}
    lines: list[str] = []
    for response in responses:
        merged |= set_cookies(response)
        lines += response.headers.getlist("Set-Cookie")
    return merged, lines


def assert_cleared(response: Any, names: tuple[str, ...] = AUTH_COOKIES) -> None:
    cleared = set_cookies(response)
    for name in names:
        assert name in cleared, name
        assert cleared[name]["value"] == "", name
        expires, max_age = cleared[name].get("expires") or "", cleared[name].get("max-age")
        assert "1970" in expires or max_age == "0", (name, cleared[name])


def log_in_through_the_form(client: FlaskClient, email: str = "ada@example.com") -> list[Any]:
    page = client.get("/login")
    response = form_login(client, email)
    assert response.status_code == 303, response.get_data(as_text=True)
    return [page, response]


def sign_up_through_the_form(client: FlaskClient, email: str = "ada@example.com") -> list[Any]:
    page = client.get("/signup")
    response = form_signup(client, email)
    assert response.status_code == 303, response.get_data(as_text=True)
    return [page, response]


# WB-3: flags


@pytest.mark.parametrize("how", ["login", "signup"])
def test_auth_cookies_are_httponly_lax_host_only_and_live_as_long_as_their_token(
    app, client, make_user, how
):
    """WB-3."""
    if how == "login":
        make_user(email="ada@example.com")
        responses = log_in_through_the_form(client)
    else:
        responses = sign_up_through_the_form(client)

    cookies, lines = headers_of(*responses)

    for name in (*AUTH_COOKIES, "session"):
        assert name in cookies, name
        attributes = cookies[name]
        assert attributes.get("samesite") == "Lax", name
        assert attributes.get("path") == "/", name
        assert "domain" not in attributes, name
    for name in HTTP_ONLY:
        assert "httponly" in cookies[name], name
    for name in CSRF_COOKIES:
        assert "httponly" not in cookies[name], name  # scripts echo them in X-CSRF-TOKEN
    for name in ("access_token", "csrf_access_token"):
        assert cookies[name]["max-age"] == str(app.config["ACCESS_TOKEN_TTL"]), name
    for name in ("refresh_token", "csrf_refresh_token"):
        assert cookies[name]["max-age"] == str(app.config["REFRESH_TOKEN_TTL"]), name
    for line in lines:
        assert len(line.encode()) < 4096, line[:80]


@pytest.mark.config(ACCESS_TOKEN_TTL=300, REFRESH_TOKEN_TTL=2 * DAY)
def test_cookie_lifetimes_follow_the_token_settings(client, make_user):
    """WB-3: a cookie never outlives its token."""
    make_user(email="ada@example.com")

    cookies, _ = headers_of(*log_in_through_the_form(client))

    assert cookies["access_token"]["max-age"] == "300"
    assert cookies["refresh_token"]["max-age"] == str(2 * DAY)


@pytest.mark.config(AUTHAPP_ENV="production", BCRYPT_ROUNDS=10)
def test_production_cookies_are_secure_with_the_host_prefix(app, make_user):
    """WB-3: `__Host-` names, `Secure`, `Path=/`, no `Domain`."""
    client = app.test_client()
    make_user(email="ada@example.com")
    page = client.get("/login", **HTTPS)
    response = submit(client, "/login", {"login": "ada@example.com", "password": PASSWORD}, **HTTPS)
    assert response.status_code == 303, response.get_data(as_text=True)

    cookies, _ = headers_of(page, response)

    assert set(cookies) == {f"__Host-{name}" for name in (*AUTH_COOKIES, "session", "device")}
    for name, attributes in cookies.items():
        assert "secure" in attributes, name
        assert attributes.get("path") == "/", name
        assert "domain" not in attributes, name
        # Only logins read the device cookie, from this site's own pages and scripts.
        assert attributes.get("samesite") == ("Strict" if name == "__Host-device" else "Lax")
    for name in (*HTTP_ONLY, "device"):
        assert "httponly" in cookies[f"__Host-{name}"], name
    home = client.get("/", **HTTPS).get_data(as_text=True)
    assert '<dd data-testid="who">ada@example.com</dd>' in home


@pytest.mark.config(AUTHAPP_ENV="production", BCRYPT_ROUNDS=10)
def test_production_ignores_unprefixed_cookies(app, make_user):
    """WB-3: a cookie a subdomain could plant (no prefix) is not a login."""
    client = app.test_client()
    make_user(email="ada@example.com")
    submit(client, "/login", {"login": "ada@example.com", "password": PASSWORD}, **HTTPS)
    access = cookie(client, "__Host-access_token")
    planted = app.test_client()
    planted.set_cookie("access_token", access)

    response = planted.get("/settings/profile", base_url="https://localhost")

    assert response.status_code == 302


# Transparent refresh


def test_an_expired_access_cookie_is_refreshed_transparently(app, logged_in_client):
    """The page answers 200 with a new pair; the old refresh token is spent (RT-1)."""
    old_access = cookie(logged_in_client, "access_token")
    old_refresh = cookie(logged_in_client, "refresh_token")
    set_clock(logged_in_client, 900 + 30 + 1)
    assert logged_in_client.get(ME, headers=auth_header(old_access)).status_code == 401

    response = logged_in_client.get("/settings/profile")

    assert response.status_code == 200
    renewed = set_cookies(response)
    new_access, new_refresh = renewed["access_token"]["value"], renewed["refresh_token"]["value"]
    assert new_access
    assert new_access != old_access
    assert claims(new_refresh)["jti"] != claims(old_refresh)["jti"]
    assert claims(new_refresh)["sid"] == claims(old_refresh)["sid"]
    assert cookie(logged_in_client, "access_token") == new_access
    with app.app_context():
        spent = db.session.get(RefreshToken, claims(old_refresh)["jti"])
        assert spent.used_at is not None
        assert spent.replaced_by == claims(new_refresh)["jti"]
    assert logged_in_client.get(ME, headers=auth_header(new_access)).status_code == 200
    # Within the grace window the old token is a retry: the current token again, same jti.
    replay = logged_in_client.post(REFRESH, json={"refresh_token": old_refresh})
    assert replay.status_code == 200, replay.json
    assert claims(replay.json["refresh_token"])["jti"] == claims(new_refresh)["jti"]


def test_a_missing_access_cookie_is_refreshed_from_the_refresh_cookie(logged_in_client):
    logged_in_client.delete_cookie("access_token")

    response = logged_in_client.get("/settings/sessions")

    assert response.status_code == 200
    assert set_cookies(response)["access_token"]["value"]


def test_an_expired_refresh_cookie_sends_the_browser_to_login(logged_in_client):
    """RT-4: after 14 idle days the cookies are cleared and the page asks for a login."""
    set_clock(logged_in_client, 14 * DAY + 60)

    response = logged_in_client.get("/settings/profile")

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == ("/login", {"next": ["/settings/profile"]})
    assert_cleared(response)


def test_a_revoked_session_is_not_revived_by_the_refresh_cookie(app, logged_in_client):
    """SE-1: after the session is logged out elsewhere (a bearer call from another client),
    neither cookie logs the page back in."""
    access = cookie(logged_in_client, "access_token")
    logout = app.test_client().post("/api/v1/auth/logout", headers=auth_header(access))
    assert logout.status_code == 204

    response = logged_in_client.get("/settings/profile")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


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
