"""REQUIRE_VERIFIED_EMAIL (docs/api.md "Sign-up policy and verified email"): no session for an
account whose address is unconfirmed. The refusal, `403 email_unverified`, comes only after every
credential checked out (docs/security.md "Verified-email logins"); sign-up answers 202 without
tokens; resend works without a session and tells nobody which addresses have accounts; a session
begun before the setting was turned on ends at its next refresh."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import AuditEvent, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at, wrong_code
from tests.conftest import PASSWORD, auth_header, confirm_email

AUTH = "/api/v1/auth"
ADA = "ada@example.com"
REQUIRED = pytest.mark.config(REQUIRE_VERIFIED_EMAIL=True)


def sign_up(client: FlaskClient, email: str = ADA) -> Any:
    return client.post(f"{AUTH}/signup", json={"email": email, "password": PASSWORD})


def log_in(client: FlaskClient, login: str = ADA, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(f"{AUTH}/login", json={"login": login, "password": password, **extra})


def resend(client: FlaskClient, body: Any = None, **kwargs: Any) -> Any:
    return client.post(f"{AUTH}/email/resend", json=body, **kwargs)


def verify_link_token(mailbox: Any, email: str) -> str:
    [link] = [x for x in mailbox.links(mailbox.last(to=email)) if "/verify-email?token=" in x]
    return link.split("token=", 1)[1]


def unconfirm(app: Flask, user_id: str) -> None:
    """As if the address had never been confirmed (an account from before the setting)."""
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == user_id).values(email_verified_at=None))
        db.session.commit()


def audited(app: Flask, event: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == event))
        return [dict(row.data or {}) for row in rows]


def assert_unverified(response: Any) -> None:
    assert response.status_code == 403, response.json
    error = response.json["error"]
    assert error["code"] == "email_unverified"
    assert "link" in error["message"]
    assert "/api/v1/auth/email/resend" in error["message"]
    assert "access_token" not in response.json
    assert "refresh_token" not in response.json


# Sign-up


@REQUIRED
def test_sign_up_creates_the_account_and_mails_the_link_but_gives_no_tokens(app, client, mailbox):
    response = sign_up(client)

    assert response.status_code == 202
    assert set(response.json) == {"message"}
    assert "link" in response.json["message"]
    assert not [h for h in response.headers.getlist("Set-Cookie") if "token" in h]
    assert verify_link_token(mailbox, ADA)
    assert_unverified(log_in(client))  # the account exists: its password checks out
    assert audited(app, "user.signed_up")


def test_sign_up_without_the_setting_still_answers_the_token_pair(client):
    response = sign_up(client)

    assert response.status_code == 201
    assert response.json["user"]["email_verified"] is False


@REQUIRED
def test_the_mailed_link_still_works_and_then_the_account_logs_in(client, mailbox):
    sign_up(client)

    verified = client.post(f"{AUTH}/email/verify", json={"token": verify_link_token(mailbox, ADA)})
    response = log_in(client)

    assert verified.status_code == 204
    assert response.status_code == 200, response.json
    assert response.json["user"]["email_verified"] is True


# Login


@REQUIRED
def test_an_unverified_login_is_403_email_unverified_and_audited(app, client):
    sign_up(client)

    response = log_in(client)

    assert_unverified(response)
    assert {"reason": "email_unverified"} in audited(app, "login.failed")
    assert audited(app, "login.succeeded") == []


@REQUIRED
@pytest.mark.parametrize("login", [ADA, "ADA@Example.com", "nobody@example.com", "ada"])
def test_a_wrong_password_is_401_invalid_credentials_not_403(client, login):
    """No enumeration: a wrong password says nothing about whether the address is confirmed."""
    sign_up(client)

    response = log_in(client, login, "not the password at all")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_credentials"


@REQUIRED
def test_a_verified_account_logs_in(client, make_user):
    make_user()  # an operator's account counts as verified

    response = log_in(client)

    assert response.status_code == 200
    assert response.json["access_token"]


@REQUIRED
def test_a_disabled_unverified_account_is_still_account_disabled(app, client):
    sign_up(client)
    with app.app_context():
        db.session.execute(
            sa.update(User).where(User.email_normalized == ADA).values(is_active=False)
        )
        db.session.commit()

    response = log_in(client)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "account_disabled"


@REQUIRED
def test_with_mfa_the_password_still_asks_for_the_code_first(app, client, make_user, login):
    account = Account(client, user := make_user(), login(user))
    account.enrol()
    unconfirm(app, user["id"])

    without_code = account.log_in()
    wrong = account.log_in(wrong_code(account.secret or ""))

    assert without_code.status_code == 401
    assert without_code.json["error"]["code"] == "mfa_required"
    assert wrong.status_code == 401
    assert wrong.json["error"]["code"] == "invalid_mfa_code"


@REQUIRED
def test_with_mfa_a_correct_code_is_refused_and_not_spent(app, client, make_user, login):
    """After the second factor too; neither the TOTP step nor the recovery code it carried is
    spent, so the login after the link can use them."""
    account = Account(client, user := make_user(), login(user))
    account.enrol()
    unconfirm(app, user["id"])
    code = code_at(account.secret or "", +1)  # the next step: enrolment spent this one

    assert_unverified(account.log_in(code))
    assert_unverified(account.log_in(account.recovery_codes[0]))
    confirm_email(app, ADA)
    response = account.log_in(code)

    assert response.status_code == 200, response.json
    assert audited(app, "mfa.recovery_code_used") == []
    assert account.log_in(account.recovery_codes[0]).status_code == 200


# Resend without a session


@REQUIRED
def test_resend_by_address_needs_no_session_and_mails_a_link_that_works(client, mailbox):
    sign_up(client)
    mailbox.clear()

    response = resend(client, {"email": " Ada@Example.com "})
    token = verify_link_token(mailbox, ADA)

    assert response.status_code == 202
    assert client.post(f"{AUTH}/email/verify", json={"token": token}).status_code == 204
    assert log_in(client).status_code == 200


@REQUIRED
def test_resend_by_address_says_the_same_for_unknown_and_verified_addresses(
    app, client, make_user, mailbox
):
    sign_up(client)
    make_user(email="grace@example.com")
    mailbox.clear()

    addresses = (ADA, "nobody@example.com", "grace@example.com")
    answers = [resend(client, {"email": email}) for email in addresses]

    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json["message"] for answer in answers}) == 1
    assert len(mailbox.to(ADA)) == 1
    assert mailbox.to("nobody@example.com") == []
    assert mailbox.to("grace@example.com") == []
    sent = sorted(row["sent"] for row in audited(app, "email.verification_requested"))
    assert sent == [False, False, True]


def test_resend_for_the_logged_in_caller_works_as_before(client, mailbox):
    access = sign_up(client).json["access_token"]
    mailbox.clear()

    response = client.post(f"{AUTH}/email/resend", headers=auth_header(access))

    assert response.status_code == 202
    assert verify_link_token(mailbox, ADA)


def test_resend_without_a_session_or_an_address_is_401(client):
    response = client.post(f"{AUTH}/email/resend")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "missing_token"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email"},
        {"email": "a\x00@example.com"},
        {"email": "\ud800@example.com"},
        {"email": "x" * 300 + "@example.com"},
        {"email": 5},
        {"email": ["ada@example.com"]},
        {"email": ADA, "password": PASSWORD},
        ["ada@example.com"],
    ],
)
def test_hostile_resend_bodies_are_422_never_500(client, body):
    response = resend(client, body)

    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"


@REQUIRED
@pytest.mark.parametrize(
    "body",
    [
        {"login": "a\x00", "password": PASSWORD},
        {"login": "\ud800", "password": PASSWORD},
        {"login": ADA, "password": "p" * 5000},
        {"login": ADA, "password": PASSWORD, "totp_code": "\x00" * 10},
        {"login": [ADA], "password": PASSWORD},
    ],
)
def test_hostile_logins_are_4xx_never_500(client, body):
    sign_up(client)

    response = client.post(f"{AUTH}/login", json=body)

    assert 400 <= response.status_code < 500, response.json


# Sessions from before the setting


def test_a_session_from_before_the_setting_ends_at_its_next_refresh(app, client, mailbox):
    pair = sign_up(client).json  # the setting off: a session for the unconfirmed account
    app.config["REQUIRE_VERIFIED_EMAIL"] = True  # turned on, as by a restart

    refused = client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    again = client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})
    me = client.get(f"{AUTH}/me", headers=auth_header(pair["access_token"]))

    assert_unverified(refused)
    assert again.status_code == 401
    assert again.json["error"]["code"] == "token_revoked"
    assert me.status_code == 401
    assert me.json["error"]["code"] == "token_revoked"
    session_id = jwt.decode(pair["refresh_token"], options={"verify_signature": False})["sid"]
    assert audited(app, "session.revoked") == [
        {"session_id": session_id, "reason": "email_unverified"}
    ]
    client.post(f"{AUTH}/email/verify", json={"token": verify_link_token(mailbox, ADA)})
    assert log_in(client).status_code == 200


def test_a_verified_account_refreshes_with_the_setting_on(app, client, make_user, login):
    pair = login(make_user())
    app.config["REQUIRE_VERIFIED_EMAIL"] = True

    response = client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 200
    assert response.json["access_token"]


def test_without_the_setting_an_unverified_account_refreshes(client):
    pair = sign_up(client).json

    response = client.post(f"{AUTH}/refresh", json={"refresh_token": pair["refresh_token"]})

    assert response.status_code == 200


@REQUIRED
def test_an_authenticated_read_costs_no_more_statements(app, client, make_user, login, count_sql):
    """Rule 5: the setting adds nothing to the hot path (test_me.py's bound)."""
    access = login(make_user())["access_token"]

    with count_sql() as statements:
        response = client.get(f"{AUTH}/me", headers=auth_header(access))

    assert response.status_code == 200
    assert len(statements) <= 2, "\n".join(statements)
