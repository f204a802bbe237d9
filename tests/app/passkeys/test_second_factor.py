"""A passkey as the second factor of POST /api/v1/auth/login: for an account with TOTP on,
`passkey` (an answer to /auth/passkeys/options) stands for `totp_code` (MF-2); a wrong one is
401 invalid_passkey, another account's passkey proves nothing (AC-2), both at once is 422, and
the attempts spend the account's TOTP budget (RL-4)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.models import Session
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at
from tests.app.passkeys.conftest import LOGIN, Holder, assertion, events, refused, request_options
from tests.conftest import PASSWORD


def enrolled(client: FlaskClient, holder: Holder) -> Account:
    """TOTP on for `holder`'s account (through the API, with codes computed by pyotp)."""
    account = Account(client, holder.user, {"access_token": holder.headers["Authorization"][7:]})
    account.enrol()
    return account


def password_and(client: FlaskClient, holder: Holder, **extra: Any) -> Any:
    body = {"login": holder.user["email"], "password": PASSWORD, **extra}
    return client.post(LOGIN, json=body)


def sessions(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(Session)) or 0)


def test_a_passkey_stands_for_the_totp_code(app, client, holder: Holder):
    enrolled(client, holder)
    holder.register()
    assert password_and(client, holder).json["error"]["code"] == "mfa_required"

    response = password_and(client, holder, passkey=assertion(client, holder.authenticator))

    assert response.status_code == 200, response.json
    assert response.json["user"]["id"] == holder.user["id"]
    assert response.json["user"]["mfa_enabled"] is True
    assert [e.data["method"] for e in events(app, "login.succeeded")][-1] == "password"


def test_a_bad_passkey_is_401_invalid_passkey(app, client, holder: Holder):
    enrolled(client, holder)
    holder.register()
    before = sessions(app)
    holder.authenticator.user_verified = False

    response = password_and(client, holder, passkey=assertion(client, holder.authenticator))

    refused(response)
    assert sessions(app) == before
    failed = [e.data for e in events(app, "login.failed")]
    assert failed[-1]["reason"] == "invalid_passkey"
    assert failed[-1]["why"] == "user_not_verified"


def test_another_accounts_passkey_is_no_second_factor(app, client, holder: Holder, make_holder):
    """AC-2: a genuine passkey of another account (whose password the caller also knows or
    not) does not pass this account's MFA step."""
    enrolled(client, holder)
    holder.register()
    other = make_holder(email="eve@example.com")
    other.register()
    before = sessions(app)

    response = password_and(client, holder, passkey=assertion(client, other.authenticator))

    refused(response)
    assert sessions(app) == before
    assert [e.data.get("why") for e in events(app, "login.failed")][-1] == "unknown_passkey"


def test_a_second_factor_answer_is_used_once(app, client, holder: Holder):
    """F10, MF-2: the same passkey answer again is refused."""
    enrolled(client, holder)
    holder.register()
    answer = assertion(client, holder.authenticator)
    assert password_and(client, holder, passkey=answer).status_code == 200

    refused(password_and(client, holder, passkey=answer))


def test_a_passkey_answer_is_spent_by_the_passwordless_login_too(app, client, holder: Holder):
    """One challenge, one use: an answer that logged in without a password cannot then pass
    the MFA step as well."""
    enrolled(client, holder)
    holder.register()
    answer = assertion(client, holder.authenticator)
    passwordless = client.post("/api/v1/auth/passkeys/login", json={"credential": answer})
    assert passwordless.status_code == 200, passwordless.json

    refused(password_and(client, holder, passkey=answer))


def test_a_code_and_a_passkey_together_are_422(app, client, holder: Holder):
    account = enrolled(client, holder)
    holder.register()
    assert account.secret is not None
    before = sessions(app)

    response = password_and(
        client,
        holder,
        totp_code=code_at(account.secret),
        passkey=assertion(client, holder.authenticator),
    )

    assert response.status_code == 422, response.json
    assert "passkey" in response.json["error"]["fields"]
    assert sessions(app) == before


def test_a_wrong_password_with_a_good_passkey_is_invalid_credentials(app, client, holder: Holder):
    """EN-1: the password is checked first; a passkey does not replace it."""
    enrolled(client, holder)
    holder.register()

    response = client.post(
        LOGIN,
        json={
            "login": holder.user["email"],
            "password": "not the password at all",
            "passkey": assertion(client, holder.authenticator),
        },
    )

    refused(response, 401, "invalid_credentials")


@pytest.mark.parametrize("passkey", ["a string", [1], 5, {"id": "\ud800"}, {}])
def test_a_hostile_second_factor_passkey_is_refused_not_a_500(client, holder: Holder, passkey):
    enrolled(client, holder)
    holder.register()
    request_options(client)

    response = password_and(client, holder, passkey=passkey)

    assert response.status_code in (401, 422), response.get_data(as_text=True)
    if response.status_code == 401:
        assert response.json["error"]["code"] == "invalid_passkey"


@pytest.mark.config(
    RATELIMIT_ENABLED=True,
    RATELIMIT_STORAGE_URI="memory://",
    RATELIMIT_TOTP="3/15 minutes",
    RATELIMIT_LOGIN="1000/minute",
    RATELIMIT_PASSKEY_OPTIONS="1000/minute",
    RATELIMIT_PASSWORD_CHANGE="1000/15 minutes",
)
def test_passkey_attempts_spend_the_totp_budget(app, client, holder: Holder):
    """RL-4: the MFA step's passkey attempts, refused or not, count against the account's
    code budget (3 here): past it, even a good passkey waits (429)."""
    enrolled(client, holder)  # its confirmation spent one attempt of the budget
    holder.register()
    holder.authenticator.user_verified = False
    refused(password_and(client, holder, passkey=assertion(client, holder.authenticator)))
    holder.authenticator.user_verified = True
    good = password_and(client, holder, passkey=assertion(client, holder.authenticator))
    assert good.status_code == 200, good.json

    response = password_and(client, holder, passkey=assertion(client, holder.authenticator))

    assert response.status_code == 429, response.json
    assert response.json["error"]["code"] == "rate_limited"


def test_twenty_concurrent_logins_with_one_passkey_answer_succeed_once(app, holder: Holder):
    """F10: the MFA step's passkey answer, sent twenty times at once with the right
    password, starts exactly one session."""
    client = app.test_client()
    enrolled(client, holder)
    holder.register()
    answer = assertion(client, holder.authenticator)
    before = sessions(app)
    body = {"login": holder.user["email"], "password": PASSWORD, "passkey": answer}

    def attempt(_: int) -> int:
        return app.test_client().post(LOGIN, json=body).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(attempt, range(20)))

    assert sorted(statuses) == [200] + [401] * 19, statuses
    assert sessions(app) == before + 1
