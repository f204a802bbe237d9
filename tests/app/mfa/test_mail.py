"""The "Two-factor authentication settings changed" mail over real SMTP (tests/servers.py): sent
to the account when MFA goes on and when it goes off, saying which, and never carrying the key
or a code (MF-1, MF-3, AC-5). Nothing is mailed for a set-up that is only pending or refused."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth.services import accounts
from authapp.models import OutboxMessage
from authapp.platform.extensions import db
from tests.app.delivery import conftest as outbox_fixtures
from tests.app.delivery.conftest import PUBLIC_BASE_URL
from tests.app.mfa.conftest import Account, code_at, shown_secret, wrong_code
from tests.app.web.conftest import form_login, submit
from tests.conftest import PASSWORD
from tests.servers import Mailbox, SmtpServer, wait_for

SUBJECT = "Two-factor authentication settings changed"
smtp = outbox_fixtures.smtp
mail_app = outbox_fixtures.mail_app
mail_client = outbox_fixtures.mail_client


def account_on(app: Flask, client: FlaskClient, email: str = "ada@example.com") -> Account:
    """An account created by the operator (verified: no confirmation mail) and logged in once
    (its first login: no new-device mail), driven through the JSON API."""
    with app.app_context():
        user_id = accounts.create_user(email=email, password=PASSWORD, full_name="Ada").id
    user = {"id": user_id, "email": email, "password": PASSWORD}
    tokens = client.post("/api/v1/auth/login", json={"login": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.json
    return Account(client, user, tokens.json)


def mfa_mails_queued(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        payloads = db.session.scalars(sa.select(OutboxMessage.payload)).all()
    return [payload for payload in payloads if payload.get("template") == "mfa_changed"]


def readable(message: EmailMessage) -> str:
    """What a reader sees: the subject and every part, decoded (text and HTML)."""
    parts = [str(message["Subject"])]
    parts += [str(part.get_content()) for part in message.walk() if not part.is_multipart()]
    return "\n".join(parts)


def assert_free_of(message: EmailMessage, *secrets: str) -> None:
    """Neither the key, nor a 6-digit code as a number of its own, nor a recovery code however
    it is grouped."""
    body = readable(message)
    for secret in secrets:
        if secret.isdigit():
            assert re.search(rf"(?<!\d){secret}(?!\d)", body) is None, secret
        else:
            assert secret not in body, secret
            assert secret.replace("-", "") not in re.sub(r"[\s-]", "", body), secret


def mfa_mails(smtp: SmtpServer, address: str, count: int) -> list[EmailMessage]:
    """The first `count` MFA mails to `address`, once they have arrived (10 s at most)."""

    def arrived() -> list[EmailMessage]:
        found = [m for m in smtp.mailbox.to(address) if m["Subject"] == SUBJECT]
        return found[:count] if len(found) >= count else []

    return wait_for(arrived)


def test_turning_mfa_on_and_off_mails_the_account_each_time(mail_app, mail_client, smtp):
    account = account_on(mail_app, mail_client)
    assert account.start().status_code == 200
    assert account.secret is not None
    confirm_code = code_at(account.secret)
    assert account.confirm(confirm_code).status_code == 200

    [on] = mfa_mails(smtp, "ada@example.com", 1)

    assert on["Subject"] == SUBJECT
    assert on["To"] == "ada@example.com"
    text = Mailbox.text(on)
    assert "Two-factor authentication for your authapp account was turned on" in text
    assert "turned off" not in text
    assert f"{PUBLIC_BASE_URL}/forgot-password" in text
    assert f"{PUBLIC_BASE_URL}/settings/security" in text
    assert_free_of(on, account.secret, confirm_code, *account.recovery_codes)

    off_code = code_at(account.secret, +1)
    assert account.disable(off_code).status_code == 204

    off = mfa_mails(smtp, "ada@example.com", 2)[1]

    assert off["Subject"] == SUBJECT
    assert off["To"] == "ada@example.com"
    text = Mailbox.text(off)
    assert "Two-factor authentication for your authapp account was turned off" in text
    assert "turned on" not in text
    assert "recovery codes" not in text
    assert_free_of(off, account.secret, confirm_code, off_code, *account.recovery_codes)
    assert [message["To"] for message in smtp.mailbox.messages] == ["ada@example.com"] * 2
    assert [message["Subject"] for message in smtp.mailbox.messages] == [SUBJECT] * 2


def test_the_mail_s_html_part_says_the_same(mail_app, mail_client, smtp):
    account = account_on(mail_app, mail_client)
    account.enrol()
    assert account.secret is not None

    [on] = mfa_mails(smtp, "ada@example.com", 1)

    html_part = on.get_body(("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    assert "was turned on" in html
    assert_free_of(on, account.secret, *account.recovery_codes)


def test_turning_off_with_a_recovery_code_mails_without_it(mail_app, mail_client, smtp):
    account = account_on(mail_app, mail_client)
    account.enrol()
    code = account.recovery_codes[5]

    assert account.disable(code).status_code == 204

    off = mfa_mails(smtp, "ada@example.com", 2)[1]
    assert "was turned off" in Mailbox.text(off)
    assert_free_of(off, code)


def test_a_pending_or_refused_change_mails_nothing(mail_app, mail_client, smtp):
    """Only a change that happened is announced: starting the set-up, a wrong confirmation
    code and a refused disable queue no mail."""
    account = account_on(mail_app, mail_client)
    assert account.start().status_code == 200
    assert account.secret is not None
    wrong = wrong_code(account.secret)
    assert account.confirm(wrong).status_code == 422
    assert mfa_mails_queued(mail_app) == []

    assert account.confirm(code_at(account.secret)).status_code == 200
    assert account.disable(wrong).status_code == 422
    assert (
        account.disable(code_at(account.secret, +1), password="not the password").status_code == 422
    )

    assert [payload["context"]["enabled"] for payload in mfa_mails_queued(mail_app)] == [True]
    mfa_mails(smtp, "ada@example.com", 1)


def test_the_settings_page_mails_the_same(mail_app, mail_client, smtp):
    """The browser forms go through the same service: one mail on, one off."""
    account = account_on(mail_app, mail_client)
    browser = mail_app.test_client()
    assert form_login(browser, "ada@example.com").status_code == 303
    started = submit(
        browser, "/settings/security/totp", {"password": PASSWORD}, page="/settings/security"
    )
    secret = shown_secret(started.get_data(as_text=True))
    confirmed = submit(
        browser,
        "/settings/security/totp/confirm",
        {"code": code_at(secret)},
        page="/settings/security",
    )
    assert confirmed.status_code == 200
    turned_off = submit(
        browser,
        "/settings/security/totp/disable",
        {"password": PASSWORD, "code": code_at(secret, +1)},
        page="/settings/security",
    )
    assert turned_off.status_code == 303

    on, off = mfa_mails(smtp, account.user["email"], 2)

    said = {
        ("was turned on" in text, "was turned off" in text) for text in map(Mailbox.text, (on, off))
    }
    assert said == {(True, False), (False, True)}
    for message in (on, off):
        assert message["Subject"] == SUBJECT
        assert_free_of(message, secret)
