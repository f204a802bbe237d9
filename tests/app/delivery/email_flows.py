"""Mails that carry one-time links, delivered to a real SMTP server through the outbox: sign-up
verification and resend (EV-1), forgot and reset (EN-3, RS-1..3, F10), token storage (CS-2),
secrets wiped after delivery (AU-2), and the password-changed and new-device notices.

What the mailed-link tests (test_email_flows_*.py) share: sign-ups, logins and the links read
from the mailbox."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.auth.services import accounts
from authapp.models import OutboxMessage, User
from authapp.platform.extensions import db
from tests.app.delivery.conftest import mailed_link, wait_for_mail
from tests.conftest import PASSWORD, auth_header
from tests.servers import SmtpServer

AUTH = "/api/v1/auth"
NEW_PASSWORD = "another long passphrase nobody guesses"
HOUR, DAY = 3600, 86400


# Helpers


def sign_up(client: FlaskClient, email: str, **headers: str) -> dict[str, Any]:
    response = client.post(
        f"{AUTH}/signup", json={"email": email, "password": PASSWORD}, headers=headers
    )
    assert response.status_code == 201, response.json
    return response.json


def create_user(app: Flask, email: str, **fields: Any) -> str:
    """An operator-made account (already verified, no session yet); returns its id."""
    with app.app_context():
        return accounts.create_user(email=email, password=PASSWORD, **fields).id


def log_in(
    client: FlaskClient, email: str, password: str = PASSWORD, user_agent: str | None = None
) -> TestResponse:
    headers = {"User-Agent": user_agent} if user_agent else {}
    return client.post(
        f"{AUTH}/login", json={"login": email, "password": password}, headers=headers
    )


def me(client: FlaskClient, access_token: str) -> TestResponse:
    return client.get(f"{AUTH}/me", headers=auth_header(access_token))


def set_clock(client: FlaskClient, seconds: int) -> None:
    response = client.post("/_testing/clock", json={"offset_seconds": seconds})
    assert response.status_code == 200, response.json


def verify(client: FlaskClient, token: str) -> TestResponse:
    return client.post(f"{AUTH}/email/verify", json={"token": token})


def reset(client: FlaskClient, token: str, new_password: str = NEW_PASSWORD) -> TestResponse:
    return client.post(
        f"{AUTH}/password/reset", json={"token": token, "new_password": new_password}
    )


def forgot(client: FlaskClient, email: str) -> TestResponse:
    return client.post(f"{AUTH}/password/forgot", json={"email": email})


def error_code(response: TestResponse) -> str:
    return response.json["error"]["code"]


def mail_rows(app: Flask, template: str | None = None) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.kind == "email")
            .order_by(OutboxMessage.created_at)
        ).all()
    return [row for row in rows if template is None or row.payload["template"] == template]


def all_delivered(app: Flask) -> bool:
    return all(row.status != "pending" for row in mail_rows(app))


def email_verified_in_db(app: Flask, user_id: str) -> bool:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return user.email_verified_at is not None


def reset_token(client: FlaskClient, smtp: SmtpServer, email: str, count: int = 1) -> str:
    """Ask for a reset mail and return the token of the `count`-th mail to `email`."""
    assert forgot(client, email).status_code == 202
    message = wait_for_mail(smtp, email, count)[-1]
    assert message["Subject"] == "Reset your password"
    return mailed_link(message, "/reset-password")[1]


def verify_token(smtp: SmtpServer, email: str, count: int = 1) -> str:
    message = wait_for_mail(smtp, email, count)[-1]
    assert message["Subject"] == "Confirm your email address"
    return mailed_link(message, "/verify-email")[1]
