"""Hostile values where pages and cookies take them: never a 500 (IN-2, JW-8).

A JSON string can hold a lone surrogate; a query string, a form and a cookie arrive as bytes
that need not be UTF-8, may hold control characters, and may be very long. Each is an
invalid token, cursor or field like any other.
"""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.web.conftest import csrf_token, form_login, text

# As they arrive on the wire (percent-encoded, or raw in a header): WSGI hands them over as
# latin-1 strings, and werkzeug decodes them.
RAW_VALUES = {
    "surrogate": "%ED%A0%80",  # U+D800 as UTF-8 would spell it: not UTF-8
    "not utf-8": "%FF%FE%00",
    "nul": "%00",
    "controls": "%01%1B%7F",
    "long": "A" * 8000,
    "nested": "%5B" * 500,  # [[[[…
    "jwt-shaped": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOnt9fQ.c2ln",
}
IDS = list(RAW_VALUES)


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/reset-password", "/verify-email"])
@pytest.mark.parametrize("value", RAW_VALUES.values(), ids=IDS)
def test_a_link_page_shows_any_token_in_its_form(client: FlaskClient, path: str, value: str):
    response = client.get(f"{path}?token={value}")

    assert response.status_code == 200, text(response)
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("value", RAW_VALUES.values(), ids=IDS)
def test_a_hostile_token_posted_to_the_reset_page_is_refused_in_the_page(client, value):
    token = csrf_token(client, "/reset-password")
    body = f"csrf_token={token}&token={value}&new_password=a%20long%20new%20passphrase%20here"
    response = client.post(
        "/reset-password", data=body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code in {400, 422}, text(response)  # 422: longer than a token
    assert "invalid, used or expired" in text(response) or response.status_code == 422


@pytest.mark.parametrize("value", RAW_VALUES.values(), ids=IDS)
def test_a_hostile_token_posted_to_the_verify_page_is_refused_in_the_page(client, value):
    token = csrf_token(client, "/verify-email")
    body = f"csrf_token={token}&token={value}"
    response = client.post(
        "/verify-email", data=body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code in {400, 422}, text(response)


HOSTILE_CURSORS = [
    *RAW_VALUES.values(),
    _b64('["2024-01-01T00:00:00+00:00", {}]'),
    _b64('["0001-01-01T00:00:00+14:00", "0b3c5a52-1a0e-4cf4-9a6b-9f1f7c3d2e10"]'),
]


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
def test_the_members_page_refuses_a_hostile_cursor(client, make_user, cursor):
    make_user(email="owner@example.com", role_names=("owner",))
    assert form_login(client, "owner@example.com").status_code == 303

    response = client.get(f"/settings/members?cursor={cursor}")

    assert response.status_code == 422, text(response)


COOKIES = ["access_token", "refresh_token", "csrf_access_token", "csrf_refresh_token", "session"]
RAW_COOKIE_VALUES = {
    "surrogate": "\xed\xa0\x80",  # the bytes of an encoded lone surrogate
    "not utf-8": "\xff\xfe",
    "controls": "\x01\x1b\x7f",
    "long": "A" * 6000,
    "quoted escapes": '"\\355\\240\\200\\000"',
    "jwt-shaped": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOnt9fQ.c2ln",
}
REQUESTS = [
    ("GET", "/"),
    ("GET", "/settings/profile"),
    ("POST", "/logout"),
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
]


def raw_client(app: Flask) -> FlaskClient:
    """A client that sends the Cookie header it is given (a cookie jar would replace it)."""
    return app.test_client(use_cookies=False)


def _send(app: Flask, method: str, path: str, cookie: str, csrf: str) -> int:
    headers = {"Cookie": cookie, "X-CSRF-TOKEN": csrf}
    body = {"json": {}} if path.startswith("/api/") and method == "POST" else {}
    return raw_client(app).open(path, method=method, headers=headers, **body).status_code


@pytest.mark.parametrize("name", COOKIES)
@pytest.mark.parametrize("value", RAW_COOKIE_VALUES.values(), ids=list(RAW_COOKIE_VALUES))
def test_a_hostile_cookie_is_never_a_500(app, make_user, name, value):
    statuses = {
        (method, path): _send(app, method, path, f"{name}={value}", value)
        for method, path in REQUESTS
    }

    assert all(status < 500 for status in statuses.values()), statuses


@pytest.mark.parametrize("value", RAW_COOKIE_VALUES.values(), ids=list(RAW_COOKIE_VALUES))
def test_a_hostile_csrf_echo_with_real_cookies_is_refused(client, make_user, value):
    make_user(email="ada@example.com")
    assert form_login(client, "ada@example.com").status_code == 303
    cookies = "; ".join(
        f"{name}={client.get_cookie(name).value}" for name in ("access_token", "refresh_token")
    )
    headers = {"Cookie": cookies, "X-CSRF-TOKEN": value}

    api = [
        raw_client(client.application).post(path, json={}, headers=headers).status_code
        for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout")
    ]
    page = raw_client(client.application).post(
        "/logout",
        data=f"csrf_token={value}",
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )

    assert api == [403, 403]  # csrf_failed
    assert page.status_code == 400, text(page)  # the form's CSRF check
