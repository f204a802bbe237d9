"""The sign-up policy and verified-email logins on the browser pages (docs/api.md "Sign-up policy
and verified email"): a closed sign-up page without a form and no sign-up links; "check your
mail" after a sign-up that REQUIRE_VERIFIED_EMAIL keeps from logging in; the login form's
refusal, after the password and after the code, pointing to a new link; the resend page."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.models import User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import code_at
from tests.app.web.conftest import (
    assert_page,
    assert_redirect,
    csrf_token,
    form_login,
    form_signup,
    set_cookies,
    submit,
)
from tests.app.web.mfa_pages import AUTH_COOKIES, LOGIN_CODE, enter_code
from tests.conftest import PASSWORD

ADA = "ada@example.com"
RESEND = "/verify-email/resend"
SIGNUP_LINK = 'href="/signup"'
SIGNUP_FORM = 'action="/signup"'
UNVERIFIED_ALERT = "Confirm your email address first"
REQUIRED = pytest.mark.config(REQUIRE_VERIFIED_EMAIL=True)


def accounts(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def unconfirm(app: Flask, email: str) -> None:
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.email_normalized == email).values(email_verified_at=None)
        )
        db.session.commit()


def no_auth_cookies(response: Any) -> bool:
    return not set(AUTH_COOKIES) & set(set_cookies(response))


# Sign-up policy


def test_open_sign_up_shows_the_form_and_the_links(client):
    signup = assert_page(client.get("/signup"))
    login = assert_page(client.get("/login"))

    assert SIGNUP_FORM in signup
    assert SIGNUP_LINK in login


@pytest.mark.parametrize(("mode", "says"), [("closed", "closed"), ("invite", "invitation")])
def test_a_closed_sign_up_page_says_so_without_a_form_or_links(app, client, mode, says):
    app.config["SIGNUP_MODE"] = mode

    signup = assert_page(client.get("/signup"))
    login = assert_page(client.get("/login"))
    home = assert_page(client.get("/"))

    assert 'data-testid="signup-closed"' in signup
    assert says in signup
    assert SIGNUP_FORM not in signup
    assert 'name="password"' not in signup
    assert SIGNUP_LINK not in login + home


@pytest.mark.config(SIGNUP_MODE="closed")
def test_posting_to_a_closed_sign_up_page_is_403_and_creates_nothing(app, client):
    before = accounts(app)
    token = csrf_token(client, "/login")

    response = client.post(
        "/signup", data={"email": ADA, "password": PASSWORD, "csrf_token": token}
    )

    body = assert_page(response, 403)
    assert 'data-testid="signup-closed"' in body
    assert accounts(app) == before
    assert no_auth_cookies(response)


# Verified-email logins


@REQUIRED
def test_sign_up_ends_on_check_your_mail_without_a_session(app, client):
    response = form_signup(client, ADA)

    body = assert_page(response)
    assert 'data-testid="check-your-mail"' in body
    assert no_auth_cookies(response)
    assert client.get("/settings/profile").status_code == 302  # logged in nowhere


@REQUIRED
def test_the_login_form_refuses_an_unverified_account_and_points_to_a_new_link(client):
    form_signup(client, ADA)

    refused = form_login(client, ADA)
    wrong = form_login(client, ADA, "not the password at all")

    body = assert_page(refused, 403)
    assert UNVERIFIED_ALERT in body
    assert f'href="{RESEND}"' in body
    assert no_auth_cookies(refused)
    assert UNVERIFIED_ALERT not in assert_page(wrong, 401)


@REQUIRED
def test_the_code_step_refuses_an_unverified_account_and_ends_the_wait(app, with_mfa, ada):
    _browser, secret, _codes = with_mfa
    unconfirm(app, ADA)
    client = app.test_client()
    assert_redirect(form_login(client, ADA), LOGIN_CODE)

    response = enter_code(client, code_at(secret, +1))

    body = assert_page(response, 403)
    assert UNVERIFIED_ALERT in body
    assert no_auth_cookies(response)
    assert_redirect(client.get(LOGIN_CODE), "/login")


def test_a_browser_session_from_before_the_setting_goes_back_to_the_login_page(app, client):
    form_signup(client, ADA)  # the setting off: logged in
    app.config["REQUIRE_VERIFIED_EMAIL"] = True
    client.delete_cookie("access_token")  # expired: the page refreshes from the refresh cookie

    response = client.get("/settings/profile")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert client.get_cookie("refresh_token") is None


# The resend page


def test_the_resend_page_says_the_same_for_any_address(app, client, make_user, mailbox):
    form_signup(client, ADA)
    make_user(email="grace@example.com")
    mailbox.clear()

    answers = [
        submit(client, RESEND, {"email": email})
        for email in (ADA, "nobody@example.com", "grace@example.com")
    ]

    notices = {assert_page(answer).split('role="status">', 1)[1][:120] for answer in answers}
    assert len(notices) == 1
    assert len(mailbox.to(ADA)) == 1
    assert mailbox.to("nobody@example.com") == mailbox.to("grace@example.com") == []


@pytest.mark.parametrize("email", ["", "not-an-email", "a\x00@example.com", "x" * 400])
def test_the_resend_page_refuses_bad_addresses_with_a_form_error(client, email):
    response = submit(client, RESEND, {"email": email})

    assert_page(response, 422)
