"""A DATA_ENCRYPTION_KEY changed without re-encrypting (docs/deployment.md "Data-encryption
key"): a TOTP secret sealed under the old key cannot be read. The code is refused like a wrong
one (never a 500), recovery codes still work, and the operator is told in the log."""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask

from authapp.models import User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at


def seal_under_another_key(app: Flask, user_id: str) -> None:
    other = Fernet(Fernet.generate_key())
    with app.app_context():
        db.session.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(mfa_secret=other.encrypt(b"JBSWY3DPEHPK3PXP").decode())
        )
        db.session.commit()


def test_a_secret_sealed_under_another_key_refuses_the_code_not_500(
    app: Flask, account: Account, caplog
):
    account.enrol()
    assert account.secret is not None
    seal_under_another_key(app, account.user["id"])

    refused = account.log_in(code_at(account.secret))

    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "invalid_mfa_code"
    assert "mfa.secret_unreadable" in caplog.text


def test_recovery_codes_still_work_when_the_secret_cannot_be_read(app: Flask, account: Account):
    account.enrol()
    seal_under_another_key(app, account.user["id"])

    assert account.log_in(account.recovery_codes[0]).status_code == 200
