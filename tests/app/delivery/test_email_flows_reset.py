"""Mails that carry one-time links, delivered to a real SMTP server through the outbox: the set-up
these tests share, and why, is email_flows.py's docstring.

This part: password reset (RS-1, RS-3, SE-3, F10)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from authapp.models import OneTimeToken
from authapp.platform.extensions import db
from tests.app.delivery.conftest import PUBLIC_BASE_URL
from tests.app.delivery.email_flows import (
    AUTH,
    HOUR,
    NEW_PASSWORD,
    create_user,
    email_verified_in_db,
    error_code,
    log_in,
    me,
    reset,
    reset_token,
    set_clock,
    sign_up,
    verify,
    verify_token,
)
from tests.conftest import PASSWORD, auth_header
from tests.servers import Mailbox, wait_for

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
