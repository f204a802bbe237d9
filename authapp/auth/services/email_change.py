"""Changing the email address (EC-1): asked for in the settings with the password, confirmed by
a single-use link mailed to the new address, told to the old address at both steps.

The request never looks the new address up, so its answer, its statements and its mails are the
same whether or not another account has it (no enumeration); the unique index decides at
confirmation (`409 email_taken`).
"""

from __future__ import annotations

from authapp.auth import link_tokens
from authapp.auth.principals import Principal
from authapp.auth.services import accounts, reauthentication, sessions
from authapp.delivery import events, outbox
from authapp.models import User
from authapp.platform import clock
from authapp.platform.errors import ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit

PURPOSE = "email_change"
WRONG_PASSWORD = "The current password is incorrect."
# The login identifier changes: every link mailed for the account before it names the old one.
VOIDED_BY_CHANGE = (PURPOSE, "password_reset", "email_verify")


def request_change(principal: Principal, user: User, *, new_email: str, password: str) -> None:
    """The password first (PW-6); then a confirmation link to `new_email`, the older links of
    this kind voided, and a notice to the current address. Nothing about the account changes
    yet. Raises ValidationFailed (a wrong password, or the address the account already has)."""
    reauthentication.require_password(
        principal, user, password, failed_event="email.change_failed", message=WRONG_PASSWORD
    )
    if accounts.normalize_email(new_email) == user.email_normalized:
        raise ValidationFailed(
            {"new_email": ["This is already your email address."]},
            "This is already your email address.",
        )
    link_tokens.void(user.id, PURPOSE)  # only the newest request's link can confirm
    token = link_tokens.issue(user, PURPOSE, new_email=new_email)
    message_ids = events.ids(
        events.email(
            user,
            "email_change",
            secrets={"link": events.link(f"/confirm-email-change?token={token}")},
            to=new_email,
        ),
        events.email(user, "email_change_requested", _notice(new_email)),
    )
    audit.by_principal("email.change_requested", principal, user_id=user.id, new_email=new_email)
    db.session.commit()
    outbox.dispatch(message_ids)


def confirm_change(token: str, origin: audit.Origin) -> User:
    """Spend the mailed token and move the account to its address, now confirmed: the older
    links void, every session ends (the login identifier changed, SE-3), the old address is
    told and the organization's webhook too. Raises InvalidLinkToken, and Conflict
    (email_taken) when another account has the address now, leaving the token unspent."""
    user, new_email = link_tokens.redeem_with_email(token, PURPOSE)
    if new_email is None:  # not written by request_change: names no address
        db.session.rollback()
        raise link_tokens.InvalidLinkToken(link_tokens.INVALID)
    old_email = user.email
    user.email = new_email
    user.email_normalized = accounts.normalize_email(new_email)
    user.email_verified_at = clock.now()
    accounts.flush_unique()  # the unique index decides, case-insensitively, as at sign-up
    link_tokens.void(user.id, *VOIDED_BY_CHANGE)
    revoked = sessions.revoke_all(user.id, reason="email_changed")
    audit.by_user(
        "email.changed",
        user,
        origin,
        old_email=old_email,
        new_email=new_email,
        sessions_revoked=revoked,
    )
    message_ids = events.ids(
        events.email(user, "email_changed", _notice(new_email), to=old_email),
        *events.about_person(user.id, "user.email_changed", {"user_id": user.id}),
    )
    db.session.commit()
    outbox.dispatch(message_ids)
    return user


def _notice(new_email: str) -> dict[str, str]:
    """What the old address is told: the new one half hidden (a mailbox someone else reads
    learns no whole address from it) and the way back."""
    return {
        "new_email": masked(new_email),
        "when": clock.now().strftime("%Y-%m-%d %H:%M"),
        "forgot_url": events.link("/forgot-password"),
    }


def masked(email: str) -> str:
    """`nora@example.com` → `n***@example.com`."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"
