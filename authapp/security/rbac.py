"""Who is calling and what they may do: the Principal of a request and the route guards.

A principal is a user acting through a session (an access token) or an organization's API key
(`X-API-Key`). Either costs one statement: the session joined to its user, organization, roles
and permissions, or the key joined to its organization. Authorization reads those rows, never
the `roles` claim of a token (JW-9), and a guard adds no statement of its own.

Guards for every route, the adopter's blueprints included (each marks its wrapper with the
credentials it `accepts`, which the OpenAPI document shows as the operation's `security`):

    @bp.route("/commodities", methods=["POST"])
    @require_permission("commodities:write")  # 401 without credentials, 403 without the code
    def create_commodity(): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from flask import Flask, g, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from limits import RateLimitItemPerMinute
from sqlalchemy.orm import joinedload

from authapp import audit, clock
from authapp.errors import Forbidden, TokenError
from authapp.extensions import db, jwt
from authapp.models import ApiKey, Organization, Role, Session, User
from authapp.security import api_keys, budgets, network

F = TypeVar("F", bound=Callable[..., Any])
API_KEY_HEADER = "X-API-Key"
# last_used_at is kept to the minute: a write on every keyed request would cost a statement.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """The caller: `user` and `session_id` for a login, `api_key_id` for a key."""

    organization: Organization
    permissions: frozenset[str]
    user: User | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    ip: str | None = None  # where the request came from, for the audit log
    user_agent: str | None = None

    @property
    def organization_id(self) -> str:
        return self.organization.id

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return f"user:{self.user.id}" if self.user else f"api_key:{self.api_key_id}"

    @property
    def is_owner(self) -> bool:
        return self.user is not None and "owner" in self.user.role_names


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


def principal_of(user: User, session_id: str) -> Principal:
    """A logged-in user's principal; `user` was loaded by `user_with_access`."""
    return Principal(
        organization=user.organization,
        permissions=frozenset(user.permission_codes),
        user=user,
        session_id=session_id,
        ip=network.client_ip(),
        user_agent=network.user_agent(),
    )


def access_principal(claims: dict[str, Any]) -> Principal:
    """The principal of verified access-token claims (header or cookie). Raises TokenError."""
    if claims["type"] != "access":
        raise TokenError("An access token is required.")
    user, _session = live_session(claims["sub"], claims["sid"])
    return principal_of(user, claims["sid"])


def _load_principal(_header: dict[str, Any], claims: dict[str, Any]) -> Principal:
    return access_principal(claims)


def _api_key_principal(presented: str) -> Principal:
    """AK-2: a revoked or expired key fails on the request after the change commits."""
    prefix = api_keys.prefix_of(presented)
    row = None
    if prefix is not None:
        row = db.session.execute(
            sa.select(ApiKey, Organization)
            .join(Organization, Organization.id == ApiKey.organization_id)
            .where(ApiKey.prefix == prefix)
        ).first()
    if row is None or not api_keys.matches(presented, row[0].key_hash):
        raise TokenError("The API key is invalid.")
    key, organization = row
    now = clock.now()
    if key.revoked_at is not None:
        raise TokenError("The API key was revoked.", code="token_revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise TokenError("The API key has expired.", code="token_expired")
    budgets.spend(
        RateLimitItemPerMinute(organization.rate_limit_per_minute),
        "api_key",
        key.id,
        "This API key is over its organization's requests per minute.",
    )
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
        db.session.commit()  # recorded even when the route itself only reads
    return Principal(
        organization=organization,
        permissions=frozenset(key.scopes),
        api_key_id=key.id,
        ip=network.client_ip(),
        user_agent=network.user_agent(),
    )


def authenticate() -> Principal:
    """The request's principal, resolved once: an `X-API-Key` or a bearer access token."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        presented = request.headers.get(API_KEY_HEADER)
        if presented is not None:
            principal = _api_key_principal(presented)
        else:
            verify_jwt_in_request()
            principal = get_current_user()
        g.principal = principal
    return principal


def current_principal() -> Principal:
    """The principal a guard already resolved (call only behind a guard)."""
    principal: Principal = g.principal
    return principal


def current_user() -> User:
    """The logged-in user of a `require_login()` route."""
    user = current_principal().user
    if user is None:  # unreachable behind require_login(); a guard left off is a 403, not a 500
        raise Forbidden("This route needs a user's login.")
    return user


def require_login(*, api_keys: bool = False) -> Callable[[F], F]:
    """Guard a view: any logged-in user; with `api_keys=True`, an organization's key too."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.user is None and not api_keys:
                raise Forbidden("API keys cannot use this route: it acts on a user's own account.")
            return view(*args, **kwargs)

        guarded.accepts = ("bearer", "apiKey") if api_keys else ("bearer",)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorator


def require_permission(code: str) -> Callable[[F], F]:
    """Guard a view: 401 without credentials, 403 `forbidden` (audited) without `code`."""

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if code not in principal.permissions:
                deny(principal, code)
            return view(*args, **kwargs)

        guarded.accepts = ("bearer", "apiKey")  # type: ignore[attr-defined]  # keys: their scopes
        return guarded  # type: ignore[return-value]

    return decorator


def deny(principal: Principal, code: str) -> NoReturn:
    """Audit the refusal (AU-1) and raise Forbidden."""
    audit.by_principal(  # AU-1: a 403 is a security event too
        "access.denied",
        principal,
        user_id=principal.user.id if principal.user else None,
        permission=code,
        method=request.method,
        path=request.path,
    )
    db.session.commit()
    raise Forbidden("You do not have permission to do this.")


def init_app(app: Flask) -> None:
    jwt.user_lookup_loader(_load_principal)
