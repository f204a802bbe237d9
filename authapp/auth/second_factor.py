"""Checking a second factor against the database: a TOTP code (its step accepted once), a
recovery code (each used once) or a passkey (auth/passkey_checks.py), under the account's TOTP
attempt budget (RL-4, MF-2, MF-3).

Both claims are a single conditional UPDATE whose row count decides, so of twenty concurrent
requests with the same code exactly one succeeds (F10), on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.fernet import InvalidToken

from authapp.auth import passkey_checks
from authapp.models import RecoveryCode, User
from authapp.platform import clock
from authapp.platform.errors import Unauthorized
from authapp.platform.extensions import changed_rows, db
from authapp.security import budgets, passkeys, secretbox, totp
from authapp.security.passkeys import Presented

log = structlog.get_logger(__name__)

TOO_MANY_CODES = "Too many codes tried for this account; wait before trying again."


class MfaRequired(Unauthorized):
    """The password was right and the account needs its second factor (docs/api.md `mfa_required`).

    Carries the account, so the login page can ask for the code in a second step."""

    code = "mfa_required"

    def __init__(self, user_id: str, **beside: Any) -> None:
        super().__init__(
            "Enter the code from your authenticator app or a recovery code, or use a passkey.",
            beside=beside,
        )
        self.user_id = user_id


def verify(user: User, code: str, *, recovery_codes: bool = True) -> str | None:
    """How `code` proved the factor ("totp" or "recovery_code"), or None; no commit.

    Raises RateLimited when the account's attempts are spent. The secret may still be pending
    (enrolment's confirmation checks a TOTP code the same way)."""
    budgets.spend(budgets.configured("RATELIMIT_TOTP"), "totp", user.id, TOO_MANY_CODES)
    if user.mfa_secret is None:
        return None
    if totp.looks_like_totp(code):
        secret = _secret(user)
        if secret is None:
            return None
        step = totp.matching_step(secret, code, after=user.mfa_last_step)
        return "totp" if step is not None and _claim_step(user, step) else None
    if recovery_codes and _claim_recovery_code(user, code):
        return "recovery_code"
    return None


def check_passkey(user: User, presented: Presented) -> None:
    """One of the account's passkeys signed `presented`, or PasskeyRefused says why; no commit.
    Spends the same budget as a code (RL-4)."""
    budgets.spend(budgets.configured("RATELIMIT_TOTP"), "totp", user.id, TOO_MANY_CODES)
    claimed = passkeys.read_assertion(presented.credential)
    passkey_checks.check(presented.party, claimed, user_id=user.id)


def _secret(user: User) -> str | None:
    """The TOTP secret, or None when it was sealed under another DATA_ENCRYPTION_KEY (changed
    without re-encryption, docs/deployment.md "Data-encryption key"): the code is refused like
    a wrong one, recovery codes still work, and the log tells the operator."""
    try:
        return secretbox.open_sealed(user.mfa_secret or "")
    except InvalidToken:
        log.error("mfa.secret_unreadable", user_id=user.id)
        return None


def _claim_step(user: User, step: int) -> bool:
    """Record `step` as the last one accepted, unless a concurrent request already used it (or a
    later one)."""
    return (
        changed_rows(
            sa.update(User)
            .where(
                User.id == user.id,
                sa.or_(User.mfa_last_step.is_(None), User.mfa_last_step < step),
            )
            .values(mfa_last_step=step)
        )
        == 1
    )


def _claim_recovery_code(user: User, code: str) -> bool:
    return (
        changed_rows(
            sa.update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == totp.recovery_code_hash(code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=clock.now())
        )
        == 1
    )


def unused_recovery_codes(user_id: str) -> int:
    return int(
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def delete_recovery_codes(user_id: str) -> None:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user_id))


def turn_off(user: User) -> None:
    """MFA off: the secret (pending or confirmed) and the recovery codes are deleted; no commit."""
    user.mfa_enabled = False
    user.mfa_secret = None
    user.mfa_last_step = None
    delete_recovery_codes(user.id)


def replace_recovery_codes(user: User) -> list[str]:
    """Ten new codes; any earlier ones stop working. Only their hashes are kept; no commit."""
    codes = totp.new_recovery_codes()
    delete_recovery_codes(user.id)
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=totp.recovery_code_hash(code)) for code in codes
    )
    return codes
