"""Self-service: a user's profile, password and sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from authapp.auth.principals import Principal
from authapp.auth.services import accounts, reauthentication, recovery, sessions
from authapp.delivery import outbox
from authapp.models import Session, User
from authapp.models.base import is_id
from authapp.platform import clock
from authapp.platform.errors import NotFound
from authapp.platform.extensions import db
from authapp.security import audit


def update_profile(principal: Principal, user: User, changes: dict[str, Any]) -> User:
    """Change `full_name` and/or `username` (None clears it). Raises Conflict(username_taken)."""
    changed = {name: value for name, value in changes.items() if getattr(user, name) != value}
    for name, value in changed.items():
        setattr(user, name, value)
    if changed:
        accounts.flush_unique()  # the unique index decides, never a SELECT first
        audit.by_principal("profile.updated", principal, user_id=user.id, fields=sorted(changed))
    db.session.commit()
    return user


def change_password(
    principal: Principal, user: User, *, current_password: str, new_password: str
) -> int:
    """PW-6, SE-3: the current password first; then every other session ends, this one stays.
    Returns how many sessions were revoked. Raises ValidationFailed."""
    reauthentication.require_password(
        principal,
        user,
        current_password,
        failed_event="password.change_failed",
        field="current_password",
        message="The current password is incorrect.",
    )
    accounts.check_new_password(user, new_password)
    revoked, message_ids = recovery.replace_password(
        user, new_password, how="changed", keep_session_id=principal.session_id
    )
    audit.by_principal("password.changed", principal, user_id=user.id, sessions_revoked=revoked)
    db.session.commit()
    outbox.dispatch(message_ids)
    return revoked


def live_sessions(user_id: str) -> list[Session]:
    """Sessions that can still be refreshed: not revoked, under the cap, not idle too long.

    `last_seen_at` moves at login and at each refresh, so it also dates the idle expiry.
    """
    now = clock.now()
    idle = timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"])
    return list(
        db.session.scalars(
            sa.select(Session)
            .where(
                Session.user_id == user_id,
                Session.revoked_at.is_(None),
                Session.expires_at > now,
                Session.last_seen_at > now - idle,
            )
            .order_by(Session.last_seen_at.desc(), Session.id)
        )
    )


def revoke_session(principal: Principal, user: User, session_id: str) -> None:
    """SE-5: the caller's own sessions only; another user's id is NotFound and changes nothing.
    Revoking the current session logs the caller out."""
    if not is_id(session_id):
        raise NotFound("No such session.")
    session = db.session.get(Session, session_id)
    if session is None or session.user_id != user.id:
        raise NotFound("No such session.")
    if sessions.revoke(session.id, reason="user_revoked"):
        audit.by_principal("session.revoked", principal, user_id=user.id, session_id=session.id)
    db.session.commit()
