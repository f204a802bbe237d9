"""Two-factor authentication through the browser forms: the set-up these tests share, and why, is
mfa_pages.py's docstring.

This part: the login form's second step."""

from __future__ import annotations

import time

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.app.mfa.conftest import Account, code_at, wrong_code
from tests.app.web.conftest import (
    alert,
    assert_page,
    assert_redirect,
    csrf_token,
    field_error,
    form_login,
    input_tag,
    notice,
    set_clock,
    set_cookies,
    text,
)
from tests.app.web.mfa_pages import (
    AUTH_COOKIES,
    LOGIN_CODE,
    WRONG_CODE_MESSAGE,
    audit_events,
    enter_code,
    form_actions,
    no_auth_cookies,
    unused_codes,
)
from tests.conftest import PASSWORD


def code_with_clock(secret: str, offset_seconds: int) -> str:
    """The code an authenticator shows when the app's clock runs `offset_seconds` ahead."""
    return pyotp.TOTP(secret).at(time.time() + offset_seconds)


@pytest.fixture
def waiting(app: Flask, with_mfa: tuple[FlaskClient, str, list[str]], ada) -> FlaskClient:
    """A new browser that gave ada's correct password and waits at /login/code."""
    client = app.test_client()
    response = form_login(client, ada["email"], next_path="/settings/sessions")
    assert_redirect(response, LOGIN_CODE)
    return client


# The login form's second step


def test_a_correct_password_asks_for_the_code_and_sets_no_auth_cookie(app, with_mfa, ada):
    client = app.test_client()

    response = form_login(client, ada["email"], next_path="/settings/sessions")

    assert_redirect(response, LOGIN_CODE)
    assert no_auth_cookies(client, response)
    body = assert_page(client.get(LOGIN_CODE))
    assert 'autocomplete="one-time-code"' in input_tag(body, "totp_code")
    assert form_actions(body) == {LOGIN_CODE}  # the code's form, and the passkey's (hidden)
    assert PASSWORD not in body
    # The account waits in the signed session cookie: never the password.
    session_cookie = client.get_cookie("session")
    assert session_cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)
    assert PASSWORD not in repr(serializer.loads(session_cookie.value))
    assert client.get("/settings/profile").status_code == 302  # not logged in yet


def test_a_totp_code_logs_in_and_goes_to_next(app, with_mfa, waiting):
    _browser, secret, _codes = with_mfa

    response = enter_code(waiting, code_at(secret, +1))

    assert_redirect(response, "/settings/sessions")
    assert set(AUTH_COOKIES) <= set(set_cookies(response))
    assert waiting.get("/settings/sessions").status_code == 200
    assert_redirect(waiting.get(LOGIN_CODE), "/login")  # the wait is over


def test_a_recovery_code_logs_in_once(app, with_mfa, waiting, ada):
    _browser, _secret, codes = with_mfa

    response = enter_code(waiting, codes[4].upper().replace("-", " "))  # as people retype it

    assert_redirect(response, "/settings/sessions")
    assert set(AUTH_COOKIES) <= set(set_cookies(response))
    assert unused_codes(app, ada["id"]) == 9
    again = app.test_client()
    assert_redirect(form_login(again, ada["email"]), LOGIN_CODE)
    assert enter_code(again, codes[4]).status_code == 401


def test_a_wrong_code_is_a_401_page_with_the_message_at_the_field(app, with_mfa, waiting, ada):
    _browser, secret, _codes = with_mfa

    response = enter_code(waiting, wrong_code(secret))

    body = assert_page(response, 401)
    assert field_error(body, "totp_code") == WRONG_CODE_MESSAGE
    assert 'aria-invalid="true"' in input_tag(body, "totp_code")
    assert 'value=""' in input_tag(body, "totp_code")  # the typed code is not echoed
    assert alert(body)
    assert no_auth_cookies(waiting, response)
    assert ("login.failed", {"reason": "invalid_mfa_code"}) in audit_events(app, ada["id"])
    # A typo costs nothing more: the wait holds and the right code logs in.
    assert_redirect(enter_code(waiting, code_at(secret, +1)), "/settings/sessions")


def test_an_empty_code_is_a_field_message(with_mfa, waiting):
    body = assert_page(enter_code(waiting, ""), 422)

    assert field_error(body, "totp_code")
    assert 'aria-invalid="true"' in input_tag(body, "totp_code")


def test_a_code_used_once_is_refused_the_second_time(app, with_mfa, waiting, ada):
    """MF-2 on the form: the API used this step; the page refuses it."""
    _browser, secret, _codes = with_mfa
    code = code_at(secret, +1)
    api = Account(app.test_client(), ada, {"access_token": ""})
    assert api.log_in(code).status_code == 200

    response = enter_code(waiting, code)

    assert response.status_code == 401
    assert field_error(text(response), "totp_code") == WRONG_CODE_MESSAGE
    assert no_auth_cookies(waiting, response)


def test_a_wrong_password_never_reaches_the_code_step(app, with_mfa, ada):
    client = app.test_client()

    response = form_login(client, ada["email"], "not the password at all")

    assert response.status_code == 401
    assert_redirect(client.get(LOGIN_CODE), "/login")


def test_an_unsafe_next_lands_home_after_the_code(app, with_mfa, ada):
    """WB-6 through the second step."""
    _browser, secret, _codes = with_mfa
    client = app.test_client()
    assert_redirect(form_login(client, ada["email"], next_path="//evil.example/x"), LOGIN_CODE)

    assert_redirect(enter_code(client, code_at(secret, +1)), "/")


def test_the_code_page_without_a_wait_goes_to_login(client):
    assert_redirect(client.get(LOGIN_CODE), "/login")
    token = csrf_token(client, "/login")

    response = client.post(LOGIN_CODE, data={"totp_code": "123456", "csrf_token": token})

    assert_redirect(response, "/login")
    assert no_auth_cookies(client, response)


def test_the_wait_runs_out_after_mfa_login_ttl(app, with_mfa, waiting):
    """The wait is read against authapp.platform.clock: one second past MFA_LOGIN_TTL it is over."""
    _browser, secret, _codes = with_mfa
    ttl = int(app.config["MFA_LOGIN_TTL"])
    token = csrf_token(waiting, LOGIN_CODE)
    set_clock(waiting, ttl + 1)

    response = waiting.post(
        LOGIN_CODE, data={"totp_code": code_with_clock(secret, ttl + 1), "csrf_token": token}
    )

    assert_redirect(response, "/login")
    assert no_auth_cookies(waiting, response)
    assert notice(text(waiting.get("/login"))) == "Log in again: the wait for your code ran out."
    assert_redirect(waiting.get(LOGIN_CODE), "/login")  # and it is gone, not just late


def test_the_wait_holds_until_mfa_login_ttl(app, with_mfa, waiting):
    _browser, secret, _codes = with_mfa
    ttl = int(app.config["MFA_LOGIN_TTL"])
    set_clock(waiting, ttl - 5)

    response = enter_code(waiting, code_with_clock(secret, ttl - 5))

    assert_redirect(response, "/settings/sessions")
    assert set(AUTH_COOKIES) <= set(set_cookies(response))


def test_logging_in_again_after_the_wait_ran_out_asks_for_the_code_again(app, with_mfa, ada):
    _browser, secret, _codes = with_mfa
    client = app.test_client()
    assert_redirect(form_login(client, ada["email"]), LOGIN_CODE)
    offset = int(app.config["MFA_LOGIN_TTL"]) + 60
    set_clock(client, offset)
    assert_redirect(client.get(LOGIN_CODE), "/login")

    assert_redirect(form_login(client, ada["email"]), LOGIN_CODE)
    assert_redirect(enter_code(client, code_with_clock(secret, offset)), "/")
