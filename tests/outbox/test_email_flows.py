"""Mails that carry one-time links, delivered to a real SMTP server through the outbox: sign-up
verification and resend (EV-1), forgot and reset (EN-3, RS-1..3, F10), token storage (CS-2),
secrets wiped after delivery (AU-2), and the password-changed and new-device notices."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authapp.auth.services import accounts
from authapp.delivery import outbox
from authapp.models import AuditEvent, OneTimeToken, OutboxMessage, User
from authapp.platform.extensions import db
from authapp.security import secretbox
from tests.conftest import PASSWORD, auth_header
from tests.outbox.conftest import PUBLIC_BASE_URL, mailed_link, wait_for_mail
from tests.servers import Mailbox, SmtpServer, wait_for

AUTH = "/api/v1/auth"
NEW_PASSWORD = "another long passphrase nobody guesses"
SPOOFED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
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


# Reset (RS-1, RS-3, SE-3, F10)


def test_reset_revokes_every_session_and_only_the_new_password_works(mail_app, mail_client, smtp):
    """RS-1, RS-3, SE-3: 204 with no tokens, both sessions 401 token_revoked, the old password
    refused, the new one accepted, and a password-changed mail."""
    create_user(mail_app, "ada@example.com")
    first = log_in(mail_client, "ada@example.com").json
    second = log_in(mail_client, "ada@example.com").json
    token = reset_token(mail_client, smtp, "ada@example.com")

    response = reset(mail_client, token)

    assert response.status_code == 204
    assert response.get_data() == b""
    for pair in (first, second):
        revoked = me(mail_client, pair["access_token"])
        assert revoked.status_code == 401
        assert error_code(revoked) == "token_revoked"
        refresh = mail_client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refresh.status_code == 401
    old = log_in(mail_client, "ada@example.com")
    assert old.status_code == 401
    assert error_code(old) == "invalid_credentials"
    assert log_in(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 200
    changed = wait_for(
        lambda: [
            m
            for m in smtp.mailbox.to("ada@example.com")
            if m["Subject"] == "Your password was changed"
        ]
    )
    assert "reset" in Mailbox.text(changed[0])
    assert f"{PUBLIC_BASE_URL}/forgot-password" in Mailbox.text(changed[0])


def test_reset_token_works_once(mail_app, mail_client, smtp):
    """RS-1: the second use of a spent token is 400 invalid_token."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")
    assert reset(mail_client, token).status_code == 204

    again = reset(mail_client, token, "a third long passphrase nobody guesses")

    assert again.status_code == 400
    assert error_code(again) == "invalid_token"
    assert log_in(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 200


def test_a_reset_ends_every_other_reset_link_of_the_account(mail_app, mail_client, smtp):
    """RS-1: of two links in the mailbox, using one voids the other; another account's link
    keeps working."""
    create_user(mail_app, "ada@example.com")
    create_user(mail_app, "bob@example.com")
    older = reset_token(mail_client, smtp, "ada@example.com")
    newer = reset_token(mail_client, smtp, "ada@example.com", count=2)
    bobs = reset_token(mail_client, smtp, "bob@example.com")

    assert reset(mail_client, newer).status_code == 204
    stale = reset(mail_client, older, "a third long passphrase nobody guesses")

    assert stale.status_code == 400
    assert error_code(stale) == "invalid_token"
    assert log_in(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 200
    assert reset(mail_client, bobs).status_code == 204


def test_a_password_change_ends_the_reset_links_in_the_mailbox(mail_app, mail_client, smtp):
    """RS-1: a reset link asked for before a password change no longer sets a password."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")
    access = log_in(mail_client, "ada@example.com").json["access_token"]
    changed = mail_client.post(
        "/api/v1/settings/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth_header(access),
    )
    assert changed.status_code == 204, changed.json

    stale = reset(mail_client, token, "a third long passphrase nobody guesses")

    assert stale.status_code == 400
    assert error_code(stale) == "invalid_token"
    assert log_in(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 200


def test_reset_token_expires_after_one_hour(mail_app, mail_client, smtp):
    """RS-1: RESET_TOKEN_TTL is one hour; after it the token is 400 and nothing changes."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")

    set_clock(mail_client, HOUR + 1)
    response = reset(mail_client, token)

    assert response.status_code == 400
    assert error_code(response) == "invalid_token"
    assert log_in(mail_client, "ada@example.com").status_code == 200


def test_reset_token_works_just_before_the_hour(mail_app, mail_client, smtp):
    """RS-1: the other side of the expiry boundary."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")

    set_clock(mail_client, HOUR - 60)

    assert reset(mail_client, token).status_code == 204


def test_link_tokens_are_bound_to_their_purpose(mail_app, mail_client, smtp):
    """RS-1, EV-1: a verify token does not reset a password, a reset token does not verify an
    address, and the refused token keeps working for its own purpose."""
    user_id = sign_up(mail_client, "ada@example.com")["user"]["id"]
    verify_with = verify_token(smtp, "ada@example.com")
    reset_with = reset_token(mail_client, smtp, "ada@example.com", count=2)

    wrong_reset = reset(mail_client, verify_with)
    wrong_verify = verify(mail_client, reset_with)

    assert wrong_reset.status_code == 400
    assert error_code(wrong_reset) == "invalid_token"
    assert wrong_verify.status_code == 400
    assert error_code(wrong_verify) == "invalid_token"
    assert not email_verified_in_db(mail_app, user_id)
    assert log_in(mail_client, "ada@example.com").status_code == 200
    assert verify(mail_client, verify_with).status_code == 204
    assert reset(mail_client, reset_with).status_code == 204


def test_weak_new_password_is_422_and_the_token_stays_usable(mail_app, mail_client, smtp):
    """RS-1, PW-3: the policy refusal names new_password and does not spend the token."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")

    weak = reset(mail_client, token, "short")

    assert weak.status_code == 422
    assert "new_password" in weak.json["error"]["fields"]
    assert log_in(mail_client, "ada@example.com").status_code == 200
    assert reset(mail_client, token).status_code == 204
    assert log_in(mail_client, "ada@example.com", NEW_PASSWORD).status_code == 200


def test_twenty_concurrent_resets_with_one_token_succeed_once(mail_app, mail_client, smtp):
    """F10, RS-1: 20 clients redeem one token at the same moment; exactly one 204."""
    create_user(mail_app, "ada@example.com")
    token = reset_token(mail_client, smtp, "ada@example.com")
    clients = [mail_app.test_client() for _ in range(20)]
    barrier = threading.Barrier(len(clients))

    def attempt(index: int) -> int:
        barrier.wait(timeout=10)
        password = f"concurrent passphrase number {index} nobody guesses"
        return reset(clients[index], token, password).status_code

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        statuses = list(pool.map(attempt, range(len(clients))))

    assert sorted(statuses) == [204] + [400] * 19, statuses
    with mail_app.app_context():
        [used] = db.session.scalars(sa.select(OneTimeToken.used_at)).all()
    assert used is not None


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
