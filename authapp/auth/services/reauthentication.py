"""The password asked again before a change that matters (PW-6): a new password or address,
MFA, passkeys, deleting an account or an organization. A wrong one is audited and committed
before the refusal (a rollback must not hide the guess) and answered as a field's error."""

from __future__ import annotations

from typing import Any

from authapp.auth.principals import Principal
from authapp.models import User
from authapp.platform.errors import ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, passwords

WRONG_PASSWORD = "The password is incorrect."


def require_password(
    principal: Principal,
    user: User,
    password: str,
    *,
    failed_event: str,
    field: str = "password",
    message: str = WRONG_PASSWORD,
    **audited: Any,
) -> None:
    """Raises ValidationFailed on `field` unless `password` is the account's; the failure is
    audited as `failed_event` (with `audited`)."""
    if passwords.verify_password(password, user.password_hash):
        return
    audit.by_principal(failed_event, principal, user_id=user.id, **audited)
    db.session.commit()
    raise ValidationFailed({field: [message]}, message)
