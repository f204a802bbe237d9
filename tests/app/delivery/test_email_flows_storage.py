"""Mails that carry one-time links, delivered to a real SMTP server through the outbox: the set-up
these tests share, and why, is email_flows.py's docstring.

This part: link tokens in storage and secrets (CS-2, AU-2), and notices (RS-3)."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask

from authapp.delivery import outbox
from authapp.models import AuditEvent, OneTimeToken, OutboxMessage
from authapp.platform.extensions import db
from authapp.security import secretbox
from tests.app.delivery.conftest import mailed_link, wait_for_mail
from tests.app.delivery.email_flows import (
    NEW_PASSWORD,
    all_delivered,
    create_user,
    forgot,
    log_in,
    mail_rows,
    reset_token,
    sign_up,
    verify_token,
)
from tests.conftest import PASSWORD, auth_header
from tests.servers import Mailbox, wait_for

# Storage and secrets (CS-2, AU-2)


def test_link_tokens_are_stored_only_as_sha256(mail_app, mail_client, smtp):
    """CS-2, RS-2: no column of one_time_tokens holds the raw token; token_hash is its SHA-256;
    tokens carry at least 256 bits (43 url-safe characters)."""
    sign_up(mail_client, "ada@example.com")
    tokens = [
        verify_token(smtp, "ada@example.com"),
        reset_token(mail_client, smtp, "ada@example.com", count=2),
    ]

    with mail_app.app_context():
        rows = db.session.execute(sa.select(OneTimeToken.__table__)).mappings().all()

    assert len(rows) == 2
    hashes = {row["token_hash"] for row in rows}
    for token in tokens:
        assert len(token) >= 43
        assert hashlib.sha256(token.encode()).hexdigest() in hashes
        for row in rows:
            assert all(token not in str(value) for value in row.values()), row


def test_delivered_mail_leaves_no_link_in_outbox_or_audit(mail_app, mail_client, smtp):
    """AU-2: once sent, no outbox payload holds a link or token; the audit log never did."""
    sign_up(mail_client, "ada@example.com")
    secrets = [*mailed_link(wait_for_mail(smtp, "ada@example.com")[0], "/verify-email")]
    assert forgot(mail_client, "ada@example.com").status_code == 202
    secrets += mailed_link(wait_for_mail(smtp, "ada@example.com", 2)[1], "/reset-password")

    wait_for(lambda: all_delivered(mail_app))

    rows = mail_rows(mail_app)
    assert {row.payload["template"] for row in rows} == {"verify_email", "password_reset"}
    assert {row.status for row in rows} == {"sent"}
    with mail_app.app_context():
        audit = db.session.execute(sa.select(AuditEvent.__table__)).mappings().all()
    assert audit
    for secret in secrets:
        for row in rows:
            assert secret not in json.dumps(row.payload), row.payload
        for event in audit:
            assert secret not in json.dumps(dict(event), default=str), dict(event)


SMTP_DOWN = "smtp://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def pending_mails(app: Flask) -> list[OutboxMessage]:
    """Once each has been tried and refused at least once: its attempt has ended (an error
    recorded), not merely begun (attempts counts a claim, before the mail is composed)."""
    return wait_for(
        lambda: (
            (rows := mail_rows(app))
            and all(row.attempts >= 1 and row.last_error is not None for row in rows)
            and rows
        )
    )


@pytest.mark.config(SMTP_URL=SMTP_DOWN)
def test_links_waiting_for_smtp_are_encrypted_at_rest(app, client):
    """CS-2: while SMTP is down, a pending verify or reset mail holds its link only sealed with
    DATA_ENCRYPTION_KEY; the sealed link is the one whose token the database knows by hash."""
    sign_up(client, "ada@example.com")
    assert forgot(client, "ada@example.com").status_code == 202

    rows = pending_mails(app)

    assert {row.payload["template"] for row in rows} == {"verify_email", "password_reset"}
    with app.app_context():
        hashes = set(db.session.scalars(sa.select(OneTimeToken.token_hash)))
        for row in rows:
            assert row.status == "pending"
            assert "token=" not in json.dumps(row.payload), row.payload
            link = json.loads(secretbox.open_sealed(row.payload["secrets"]))["link"]
            token = link.split("?token=")[1]
            assert hashlib.sha256(token.encode()).hexdigest() in hashes


@pytest.mark.config(SMTP_URL=SMTP_DOWN)
def test_a_link_sealed_under_another_key_is_dead_at_once(app, client):
    """A DATA_ENCRYPTION_KEY changed under pending mail: no attempt can open it, so it is dead
    (and its sealed secrets wiped) instead of retried for hours."""
    sign_up(client, "ada@example.com")
    [row] = pending_mails(app)
    with app.app_context():
        other = Fernet(Fernet.generate_key()).encrypt(b'{"link": "x"}').decode()
        stored = db.session.get(OutboxMessage, row.id)
        stored.payload = {**stored.payload, "secrets": other}
        db.session.commit()

        assert outbox.deliver(row.id, force=True) == "dead"
        dead = db.session.get(OutboxMessage, row.id)
        assert "secrets" not in dead.payload
        assert "DATA_ENCRYPTION_KEY" in (dead.last_error or "")


# Notices (RS-3)


def test_password_change_in_settings_mails_the_owner(mail_app, mail_client, smtp):
    """RS-3: POST /settings/password sends a password_changed mail."""
    create_user(mail_app, "ada@example.com")
    access = log_in(mail_client, "ada@example.com").json["access_token"]

    response = mail_client.post(
        "/api/v1/settings/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth_header(access),
    )

    assert response.status_code == 204
    [message] = wait_for_mail(smtp, "ada@example.com")
    assert message["Subject"] == "Your password was changed"
    assert "changed" in Mailbox.text(message)


def test_login_from_a_new_user_agent_mails_a_notice_once(mail_app, mail_client, smtp):
    """A login from a User-Agent the account never used (after an earlier login) mails
    new_device_login; the same User-Agent again does not."""
    create_user(mail_app, "ada@example.com")
    assert log_in(mail_client, "ada@example.com", user_agent="Browser A/1").status_code == 200
    assert mail_rows(mail_app, "new_device_login") == []  # the first login ever is not news

    assert log_in(mail_client, "ada@example.com", user_agent="Browser B/2").status_code == 200
    [message] = wait_for_mail(smtp, "ada@example.com")
    assert message["Subject"] == "New login to your account"
    assert "Browser B/2" in Mailbox.text(message)

    assert log_in(mail_client, "ada@example.com", user_agent="Browser B/2").status_code == 200
    assert log_in(mail_client, "ada@example.com", user_agent="Browser A/1").status_code == 200
    assert len(mail_rows(mail_app, "new_device_login")) == 1


def test_without_smtp_url_signup_succeeds_and_the_mail_is_only_logged(app, client):
    """Development needs no SMTP server: sign-up is 201 and the row ends `sent`."""
    assert not app.config["SMTP_URL"]

    sign_up(client, "ada@example.com")

    [row] = wait_for(lambda: [r for r in mail_rows(app, "verify_email") if r.status != "pending"])
    assert row.status == "sent"
    assert row.attempts == 1
    assert row.last_error is None
    assert "secrets" not in row.payload
