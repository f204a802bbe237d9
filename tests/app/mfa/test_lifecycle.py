"""The TOTP lifecycle over the JSON API (MF-1, MF-2, MF-3), codes computed by pyotp."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from authapp.models import AuditEvent, RecoveryCode, User
from authapp.platform.extensions import db
from tests.app.mfa.conftest import Account, code_at


def stored_user(app: Flask, user_id: str) -> User:
    with app.app_context():
        return db.session.get(User, user_id)


def test_enrolment_returns_a_secret_and_uri_and_stays_pending(app: Flask, account: Account):
    response = account.start()
    assert response.status_code == 200
    secret, uri = response.json["secret"], response.json["otpauth_uri"]
    assert uri.startswith("otpauth://totp/")
    assert f"secret={secret}" in uri
    assert "issuer=authapp" in uri
    stored = stored_user(app, account.user["id"])
    assert stored.mfa_enabled is False
    assert stored.mfa_secret is not None
    assert secret not in stored.mfa_secret  # sealed at rest
    # Pending: login still needs only the password.
    assert account.log_in().status_code == 200


def test_enrolment_needs_the_password(account: Account):
    response = account.post("/mfa/totp", {"password": "not the password at all"})
    assert response.status_code == 422
    assert "password" in response.json["error"]["fields"]


def test_confirm_turns_mfa_on_with_ten_distinct_recovery_codes(app: Flask, account: Account):
    account.enrol()
    assert len(account.recovery_codes) == 10 == len(set(account.recovery_codes))
    me = account.client.get("/api/v1/auth/me", headers=account.headers)
    assert me.json["user"]["mfa_enabled"] is True
    with app.app_context():
        hashes = db.session.scalars(
            sa.select(RecoveryCode.code_hash).where(RecoveryCode.user_id == account.user["id"])
        ).all()
    assert len(hashes) == 10
    assert not set(hashes) & set(account.recovery_codes)  # only hashes are stored


def test_the_secret_is_never_returned_again(account: Account):
    account.enrol()
    assert account.secret is not None
    for path in ("/api/v1/auth/me", "/api/v1/settings/profile"):
        assert account.secret not in account.client.get(path, headers=account.headers).text
    again = account.start()
    assert again.status_code == 409
    assert again.json["error"]["code"] == "mfa_already_enabled"


def test_a_wrong_confirmation_code_keeps_mfa_off(app: Flask, account: Account):
    account.start()
    assert account.secret is not None
    wrong = str((int(code_at(account.secret)) + 1) % 1_000_000).zfill(6)
    response = account.confirm(wrong)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_mfa_code"
    assert stored_user(app, account.user["id"]).mfa_enabled is False


def test_confirm_without_a_pending_secret_is_a_conflict(account: Account):
    response = account.confirm("123456")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "mfa_not_pending"


def test_login_asks_for_the_code_then_accepts_it(account: Account):
    account.enrol()
    assert account.secret is not None
    asked = account.log_in()
    assert asked.status_code == 401
    assert asked.json["error"]["code"] == "mfa_required"
    assert asked.headers["WWW-Authenticate"].startswith("Bearer")
    ok = account.log_in(code_at(account.secret, +1))  # the next step: a clock a little ahead
    assert ok.status_code == 200
    assert ok.json["user"]["mfa_enabled"] is True


def test_a_wrong_code_is_invalid_mfa_code(account: Account):
    account.enrol()
    assert account.secret is not None
    response = account.log_in(str((int(code_at(account.secret)) + 7) % 1_000_000).zfill(6))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_mfa_code"


def test_a_wrong_password_with_a_right_code_is_invalid_credentials(account: Account):
    account.enrol()
    assert account.secret is not None
    body = {
        "login": account.user["email"],
        "password": "wrong password for this account",
        "totp_code": code_at(account.secret, +1),
    }
    response = account.client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_credentials"


def test_a_code_works_once(account: Account):
    account.enrol()
    assert account.secret is not None
    code = code_at(account.secret, +1)
    assert account.log_in(code).status_code == 200
    again = account.log_in(code)
    assert again.status_code == 401
    assert again.json["error"]["code"] == "invalid_mfa_code"


def test_an_earlier_step_is_refused_after_a_later_one(account: Account):
    account.enrol()
    assert account.secret is not None
    assert account.log_in(code_at(account.secret, +1)).status_code == 200
    assert account.log_in(code_at(account.secret, -1)).json["error"]["code"] == "invalid_mfa_code"


def test_codes_outside_the_window_are_refused(account: Account):
    account.enrol()
    assert account.secret is not None
    for steps in (-3, +3):
        response = account.log_in(code_at(account.secret, steps))
        assert response.json["error"]["code"] == "invalid_mfa_code", steps


def test_each_recovery_code_works_once(app: Flask, account: Account):
    account.enrol()
    first, second = account.recovery_codes[:2]
    assert account.log_in(first).status_code == 200
    assert account.log_in(first).json["error"]["code"] == "invalid_mfa_code"
    # As people retype them: upper case, spaces instead of dashes.
    assert account.log_in(second.upper().replace("-", " ")).status_code == 200
    with app.app_context():
        used = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.event == "mfa.recovery_code_used")
        ).all()
    assert [event.data["remaining"] for event in used] == [9, 8]


def test_disable_needs_the_password_and_a_code(app: Flask, account: Account):
    account.enrol()
    assert account.secret is not None
    assert (
        account.disable(code_at(account.secret, +1), password="wrong password here").status_code
        == 422
    )
    wrong_code = account.disable("000000" if code_at(account.secret) != "000000" else "111111")
    assert wrong_code.status_code == 422
    assert wrong_code.json["error"]["code"] == "invalid_mfa_code"
    assert stored_user(app, account.user["id"]).mfa_enabled is True
    assert account.disable(account.recovery_codes[0]).status_code == 204
    stored = stored_user(app, account.user["id"])
    assert (stored.mfa_enabled, stored.mfa_secret, stored.mfa_last_step) == (False, None, None)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    assert account.log_in().status_code == 200  # the password alone again
    assert account.disable("123456").json["error"]["code"] == "mfa_not_enabled"


def test_mfa_events_are_audited(app: Flask, account: Account):
    account.enrol()
    assert account.secret is not None
    account.log_in("999999" if code_at(account.secret) != "999999" else "888888")
    account.disable(code_at(account.secret, +1))
    with app.app_context():
        events = db.session.scalars(
            sa.select(AuditEvent.event).order_by(AuditEvent.created_at)
        ).all()
        failed = db.session.scalars(
            sa.select(AuditEvent.data).where(AuditEvent.event == "login.failed")
        ).all()
    for expected in ("mfa.enrolment_started", "mfa.enabled", "mfa.disabled"):
        assert expected in events
    assert {"reason": "invalid_mfa_code"} in failed
