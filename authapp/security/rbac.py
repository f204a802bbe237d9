"""Who is calling and what they may do: the Principal of a request and the route guards.

A principal is a user acting through a session (an access token) or an organization's API key
(`X-API-Key`). Either costs one statement: the session joined to its user, organization, roles
and permissions, or the key joined to its organization and to the member it acts for, whose
current permissions bound its scopes (AK-3). Authorization reads those rows, never
the `roles` claim of a token (JW-9), and a guard adds no statement of its own.

Guards for every route, the adopter's blueprints included (each marks its wrapper with the
credentials it `accepts`, which the OpenAPI document shows as the operation's `security`):

    @bp.route("/commodities", methods=["POST"])
    @require_permission("commodities:write")  # 401 without credentials, 403 without the code
    def create_commodity(): ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import sqlalchemy as sa
from flask import g, has_request_context, request
from limits import RateLimitItemPerMinute
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.functions import FunctionElement

from authapp import audit, clock, statements
from authapp.errors import Conflict, Forbidden, NotFound, TokenError
from authapp.extensions import db
from authapp.models import ApiKey, Organization, Permission, Role, Session, User
from authapp.models.role import role_permissions, user_roles
from authapp.security import api_keys, budgets, network, tokens

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
API_KEY_HEADER = "X-API-Key"
# last_used_at is kept to the minute: a write on every keyed request would cost a statement.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Role names and permission codes never hold a line break (their schemas refuse control
# characters), so one joins each list into a single column of the principal's statement.
SEPARATOR = "\n"  # char(10), chr(10) in the SQL of _Lines


@dataclass(frozen=True)
class OrganizationView:
    """The caller's organization as `GET /settings/organization` shows it."""

    id: str
    name: str
    tier: str
    rate_limit_per_minute: int
    webhook_url: str | None
    created_at: datetime


@dataclass(frozen=True)
class Account:
    """The logged-in user as every `user` answer shows it (auth.schemas.UserOut), read by the
    principal's one statement: plain values, no ORM object, nothing loaded later."""

    id: str
    email: str
    username: str | None
    full_name: str
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None
    organization: OrganizationView
    role_names: list[str]
    permission_codes: list[str]

    @property
    def organization_id(self) -> str:
        return self.organization.id

    @classmethod
    def of(cls, user: User) -> Account:
        """The account of a `User` loaded with `user_with_access` (after a login or refresh)."""
        org = user.organization
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            full_name=user.full_name,
            email_verified=user.email_verified,
            mfa_enabled=user.mfa_enabled,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            organization=OrganizationView(
                org.id,
                org.name,
                org.tier,
                org.rate_limit_per_minute,
                org.webhook_url,
                org.created_at,
            ),  # fmt: skip
            role_names=user.role_names,
            permission_codes=user.permission_codes,
        )


@dataclass(frozen=True)
class Principal:
    """The caller: `user` and `session_id` for a login, `api_key_id` for a key."""

    organization: OrganizationView
    permissions: frozenset[str]
    user: Account | None = None
    session_id: str | None = None
    api_key_id: str | None = None
    acts_for: str | None = None  # a key's member: its rights bound the key's (AK-3)
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
    """Users with everything a `user` answer shows, loaded in the same statement (for the
    services that change an account and answer with it)."""
    return (
        sa.select(User)
        .where(*criteria)
        .options(
            joinedload(User.organization),
            joinedload(User.roles).joinedload(Role.permissions),
        )
    )


class _Lines(FunctionElement[str]):
    """Strings joined with line breaks, as one column: string_agg on PostgreSQL, group_concat
    elsewhere. The separator is written into the SQL: SQLAlchemy's aggregate_strings passes it
    as a literal parameter, which it renders into the statement at every execution (half the
    Python cost of the principal's statement)."""

    type = sa.String()
    inherit_cache = True
    name = "lines"


@compiles(_Lines)
def _group_concat(element: _Lines, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, char(10))"


@compiles(_Lines, "postgresql")
def _string_agg(element: _Lines, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, chr(10))"


class _JsonTexts(FunctionElement[Any]):
    """The strings of a JSON array as rows of one column, `value`: json_array_elements_text on
    PostgreSQL, json_each elsewhere (SQLite)."""

    inherit_cache = True
    name = "json_texts"


@compiles(_JsonTexts)
def _json_each(element: _JsonTexts, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(_JsonTexts, "postgresql")
def _json_array_elements_text(element: _JsonTexts, compiler: Any, **kw: Any) -> str:
    return f"json_array_elements_text({compiler.process(element.clauses, **kw)})"


def _joined(column: Any, joins: sa.FromClause) -> sa.ScalarSelect[str]:
    return (
        sa.select(_Lines(column))
        .select_from(joins)
        .where(user_roles.c.user_id == User.id)
        .scalar_subquery()
    )


ORGANIZATION_COLUMNS = (
    Organization.id,
    Organization.name,
    Organization.tier,
    Organization.rate_limit_per_minute,
    Organization.webhook_url,
    Organization.created_at,
)
ACCOUNT_COLUMNS = (
    User.id,
    User.email,
    User.username,
    User.full_name,
    User.email_verified_at,
    User.mfa_enabled,
    User.created_at,
    User.last_login_at,
)
HELD_PERMISSIONS = user_roles.join(
    role_permissions, role_permissions.c.role_id == user_roles.c.role_id
).join(Permission, Permission.id == role_permissions.c.permission_id)
# JW-9, SE-1..4: the session, its user and what they may do, in one statement and one round
# trip (DESIGN.md rule 5). Authorization reads these rows, never the token's `roles` claim.
PRINCIPAL_COLUMNS = (
    Session.revoked_at,
    Session.revoked_reason,
    Session.expires_at,
    User.is_active,
    *ACCOUNT_COLUMNS,
    *ORGANIZATION_COLUMNS,
    _joined(Role.name, user_roles.join(Role, Role.id == user_roles.c.role_id)),
    _joined(Permission.code, HELD_PERMISSIONS),
)


# Parameters: a token's `sub` and `sid` (named after no column: in a statement that also
# updates, SQLAlchemy would take a parameter named like a column for a value to SET).
PRINCIPAL_STATEMENT = (
    sa.select(*PRINCIPAL_COLUMNS)
    .select_from(Session)
    .join(User, User.id == Session.user_id)
    .join(Organization, Organization.id == User.organization_id)
    .where(Session.id == sa.bindparam("sid"), Session.user_id == sa.bindparam("sub"))
)


def _listed(joined: str | None) -> list[str]:
    return sorted(set(joined.split(SEPARATOR))) if joined else []


def live_account(user_id: str, session_id: str) -> Account:
    """The token's account, if its session and user may still act. Raises TokenError."""
    # Not the request's ORM session: a read of plain columns needs none of its bookkeeping.
    params = {"sub": user_id, "sid": session_id}
    return account_of(statements.first_row(db.engine, PRINCIPAL_STATEMENT, params))


def account_of(row: Any, *, reused_code: str = "token_revoked") -> Account:
    """The account in a row of PRINCIPAL_COLUMNS, if its session and user may still act.

    A session revoked for refresh-token reuse answers `reused_code`: the refresh endpoint tells
    every racer of a replay `token_reused`, while access tokens are simply `token_revoked`.
    """
    if row is None:
        raise TokenError("The session no longer exists.", code="token_revoked")
    revoked_at, revoked_reason, expires_at, is_active, *values = row[: len(PRINCIPAL_COLUMNS)]
    if revoked_reason == "token_reused":
        raise TokenError("The session was revoked: a refresh token was reused.", code=reused_code)
    if revoked_at is not None or not is_active:
        raise TokenError("The session was revoked.", code="token_revoked")
    if expires_at <= clock.now():
        raise TokenError("The session has reached its maximum age.", code="token_expired")
    account, organization = values[: len(ACCOUNT_COLUMNS)], values[len(ACCOUNT_COLUMNS) :]
    uid, email, username, full_name, verified_at, mfa_enabled, created_at, last_login_at = account
    return Account(
        id=str(uid),
        email=email,
        username=username,
        full_name=full_name,
        email_verified=verified_at is not None,
        mfa_enabled=mfa_enabled,
        created_at=created_at,
        last_login_at=last_login_at,
        organization=OrganizationView(*organization[: len(ORGANIZATION_COLUMNS)]),
        role_names=_listed(organization[-2]),
        permission_codes=_listed(organization[-1]),
    )


def principal_of(account: Account, session_id: str) -> Principal:
    """A logged-in user's principal."""
    return Principal(
        organization=account.organization,
        permissions=frozenset(account.permission_codes),
        user=account,
        session_id=session_id,
        ip=network.client_ip(),
        user_agent=network.user_agent(),
    )


def access_principal(claims: Mapping[str, Any]) -> Principal:
    """The principal of verified access-token claims (header or cookie). Raises TokenError."""
    return principal_of(live_account(claims["sub"], claims["sid"]), claims["sid"])


# AK-3, AC-3: a key acts for a member of its organization and never does more than that member
# may do now. The member's active flag and the key's scopes that the member still holds are read
# in the key's one statement; a member of another organization is no member (the key stops).
KEY_MEMBER = sa.and_(User.id == ApiKey.acts_for, User.organization_id == ApiKey.organization_id)
_KEY_SCOPES = _JsonTexts(ApiKey.scopes).table_valued("value")
EFFECTIVE_SCOPES = (
    sa.select(_Lines(Permission.code))
    .select_from(HELD_PERMISSIONS)
    .where(user_roles.c.user_id == User.id, Permission.code.in_(sa.select(_KEY_SCOPES.c.value)))
    .scalar_subquery()
    .label("effective_scopes")
)
MEMBER_ACTIVE = User.is_active.label("member_active")


def _key_statement(criterion: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return (
        sa.select(
            ApiKey.id,
            ApiKey.key_hash,
            ApiKey.revoked_at,
            ApiKey.expires_at,
            ApiKey.last_used_at,
            ApiKey.acts_for,
            MEMBER_ACTIVE,
            EFFECTIVE_SCOPES,
            *ORGANIZATION_COLUMNS,
        )
        .select_from(ApiKey)
        .join(Organization, Organization.id == ApiKey.organization_id)
        .outerjoin(User, KEY_MEMBER)
        .where(criterion)
    )


API_KEY_STATEMENT = _key_statement(ApiKey.prefix == sa.bindparam("prefix"))
KEY_BY_ID_STATEMENT = _key_statement(ApiKey.id == sa.bindparam("key_id"))

# Why a key cannot act, as its listing says (`status`) and as a request with it is answered.
KEY_REFUSALS = {
    "revoked": ("token_revoked", "The API key was revoked."),
    "expired": ("token_expired", "The API key has expired."),
    "member_disabled": ("token_revoked", "The account this API key acts for is disabled."),
    "member_left": ("token_revoked", "The member this API key acts for has left."),
}


def key_status(
    revoked_at: datetime | None,
    expires_at: datetime | None,
    member_active: bool | None,
    now: datetime,
) -> str:
    """`active`, or why the key cannot act (a key of KEY_REFUSALS). `member_active` is None
    when the key acts for nobody in its organization."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    if member_active is None:
        return "member_left"
    return "active" if member_active else "member_disabled"


def effective_scopes(row: Any) -> list[str]:
    """The scopes of a row of a key statement that its member still holds."""
    return _listed(row.effective_scopes)


def _usable_scopes(row: Any, now: datetime) -> frozenset[str]:
    """AK-2, AK-3: the scopes a key may use now. Raises TokenError if it may not act."""
    status = key_status(row.revoked_at, row.expires_at, row.member_active, now)
    if status != "active":
        code, message = KEY_REFUSALS[status]
        raise TokenError(message, code=code)
    return frozenset(effective_scopes(row))


def _api_key_principal(presented: str) -> Principal:
    """AK-2, AK-3: a revoked or expired key, or one whose member was disabled or left, fails
    on the request after the change commits; a permission the member lost, the key lost."""
    prefix = api_keys.prefix_of(presented)
    row = None
    if prefix is not None:
        row = statements.first_row(db.engine, API_KEY_STATEMENT, {"prefix": prefix})
    if row is None or not api_keys.matches(presented, row.key_hash):
        raise TokenError("The API key is invalid.")
    now = clock.now()
    scopes = _usable_scopes(row, now)
    organization = OrganizationView(*row[-len(ORGANIZATION_COLUMNS) :])
    budgets.spend(
        RateLimitItemPerMinute(organization.rate_limit_per_minute),
        "api_key",
        str(row.id),
        "This API key is over its organization's requests per minute.",
    )
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        db.session.execute(sa.update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        db.session.commit()  # recorded even when the route itself only reads
    return Principal(
        organization=organization,
        permissions=scopes,
        api_key_id=str(row.id),
        acts_for=str(row.acts_for),
        ip=network.client_ip(),
        user_agent=network.user_agent(),
    )


def key_as_of_now(principal: Principal) -> Principal:
    """A key's principal with its rights re-read in the session's transaction (under a lock
    the caller holds). Raises TokenError if the key can no longer act."""
    row = db.session.execute(KEY_BY_ID_STATEMENT, {"key_id": principal.api_key_id}).first()
    if row is None:
        raise TokenError("The API key was revoked.", code="token_revoked")
    return replace(principal, permissions=_usable_scopes(row, clock.now()))


def authenticate() -> Principal:
    """The request's principal, resolved once: an `X-API-Key` or a bearer access token."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        presented = request.headers.get(API_KEY_HEADER)
        if presented is not None:
            principal = _api_key_principal(presented)
        else:
            encoded, csrf = tokens.presented_access_token()
            principal = access_principal(tokens.decode_access(encoded, csrf=csrf))
        g.principal = principal
    return principal


def current_principal() -> Principal:
    """The principal a guard already resolved (call only behind a guard)."""
    principal: Principal = g.principal
    return principal


def current_account() -> Account:
    """The logged-in user of a `require_login()` route, as the principal's statement read it."""
    account = current_principal().user
    if account is None:  # unreachable behind require_login(); a guard left off is a 403, not 500
        raise Forbidden("This route needs a user's login.")
    return account


def current_user() -> User:
    """The logged-in user's row, for a route that changes the account (one more statement)."""
    account = current_account()
    user = db.session.execute(user_with_access(User.id == account.id)).unique().scalar_one_or_none()
    if user is None:  # gone since the principal's statement: like a revoked session
        raise TokenError("The session was revoked.", code="token_revoked")
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
    _record_refusal(principal, permission=code)
    raise Forbidden("You do not have permission to do this.")


# Refusals of an organization action that a service decides, past the permission guard: 403s
# (AC-3: acting on an owner or on a member with more rights, a scope the caller lacks...), ids
# answered 404 (unknown or another organization's, AC-2) and the last owner kept (409).
REFUSALS = (Forbidden, NotFound, Conflict)
REFUSED_CONFLICTS = frozenset({"last_owner"})


def audit_refusals(
    action: str, *, target: str | None = None
) -> Callable[[Callable[Concatenate[Principal, P], R]], Callable[Concatenate[Principal, P], R]]:
    """Audit a service's refusals as `access.denied` (AU-1) with the `action`, the error's code
    and message and, if `target` names a parameter, the id it acted on. What the service had
    changed is rolled back; the refusal is committed, then raised."""

    def decorator(
        service: Callable[Concatenate[Principal, P], R],
    ) -> Callable[Concatenate[Principal, P], R]:
        signature = inspect.signature(service)

        @wraps(service)
        def audited(principal: Principal, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return service(principal, *args, **kwargs)
            except REFUSALS as exc:
                if isinstance(exc, Conflict) and exc.code not in REFUSED_CONFLICTS:
                    raise
                db.session.rollback()
                data = {"action": action, "code": exc.code, "reason": exc.message}
                if target is not None:
                    bound = signature.bind(principal, *args, **kwargs)
                    data["target"] = str(bound.arguments[target])
                _record_refusal(principal, **data)
                raise

        return audited

    return decorator


def _record_refusal(principal: Principal, **data: Any) -> None:
    """AU-1: a refusal is a security event too, committed even though the action is not."""
    where = {"method": request.method, "path": request.path} if has_request_context() else {}
    audit.by_principal(
        "access.denied",
        principal,
        user_id=principal.user.id if principal.user else None,
        **data,
        **where,
    )
    db.session.commit()
