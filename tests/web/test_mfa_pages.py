"""Two-factor authentication through the browser forms (Flask's test client, real CSRF tokens):
set-up on /settings/security with the QR code and the key shown once, recovery codes shown once,
turning it off, and the login form's second step at /login/code (MF-1..MF-3, AC-5, AU-1, RS-3,
WB-1, WB-6). Codes are computed by pyotp; time moves through POST /_testing/clock."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
import segno
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.auth.services import accounts
from authapp.models import AuditEvent, RecoveryCode, User
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, auth_header, confirm_email
from tests.mfa.conftest import Account, code_at, shown_secret, wrong_code
from tests.outbox import conftest as outbox_fixtures
from tests.outbox.conftest import mailed_link
from tests.servers import Mailbox, SmtpServer, wait_for
from tests.web.conftest import (
    alert,
    csrf_token,
    field_error,
    form_login,
    input_tag,
    notice,
    set_clock,
    set_cookies,
    submit,
    text,
)
from tests.web.test_settings_pages import assert_page, assert_redirect

SECURITY = "/settings/security"
START = "/settings/security/totp"
CONFIRM = "/settings/security/totp/confirm"
DISABLE = "/settings/security/totp/disable"
LOGIN_CODE = "/login/code"
AUTH_COOKIES = ("access_token", "refresh_token")
WRONG_CODE_MESSAGE = "The code is incorrect or was used already."
CSRF_MESSAGE = "This form has expired or was not sent from this site."
NEW_PASSWORD = "another long passphrase nobody guesses"
CODES_SHOWN = re.compile(r'<ul class="codes" data-testid="recovery-codes">(.*?)</ul>', re.S)
QR = re.compile(r'<figure class="qr">\s*(<svg\b.*?</svg>)\s*</figure>', re.S)
# The real SMTP server and the app that mails through it (tests/outbox/conftest.py), for RS-3.
smtp = outbox_fixtures.smtp
mail_app = outbox_fixtures.mail_app
mail_client = outbox_fixtures.mail_client


# Reading the pages


def shown_recovery_codes(body: str) -> list[str]:
    match = CODES_SHOWN.search(body)
    assert match is not None, "no recovery codes on the page"
    return [html.unescape(code) for code in re.findall(r"<li><code>([^<]+)</code></li>", match[1])]


def form_actions(body: str) -> set[str]:
    return set(re.findall(r'<form method="post" action="([^"]+)"', body))


def code_with_clock(secret: str, offset_seconds: int) -> str:
    """The code an authenticator shows when the app's clock runs `offset_seconds` ahead."""
    return pyotp.TOTP(secret).at(time.time() + offset_seconds)


def no_auth_cookies(client: FlaskClient, response: TestResponse) -> bool:
    return not set(AUTH_COOKIES) & (
        set(set_cookies(response)) | {n for n in AUTH_COOKIES if client.get_cookie(n)}
    )


def stored_user(app: Flask, user_id: str) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return user


def unused_codes(app: Flask, user_id: str) -> int:
    with app.app_context():
        return len(
            db.session.scalars(
                sa.select(RecoveryCode).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            ).all()
        )


def audit_events(app: Flask, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(AuditEvent.event, AuditEvent.data)
            .where(AuditEvent.user_id == user_id)
            .order_by(AuditEvent.created_at)
        ).all()
    return [(event, dict(data or {})) for event, data in rows]


# Driving the forms


def start(client: FlaskClient, password: str = PASSWORD) -> TestResponse:
    return submit(client, START, {"password": password}, page=SECURITY)


def confirm(client: FlaskClient, code: str) -> TestResponse:
    return submit(client, CONFIRM, {"code": code}, page=SECURITY)


def disable(client: FlaskClient, code: str, password: str = PASSWORD) -> TestResponse:
    return submit(client, DISABLE, {"password": password, "code": code}, page=SECURITY)


def enter_code(client: FlaskClient, code: str) -> TestResponse:
    return submit(client, LOGIN_CODE, {"totp_code": code}, page=LOGIN_CODE)


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """MFA on through the forms; (the key, the recovery codes) as the pages showed them."""
    started = start(client)
    assert started.status_code == 200, text(started)
    secret = shown_secret(text(started))
    confirmed = confirm(client, code_at(secret))
    assert confirmed.status_code == 200, text(confirmed)
    return secret, shown_recovery_codes(text(confirmed))


@pytest.fixture
def ada(make_user: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_user(email="ada@example.com")


@pytest.fixture
def ada_browser(app: Flask, ada: dict[str, Any]) -> FlaskClient:
    """A cookie jar logged in as ada through the /login form (MFA still off)."""
    client = app.test_client()
    response = form_login(client, ada["email"])
    assert response.status_code == 303, text(response)
    return client


@pytest.fixture
def with_mfa(ada_browser: FlaskClient) -> tuple[FlaskClient, str, list[str]]:
    """ada with MFA on (set up through the forms); (her browser, the key, the recovery codes)."""
    return (ada_browser, *enrol(ada_browser))


@pytest.fixture
def waiting(app: Flask, with_mfa: tuple[FlaskClient, str, list[str]], ada) -> FlaskClient:
    """A new browser that gave ada's correct password and waits at /login/code."""
    client = app.test_client()
    response = form_login(client, ada["email"], next_path="/settings/sessions")
    assert_redirect(response, LOGIN_CODE)
    return client


# Set-up, the codes shown once, turning off (MF-1, MF-3, AC-5)


def test_the_security_page_says_off_and_offers_set_up(ada_browser):
    body = assert_page(ada_browser.get(SECURITY))

    assert "Status: <strong>off</strong>" in body
    assert form_actions(body) == {START, "/logout"}
    assert 'autocomplete="current-password"' in input_tag(body, "password")
    assert "<svg" not in body


def test_set_up_shows_an_inline_svg_qr_code_and_the_key_once(app, ada_browser, ada):
    """MF-1: the key is pending until confirmed and is shown in this answer only."""
    body = assert_page(start(ada_browser))

    secret = shown_secret(body)
    assert len(secret) == 32
    assert body.count(secret) == 1
    qr = QR.search(body)
    assert qr is not None, "no inline <svg> in the QR figure"
    assert "<img" not in body
    assert "data:image" not in body
    assert "<title>QR code for your authenticator app</title>" in qr[1]
    assert CONFIRM in form_actions(body)
    assert 'autocomplete="one-time-code"' in input_tag(body, "code")
    stored = stored_user(app, ada["id"])
    assert stored.mfa_enabled is False
    assert stored.mfa_secret is not None
    assert secret not in stored.mfa_secret  # sealed at rest


def test_the_qr_code_encodes_the_otpauth_uri_of_the_key_shown(ada_browser, ada):
    """The picture and the key agree: the QR is segno's encoding of pyotp's otpauth:// URI for
    this key, this account and the issuer `authapp` (at whichever error-correction level)."""
    body = text(start(ada_browser))
    secret = shown_secret(body)
    qr = QR.search(body)
    assert qr is not None
    drawn = re.search(r'class="qrline"[^>]*\sd="([^"]+)"', qr[1])
    assert drawn is not None, qr[1][:200]

    uri = pyotp.TOTP(secret).provisioning_uri(name=ada["email"], issuer_name="authapp")
    encodings = set()
    for level in "lmqh":
        svg = segno.make(uri, error=level).svg_inline()
        encodings.add(re.search(r'class="qrline"[^>]*\sd="([^"]+)"', svg)[1])

    assert drawn[1] in encodings


def test_confirm_turns_mfa_on_and_shows_ten_recovery_codes_once(app, ada_browser, ada):
    secret = shown_secret(text(start(ada_browser)))

    confirmed = confirm(ada_browser, code_at(secret))

    body = assert_page(confirmed)
    codes = shown_recovery_codes(body)
    assert len(codes) == len(set(codes)) == 10
    assert secret not in body
    assert "Status: <strong>on</strong>" in body
    assert DISABLE in form_actions(body)
    assert stored_user(app, ada["id"]).mfa_enabled is True
    later = assert_page(ada_browser.get(SECURITY))
    assert secret not in later
    assert not any(code in later for code in codes)
    assert "You have 10 unused recovery codes." in later
    assert 'data-testid="recovery-codes"' not in later


def test_the_key_is_not_shown_again_while_pending(app, ada_browser, ada):
    """Leaving the set-up (or a wrong code) never brings the key back: start again instead."""
    secret = shown_secret(text(start(ada_browser)))

    again = assert_page(ada_browser.get(SECURITY))
    refused = confirm(ada_browser, wrong_code(secret))

    assert secret not in again
    assert "Status: <strong>off</strong>" in again
    assert secret not in text(refused)
    assert stored_user(app, ada["id"]).mfa_enabled is False


def test_the_whole_lifecycle_through_the_forms(app, ada_browser, ada):
    """On with a code, log out, in with the password and a recovery code, then a TOTP code in
    the disable form; every step audited (AU-1)."""
    secret, codes = enrol(ada_browser)
    assert_redirect(submit(ada_browser, "/logout", page="/"), "/login")

    asked = form_login(ada_browser, ada["email"])
    assert_redirect(asked, LOGIN_CODE)
    assert_redirect(enter_code(ada_browser, codes[0]), "/")
    assert "You have 9 unused recovery codes." in text(ada_browser.get(SECURITY))

    turned_off = disable(ada_browser, code_at(secret, +1))

    assert_redirect(turned_off, SECURITY)
    body = assert_page(ada_browser.get(SECURITY))
    assert notice(body) == "Two-factor authentication is off."
    assert "Status: <strong>off</strong>" in body
    stored = stored_user(app, ada["id"])
    assert (stored.mfa_enabled, stored.mfa_secret, stored.mfa_last_step) == (False, None, None)
    assert unused_codes(app, ada["id"]) == 0
    assert_redirect(form_login(app.test_client(), ada["email"]), "/")  # the password alone
    events = [event for event, _ in audit_events(app, ada["id"])]
    expected = ["mfa.enrolment_started", "mfa.enabled", "mfa.recovery_code_used", "mfa.disabled"]
    in_order = iter(events)
    assert all(event in in_order for event in expected), events  # a subsequence, in order
    used = [data for event, data in audit_events(app, ada["id"]) if event.endswith("code_used")]
    assert used == [{"remaining": 9}]


# Refusals re-render with the message next to the field


def test_a_wrong_password_on_set_up_is_marked_and_keeps_mfa_off(app, ada_browser, ada):
    response = start(ada_browser, password="not the password at all")

    body = assert_page(response, 422)
    assert field_error(body, "password") == "The password is incorrect."
    assert 'aria-invalid="true"' in input_tag(body, "password")
    assert "<svg" not in body
    assert START in form_actions(body)
    stored = stored_user(app, ada["id"])
    assert (stored.mfa_enabled, stored.mfa_secret) == (False, None)
    assert ("mfa.enrolment_failed", {"reason": "bad_password"}) in audit_events(app, ada["id"])


def test_a_wrong_code_on_confirm_is_marked_and_a_right_one_still_works(app, ada_browser, ada):
    secret = shown_secret(text(start(ada_browser)))

    refused = confirm(ada_browser, wrong_code(secret))

    body = assert_page(refused, 422)
    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert 'aria-invalid="true"' in input_tag(body, "code")
    assert "autofocus" in input_tag(body, "code")
    assert CONFIRM in form_actions(body)
    assert stored_user(app, ada["id"]).mfa_enabled is False
    assert ("mfa.confirm_failed", {"reason": "invalid_mfa_code"}) in audit_events(app, ada["id"])
    assert confirm(ada_browser, code_at(secret)).status_code == 200


def test_an_empty_code_on_confirm_is_a_field_message(ada_browser):
    shown_secret(text(start(ada_browser)))

    body = assert_page(confirm(ada_browser, ""), 422)

    assert field_error(body, "code")
    assert 'aria-invalid="true"' in input_tag(body, "code")


def test_turning_off_needs_the_password_and_a_code(app, with_mfa, ada):
    """MF-3: each refusal is marked at its field and MFA stays on with every code unspent."""
    ada_browser, secret, codes = with_mfa

    bad_password = disable(ada_browser, codes[0], password="not the password at all")
    bad_code = disable(ada_browser, wrong_code(secret))

    body = assert_page(bad_password, 422)
    assert field_error(body, "password") == "The password is incorrect."
    assert 'aria-invalid="true"' in input_tag(body, "password")
    assert codes[0] not in body  # a typed recovery code is not echoed back into the page
    body = assert_page(bad_code, 422)
    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert 'aria-invalid="true"' in input_tag(body, "code")
    assert 'aria-invalid="true"' not in input_tag(body, "password")
    assert "Status: <strong>on</strong>" in body
    assert stored_user(app, ada["id"]).mfa_enabled is True
    assert unused_codes(app, ada["id"]) == 10
    assert_redirect(disable(ada_browser, codes[3]), SECURITY)  # a recovery code turns it off too
    assert stored_user(app, ada["id"]).mfa_enabled is False


def test_a_spent_recovery_code_does_not_turn_mfa_off(app, with_mfa, ada):
    ada_browser, _secret, codes = with_mfa
    api = Account(app.test_client(), ada, {"access_token": ""})
    assert api.log_in(codes[0]).status_code == 200

    body = assert_page(disable(ada_browser, codes[0]), 422)

    assert field_error(body, "code") == WRONG_CODE_MESSAGE
    assert stored_user(app, ada["id"]).mfa_enabled is True


# The login form's second step


def test_a_correct_password_asks_for_the_code_and_sets_no_auth_cookie(app, with_mfa, ada):
    client = app.test_client()

    response = form_login(client, ada["email"], next_path="/settings/sessions")

    assert_redirect(response, LOGIN_CODE)
    assert no_auth_cookies(client, response)
    body = assert_page(client.get(LOGIN_CODE))
    assert 'autocomplete="one-time-code"' in input_tag(body, "totp_code")
    assert form_actions(body) == {LOGIN_CODE}
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


# CSRF on every new form (WB-1)


def _state_for(form: str, app: Flask, ada_browser: FlaskClient, ada: dict[str, Any]) -> Any:
    """Puts ada where `form` is offered; (client, action, fields, did it happen?)."""
    if form == "set up":
        return (
            ada_browser,
            START,
            {"password": PASSWORD},
            lambda: stored_user(app, ada["id"]).mfa_secret is not None,
        )
    secret = shown_secret(text(start(ada_browser)))
    if form == "confirm":
        return (
            ada_browser,
            CONFIRM,
            {"code": code_at(secret)},
            lambda: stored_user(app, ada["id"]).mfa_enabled,
        )
    assert confirm(ada_browser, code_at(secret)).status_code == 200
    if form == "turn off":
        return (
            ada_browser,
            DISABLE,
            {"password": PASSWORD, "code": code_at(secret, +1)},
            lambda: not stored_user(app, ada["id"]).mfa_enabled,
        )
    client = app.test_client()
    assert_redirect(form_login(client, ada["email"]), LOGIN_CODE)
    return (
        client,
        LOGIN_CODE,
        {"totp_code": code_at(secret, +1)},
        lambda: bool(client.get_cookie("access_token")),
    )


@pytest.mark.parametrize("token", ["missing", "garbage"])
@pytest.mark.parametrize("form", ["set up", "confirm", "turn off", "login code"])
def test_each_mfa_form_refuses_a_missing_or_wrong_csrf_token(app, ada_browser, ada, form, token):
    """WB-1: the house's 400 page, nothing done and nothing spent; the same post with the
    page's token then works (so the refusal was the token's)."""
    client, action, fields, done = _state_for(form, app, ada_browser, ada)
    data = dict(fields)
    if token == "garbage":
        data["csrf_token"] = "IjAxMjM0NTY3ODkiIA.aAbBcC.not-a-signature"

    refused = client.post(action, data=data)

    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    assert CSRF_MESSAGE in text(refused)
    assert not done()
    page = SECURITY if action != LOGIN_CODE else LOGIN_CODE
    accepted = submit(client, action, fields, page=page)
    assert accepted.status_code in (200, 303), text(accepted)
    assert done()


# Who may use the pages


@pytest.mark.parametrize("action", [START, CONFIRM, DISABLE])
def test_logged_out_posts_go_to_the_login_page(client, action):
    token = csrf_token(client, "/login")

    response = client.post(
        action, data={"password": PASSWORD, "code": "123456", "csrf_token": token}
    )

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_the_security_page_logged_out_goes_to_the_login_page(client):
    response = client.get(SECURITY)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": [SECURITY]}


@pytest.fixture
def api_key(app: Flask, client: FlaskClient) -> dict[str, str]:
    """An organization owner's API key (X-API-Key header)."""
    owner = client.post(
        "/api/v1/auth/signup",
        json={"email": "owner@acme.example", "password": PASSWORD, "organization_name": "Acme"},
    )
    assert owner.status_code == 201, owner.json
    confirm_email(app, "owner@acme.example")
    created = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "ci", "scopes": ["users:read"]},
        headers=auth_header(owner.json["access_token"]),
    )
    assert created.status_code == 201, created.json
    return {"X-API-Key": created.json["key"]}


def test_an_api_key_is_no_login_for_the_security_page(client, api_key):
    response = client.get(SECURITY, headers=api_key)

    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/settings/mfa/totp", {"password": PASSWORD}),
        ("POST", "/api/v1/settings/mfa/totp/confirm", {"code": "123456"}),
        ("DELETE", "/api/v1/settings/mfa/totp", {"password": PASSWORD, "code": "123456"}),
    ],
)
def test_an_api_key_cannot_change_mfa_through_the_api(client, api_key, method, path, body):
    """MFA belongs to a person's own account: a key is 403 (API.md)."""
    response = client.open(path, method=method, json=body, headers=api_key)

    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "forbidden"


# A password reset never bypasses MFA (RS-3)


def test_a_password_reset_does_not_turn_mfa_off(
    mail_app: Flask, mail_client: FlaskClient, smtp: SmtpServer
) -> None:
    with mail_app.app_context():
        user = accounts.create_user(email="ada@example.com", password=PASSWORD)
        ada = {"id": user.id, "email": "ada@example.com", "password": PASSWORD}
    tokens = mail_client.post(
        "/api/v1/auth/login", json={"login": ada["email"], "password": PASSWORD}
    ).json
    account = Account(mail_client, ada, tokens)
    account.enrol()
    assert account.secret is not None
    browser = mail_app.test_client()
    assert submit(browser, "/forgot-password", {"email": ada["email"]}).status_code == 200

    def reset_mail() -> list[Any]:
        return [m for m in smtp.mailbox.to(ada["email"]) if "/reset-password?" in Mailbox.text(m)]

    _link, token = mailed_link(wait_for(reset_mail)[0], "/reset-password")
    reset = submit(
        browser,
        "/reset-password",
        {"token": token, "new_password": NEW_PASSWORD},
        page=f"/reset-password?token={token}",
    )
    assert_redirect(reset, "/login")

    asked = form_login(browser, ada["email"], NEW_PASSWORD)

    assert_redirect(asked, LOGIN_CODE)
    assert no_auth_cookies(browser, asked)
    assert stored_user(mail_app, ada["id"]).mfa_enabled is True
    api = mail_app.test_client().post(
        "/api/v1/auth/login", json={"login": ada["email"], "password": NEW_PASSWORD}
    )
    assert api.status_code == 401
    assert api.json["error"]["code"] == "mfa_required"
    assert_redirect(enter_code(browser, code_at(account.secret, +1)), "/")
