"""The Principal of a session: a user acting through an access token, read in one statement.

The session joined to its user, to the membership of the organization it acts in, and to that
membership's roles and permissions: authorization reads those rows, never the `roles` claim of a
token (JW-9). `membership_with_access` loads a Membership with what the answers after a login or
a switch need, so nothing lazy-loads after the commit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from authapp.models import Membership, Organization, Permission, Role, Session, User
from authapp.models.membership import membership_roles
from authapp.models.role import role_permissions
from authapp.platform import clock, network, statements
from authapp.platform.errors import TokenError
from authapp.platform.extensions import db
from authapp.platform.statements import Lines

# Role names and permission codes never hold a line break (their schemas refuse control
# characters), so one joins each list into a single column of the principal's statement.
SEPARATOR = "\n"  # char(10), chr(10) in the SQL of Lines


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
class Person:
    """What every view of a person shows of the account itself (the `user` answer, a member):
    plain values, no ORM object, nothing loaded later."""

    id: str  # the user's
    email: str
    username: str | None
    full_name: str
    email_verified: bool
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class Account(Person):
    """The logged-in user as every `user` answer shows it (auth.schemas.UserOut), read by the
    principal's one statement, in the organization the session acts in."""

    organization: OrganizationView
    role_names: list[str]
    permission_codes: list[str]

    @property
    def organization_id(self) -> str:
        return self.organization.id

    @classmethod
    def of(cls, membership: Membership) -> Account:
        """The account acting through a Membership loaded with `membership_with_access`."""
        org = membership.organization
        return cls(
            **person_of(membership.user),
            organization=OrganizationView(
                org.id,
                org.name,
                org.tier,
                org.rate_limit_per_minute,
                org.webhook_url,
                org.created_at,
            ),  # fmt: skip
            role_names=membership.role_names,
            permission_codes=membership.permission_codes,
        )


def person_of(user: User) -> dict[str, Any]:
    """A Person's fields, from its row."""
    return {
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "full_name": user.full_name,
        "email_verified": user.email_verified,
        "mfa_enabled": user.mfa_enabled,
        "created_at": user.created_at,
        "last_login_at": user.last_login_at,
    }


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


def membership_with_access(*criteria: sa.ColumnElement[bool]) -> sa.Select[Membership]:
    """Memberships with everything a `user` answer shows (the person, the organization, the
    roles and their permissions), loaded in the same statement."""
    return (
        sa.select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(*criteria)
        .options(
            joinedload(Membership.user),
            joinedload(Membership.organization),
            joinedload(Membership.roles).joinedload(Role.permissions),
        )
    )


def _joined(column: Any, joins: sa.FromClause) -> sa.ScalarSelect[str]:
    return (
        sa.select(Lines(column))
        .select_from(joins)
        .where(membership_roles.c.membership_id == Membership.id)
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


HELD_PERMISSIONS = membership_roles.join(
    role_permissions, role_permissions.c.role_id == membership_roles.c.role_id
).join(Permission, Permission.id == role_permissions.c.permission_id)


# The person may act, and may act in this organization (an admin suspends a membership, an
# operator disables a person).
MAY_ACT = sa.and_(User.is_active.is_(True), Membership.is_active.is_(True)).label("may_act")


# JW-9, SE-1..4: the session, its user, the membership it acts through and what that membership
# may do, in one statement and one round trip (docs/architecture.md "Rules", rule 5).
# Authorization reads these rows, never the token's `roles` claim.
PRINCIPAL_COLUMNS = (
    Session.revoked_at,
    Session.revoked_reason,
    Session.expires_at,
    MAY_ACT,
    *ACCOUNT_COLUMNS,
    *ORGANIZATION_COLUMNS,
    _joined(Role.name, membership_roles.join(Role, Role.id == membership_roles.c.role_id)),
    _joined(Permission.code, HELD_PERMISSIONS),
)


# Parameters: a token's `sub` and `sid` (named after no column: in a statement that also
# updates, SQLAlchemy would take a parameter named like a column for a value to SET).
PRINCIPAL_STATEMENT = (
    sa.select(*PRINCIPAL_COLUMNS)
    .select_from(Session)
    .join(User, User.id == Session.user_id)
    .join(
        Membership,
        sa.and_(
            Membership.user_id == Session.user_id,
            # A session begun by the release before memberships (during a rolling deploy)
            # names no organization: it acts in the home one, as it did there.
            Membership.organization_id
            == sa.func.coalesce(Session.organization_id, User.organization_id),
        ),
    )
    .join(Organization, Organization.id == Membership.organization_id)
    .where(Session.id == sa.bindparam("sid"), Session.user_id == sa.bindparam("sub"))
)


def listed(joined: str | None) -> list[str]:
    return sorted(set(joined.split(SEPARATOR))) if joined else []


def live_account(user_id: str, session_id: str, organization_id: str | None = None) -> Account:
    """The token's account, if its session, user and membership may still act, in the
    organization the token names (`org`; a token from before a switch stops). Raises
    TokenError."""
    # Not the request's ORM session: a read of plain columns needs none of its bookkeeping.
    params = {"sub": user_id, "sid": session_id}
    row = statements.first_row(db.engine, PRINCIPAL_STATEMENT, params)
    account = account_of(row)
    if organization_id is not None and account.organization_id != organization_id:
        raise TokenError(
            "The session now acts in another organization: use the token pair the switch answered.",
            code="token_revoked",
        )
    return account


def account_of(row: Any, *, reused_code: str = "token_revoked") -> Account:
    """The account in a row of PRINCIPAL_COLUMNS, if its session, user and membership may
    still act. No row: the session, or its membership in the organization it acts in, is gone.

    A session revoked for refresh-token reuse answers `reused_code`: the refresh endpoint tells
    every racer of a replay `token_reused`, while access tokens are simply `token_revoked`.
    """
    if row is None:
        raise TokenError("The session no longer exists.", code="token_revoked")
    revoked_at, revoked_reason, expires_at, may_act, *values = row[: len(PRINCIPAL_COLUMNS)]
    if revoked_reason == "token_reused":
        raise TokenError("The session was revoked: a refresh token was reused.", code=reused_code)
    if revoked_at is not None or not may_act:
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
        role_names=listed(organization[-2]),
        permission_codes=listed(organization[-1]),
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
    account = live_account(claims["sub"], claims["sid"], claims.get("org", ""))
    return principal_of(account, claims["sid"])
