"""The session lifecycle: start, refresh (rotation with reuse detection), logout, revocation.

docs/api.md "Tokens and sessions". Each public function that changes state owns its commit; the
conditional UPDATE on `refresh_tokens.used_at` decides every race between refreshes.

A rotation is one statement on PostgreSQL (rotation.py): consume the presented token, insert its
child, touch the session and read the principal, in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from flask import current_app

from authapp.auth import policy
from authapp.auth.principals import Account
from authapp.auth.services import rotation
from authapp.delivery import events, outbox
from authapp.models import Membership, RefreshToken, Session, User
from authapp.models.base import new_id
from authapp.platform import clock
from authapp.platform.errors import TokenError
from authapp.platform.extensions import changed_rows, db
from authapp.platform.network import Client
from authapp.security import audit, tokens


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: Account
    session_id: str
    token_type: str = "Bearer"
    device_cookie: str | None = None  # a login's (auth/devices.py); never in the JSON answer


def start(user: User, membership: Membership, client: Client) -> tuple[Session, RefreshToken]:
    """A new session (SE-5: a new id at every login) acting through `membership`, and its first
    refresh token; no commit."""
    now = clock.now()
    session = Session(
        id=new_id(),
        user_id=user.id,
        organization_id=membership.organization.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=current_app.config["SESSION_MAX_AGE"]),
        ip=client.ip,
        user_agent=client.user_agent,
    )
    refresh = RefreshToken(
        jti=new_id(),
        session=session,
        issued_at=now,
        expires_at=tokens.refresh_expiry(session.expires_at),
    )
    db.session.add_all([session, refresh])
    return session, refresh


def token_pair(account: Account, session_id: str, jti: str, expires_at: datetime) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token(
            user_id=account.id,
            session_id=session_id,
            organization_id=account.organization_id,
            roles=account.role_names,
        ),
        refresh_token=tokens.refresh_token(
            user_id=account.id, session_id=session_id, jti=jti, expires_at=expires_at
        ),
        expires_in=current_app.config["ACCESS_TOKEN_TTL"],
        user=account,
        session_id=session_id,
    )


def started(membership: Membership, session: Session, refresh: RefreshToken) -> TokenPair:
    """The pair of a session `start` made (the membership loaded with its access)."""
    return token_pair(Account.of(membership), session.id, refresh.jti, refresh.expires_at)


def refresh(encoded: str, client: Client, *, csrf: str | None = None) -> TokenPair:
    """Rotate a refresh token. Raises TokenError: invalid_token, token_expired,
    token_revoked, token_reused (which also revokes the session: RT-2); CsrfFailed when a
    cookie's token comes without its `csrf` echo; EmailUnverified (below)."""
    claims = tokens.decode_refresh(encoded, csrf=csrf)
    now = clock.now()
    idle_expiry = now + timedelta(seconds=current_app.config["REFRESH_TOKEN_TTL"])
    done = rotation.rotate(claims, now=now, idle_expiry=idle_expiry, child_jti=new_id())
    if done.child_expires_at is None:
        # Lost the race, or replayed: only the immediate parent within the window is a retry.
        pair = _retry_or_revoke(claims, done.account, now, client)
    else:
        pair = token_pair(done.account, claims["sid"], done.child_jti, done.child_expires_at)
    if not policy.may_have_session(pair.user.email_verified):
        _end_unverified(pair.user, pair.session_id, client)
    return pair


def _end_unverified(account: Account, session_id: str, client: Client) -> NoReturn:
    """A session of an unconfirmed account, begun before REQUIRE_VERIFIED_EMAIL was turned on,
    ends at its next refresh: the safe reading of "no session before the link". Asked only of a
    refresh that would have succeeded, so a replay is still told (and revoked) as reuse; the
    rotation is a statement of its own, so ending the session is what keeps the new pair
    unusable. After the link, the account logs in again."""
    _revoke_audited(account, session_id, client, "session.revoked", reason="email_unverified")
    db.session.commit()
    raise policy.EmailUnverified()


def _retry_or_revoke(
    claims: Mapping[str, Any], account: Account, now: datetime, client: Client
) -> TokenPair:
    jti, session_id = claims["jti"], claims["sid"]
    presented = db.session.get(RefreshToken, jti)
    if presented is None or presented.session_id != session_id:
        raise TokenError("The refresh token is unknown.")
    if presented.used_at is None:  # unused, so the UPDATE missed it for its age
        raise TokenError("The refresh token has expired.", code="token_expired")
    current = db.session.get(RefreshToken, presented.replaced_by) if presented.replaced_by else None
    grace = timedelta(seconds=current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    is_retry = (
        current is not None
        and current.used_at is None
        and current.expires_at > now
        and grace > timedelta(0)
        # `now` was read before this request waited on the winner's row lock, so it may be
        # earlier than the winner's used_at: the age is measured from a fresh reading.
        and clock.now() - presented.used_at < grace
    )
    if is_retry and current is not None:
        db.session.commit()  # nothing changed; end the read transaction
        # The same jti again: idempotent.
        return token_pair(account, session_id, current.jti, current.expires_at)
    _revoke_reused(account, session_id, jti, client)


def _revoke_audited(
    account: Account,
    session_id: str,
    client: Client,
    event: str,
    *,
    reason: str,
    **data: str,
) -> None:
    """The system ends a session (no commit), audited as `event` with why and `data`."""
    revoke(session_id, reason=reason)
    audit.record(
        event,
        organization_id=account.organization_id,
        user_id=account.id,
        actor="system",
        ip=client.ip,
        user_agent=client.user_agent,
        data={"session_id": session_id, "reason": reason, **data},
    )


def _revoke_reused(account: Account, session_id: str, jti: str, client: Client) -> NoReturn:
    """A used refresh token came back outside the grace: the session is revoked (RT-2)."""
    _revoke_audited(
        account, session_id, client, "session.reuse_detected", reason="token_reused", jti=jti
    )
    message_id = events.webhook(
        account.organization_id,
        "session.reuse_detected",
        {"user_id": account.id, "session_id": session_id},
    )
    db.session.commit()
    outbox.dispatch(events.ids(message_id))
    raise TokenError(
        "This refresh token was already used; the session is revoked.", code="token_reused"
    )


def revoke(session_id: str, *, reason: str) -> bool:
    """Revoke one live session; no commit."""
    return _revoke(Session.id == session_id, reason=reason) == 1


def revoke_all(user_id: str, *, reason: str, keep_session_id: str | None = None) -> int:
    """Revoke the user's live sessions (all but `keep_session_id`); no commit."""
    kept = [Session.id != keep_session_id] if keep_session_id is not None else []
    return _revoke(Session.user_id == user_id, *kept, reason=reason)


def revoke_in_organization(user_id: str, organization_id: str, *, reason: str) -> int:
    """Revoke the user's live sessions acting in that organization (a membership suspended or
    removed); their sessions elsewhere go on. No commit."""
    return _revoke(
        Session.user_id == user_id, Session.organization_id == organization_id, reason=reason
    )


def _revoke(*criteria: sa.ColumnElement[bool], reason: str) -> int:
    return changed_rows(
        sa.update(Session)
        .where(*criteria, Session.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )


def log_out(
    user: Account, session_id: str, client: Client, refresh_token: str | None = None
) -> None:
    """End the caller's session (SE-1); a refresh token sent along must belong to this user."""
    if refresh_token is not None:
        claims = tokens.decode_refresh(refresh_token)
        if claims["sub"] != user.id:
            raise TokenError("The refresh token belongs to someone else.")
        revoke(claims["sid"], reason="logout")
    revoke(session_id, reason="logout")
    audit.by_user("logout", user, client, session_id=session_id)
    db.session.commit()


def log_out_all(user: Account, client: Client) -> None:
    """End every session of the caller (SE-2)."""
    count = revoke_all(user.id, reason="logout_all")
    audit.by_user("logout_all", user, client, sessions_revoked=count)
    db.session.commit()
