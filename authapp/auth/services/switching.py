"""Switching the organization a session acts in (docs/api.md "Organizations").

A switch is a rotation that also moves the session: every unused refresh token of the session
is consumed (pointing at the new one), the session's `organization_id` changes, and the answer
is a new pair whose `org` claim names the target. The access tokens issued before the switch
stop at once: their `org` no longer equals the session's (principals.live_account). The user's
home organization follows, so the next login lands where the person last worked.
"""

from __future__ import annotations

import sqlalchemy as sa

from authapp.auth.principals import Account, Principal
from authapp.auth.services import memberships, sessions
from authapp.models import Membership, RefreshToken, Session, User
from authapp.models.base import is_id, new_id
from authapp.platform import clock
from authapp.platform.errors import NotFound, TokenError
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit, tokens

NO_SUCH_ORGANIZATION = "No such organization."


def switch(principal: Principal, organization_id: str) -> sessions.TokenPair:
    """Move the caller's session into `organization_id`, one of their active memberships.
    Raises NotFound (unknown, not a member, or a suspended membership: AC-2, the answer is the
    same), TokenError (the session ended meanwhile). Commits."""
    user = principal.user
    if user is None or principal.session_id is None:
        raise NotFound(NO_SUCH_ORGANIZATION)  # keys never reach here (require_login)
    target = active_membership(user.id, organization_id)
    if target is None:
        raise NotFound(NO_SUCH_ORGANIZATION)
    pair = move_session(principal.session_id, target)
    audit.by_principal(
        "session.switched_organization",
        principal,
        user_id=user.id,
        session_id=principal.session_id,
        **{"from": principal.organization_id, "to": target.organization_id},
    )
    # The same event in the target's trail: its administrators see who arrived from where.
    audit.record(
        "session.switched_organization",
        organization_id=target.organization_id,
        user_id=user.id,
        actor=principal.actor,
        ip=principal.ip,
        user_agent=principal.user_agent,
        data={"session_id": principal.session_id, "to": target.organization_id},
    )
    db.session.commit()
    return pair


def active_membership(user_id: str, organization_id: str) -> Membership | None:
    """The person's membership of that organization if they may act there now."""
    if not is_id(organization_id):
        return None
    found = memberships.with_access(user_id, organization_id)
    if found is None or not found.is_active or not found.user.is_active:
        return None
    return found


def move_session(session_id: str, target: Membership) -> sessions.TokenPair:
    """The session acts through `target` from now on, with a new refresh token; every unused
    one is consumed in its favour. The user's home organization becomes the target. No commit.
    Raises TokenError when the session is no longer live."""
    now = clock.now()
    # No row lock on the session first: a rotation locks its refresh token, then the session;
    # taking them in the same order here cannot deadlock with it.
    session = db.session.get(Session, session_id)
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        raise TokenError("The session was revoked.", code="token_revoked")
    child = RefreshToken(
        jti=new_id(),
        session_id=session.id,
        issued_at=now,
        expires_at=tokens.refresh_expiry(session.expires_at),
    )
    # A refresh token minted before the switch must not bring the old organization back: each
    # one is spent now, pointing at the new token (a retry within the grace window is answered
    # with it, like any rotation; a later reuse revokes the session, RT-2).
    changed_rows(
        sa.update(RefreshToken)
        .where(RefreshToken.session_id == session.id, RefreshToken.used_at.is_(None))
        .values(used_at=now, replaced_by=child.jti)
    )
    db.session.add(child)
    session.organization_id = target.organization_id
    session.last_seen_at = now
    home = target.organization_id
    changed_rows(sa.update(User).where(User.id == target.user_id).values(organization_id=home))
    return sessions.token_pair(Account.of(target), session.id, child.jti, child.expires_at)
