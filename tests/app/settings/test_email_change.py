"""Changing one's email address (EC-1): the request in the settings (the password checked, a
link to the new address, a notice to the old one, no change yet, no enumeration), and the
confirmation by the mailed link (the address moves, every session ends, the old address is
told; reused, expired, voided or taken links refused)."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from authapp.auth.services.email_change import masked
from authapp.models import OneTimeToken, User
from authapp.platform.extensions import db
from authapp.security.digests import sha256_hex
from tests.app.settings.account import (
    ME,
    NEW_PASSWORD,
    PASSWORD_ROUTE,
    REFRESH,
    audit_events,
    log_in_with,
)
from tests.app.settings.conftest import SETTINGS
from tests.conftest import PASSWORD, auth_header

EMAIL_ROUTE = f"{SETTINGS}/email"
CONFIRM = "/api/v1/auth/email/confirm-change"
LINK = re.compile(r"(https?://\S+)/confirm-email-change\?token=([A-Za-z0-9_-]+)")
CONFIRM_SUBJECT = "Confirm your new email address"
REQUESTED_SUBJECT = "A change of your email address was requested"
CHANGED_SUBJECT = "Your email address was changed"
DAY = 86400


def ask(client, pair, new_email, password=PASSWORD):
    body = {"new_email": new_email, "password": password}
    return client.post(EMAIL_ROUTE, json=body, headers=auth_header(pair["access_token"]))


def confirm(client, token):
    return client.post(CONFIRM, json={"token": token})


def mailed_token(mailbox, address, count=1):
    """The token of the `count`-th confirmation mail to `address`."""
    messages = [m for m in mailbox.to(address) if m["Subject"] == CONFIRM_SUBJECT]
    assert len(messages) >= count, [m["Subject"] for m in mailbox.to(address)]
    match = LINK.search(mailbox.text(messages[count - 1]))
    assert match is not None, mailbox.text(messages[count - 1])
    return match.group(2)


def without_token(text):
    return re.sub(r"token=[A-Za-z0-9_-]+", "token=", text)


def error_code(response):
    return response.json["error"]["code"]


def account_email(app, user_id):
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.email, user.email_normalized


def set_clock(client, seconds):
    assert client.post("/_testing/clock", json={"offset_seconds": seconds}).status_code == 200


@pytest.fixture
def ada(make_user, login):
    user = make_user(email="ada@example.com")
    return user | {"pair": login(user)}


# The request


def test_a_request_changes_nothing_yet_and_mails_both_addresses(app, client, ada, mailbox):
    response = ask(client, ada["pair"], "Nora@Example.net")

    assert response.status_code == 202
    assert response.json["message"]
    assert account_email(app, ada["id"]) == ("ada@example.com", "ada@example.com")
    assert log_in_with(client, "nora@example.net", PASSWORD).status_code == 401
    assert log_in_with(client, "ada@example.com", PASSWORD).status_code == 200
    [link_mail] = mailbox.to("nora@example.net")
    assert link_mail["Subject"] == CONFIRM_SUBJECT
    [notice] = mailbox.to("ada@example.com")
    assert notice["Subject"] == REQUESTED_SUBJECT
    assert "N***@Example.net" in mailbox.text(notice)
    assert "nora" not in mailbox.text(notice).lower()  # half hidden, and no link to use
    assert "confirm-email-change" not in mailbox.text(notice)


def test_the_link_carries_only_the_token_and_the_row_its_digest_and_address(
    app, client, ada, mailbox
):
    """CS-2, RS-2: the address waits in the token's row, never in the link."""
    assert ask(client, ada["pair"], "nora@example.net").status_code == 202

    token = mailed_token(mailbox, "nora@example.net")
    [link] = [x for x in mailbox.links(mailbox.to("nora@example.net")[0]) if token in x]
    assert link.endswith(f"/confirm-email-change?token={token}")
    assert "nora" not in link
    with app.app_context():
        [row] = db.session.scalars(
            sa.select(OneTimeToken).where(OneTimeToken.purpose == "email_change")
        ).all()
    assert (row.user_id, row.new_email) == (ada["id"], "nora@example.net")
    assert row.token_hash == sha256_hex(token)


def test_a_wrong_password_is_422_like_the_password_change_and_sends_nothing(
    app, client, ada, mailbox
):
    """PW-6, AU-1: the same answer as a wrong current password on POST /settings/password."""
    response = ask(client, ada["pair"], "nora@example.net", password="not my password, sorry")
    password_change = client.post(
        PASSWORD_ROUTE,
        json={"current_password": "not my password, sorry", "new_password": NEW_PASSWORD},
        headers=auth_header(ada["pair"]["access_token"]),
    )

    assert response.status_code == password_change.status_code == 422
    error, reference = response.json["error"], password_change.json["error"]
    assert (error["code"], error["message"]) == (reference["code"], reference["message"])
    assert error["fields"] == {"password": reference["fields"]["current_password"]}
    assert mailbox.to("nora@example.net") == []
    [event] = audit_events(app, "email.change_failed")
    assert event["user_id"] == ada["id"]
    assert "sorry" not in json.dumps(event["data"])


@pytest.mark.parametrize(
    "new_email",
    [
        "\ud800@example.com",  # a lone surrogate
        "ada\x00@example.com",
        "ada\u0007@example.com",
        "ada@exa\nmple.com",
        "a" * 10_000 + "@example.com",
        12345,
        None,
        ["ada@example.net"],
        "not an address",
    ],
    ids=["surrogate", "nul", "bell", "newline", "10k", "number", "null", "list", "no-at"],
)
def test_hostile_addresses_are_422_and_change_nothing(app, client, ada, mailbox, new_email):
    """IN-2: the sign-up's rules for an email, never a 500."""
    body = json.dumps({"new_email": new_email, "password": PASSWORD})

    response = client.post(
        EMAIL_ROUTE,
        data=body,
        content_type="application/json",
        headers=auth_header(ada["pair"]["access_token"]),
    )

    assert response.status_code == 422, response.get_data(as_text=True)
    assert list(response.json["error"]["fields"]) == ["new_email"]
    assert len(mailbox) == 0
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(OneTimeToken)) == 0


def test_the_current_address_is_422(client, ada, mailbox):
    response = ask(client, ada["pair"], " ADA@example.com ")

    assert response.status_code == 422
    assert list(response.json["error"]["fields"]) == ["new_email"]
    assert len(mailbox) == 0


def test_without_a_login_it_is_401_before_the_body_is_read(client, mailbox):
    response = client.post(EMAIL_ROUTE, json={"new_email": 5})

    assert (response.status_code, error_code(response)) == (401, "missing_token")
    assert len(mailbox) == 0


# The confirmation


def test_confirming_moves_the_login_to_the_new_address_and_ends_every_session(app, client, mailbox):
    """SE-3: a new login identifier ends every session; the new address counts as confirmed."""
    signed_up = client.post(
        "/api/v1/auth/signup", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert signed_up.status_code == 201
    first = signed_up.json
    second = log_in_with(client, "ada@example.com", PASSWORD).json
    assert first["user"]["email_verified"] is False
    assert ask(client, second, "Nora@Example.net").status_code == 202
    token = mailed_token(mailbox, "nora@example.net")

    response = confirm(client, token)

    assert response.status_code == 204
    for pair in (first, second):
        me = client.get(ME, headers=auth_header(pair["access_token"]))
        assert (me.status_code, error_code(me)) == (401, "token_revoked")
        assert (
            client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401
        )
    old = log_in_with(client, "ada@example.com", PASSWORD)
    assert (old.status_code, error_code(old)) == (401, "invalid_credentials")
    new = log_in_with(client, "NORA@example.net", PASSWORD)
    assert new.status_code == 200
    assert new.json["user"]["email"] == "Nora@Example.net"
    assert new.json["user"]["email_verified"] is True
    [changed] = [m for m in mailbox.to("ada@example.com") if m["Subject"] == CHANGED_SUBJECT]
    assert "N***@Example.net" in mailbox.text(changed)
    [event] = audit_events(app, "email.changed")
    assert event["data"]["old_email"] == "ada@example.com"
    assert event["data"]["new_email"] == "Nora@Example.net"
    assert event["data"]["sessions_revoked"] == 2


def test_a_link_works_once(client, ada, mailbox):
    assert ask(client, ada["pair"], "nora@example.net").status_code == 202
    token = mailed_token(mailbox, "nora@example.net")
    assert confirm(client, token).status_code == 204

    again = confirm(client, token)

    assert (again.status_code, error_code(again)) == (400, "invalid_token")


@pytest.mark.parametrize(
    "token",
    ["x" * 43, "not-a-token", "\ud800" * 43, "A" * 256],
    ids=["unknown", "short", "surrogates", "long"],
)
def test_unknown_or_malformed_tokens_are_400_invalid_token(client, token):
    response = client.post(
        CONFIRM, data=json.dumps({"token": token}), content_type="application/json"
    )

    assert (response.status_code, error_code(response)) == (400, "invalid_token")


def test_a_link_expires_after_seven_days(app, client, make_user, login, mailbox):
    """Like the verification link (VERIFY_TOKEN_TTL)."""
    early, late = make_user(email="early@example.com"), make_user(email="late@example.com")
    assert ask(client, login(early), "early@example.net").status_code == 202
    assert ask(client, login(late), "late@example.net").status_code == 202
    early_token = mailed_token(mailbox, "early@example.net")
    late_token = mailed_token(mailbox, "late@example.net")

    set_clock(client, 7 * DAY - 60)
    assert confirm(client, early_token).status_code == 204
    set_clock(client, 7 * DAY + 1)
    response = confirm(client, late_token)

    assert (response.status_code, error_code(response)) == (400, "invalid_token")
    assert account_email(app, early["id"])[0] == "early@example.net"
    assert account_email(app, late["id"])[0] == "late@example.com"


def test_a_second_request_voids_the_first_link(app, client, ada, mailbox):
    assert ask(client, ada["pair"], "first@example.net").status_code == 202
    assert ask(client, ada["pair"], "second@example.net").status_code == 202
    first = mailed_token(mailbox, "first@example.net")
    second = mailed_token(mailbox, "second@example.net")

    voided = confirm(client, first)

    assert (voided.status_code, error_code(voided)) == (400, "invalid_token")
    assert confirm(client, second).status_code == 204
    assert account_email(app, ada["id"]) == ("second@example.net", "second@example.net")


def test_a_password_change_voids_a_pending_change(app, client, ada, mailbox):
    """Whoever asked knew the old password: a new one cancels what they asked for."""
    assert ask(client, ada["pair"], "nora@example.net").status_code == 202
    token = mailed_token(mailbox, "nora@example.net")
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    headers = auth_header(ada["pair"]["access_token"])
    assert client.post(PASSWORD_ROUTE, json=body, headers=headers).status_code == 204

    response = confirm(client, token)

    assert (response.status_code, error_code(response)) == (400, "invalid_token")
    assert account_email(app, ada["id"])[0] == "ada@example.com"


def test_the_change_voids_the_accounts_other_mailed_links(app, client, ada, mailbox):
    """Reset links mailed to the old address stop working once it is no longer the login."""
    assert (
        client.post("/api/v1/auth/password/forgot", json={"email": ada["email"]}).status_code == 202
    )
    [reset] = [m for m in mailbox.to(ada["email"]) if m["Subject"] == "Reset your password"]
    reset_token = re.search(r"reset-password\?token=([A-Za-z0-9_-]+)", mailbox.text(reset))[1]
    assert ask(client, ada["pair"], "nora@example.net").status_code == 202
    assert confirm(client, mailed_token(mailbox, "nora@example.net")).status_code == 204

    response = client.post(
        "/api/v1/auth/password/reset", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )

    assert (response.status_code, error_code(response)) == (400, "invalid_token")


# No enumeration; the unique index decides at confirmation


def test_a_taken_address_is_answered_and_mailed_alike_then_refused_at_confirmation(
    app, client, ada, make_user, mailbox, count_sql
):
    grace = make_user(email="grace@example.com")
    assert ask(client, ada["pair"], "warm@example.net").status_code == 202  # first-use caches

    with count_sql() as free_statements:
        free = ask(client, ada["pair"], "free@example.net")
    with count_sql() as taken_statements:
        taken = ask(client, ada["pair"], "GRACE@Example.com")

    assert free.status_code == taken.status_code == 202
    assert free.get_data() == taken.get_data()
    assert free_statements == taken_statements  # the new address is never looked up
    [to_grace] = [m for m in mailbox.to("grace@example.com") if m["Subject"] == CONFIRM_SUBJECT]
    [to_free] = mailbox.to("free@example.net")
    assert without_token(mailbox.text(to_grace)) == without_token(mailbox.text(to_free))
    assert len(mailbox.to("grace@example.com")) == 1  # grace hears nothing else
    response = confirm(client, mailed_token(mailbox, "grace@example.com"))

    assert (response.status_code, error_code(response)) == (409, "email_taken")
    assert account_email(app, ada["id"])[0] == "ada@example.com"
    assert account_email(app, grace["id"])[0] == "grace@example.com"


def test_an_address_taken_after_the_request_is_409_and_the_link_waits(app, client, ada, mailbox):
    assert ask(client, ada["pair"], "nora@example.net").status_code == 202
    token = mailed_token(mailbox, "nora@example.net")
    signup = {"email": " Nora@EXAMPLE.net ", "password": PASSWORD}
    nora = client.post("/api/v1/auth/signup", json=signup)
    assert nora.status_code == 201

    response = confirm(client, token)

    assert (response.status_code, error_code(response)) == (409, "email_taken")
    assert account_email(app, ada["id"])[0] == "ada@example.com"
    assert log_in_with(client, "ada@example.com", PASSWORD).status_code == 200
    # The link is not spent by the refusal: once the address is free again, it works.
    assert ask(client, nora.json, "nora.elsewhere@example.net").status_code == 202
    moved = mailed_token(mailbox, "nora.elsewhere@example.net")
    assert confirm(client, moved).status_code == 204
    assert confirm(client, token).status_code == 204
    assert account_email(app, ada["id"])[1] == "nora@example.net"


def test_masked_keeps_the_first_letter_and_the_domain():
    assert masked("nora@example.net") == "n***@example.net"
    assert masked("n@example.net") == "n***@example.net"
