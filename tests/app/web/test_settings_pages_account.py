"""The /settings pages driven like a browser: logins through the real /login form, every POST
with the csrf_token read from the page (WB-1), POST-redirect-GET, field messages on refusals,
and pages that obey the CSP (no inline script or style) and are never cached (WB-4).

This part: every page, and the account's own pages: profile, password, sessions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.app.settings import conftest as settings_fixtures
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    field_error,
    input_tag,
    notice,
    open_browser,
    submit,
)
from tests.conftest import PASSWORD, auth_header

NEW_PASSWORD = "another long passphrase nobody guesses"
CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 Chrome/126.0 Safari/537"
# The two-tenant fixtures of tests/app/settings, used here through the browser.
tenants = settings_fixtures.tenants
SETTINGS_PAGES = (
    "/settings/profile",
    "/settings/password",
    "/settings/sessions",
    "/settings/api-keys",
    "/settings/members",
    "/settings/roles",
)


def me(client: FlaskClient, headers: Mapping[str, str] | None = None) -> TestResponse:
    return client.get("/api/v1/auth/me", headers=headers)


def session_rows(body: str) -> list[tuple[str, bool]]:
    """(session id, is this device) of each row of the sessions table."""
    rows = []
    for row in body.split("<tr>")[2:]:  # the page, then the header row
        found = re.search(r'action="/settings/sessions/([^/"]+)/revoke"', row)
        assert found is not None, row
        rows.append((found.group(1), "(this device)" in row))
    return rows


@pytest.fixture
def ada(make_user: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """An account with no session yet (make_user logs nobody in)."""
    return make_user(email="ada@example.com", full_name="Ada")


# Every page


@pytest.mark.parametrize("path", SETTINGS_PAGES)
def test_every_settings_page_is_no_store_and_free_of_inline_code(as_role, path):
    """WB-4 and the CSP without 'unsafe-inline': no inline <script> or style attribute."""
    assert_page(as_role("owner").get(path))


@pytest.mark.parametrize("path", SETTINGS_PAGES)
def test_every_settings_page_without_a_login_goes_to_the_login_page(client, path):
    """WB-6: the way back is the local path."""
    response = client.get(path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": [path]}


# Profile


def test_profile_changes_full_name_and_username_then_shows_them(app, ada):
    ada_browser = open_browser(app, ada["email"])

    response = submit(
        ada_browser, "/settings/profile", {"full_name": "Ada Lovelace", "username": "ada.l"}
    )

    assert_redirect(response, "/settings/profile")
    body = assert_page(ada_browser.get("/settings/profile"))
    assert notice(body) == "Profile saved."
    assert 'value="Ada Lovelace"' in input_tag(body, "full_name")
    assert 'value="ada.l"' in input_tag(body, "username")
    assert me(ada_browser).json["user"]["username"] == "ada.l"


def test_a_taken_username_is_409_next_to_the_field_with_the_typed_values_kept(app, ada, make_user):
    grace = make_user(email="grace@example.com")
    grace_browser = open_browser(app, grace["email"])
    assert submit(grace_browser, "/settings/profile", {"username": "taken"}).status_code == 303
    ada_browser = open_browser(app, ada["email"])

    response = submit(
        ada_browser, "/settings/profile", {"full_name": "Typed Name", "username": "TAKEN"}
    )

    body = assert_page(response, 409)
    assert field_error(body, "username") == "That username is taken."
    username = input_tag(body, "username")
    assert 'value="TAKEN"' in username
    assert 'aria-invalid="true"' in username
    assert "autofocus" in username
    assert 'value="Typed Name"' in input_tag(body, "full_name")
    assert "aria-invalid" not in input_tag(body, "full_name")
    assert alert(body)
    assert me(ada_browser).json["user"]["full_name"] == "Ada"  # nothing saved


def test_an_emptied_username_clears_it(app, ada):
    ada_browser = open_browser(app, ada["email"])
    assert submit(ada_browser, "/settings/profile", {"username": "ada"}).status_code == 303

    response = submit(ada_browser, "/settings/profile", {"full_name": "Ada", "username": ""})

    assert_redirect(response, "/settings/profile")
    body = assert_page(ada_browser.get("/settings/profile"))
    assert 'value=""' in input_tag(body, "username")
    assert me(ada_browser).json["user"]["username"] is None


def test_a_profile_post_without_the_csrf_token_changes_nothing(app, ada):
    """WB-1."""
    ada_browser = open_browser(app, ada["email"])

    response = ada_browser.post("/settings/profile", data={"full_name": "Forged"})

    assert_page(response, 400)
    assert me(ada_browser).json["user"]["full_name"] == "Ada"


# Password


def test_a_wrong_current_password_is_422_on_current_password(app, client, ada):
    ada_browser = open_browser(app, ada["email"])

    response = submit(
        ada_browser,
        "/settings/password",
        {"current_password": "not my password at all", "new_password": NEW_PASSWORD},
    )

    body = assert_page(response, 422)
    assert field_error(body, "current_password")
    assert "new_password-error" not in body
    assert 'aria-invalid="true"' in input_tag(body, "current_password")
    assert "value=" not in input_tag(body, "current_password")  # a password is never echoed
    assert "value=" not in input_tag(body, "new_password")
    login = {"login": ada["email"], "password": PASSWORD}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200


def test_a_weak_new_password_is_422_on_new_password(app, client, ada):
    """PW-3 on the page."""
    ada_browser = open_browser(app, ada["email"])

    response = submit(
        ada_browser,
        "/settings/password",
        {"current_password": PASSWORD, "new_password": "too short"},
    )

    body = assert_page(response, 422)
    assert field_error(body, "new_password")
    assert "current_password-error" not in body
    assert "autofocus" in input_tag(body, "new_password")
    assert "value=" not in input_tag(body, "new_password")
    login = {"login": ada["email"], "password": "too short"}
    assert client.post("/api/v1/auth/login", json=login).status_code == 401


def test_a_password_change_keeps_this_session_and_revokes_the_other(app, client, ada):
    """SE-3: the other browser is logged out, this one carries on."""
    other = open_browser(app, ada["email"], agent=CHROME)
    other_access = other.get_cookie("access_token").value
    ada_browser = open_browser(app, ada["email"])

    response = submit(
        ada_browser,
        "/settings/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert_redirect(response, "/settings/password")
    body = assert_page(ada_browser.get("/settings/password"))
    assert notice(body) == "Password changed. Your other sessions were logged out."
    assert_page(ada_browser.get("/settings/profile"))
    assert me(ada_browser).status_code == 200
    assert other.get("/settings/profile").status_code == 302
    assert me(client, auth_header(other_access)).status_code == 401
    login = {"login": ada["email"], "password": NEW_PASSWORD}
    assert client.post("/api/v1/auth/login", json=login).status_code == 200


# Sessions


def test_the_sessions_page_marks_this_device_among_the_others(app, ada):
    open_browser(app, ada["email"], agent=CHROME)
    ada_browser = open_browser(app, ada["email"])

    body = assert_page(ada_browser.get("/settings/sessions"))

    rows = session_rows(body)
    assert len(rows) == 2
    assert sorted(current for _, current in rows) == [False, True]
    assert "Firefox 128 on Linux" in body
    assert "Chrome 126 on Mac OS X" in body


def test_revoking_the_other_session_ends_it_now(app, client, ada):
    """SE-5: its tokens die, this browser stays."""
    other = open_browser(app, ada["email"], agent=CHROME)
    other_access = other.get_cookie("access_token").value
    ada_browser = open_browser(app, ada["email"])
    body = ada_browser.get("/settings/sessions").get_data(as_text=True)
    (other_id,) = [session_id for session_id, current in session_rows(body) if not current]

    response = submit(
        ada_browser, f"/settings/sessions/{other_id}/revoke", {}, page="/settings/sessions"
    )

    assert_redirect(response, "/settings/sessions")
    body = assert_page(ada_browser.get("/settings/sessions"))
    assert notice(body) == "Session logged out."
    assert [current for _, current in session_rows(body)] == [True]
    assert me(client, auth_header(other_access)).status_code == 401
    assert other.get("/settings/profile").status_code == 302  # the refresh cookie died too


def test_revoking_this_session_logs_out_and_clears_the_cookies(app, client, ada):
    """SE-1 from the sessions page."""
    ada_browser = open_browser(app, ada["email"])
    access = ada_browser.get_cookie("access_token").value
    body = ada_browser.get("/settings/sessions").get_data(as_text=True)
    ((this_id, _),) = session_rows(body)

    response = submit(
        ada_browser, f"/settings/sessions/{this_id}/revoke", {}, page="/settings/sessions"
    )

    assert_redirect(response, "/login")
    cleared = {
        header.split("=", 1)[0]
        for header in response.headers.getlist("Set-Cookie")
        if "Expires=Thu, 01 Jan 1970" in header
    }
    assert {"access_token", "refresh_token"} <= cleared
    assert ada_browser.get_cookie("access_token") is None
    assert ada_browser.get("/settings/profile").status_code == 302
    assert me(client, auth_header(access)).status_code == 401
