"""The browser side of recovery, with real CSRF tokens and a real SMTP server: the forgot-password
form (EN-3), the reset page (RS-1, RS-2), the verify page (EV-1) and CSRF on all three (WB-1)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth.services import accounts
from authapp.models import OutboxMessage, User
from authapp.platform.extensions import db
from tests.app.delivery.conftest import mailed_link, wait_for_mail
from tests.app.web.conftest import (
    CSRF_INPUT,
    alert,
    form_login,
    form_signup,
    input_tag,
    notice,
    submit,
    text,
)
from tests.conftest import PASSWORD
from tests.servers import SmtpServer

NEW_PASSWORD = "another long passphrase nobody guesses"
CSRF_MESSAGE = "This form has expired or was not sent from this site."


def create_user(app: Flask, email: str) -> str:
    with app.app_context():
        return accounts.create_user(email=email, password=PASSWORD).id


def outbox_rows(app: Flask, template: str) -> list[dict[str, Any]]:
    with app.app_context():
        payloads = db.session.scalars(sa.select(OutboxMessage.payload)).all()
    return [p for p in payloads if p.get("template") == template]


def email_verified(app: Flask, email: str) -> bool:
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.email == email)).one()
        return user.email_verified_at is not None


def mailed_reset_token(client: FlaskClient, smtp: SmtpServer, email: str, count: int = 1) -> str:
    """Ask on the form; the token of the `count`-th mail to `email`."""
    response = submit(client, "/forgot-password", {"email": email})
    assert response.status_code == 200, text(response)
    return mailed_link(wait_for_mail(smtp, email, count)[-1], "/reset-password")[1]


def hidden_token(body: str) -> str:
    match = re.search(r'<input type="hidden" name="token" value="([^"]*)">', body)
    assert match is not None, "no hidden token field"
    return match.group(1)


# Forgot password (EN-3)


def test_forgot_password_page_reads_the_same_for_known_and_unknown_emails(
    mail_app, mail_client, smtp
):
    """EN-3: the same page whatever the address; only the known account gets a mail."""
    create_user(mail_app, "known@example.com")

    known = submit(mail_client, "/forgot-password", {"email": "known@example.com"})
    unknown = submit(mail_client, "/forgot-password", {"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 200
    # Only the per-render CSRF token of the layout may differ.
    assert CSRF_INPUT.sub("", text(known)) == CSRF_INPUT.sub("", text(unknown))
    assert "on its way" in notice(text(known))
    wait_for_mail(smtp, "known@example.com")
    assert [p["to"] for p in outbox_rows(mail_app, "password_reset")] == ["known@example.com"]
    assert smtp.mailbox.to("nobody@example.com") == []


# Reset page (RS-1, RS-2)


def test_reset_page_sends_no_referrer_and_keeps_the_token_in_the_form(mail_app, mail_client, smtp):
    """RS-2: Referrer-Policy no-referrer; the token appears only in the hidden form field."""
    create_user(mail_app, "ada@example.com")
    token = mailed_reset_token(mail_client, smtp, "ada@example.com")

    response = mail_client.get(f"/reset-password?token={token}")

    assert response.status_code == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    body = text(response)
    assert body.count(token) == 1
    assert hidden_token(body) == token
    assert 'autocomplete="new-password"' in input_tag(body, "new_password")


def test_reset_form_sets_the_password_and_redirects_to_login(mail_app, mail_client, smtp):
    """RS-1, RS-3: 303 to /login with a flash; only the new password logs in afterwards."""
    create_user(mail_app, "ada@example.com")
    token = mailed_reset_token(mail_client, smtp, "ada@example.com")

    response = submit(
        mail_client,
        "/reset-password",
        {"token": token, "new_password": NEW_PASSWORD},
        page=f"/reset-password?token={token}",
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/login"
    assert "password is changed" in notice(text(mail_client.get("/login")))
    refused = form_login(mail_client, "ada@example.com")
    assert refused.status_code == 401
    assert alert(text(refused))
    assert form_login(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 303


def test_reset_form_with_a_bad_token_shows_the_error(mail_app, mail_client):
    """RS-1: an unknown token re-renders the form with the error; nothing changes."""
    create_user(mail_app, "ada@example.com")

    response = submit(
        mail_client,
        "/reset-password",
        {"token": "not-a-real-token", "new_password": NEW_PASSWORD},
        page="/reset-password?token=not-a-real-token",
    )

    assert response.status_code == 400
    body = text(response)
    assert "invalid, used or expired" in alert(body)
    assert input_tag(body, "new_password")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert form_login(mail_client, "ada@example.com").status_code == 303


# Verify page (EV-1)


def test_verify_page_get_changes_nothing_and_its_post_verifies(mail_app, mail_client, smtp):
    """EV-1, WB-2: GET shows a button (no-referrer, token only in the form) and changes
    nothing; the POST verifies and lands on / with a flash."""
    assert form_signup(mail_client, "ada@example.com").status_code == 303
    token = mailed_link(wait_for_mail(smtp, "ada@example.com")[0], "/verify-email")[1]

    page = mail_client.get(f"/verify-email?token={token}")

    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert text(page).count(token) == 1
    assert hidden_token(text(page)) == token
    assert not email_verified(mail_app, "ada@example.com")

    response = submit(
        mail_client, "/verify-email", {"token": token}, page=f"/verify-email?token={token}"
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert "confirmed" in notice(text(mail_client.get("/")))
    assert email_verified(mail_app, "ada@example.com")


# CSRF (WB-1)


def test_recovery_forms_without_csrf_token_are_400_and_change_nothing(mail_app, mail_client, smtp):
    """WB-1: forgot, reset and verify POSTs without csrf_token are refused before they run."""
    assert form_signup(mail_client, "ada@example.com").status_code == 303
    verify_token = mailed_link(wait_for_mail(smtp, "ada@example.com")[0], "/verify-email")[1]
    reset_token = mailed_reset_token(mail_client, smtp, "ada@example.com", count=2)

    forgot = mail_client.post("/forgot-password", data={"email": "ada@example.com"})
    reset = mail_client.post(
        "/reset-password", data={"token": reset_token, "new_password": NEW_PASSWORD}
    )
    verify = mail_client.post("/verify-email", data={"token": verify_token})

    for response in (forgot, reset, verify):
        assert response.status_code == 400
        assert CSRF_MESSAGE in text(response)
    assert len(outbox_rows(mail_app, "password_reset")) == 1
    assert not email_verified(mail_app, "ada@example.com")
    assert outbox_rows(mail_app, "password_changed") == []
    # The tokens are unspent: the real forms still work with them.
    verified = submit(
        mail_client,
        "/verify-email",
        {"token": verify_token},
        page=f"/verify-email?token={verify_token}",
    )
    assert verified.status_code == 303
    reset_ok = submit(
        mail_client,
        "/reset-password",
        {"token": reset_token, "new_password": NEW_PASSWORD},
        page=f"/reset-password?token={reset_token}",
    )
    assert reset_ok.status_code == 303
