"""Browser cookies: their flags (WB-3), transparent refresh, logout clearing them (SE-1), and
the double-submit header on cookie-authenticated JSON (WB-2).

This part: the cookies' flags (WB-3) and the transparent refresh.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from authapp.models import RefreshToken
from authapp.platform.extensions import db
from tests.app.web.conftest import (
    claims,
    cookie,
    form_login,
    form_signup,
    set_clock,
    set_cookies,
    submit,
)
from tests.app.web.cookies import AUTH_COOKIES, ME, REFRESH, assert_cleared
from tests.conftest import PASSWORD, auth_header

DAY = 86400
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
