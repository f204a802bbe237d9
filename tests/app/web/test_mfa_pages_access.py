"""Two-factor authentication through the browser forms: the set-up these tests share, and why, is
mfa_pages.py's docstring.

This part: CSRF on every new form, who may use the pages, and a password reset never bypassing
MFA."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth.services import accounts
from tests.app.delivery import conftest as outbox_fixtures
from tests.app.delivery.conftest import mailed_link
from tests.app.mfa.conftest import Account, code_at, shown_secret
from tests.app.web.conftest import assert_redirect, csrf_token, form_login, submit, text
from tests.app.web.mfa_pages import (
    CONFIRM,
    DISABLE,
    LOGIN_CODE,
    SECURITY,
    START,
    confirm,
    enter_code,
    no_auth_cookies,
    start,
    stored_user,
)
from tests.conftest import PASSWORD, auth_header, confirm_email
from tests.servers import Mailbox, SmtpServer, wait_for

CSRF_MESSAGE = "This form has expired or was not sent from this site."
NEW_PASSWORD = "another long passphrase nobody guesses"
# The real SMTP server and the app that mails through it (tests/app/delivery/conftest.py), for RS-3.
smtp = outbox_fixtures.smtp
mail_app = outbox_fixtures.mail_app
mail_client = outbox_fixtures.mail_client


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
    """MFA belongs to a person's own account: a key is 403 (docs/api.md)."""
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
