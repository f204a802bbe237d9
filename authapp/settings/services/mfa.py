"""Self-service TOTP: enrol with the password, confirm with a code (ten recovery codes come back,
once), disable with the password and a code (MF-1, MF-3). Each function owns its commit."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from authapp.auth import passkey_checks, second_factor
from authapp.auth.principals import Principal
from authapp.auth.services import accounts, reauthentication, security_mail
from authapp.models import User
from authapp.platform.errors import Conflict, ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, secretbox, totp
from authapp.settings.verified import require_verified_email


class InvalidMfaCode(ValidationFailed):
    """A wrong or used code on a settings form: 422 (the caller's session is fine, so not the
    login's 401), with the contract's `invalid_mfa_code`."""

    code = "invalid_mfa_code"

    def __init__(self) -> None:
        super().__init__(
            {"code": ["The code is incorrect or was used already."]},
            "The code is incorrect or was used already.",
        )


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str

    @property
    def qr_svg(self) -> str:
        return totp.qr_svg(self.otpauth_uri)


def start_enrolment(principal: Principal, user: User, password: str) -> Enrolment:
    """A new pending secret (any earlier pending one is dropped), shown only in this answer."""
    require_verified_email(principal)
    reauthentication.require_password(
        principal, user, password, failed_event="mfa.enrolment_failed", reason="bad_password"
    )
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is on already.", code="mfa_already_enabled")
    secret = totp.new_secret()
    user.mfa_secret = secretbox.seal(secret)
    user.mfa_last_step = None
    audit.by_principal("mfa.enrolment_started", principal, user_id=user.id)
    db.session.commit()
    uri = totp.provisioning_uri(secret, account=user.email, issuer=current_app.config["MFA_ISSUER"])
    return Enrolment(secret=secret, otpauth_uri=uri)


def confirm_enrolment(principal: Principal, user: User, code: str) -> list[str]:
    """MFA is on once a code from the pending secret checks; returns the ten recovery codes."""
    require_verified_email(principal)
    if user.mfa_enabled:
        raise Conflict("Two-factor authentication is on already.", code="mfa_already_enabled")
    if user.mfa_secret is None:
        raise Conflict(
            "Start the set-up first: no authenticator is waiting to be confirmed.",
            code="mfa_not_pending",
        )
    if second_factor.verify(user, code, recovery_codes=False) is None:
        _fail(principal, user, "mfa.confirm_failed")
    user.mfa_enabled = True
    codes = second_factor.replace_recovery_codes(user)
    audit.by_principal("mfa.enabled", principal, user_id=user.id)
    security_mail.tell_owner(user, "mfa_changed", enabled=True)
    return codes


def disable(principal: Principal, user: User, *, password: str, code: str) -> None:
    """MF-3: the password and a TOTP or recovery code; the secret and the codes are deleted."""
    reauthentication.require_password(
        principal, user, password, failed_event="mfa.disable_failed", reason="bad_password"
    )
    if not user.mfa_enabled:
        raise Conflict("Two-factor authentication is off already.", code="mfa_not_enabled")
    if second_factor.verify(user, code) is None:
        _fail(principal, user, "mfa.disable_failed")
    second_factor.turn_off(user)
    audit.by_principal("mfa.disabled", principal, user_id=user.id)
    security_mail.tell_owner(user, "mfa_changed", enabled=False)


def reset_by_operator(login: str) -> User:
    """`flask mfa reset`: for a user who lost both the authenticator and the recovery codes
    (or their passkeys), once the operator has checked who they are: TOTP, recovery codes and
    passkeys all go. Raises AppError(not_found)."""
    user = accounts.account_named(login)
    had_mfa = user.mfa_enabled or user.mfa_secret is not None
    second_factor.turn_off(user)
    removed = passkey_checks.delete_all(user.id)
    if not had_mfa and not removed:
        db.session.rollback()
        return user
    audit.record(
        "mfa.reset",
        organization_id=user.organization_id,
        user_id=user.id,
        actor="system",
        data={"passkeys_removed": removed},
    )
    security_mail.tell_owner(
        user, "mfa_changed", enabled=False, mfa_was_on=had_mfa, passkeys_removed=removed
    )
    return user


def _fail(principal: Principal, user: User, event: str) -> None:
    audit.by_principal(event, principal, user_id=user.id, reason="invalid_mfa_code")
    db.session.commit()  # the audit row, and a step or code a concurrent request spent
    raise InvalidMfaCode()
