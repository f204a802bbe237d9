"""API keys as principals (`X-API-Key`): one statement joins the key to its organization and to
the member it acts for, whose current permissions bound its scopes (AK-3). A key's use spends
its organization's budget (security/budgets.py) and is recorded to the minute."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from limits import RateLimitItemPerMinute

from authapp.auth.principals import (
    HELD_PERMISSIONS,
    ORGANIZATION_COLUMNS,
    OrganizationView,
    Principal,
    listed,
)
from authapp.auth.services import key_usage
from authapp.models import ApiKey, Membership, Organization, Permission, User
from authapp.models.membership import membership_roles
from authapp.platform import clock, network, statements
from authapp.platform.errors import TokenError
from authapp.platform.extensions import db
from authapp.platform.statements import JsonTexts, Lines
from authapp.security import api_keys, budgets

API_KEY_HEADER = "X-API-Key"


# last_used_at is kept to the minute: a write on every keyed request would cost a statement.
LAST_USED_RESOLUTION = timedelta(seconds=60)


# AK-3, AC-3: a key acts for a member of its organization and never does more than that member
# may do now. The member's active flags (the person's, the membership's) and the key's scopes
# that the membership still holds are read in the key's one statement; someone who is not a
# member of the key's organization (any more) is no member: the key stops.
KEY_MEMBER = sa.and_(
    Membership.user_id == ApiKey.acts_for, Membership.organization_id == ApiKey.organization_id
)


_KEY_SCOPES = JsonTexts(ApiKey.scopes).table_valued("value")


EFFECTIVE_SCOPES = (
    sa.select(Lines(Permission.code))
    .select_from(HELD_PERMISSIONS)
    .where(
        membership_roles.c.membership_id == Membership.id,
        Permission.code.in_(sa.select(_KEY_SCOPES.c.value)),
    )
    .scalar_subquery()
    .label("effective_scopes")
)


MEMBER_ACTIVE = sa.and_(User.is_active, Membership.is_active).label("member_active")


def with_member(statement: sa.Select[Any]) -> sa.Select[Any]:
    """`statement` (from api_keys) joined to the key's member, if it still is one."""
    return statement.outerjoin(Membership, KEY_MEMBER).outerjoin(
        User, User.id == Membership.user_id
    )


def _key_statement(criterion: sa.ColumnElement[bool]) -> sa.Select[Any]:
    return with_member(
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
    ).where(criterion)


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
    return listed(row.effective_scopes)


def _usable_scopes(row: Any, now: datetime) -> frozenset[str]:
    """AK-2, AK-3: the scopes a key may use now. Raises TokenError if it may not act."""
    status = key_status(row.revoked_at, row.expires_at, row.member_active, now)
    if status != "active":
        code, message = KEY_REFUSALS[status]
        raise TokenError(message, code=code)
    return frozenset(effective_scopes(row))


def api_key_principal(presented: str) -> Principal:
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
        key_usage.record_use(str(row.id), now)
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
