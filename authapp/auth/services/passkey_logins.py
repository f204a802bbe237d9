"""Logging in with a passkey, without a password (docs/api.md "Passkeys"): options with a fresh
challenge, then the browser's answer. A passkey is possession and, with the user verified (a
PIN or a fingerprint on the authenticator), a second factor in itself: the login asks for no
TOTP code. Each public function owns its commit."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from authapp.auth import backoff, devices, passkey_checks
from authapp.auth.services import logins, sessions
from authapp.models import Passkey, User
from authapp.platform.errors import Conflict, Forbidden, Unauthorized
from authapp.platform.extensions import db
from authapp.security import passkeys
from authapp.security.passkeys import PasskeyRefused, Presented, RelyingParty


def options(party: RelyingParty, *, user_id: str | None = None) -> dict[str, Any]:
    """Request options: for any passkey the authenticator holds for this site, or, with
    `user_id` (the login page's second step), for that account's passkeys only."""
    allowed = passkey_checks.credential_ids(user_id) if user_id else []
    if user_id and not allowed:  # an empty list would offer any account's passkey
        raise Conflict("This account has no passkey: enter your code.", code="no_passkey")
    challenge = passkey_checks.issue_challenge("login", user_id=user_id)
    db.session.commit()
    return passkeys.authentication_options(party, challenge=challenge, allowed=allowed)


def log_in(
    presented: Presented, *, client: sessions.Client, device_cookie: str | None = None
) -> sessions.TokenPair:
    """A new session for the account whose passkey signed `presented`. Raises
    Unauthorized(invalid_passkey) alike for every refusal, RateLimited while the back-off
    holds the account (or, for an unknown credential, its id), Forbidden(account_disabled)
    only after the passkey checked out, EmailUnverified as a password login does."""
    try:
        claimed: passkeys.Assertion | None = passkeys.read_assertion(presented.credential)
    except PasskeyRefused:
        claimed = None
    credential_id = claimed.credential_id if claimed else ""
    user = _owner(credential_id)
    device_id = devices.recognise(device_cookie, user)
    held_by = backoff.counter(f"passkey:{credential_id}", user, device_id)
    backoff.check(held_by)
    try:
        if user is None or claimed is None:
            raise PasskeyRefused("unknown_passkey")
        passkey_checks.check(presented.party, claimed)
    except PasskeyRefused as exc:
        logins.suspect_clone(user, client, exc)
        logins.record_failure(
            held_by, user, client, reason="invalid_passkey", method="passkey", why=exc.reason
        )
        raise Unauthorized(logins.PASSKEY_REFUSED, code="invalid_passkey") from None
    db.session.commit()  # the challenge stays spent, even if an unverified refusal rolls back
    if not user.is_active:
        logins.record_failure(held_by, user, client, reason="account_disabled", method="passkey")
        raise Forbidden("This account is disabled.", code="account_disabled")
    return logins.start_session(user, client, held_by, device_id, method="passkey")


def _owner(credential_id: str) -> User | None:
    if not credential_id:
        return None
    owner = sa.select(User).join(Passkey, Passkey.user_id == User.id)
    return db.session.scalar(owner.where(Passkey.credential_id == credential_id))
