"""Email verification and password reset: single-use tokens sent by mail (RS-1..3, EV-1)."""

from __future__ import annotations

import sqlalchemy as sa

from authapp import audit, clock, events, outbox
from authapp.auth import backoff, link_tokens, second_factor, sessions
from authapp.auth import services as auth_services
from authapp.errors import ValidationFailed
from authapp.extensions import changed_rows, db
from authapp.models import ApiKey, User
from authapp.security import passwords


def verify_email(token: str) -> User:
    """EV-1. Raises InvalidLinkToken."""
    user = link_tokens.redeem(token, "email_verify")
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
    audit.record(
        "email.verified", organization_id=user.organization_id, user_id=user.id, actor="system"
    )
    db.session.commit()
    return user


def resend_verification(user: User, origin: audit.Origin) -> None:
    """A new verify mail, unless the address is verified already (the answer is 202 alike)."""
    if user.email_verified_at is not None:
        return
    message_id = link_tokens.send_verification(user)
    audit.by_user("email.verification_resent", user, origin)
    db.session.commit()
    outbox.dispatch([message_id])


def forgot_password(email: str, origin: audit.Origin) -> None:
    """EN-3: the caller answers the same for known, unknown and disabled emails; only a known,
    active account gets a mail. Nothing about the account changes."""
    user = db.session.scalars(
        sa.select(User).where(User.email_normalized == auth_services.normalize_email(email))
    ).one_or_none()
    if user is None or not user.is_active:
        audit.about_account("password.reset_requested", user, origin, sent=False)
        db.session.commit()
        return
    token = link_tokens.issue(user, "password_reset")
    message_id = events.email(
        user, "password_reset", secrets={"link": events.link(f"/reset-password?token={token}")}
    )
    audit.by_user("password.reset_requested", user, origin, sent=True)
    db.session.commit()
    outbox.dispatch([message_id])


def reset_password(token: str, new_password: str, origin: audit.Origin) -> None:
    """RS-1, RS-3, SE-3: a new password, every session revoked, the lockout cleared. Nobody
    is logged in by it, so a second factor is never bypassed. Raises InvalidLinkToken,
    ValidationFailed (policy)."""
    user = link_tokens.redeem(token, "password_reset")
    try:
        auth_services.check_new_password(user, new_password)
    except ValidationFailed:
        db.session.rollback()  # the token stays usable for a better password
        raise
    user.password_hash = passwords.hash_password(new_password)
    link_tokens.void(user.id, "password_reset")  # the other links in the mailbox end too
    user.failed_login_count = 0
    user.locked_until = None
    backoff.clear_account(user)
    revoked = sessions.revoke_all(user.id, reason="password_reset")
    cleared = _reclaimed(user) if user.email_verified_at is None else {}
    audit.by_user("password.reset", user, origin, sessions_revoked=revoked, **cleared)
    message_ids = events.ids(
        password_changed_mail(user, how="reset"),
        events.webhook(user.organization_id, "user.password_changed", {"user_id": user.id}),
    )
    db.session.commit()
    outbox.dispatch(message_ids)


def _reclaimed(user: User) -> dict[str, object]:
    """Pre-account hijacking: someone who signed up with another's address may have set up
    the account before its owner resets the password (README "Security", "Unverified
    accounts"). The reset proves the mailbox, so the address counts as confirmed now, and what
    was set up goes: MFA and its recovery codes, and the API keys the account created (its
    sessions are revoked as for every reset). No commit."""
    user.email_verified_at = clock.now()
    had_mfa = user.mfa_enabled or user.mfa_secret is not None
    second_factor.turn_off(user)
    keys = changed_rows(
        sa.update(ApiKey)
        .where(ApiKey.created_by == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return {"unverified": True, "mfa_cleared": had_mfa, "api_keys_revoked": keys}


def password_changed_mail(user: User, *, how: str) -> str:
    """RS-3: tell the owner of the account, with the way back if it was not them."""
    return events.email(
        user,
        "password_changed",
        {
            "how": how,
            "when": clock.now().strftime("%Y-%m-%d %H:%M"),
            "forgot_url": events.link("/forgot-password"),
        },
    )
