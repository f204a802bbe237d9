"""What happens to passkeys on the ways back into an account: a password reset of an
unconfirmed account removes them (pre-account hijacking), of a confirmed one keeps them (RS-3);
`flask mfa reset` removes them with TOTP; `flask prune` deletes challenges expired past the
retention only."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.auth import link_tokens
from authapp.models import PasskeyChallenge, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account
from tests.app.passkeys.conftest import (
    Holder,
    assertion,
    challenges,
    count,
    events,
    passkey_login,
    passkeys_of,
    refused,
    request_options,
    set_clock,
)

NEW_PASSWORD = "the owner's own long passphrase"


def unconfirm(app: Flask, user_id: str) -> None:
    with app.app_context():
        db.session.execute(sa.update(User).where(User.id == user_id).values(email_verified_at=None))
        db.session.commit()


def reset(app: Flask, client: FlaskClient, user_id: str) -> None:
    """The owner's "forgot password": the mailed link's token, then the reset."""
    with app.app_context():
        user = db.session.get(User, user_id)
        token = link_tokens.issue(user, "password_reset")
        db.session.commit()
    response = client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.json


def test_a_reset_of_an_unconfirmed_account_removes_its_passkeys(app, client, holder: Holder):
    """Someone who signed up with another's address and added a passkey loses it when the
    address's owner resets the password: the passkey logs in no more, its pending
    registration challenges go too, and the audit says how many were removed."""
    holder.register()
    holder.register()
    holder.creation_options()  # a registration left pending
    unconfirm(app, holder.user["id"])

    reset(app, client, holder.user["id"])

    assert passkeys_of(app, holder.user["id"]) == 0
    assert count(app, PasskeyChallenge, PasskeyChallenge.user_id == holder.user["id"]) == 0
    refused(passkey_login(client, assertion(client, holder.authenticator)))
    [event] = events(app, "password.reset")
    assert event.data["passkeys_removed"] == 2
    owner = client.post(
        "/api/v1/auth/login", json={"login": holder.user["email"], "password": NEW_PASSWORD}
    )
    assert owner.status_code == 200, owner.json
    assert owner.json["user"]["email_verified"] is True


def test_a_reset_of_a_confirmed_account_keeps_its_passkeys(app, client, holder: Holder):
    """RS-3: a reset proves the mailbox, not who holds the authenticators; for the address's
    owner it takes nothing away."""
    holder.register()

    reset(app, client, holder.user["id"])

    assert passkeys_of(app, holder.user["id"]) == 1
    response = passkey_login(client, assertion(client, holder.authenticator))
    assert response.status_code == 200, response.json
    assert "passkeys_removed" not in events(app, "password.reset")[0].data


def test_flask_mfa_reset_removes_the_passkeys_with_totp(app, client, holder: Holder):
    account = Account(client, holder.user, {"access_token": holder.headers["Authorization"][7:]})
    account.enrol()
    holder.register()

    result = app.test_cli_runner().invoke(args=["mfa", "reset", holder.user["email"]])

    assert result.exit_code == 0, result.output
    assert passkeys_of(app, holder.user["id"]) == 0
    refused(passkey_login(client, assertion(client, holder.authenticator)))
    assert account.log_in().status_code == 200  # the password alone again
    [event] = events(app, "mfa.reset")
    assert event.data["passkeys_removed"] == 1


def test_flask_mfa_reset_of_an_account_with_only_passkeys(app, client, holder: Holder):
    """No TOTP, passkeys only (lost): the operator's reset still removes them, audited."""
    holder.register()

    result = app.test_cli_runner().invoke(args=["mfa", "reset", holder.user["email"]])

    assert result.exit_code == 0, result.output
    assert passkeys_of(app, holder.user["id"]) == 0
    assert [e.data["passkeys_removed"] for e in events(app, "mfa.reset")] == [1]


def test_the_operators_reset_mail_says_what_went(app, holder: Holder, mailbox):
    """Passkeys only: the owner reads that a passkey was removed, not that a two-factor set-up
    they never had was turned off."""
    holder.register()
    holder.register()
    mailbox.clear()

    result = app.test_cli_runner().invoke(args=["mfa", "reset", holder.user["email"]])

    assert result.exit_code == 0, result.output
    text = mailbox.last(to=holder.user["email"]).get_body(("plain",)).get_content()
    assert "2 passkeys were removed from your authapp account" in text
    assert "Two-factor authentication" not in text


def test_flask_mfa_reset_leaves_other_accounts_passkeys(app, holder: Holder, make_holder):
    other = make_holder(email="eve@example.com")
    holder.register()
    other.register()

    result = app.test_cli_runner().invoke(args=["mfa", "reset", holder.user["email"]])

    assert result.exit_code == 0, result.output
    assert passkeys_of(app, other.user["id"]) == 1


def test_prune_deletes_challenges_expired_past_the_retention_only(app, client, holder: Holder):
    """Challenges nobody answered go with `flask prune` PRUNE_TOKENS_AFTER (7 days) after
    their expiry (docs/configuration.md "Retention"); a younger one stays and still works."""
    holder.register()
    request_options(client)
    holder.creation_options()
    set_clock(client, 3 * 86_400)
    young = request_options(client)
    set_clock(client, 7 * 86_400 + 600)  # the first two expired 7 days and 5 minutes ago
    assert challenges(app) == 3

    result = app.test_cli_runner().invoke(args=["prune"])

    assert result.exit_code == 0, (result.output, result.exception)
    assert challenges(app) == 1
    set_clock(client, 3 * 86_400 + 60)
    assert passkey_login(client, holder.authenticator.get(young)).status_code == 200
    assert challenges(app) == 0


def test_prune_dry_run_deletes_no_challenge(app, client):
    request_options(client)
    set_clock(client, 8 * 86_400)

    result = app.test_cli_runner().invoke(args=["prune", "--dry-run"])

    assert result.exit_code == 0, (result.output, result.exception)
    assert challenges(app) == 1
