"""Who is calling and what they may do: the Principal of a request and `require_permission`.

An access token costs one statement: the session joined to its user, organization, roles and
permissions. Authorization reads those rows, never the `roles` claim of the token (JW-9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from sqlalchemy.orm import joinedload

from authapp import clock
from authapp.errors import Forbidden, TokenError
from authapp.extensions import db, jwt
from authapp.models import Role, Session, User

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    user: User
    session_id: str
    permissions: frozenset[str]

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def organization_id(self) -> str:
        return self.user.organization_id


def user_with_access(*criteria: sa.ColumnElement[bool]) -> sa.Select[User]:
    """Users with everything a `user` answer shows, loaded in the same statement."""
    return (
        sa.select(User)
        .where(*criteria)
        .options(
            joinedload(User.organization),
            joinedload(User.roles).joinedload(Role.permissions),
        )
    )


def live_session(
    user_id: str, session_id: str, *, reused_code: str = "token_revoked"
) -> tuple[User, Session]:
    """The token's user and session, in one statement, if both may still act (JW-9, SE-1..4).

    A session revoked for refresh-token reuse answers `reused_code`: the refresh endpoint tells
    every racer of a replay `token_reused`, while access tokens are simply `token_revoked`.
    """
    statement = (
        user_with_access(User.id == user_id)
        .add_columns(Session)
        .join(Session, sa.and_(Session.user_id == User.id, Session.id == session_id))
    )
    row = db.session.execute(statement).unique().first()
    if row is None:
        raise TokenError("The session no longer exists.", code="token_revoked")
    user, session = row
    if session.revoked_reason == "token_reused":
        raise TokenError("The session was revoked: a refresh token was reused.", code=reused_code)
    if session.revoked_at is not None or not user.is_active:
        raise TokenError("The session was revoked.", code="token_revoked")
    if session.expires_at <= clock.now():
        raise TokenError("The session has reached its maximum age.", code="token_expired")
    return user, session


def _load_principal(_header: dict[str, Any], claims: dict[str, Any]) -> Principal:
    if claims["type"] != "access":
        raise TokenError("An access token is required.")
    user, _session = live_session(claims["sub"], claims["sid"])
    return Principal(
        user=user, session_id=claims["sid"], permissions=frozenset(user.permission_codes)
    )


def current_principal() -> Principal:
    principal: Principal = get_current_user()
    return principal


def require_permission(code: str) -> Callable[[F], F]:
    """Guard a view: 401 without credentials, 403 `forbidden` without `code`."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if code not in current_principal().permissions:
                raise Forbidden("You do not have permission to do this.")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorator


def init_app(app: Flask) -> None:
    jwt.user_lookup_loader(_load_principal)
