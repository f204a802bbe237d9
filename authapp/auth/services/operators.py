"""An operator's account use cases (`flask users ...`): plain values in, one commit each.

An operator acts from a shell, not through a request: the audit rows name `system` as the actor
and carry no client address. Accounts are named by email or username (accounts.account_named).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from authapp.auth import backoff
from authapp.auth.services import accounts, recovery, sessions
from authapp.delivery import outbox
from authapp.models import Membership, RefreshToken, Session, User
from authapp.platform import clock
from authapp.platform.errors import ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit


@dataclass(frozen=True)
class ListedAccount:
    id: str
    email: str
    username: str | None
    verified: bool
    disabled: bool
    mfa: bool
    created_at: datetime


@dataclass(frozen=True)
class AccountList:
    accounts: list[ListedAccount]
    total: int  # every account the filters match; `accounts` holds at most the limit


def list_accounts(
    *,
    organization: str | None = None,
    search: str | None = None,
    disabled_only: bool = False,
    limit: int = 50,
) -> AccountList:
    """Accounts by creation, oldest first. `search` matches a part of the email, username or
    full name, in any case. Raises AppError(not_found) for an unknown organization,
    ValidationFailed for a search no account could match."""
    criteria: list[sa.ColumnElement[bool]] = []
    if organization is not None:
        members = sa.select(Membership.user_id).where(
            Membership.organization_id == accounts.find_organization(organization).id
        )
        criteria.append(User.id.in_(members))
    if search is not None:
        criteria.append(_matching(search))
    if disabled_only:
        criteria.append(User.is_active.is_(False))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(*criteria))
    users = db.session.scalars(
        sa.select(User).where(*criteria).order_by(User.created_at, User.id).limit(limit)
    ).all()
    listed = [
        ListedAccount(
            user.id,
            user.email,
            user.username,
            user.email_verified,
            not user.is_active,
            user.mfa_enabled,
            user.created_at,
        )
        for user in users
    ]
    return AccountList(listed, total or 0)


def _matching(search: str) -> sa.ColumnElement[bool]:
    if accounts.names_nothing(search, longest=200):
        raise ValidationFailed(
            {"search": ["Must be at most 200 characters, none of them control."]}
        )
    # LIKE's own wildcards in the text are matched as themselves.
    escaped = search.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    columns = (User.email_normalized, sa.func.lower(User.username), sa.func.lower(User.full_name))
    return sa.or_(*(column.like(pattern, escape="\\") for column in columns))


def set_password(login: str, password: str) -> int:
    """An operator sets the account's password: the sign-up policy, then what a reset does
    (RS-1, RS-3, SE-3): older reset links void, the login back-off cleared, every session
    revoked, the owner mailed. Returns how many sessions were revoked. Raises AppError
    (not_found), ValidationFailed (policy)."""
    user = accounts.account_named(login)
    accounts.check_password_policy(
        password, email=user.email, username=user.username, full_name=user.full_name
    )
    backoff.clear_account(user)
    revoked, message_ids = recovery.replace_password(user, password, how="set_by_operator")
    _audit("password.set_by_operator", user, sessions_revoked=revoked)
    db.session.commit()
    outbox.dispatch(message_ids)
    return revoked


def enable_user(login: str) -> bool:
    """The account may log in again (its old sessions stay revoked). False when it was not
    disabled: nothing changes and nothing is audited."""
    user = accounts.account_named(login)
    if user.is_active:
        db.session.commit()  # nothing changed; ends the read
        return False
    user.is_active = True
    _audit("user.enabled", user)
    db.session.commit()
    return True


@dataclass(frozen=True)
class Revoked:
    sessions: int
    refresh_tokens: int  # unused, unexpired ones of those sessions: none of them refreshes now


def revoke_sessions(login: str) -> Revoked:
    """End every live session of the account now; its access and refresh tokens are refused
    from the next request on, in every worker (the principal and the rotation read the
    session's row)."""
    user = accounts.account_named(login)
    now = clock.now()
    live = sa.select(Session.id).where(Session.user_id == user.id, Session.revoked_at.is_(None))
    refresh_tokens = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(RefreshToken)
        .where(
            RefreshToken.session_id.in_(live),
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
        )
    )
    count = sessions.revoke_all(user.id, reason="operator_revoked")
    _audit("sessions.revoked_by_operator", user, sessions_revoked=count)
    db.session.commit()
    return Revoked(count, refresh_tokens or 0)


def _audit(event: str, user: User, **data: object) -> None:
    audit.record(
        event, organization_id=user.organization_id, user_id=user.id, actor="system", data=data
    )
