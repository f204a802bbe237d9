"""One refresh-token rotation: consume the presented token, insert its child, touch the session,
and read the principal the new access token is made for (docs/api.md "Tokens and sessions").

The presented token is consumed by a conditional UPDATE (unused, unexpired, of a live session of
an active user): of concurrent refreshes with one token, PostgreSQL's row lock lets exactly one
change the row, and the others find it used (RT-3, F9). On PostgreSQL the three writes are
data-modifying CTEs of the principal's SELECT: one statement, a transaction by itself, one round
trip. SQLite has no data-modifying CTEs: there the same steps run one after another in one
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from authapp.auth.principals import PRINCIPAL_STATEMENT, Account, account_of
from authapp.models import RefreshToken, Session, User
from authapp.models.base import ID, UTCDateTime
from authapp.platform import statements
from authapp.platform.extensions import changed_rows, db


@dataclass(frozen=True)
class Rotation:
    """The session's account and, when this request rotated, its new token's jti and expiry."""

    account: Account
    child_jti: str
    child_expires_at: datetime | None  # None: nothing rotated (a lost race, a replay, expiry)


def _consumable(jti: Any, session_id: Any, now: Any) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        RefreshToken.jti == jti,
        RefreshToken.session_id == session_id,
        RefreshToken.used_at.is_(None),
        RefreshToken.expires_at > now,
    )


def _one_statement() -> sa.Select[Any]:
    """PostgreSQL's rotation, built once: parameters presented (the jti), sid, sub, now,
    child_jti and idle_expiry."""
    now = sa.bindparam("now", type_=UTCDateTime())
    consumed = _consumed(now)
    child = _child(consumed, now)
    touched = (
        sa.update(Session)
        .where(Session.id.in_(sa.select(consumed.c.session_id)))
        .values(last_seen_at=now)
        .cte("touched")
    )
    child_expiry = sa.select(child.c.expires_at).scalar_subquery()
    statement: sa.Select[Any] = PRINCIPAL_STATEMENT.add_columns(child_expiry).add_cte(touched)
    return statement


def _consumed(now: sa.BindParameter[Any]) -> sa.CTE:
    """The presented token marked used, if it and its session (and user) are still live."""
    live = sa.exists().where(
        Session.id == sa.bindparam("sid"),
        Session.user_id == sa.bindparam("sub"),
        Session.revoked_at.is_(None),
        Session.expires_at > now,
        User.id == Session.user_id,
        User.is_active.is_(True),
    )
    return (
        sa.update(RefreshToken)
        .where(*_consumable(sa.bindparam("presented"), sa.bindparam("sid"), now), live)
        .values(used_at=now, replaced_by=sa.bindparam("child_jti", type_=ID))
        .returning(RefreshToken.session_id)
        .cte("consumed")
    )


def _child(consumed: sa.CTE, now: sa.BindParameter[Any]) -> sa.CTE:
    """The child token: it lives as long as the idle window allows, never past the session's
    cap."""
    idle_expiry = sa.bindparam("idle_expiry", type_=UTCDateTime())
    return (
        sa.insert(RefreshToken)
        .from_select(
            ["jti", "session_id", "issued_at", "expires_at"],
            sa.select(
                sa.bindparam("child_jti", type_=ID),
                consumed.c.session_id,
                now,
                sa.func.least(idle_expiry, Session.expires_at),
            ).join_from(consumed, Session, Session.id == consumed.c.session_id),
        )
        .returning(RefreshToken.expires_at)
        .cte("child")
    )


ONE_STATEMENT = _one_statement()


def rotate(
    claims: Mapping[str, Any], *, now: datetime, idle_expiry: datetime, child_jti: str
) -> Rotation:
    """Raises TokenError when the session or its user may no longer act (token_reused for a
    session revoked for reuse)."""
    if db.engine.dialect.name != "postgresql":
        return _step_by_step(claims, now, idle_expiry, child_jti)
    params = {
        "presented": claims["jti"],
        "sid": claims["sid"],
        "sub": claims["sub"],
        "now": now,
        "child_jti": child_jti,
        "idle_expiry": idle_expiry,
    }
    row = statements.first_row(db.engine, ONE_STATEMENT, params, alone=True)
    account = account_of(row, reused_code="token_reused")  # raises for a missing row
    return Rotation(account, child_jti, row[-1] if row else None)


def _step_by_step(
    claims: Mapping[str, Any], now: datetime, idle_expiry: datetime, child_jti: str
) -> Rotation:
    params = {"sub": claims["sub"], "sid": claims["sid"]}
    row = db.session.execute(PRINCIPAL_STATEMENT, params).first()
    account = account_of(row, reused_code="token_reused")
    consumed = changed_rows(
        sa.update(RefreshToken)
        .where(*_consumable(claims["jti"], claims["sid"], now))
        .values(used_at=now, replaced_by=child_jti)
    )
    if consumed != 1:
        return Rotation(account, child_jti, None)
    expires_at = min(idle_expiry, row[2]) if row else idle_expiry  # row[2]: the session's cap
    db.session.add(
        RefreshToken(jti=child_jti, session_id=claims["sid"], issued_at=now, expires_at=expires_at)
    )
    changed_rows(sa.update(Session).where(Session.id == claims["sid"]).values(last_seen_at=now))
    db.session.commit()
    return Rotation(account, child_jti, expires_at)
