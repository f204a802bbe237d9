"""Changing the email address in the browser (EC-1): the form on the profile page, the
confirmation page the mailed link opens (a button: a GET never spends the token), CSRF on both
(WB-1), and pages that obey the CSP and are never cached (WB-4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    field_error,
    form_login,
    input_tag,
    notice,
    open_browser,
    submit,
)
from tests.conftest import PASSWORD

CONFIRM_SUBJECT = "Confirm your new email address"
LINK = re.compile(r"/confirm-email-change\?token=([A-Za-z0-9_-]+)")
HIDDEN_TOKEN = re.compile(r'<input type="hidden" name="token" value="([^"]*)">')


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com", full_name="Ada")


def mailed_token(mailbox, address: str) -> str:
    [message] = [m for m in mailbox.to(address) if m["Subject"] == CONFIRM_SUBJECT]
    match = LINK.search(mailbox.text(message))
    assert match is not None
    return match.group(1)


def ask_for(browser: FlaskClient, new_email: str, password: str = PASSWORD) -> Any:
    """The profile page's change-of-address form, posted with its CSRF token."""
    return submit(
        browser,
        "/settings/email",
        {"new_email": new_email, "password": password},
        page="/settings/profile",
    )


def me(browser: FlaskClient) -> Any:
    return browser.get("/api/v1/auth/me")


def test_the_profile_page_asks_for_the_new_address_and_the_password(app, ada):
    body = assert_page(open_browser(app, ada["email"]).get("/settings/profile"))

    assert 'action="/settings/email"' in body
    assert 'type="email"' in input_tag(body, "new_email")
    assert 'autocomplete="current-password"' in input_tag(body, "password")


def test_the_whole_change_through_the_pages(app, client, ada, mailbox):
    browser = open_browser(app, ada["email"])

    asked = ask_for(browser, "nora@example.net")

    assert_redirect(asked, "/settings/profile")
    assert "on its way" in notice(assert_page(browser.get("/settings/profile")))
    assert me(browser).json["user"]["email"] == "ada@example.com"  # nothing changed yet
    token = mailed_token(mailbox, "nora@example.net")

    page = browser.get(f"/confirm-email-change?token={token}")

    body = assert_page(page)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert HIDDEN_TOKEN.findall(body) == [token]
    assert me(browser).json["user"]["email"] == "ada@example.com"  # a GET spends nothing

    confirmed = submit(
        browser,
        "/confirm-email-change",
        {"token": token},
        page=f"/confirm-email-change?token={token}",
    )

    assert_redirect(confirmed, "/login")
    assert browser.get_cookie("access_token") is None  # every session ended, this one too
    assert "changed" in notice(assert_page(browser.get("/login")))
    assert form_login(client, "ada@example.com").status_code == 401
    assert form_login(client, "nora@example.net").status_code == 303


def test_a_wrong_password_is_422_next_to_the_field_with_the_address_kept(app, ada, mailbox):
    browser = open_browser(app, ada["email"])

    response = ask_for(browser, "nora@example.net", "not my password at all")

    body = assert_page(response, 422)
    assert field_error(body, "password") == "The current password is incorrect."
    assert 'value="nora@example.net"' in input_tag(body, "new_email")
    assert "value=" not in input_tag(body, "password")  # a password is never echoed
    assert 'value="Ada"' in input_tag(body, "full_name")  # the profile form stays as it was
    assert alert(body)
    assert mailbox.to("nora@example.net") == []


def test_a_bad_address_is_422_next_to_its_field(app, ada, mailbox):
    browser = open_browser(app, ada["email"])

    response = ask_for(browser, "nora\x07@example.net")

    body = assert_page(response, 422)
    assert field_error(body, "new_email")
    assert len(mailbox) == 0


def test_posts_without_the_csrf_token_change_nothing(app, ada, mailbox):
    """WB-1: the request form and the confirmation button alike."""
    browser = open_browser(app, ada["email"])

    asked = browser.post(
        "/settings/email", data={"new_email": "nora@example.net", "password": PASSWORD}
    )

    assert_page(asked, 400)
    assert mailbox.to("nora@example.net") == []
    assert ask_for(browser, "nora@example.net").status_code == 303
    token = mailed_token(mailbox, "nora@example.net")

    forged = browser.post("/confirm-email-change", data={"token": token})

    assert_page(forged, 400)
    assert me(browser).json["user"]["email"] == "ada@example.com"


def test_a_used_link_shows_the_error_on_the_page(app, client, ada, mailbox):
    browser = open_browser(app, ada["email"])
    assert ask_for(browser, "nora@example.net").status_code == 303
    token = mailed_token(mailbox, "nora@example.net")
    assert (
        client.post("/api/v1/auth/email/confirm-change", json={"token": token}).status_code == 204
    )

    response = submit(
        browser,
        "/confirm-email-change",
        {"token": token},
        page=f"/confirm-email-change?token={token}",
    )

    assert "invalid, used or expired" in alert(assert_page(response, 400))
