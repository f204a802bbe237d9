"""Two-factor authentication through the browser forms (Flask's test client, real CSRF tokens):
set-up on /settings/security with the QR code and the key shown once, recovery codes shown once,
turning it off, and the login form's second step at /login/code (MF-1..MF-3, AC-5, AU-1, RS-3,
WB-1, WB-6). Codes are computed by pyotp; time moves through POST /_testing/clock.

What the two-factor page tests (test_mfa_pages_*.py) share: reading the pages and driving
the forms."""

from __future__ import annotations

import html
import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.models import AuditEvent, RecoveryCode, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import code_at, shown_secret
from tests.app.web.conftest import set_cookies, submit, text
from tests.conftest import PASSWORD

SECURITY = "/settings/security"
START = "/settings/security/totp"
CONFIRM = "/settings/security/totp/confirm"
DISABLE = "/settings/security/totp/disable"
LOGIN_CODE = "/login/code"
AUTH_COOKIES = ("access_token", "refresh_token")
WRONG_CODE_MESSAGE = "The code is incorrect or was used already."
CODES_SHOWN = re.compile(r'<ul class="codes" data-testid="recovery-codes">(.*?)</ul>', re.S)


# Reading the pages


def shown_recovery_codes(body: str) -> list[str]:
    match = CODES_SHOWN.search(body)
    assert match is not None, "no recovery codes on the page"
    return [html.unescape(code) for code in re.findall(r"<li><code>([^<]+)</code></li>", match[1])]


def form_actions(body: str) -> set[str]:
    return set(re.findall(r'<form method="post" action="([^"]+)"', body))


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
