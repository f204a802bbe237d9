"""Mails that carry one-time links, delivered to a real SMTP server through the outbox: the set-up
these tests share, and why, is email_flows.py's docstring.

This part: address verification (EV-1, RS-2) and forgotten passwords (EN-3)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from authapp.delivery import outbox
from authapp.models import OutboxMessage, User
from authapp.platform.extensions import db
from tests.app.delivery.conftest import PUBLIC_BASE_URL, mailed_link, wait_for_mail
from tests.app.delivery.email_flows import (
    AUTH,
    DAY,
    all_delivered,
    create_user,
    email_verified_in_db,
    error_code,
    forgot,
    mail_rows,
    me,
    set_clock,
    sign_up,
    verify,
    verify_token,
)
from tests.conftest import auth_header
from tests.servers import Mailbox, wait_for

SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


# Verification (EV-1, RS-2)


def test_signup_mails_a_verify_link_built_from_public_base_url(mail_app, mail_client, smtp):
    """RS-2: the link comes from PUBLIC_BASE_URL even when Host and X-Forwarded-Host lie."""
    sign_up(mail_client, "ada@example.com", **SPOOFED)

    [message] = wait_for_mail(smtp, "ada@example.com")
    link, token = mailed_link(message, "/verify-email")
    assert link == f"{PUBLIC_BASE_URL}/verify-email?token={token}"
    html = message.get_body(("html",))
    assert html is not None
    assert "evil.example" not in Mailbox.text(message) + str(html.get_content())
    [row] = mail_rows(mail_app, "verify_email")
    assert message["X-Authapp-Delivery"] == row.id  # the stable delivery id


def test_verify_token_sets_email_verified_and_works_once(mail_client, smtp):
    """EV-1: 204, /me says verified; the same token again is 400 invalid_token."""
    access = sign_up(mail_client, "ada@example.com")["access_token"]
    assert me(mail_client, access).json["user"]["email_verified"] is False
    token = verify_token(smtp, "ada@example.com")

    response = verify(mail_client, token)

    assert response.status_code == 204
    assert me(mail_client, access).json["user"]["email_verified"] is True
    again = verify(mail_client, token)
    assert again.status_code == 400
    assert error_code(again) == "invalid_token"


def test_verify_token_expires_after_seven_days(mail_app, mail_client, smtp):
    """EV-1: valid just before VERIFY_TOKEN_TTL (7 days), 400 one second after it."""
    early = sign_up(mail_client, "early@example.com")["user"]["id"]
    late = sign_up(mail_client, "late@example.com")["user"]["id"]
    early_token = verify_token(smtp, "early@example.com")
    late_token = verify_token(smtp, "late@example.com")

    set_clock(mail_client, 7 * DAY - 60)
    assert verify(mail_client, early_token).status_code == 204
    set_clock(mail_client, 7 * DAY + 1)
    response = verify(mail_client, late_token)

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"
    assert email_verified_in_db(mail_app, early)
    assert not email_verified_in_db(mail_app, late)


def test_resend_mails_a_new_token_that_works(mail_client, smtp):
    """EV-1: resend answers 202 and mails a second, different token, which verifies."""
    access = sign_up(mail_client, "ada@example.com")["access_token"]
    first = verify_token(smtp, "ada@example.com")

    response = mail_client.post(f"{AUTH}/email/resend", headers=auth_header(access))

    assert response.status_code == 202
    second = verify_token(smtp, "ada@example.com", count=2)
    assert second != first
    assert verify(mail_client, second).status_code == 204
    assert me(mail_client, access).json["user"]["email_verified"] is True


def test_resend_for_a_verified_address_answers_202_and_mails_nothing(mail_app, mail_client, smtp):
    """EV-1: nothing to confirm, so no new token and no mail; the answer does not tell."""
    access = sign_up(mail_client, "ada@example.com")["access_token"]
    assert verify(mail_client, verify_token(smtp, "ada@example.com")).status_code == 204
    wait_for(lambda: all_delivered(mail_app))

    response = mail_client.post(f"{AUTH}/email/resend", headers=auth_header(access))

    assert response.status_code == 202
    # The outbox row would be written in the request's own transaction: none means no mail.
    assert len(mail_rows(mail_app, "verify_email")) == 1
    assert len(smtp.mailbox.to("ada@example.com")) == 1


# Forgot password (EN-3)


def test_forgot_password_answers_alike_and_mails_only_the_active_account(
    mail_app, mail_client, smtp
):
    """EN-3: same status, Content-Type and bytes for a known, an unknown and a disabled email;
    only the known active account gets a reset mail, and no account changes."""
    known = create_user(mail_app, "known@example.com")
    disabled = create_user(mail_app, "disabled@example.com")
    with mail_app.app_context():
        db.session.get(User, disabled).is_active = False
        db.session.commit()
    before = user_rows(mail_app)

    answers = [
        forgot(mail_client, email)
        for email in ("known@example.com", "nobody@example.com", "disabled@example.com")
    ]

    assert {a.status_code for a in answers} == {202}
    assert len({a.get_data() for a in answers}) == 1, [a.get_data() for a in answers]
    assert len({a.headers["Content-Type"] for a in answers}) == 1
    assert answers[0].json["message"]
    wait_for_mail(smtp, "known@example.com")
    wait_for(lambda: len(mail_rows(mail_app, "password_reset")) == 1 and all_delivered(mail_app))
    [row] = mail_rows(mail_app, "password_reset")  # the others named nobody: deleted
    assert row.payload["to"] == "known@example.com"
    assert row.payload["user_id"] == known
    assert smtp.mailbox.to("nobody@example.com") == []
    assert smtp.mailbox.to("disabled@example.com") == []
    assert user_rows(mail_app) == before


def test_forgot_password_takes_the_same_path_for_every_address(app, client, count_sql, monkeypatch):
    """EN-3: a known, an unknown and a disabled address cost the request the same SQL
    statements, the same outbox write (its secrets sealed alike) and the same hand-off to the
    pool; which account the address names is found there, after the answer."""
    create_user(app, "known@example.com")
    disabled = create_user(app, "disabled@example.com")
    with app.app_context():
        db.session.get(User, disabled).is_active = False
        db.session.commit()
    assert forgot(client, "warm@example.com").status_code == 202  # first-use caches aside
    wait_for(lambda: mail_rows(app) == [])
    handed: list[list[str]] = []
    monkeypatch.setattr(outbox, "dispatch", lambda ids: handed.append(list(ids)))

    statements, written = [], []
    for email in ("known@example.com", "nobody@example.com", "disabled@example.com"):
        with count_sql() as sent:
            assert forgot(client, email).status_code == 202
        statements.append(sent)
        with app.app_context():
            row = db.session.get(OutboxMessage, handed[-1][0])
            written.append(
                (row.kind, row.status, sorted(row.payload), type(row.payload["secrets"]))
            )

    assert statements[0] == statements[1] == statements[2], statements
    assert any(s.startswith("INSERT INTO outbox_messages") for s in statements[0])
    assert not any("FROM users" in s for s in statements[0])  # no account is looked up
    assert [len(ids) for ids in handed] == [1, 1, 1]
    assert written == [("email", "pending", ["secrets", "template"], str)] * 3
    with app.app_context():
        outcomes = [outbox.deliver(ids[0]) for ids in handed]
    assert outcomes == ["sent"] * 3
    [mail] = mail_rows(app)  # only the known, active account's request became a mail
    assert mail.payload["to"] == "known@example.com"


def user_rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context():
        return [
            tuple(row)
            for row in db.session.execute(sa.select(User.__table__).order_by(User.id)).all()
        ]
