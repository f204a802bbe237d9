"""Email verification and password reset: single-use tokens sent by mail (RS-1..3, EV-1)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from authapp.auth import backoff, link_tokens, passkey_checks, second_factor
from authapp.auth.services import accounts, sessions
from authapp.delivery import events, outbox
from authapp.models import ApiKey, OutboxMessage, User
from authapp.platform import clock
from authapp.platform.errors import ValidationFailed
from authapp.platform.extensions import changed_rows, db
from authapp.platform.network import Client
from authapp.security import audit, passwords


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
    """EN-3: the same statements and the same hand-off for every address, known, unknown or
    disabled: one outbox message holding the address (sealed, like a link) and where the
    request came from, committed and handed to the pool. `prepare_reset` finds the account
    there; nothing about it changes here."""
    _request_mail("reset_for", "password_reset", email, origin)


def resend_verification_to(email: str, origin: audit.Origin) -> None:
    """A verify mail asked for by address, without a login: the way back for an account that
    REQUIRE_VERIFIED_EMAIL keeps from logging in. Like forgot_password (EN-3), the same work
    for every address; `prepare_verification` finds the account on the pool."""
    _request_mail("verify_for", "verify_email", email, origin)


def _request_mail(secret_key: str, template: str, email: str, origin: audit.Origin) -> None:
    request = {
        secret_key: accounts.normalize_email(email),
        "ip": origin.ip or "",
        "user_agent": origin.user_agent or "",
    }
    message_id = outbox.add("email", {"template": template, "secrets": request})
    db.session.commit()
    outbox.dispatch([message_id])


def _mailable(
    message_id: str, address: str, *, unconfirmed: bool = False
) -> tuple[User | None, bool]:
    """The account a mail request names, and whether it gets the mail: an active one (for a
    verify mail, one still unconfirmed). Otherwise the message is deleted, the address with it."""
    user = db.session.scalars(sa.select(User).where(User.email_normalized == address)).one_or_none()
    mailable = user is not None and user.is_active
    if unconfirmed and user is not None and user.email_verified_at is not None:
        mailable = False
    if not mailable:
        db.session.execute(sa.delete(OutboxMessage).where(OutboxMessage.id == message_id))
    return user, mailable


def _origin(request: dict[str, str]) -> Client:
    return Client(ip=request["ip"] or None, user_agent=request["user_agent"] or None)


def prepare_verification(message_id: str, request: dict[str, str]) -> dict[str, Any] | None:
    """On the pool: the mail a resend by address becomes. An active account with the address
    that is still unconfirmed gets a new link (stored, so a retry sends this one); any other
    address gets nothing, and its message is deleted. Audited either way. Commits."""
    user, mailable = _mailable(message_id, request["verify_for"], unconfirmed=True)
    payload = None
    if mailable and user is not None:
        link = events.link(f"/verify-email?token={link_tokens.issue(user, 'email_verify')}")
        payload = events.email_payload(user, "verify_email", secrets={"link": link})
        outbox.rewrite(message_id, payload)
    audit.about_account(
        "email.verification_requested", user, _origin(request), sent=payload is not None
    )
    db.session.commit()
    return payload


def prepare_reset(message_id: str, request: dict[str, str]) -> dict[str, Any] | None:
    """On the pool: the mail a reset request becomes. An active account with the address
    gets a new token, and the message becomes its mail (stored, so a retry sends this link,
    not another); for any other address the message is deleted, the address with it, and
    None is returned. Either way the request is audited. Commits."""
    origin = _origin(request)
    user, mailable = _mailable(message_id, request["reset_for"])
    if not mailable or user is None:
        audit.about_account("password.reset_requested", user, origin, sent=False)
        db.session.commit()
        return None
    token = link_tokens.issue(user, "password_reset")
    link = events.link(f"/reset-password?token={token}")
    payload = events.email_payload(user, "password_reset", secrets={"link": link})
    outbox.rewrite(message_id, payload)
    audit.by_user("password.reset_requested", user, origin, sent=True)
    db.session.commit()
    return payload


def reset_password(token: str, new_password: str, origin: audit.Origin) -> None:
    """RS-1, RS-3, SE-3: a new password, every session revoked, the lockout cleared. Nobody
    is logged in by it, so a second factor is never bypassed. Raises InvalidLinkToken,
    ValidationFailed (policy)."""
    user = link_tokens.redeem(token, "password_reset")
    try:
        accounts.check_new_password(user, new_password)
    except ValidationFailed:
        db.session.rollback()  # the token stays usable for a better password
        raise
    backoff.clear_account(user)
    revoked, message_ids = replace_password(user, new_password, how="reset")
    cleared = _reclaimed(user) if user.email_verified_at is None else {}
    audit.by_user("password.reset", user, origin, sessions_revoked=revoked, **cleared)
    db.session.commit()
    outbox.dispatch(message_ids)


def replace_password(
    user: User, password: str, *, how: str, keep_session_id: str | None = None
) -> tuple[int, list[str]]:
    """What every new password brings, however it came (a reset, a change, an operator): the
    older reset links void (RS-1), and so do pending email changes (EC-1: whoever asked for one
    knew the old password), every session but `keep_session_id` revoked (SE-3), the owner
    mailed (RS-3) and the organization's webhook told. Returns how many sessions were revoked
    and the messages to dispatch after the caller's commit. No commit."""
    user.password_hash = passwords.hash_password(password)
    user.has_password = True  # an account made through a provider has one now
    link_tokens.void(user.id, "password_reset", "email_change")
    revoked = sessions.revoke_all(
        user.id, reason=f"password_{how}", keep_session_id=keep_session_id
    )
    message_ids = events.ids(
        password_changed_mail(user, how=how),
        *events.about_person(user.id, "user.password_changed", {"user_id": user.id}),
    )
    return revoked, message_ids


def _reclaimed(user: User) -> dict[str, object]:
    """Pre-account hijacking: someone who signed up with another's address may have set up
    the account before its owner resets the password (docs/security.md "Unconfirmed
    accounts"). The reset proves the mailbox, so the address counts as confirmed now, and what
    was set up goes: MFA and its recovery codes, the passkeys, and the API keys the account
    created (its sessions are revoked as for every reset). No commit."""
    user.email_verified_at = clock.now()
    had_mfa = user.mfa_enabled or user.mfa_secret is not None
    second_factor.turn_off(user)
    passkeys = passkey_checks.delete_all(user.id)
    keys = changed_rows(
        sa.update(ApiKey)
        .where(ApiKey.created_by == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return {
        "unverified": True,
        "mfa_cleared": had_mfa,
        "passkeys_removed": passkeys,
        "api_keys_revoked": keys,
    }


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


outbox.composes("reset_for", prepare_reset)  # a forgot-password request becomes its mail
outbox.composes("verify_for", prepare_verification)  # so does a resend by address
