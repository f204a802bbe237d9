"""`flask mfa reset LOGIN`: the operator's way back for a user who lost both the authenticator
and the recovery codes."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from authapp.models import AuditEvent, OutboxMessage, RecoveryCode
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account


def test_reset_turns_mfa_off_and_the_password_alone_logs_in(app: Flask, account: Account):
    account.enrol()
    assert account.log_in().json["error"]["code"] == "mfa_required"
    result = app.test_cli_runner().invoke(args=["mfa", "reset", account.user["email"].upper()])
    assert result.exit_code == 0, result.output
    assert "two-factor authentication is off" in result.output
    assert account.log_in().status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
        reset = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "mfa.reset")
        ).one()
        mails = db.session.scalars(sa.select(OutboxMessage.payload)).all()
    assert (reset.actor, reset.user_id) == ("system", account.user["id"])
    assert [mail["context"]["enabled"] for mail in mails if mail["template"] == "mfa_changed"] == [
        True,
        False,
    ]


def test_reset_of_an_unknown_account_fails_with_a_message(app: Flask):
    result = app.test_cli_runner().invoke(args=["mfa", "reset", "nobody@example.com"])
    assert result.exit_code == 1
    assert "No account matches 'nobody@example.com'" in result.output
