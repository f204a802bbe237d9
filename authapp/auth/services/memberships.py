"""Memberships: a person in several organizations, a session acting in one of them.

docs/api.md "Organizations". The membership a session acts through is read by the principal's
one statement (auth/principals.py); these are the writes and reads around a sign-up, a login and
a switch. No commits: the calling service owns it.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from authapp.auth.principals import membership_with_access
from authapp.models import Membership, Organization, Role, User
from authapp.models.base import new_id
from authapp.platform.errors import Forbidden, ServiceUnavailable
from authapp.platform.extensions import db

# Where a person who belongs to no organization any more (removed from their last one, or it
# was deleted) lands at their next login: an organization of their own, so the account still
# works (its settings, its export, its deletion) and can accept an invitation.
PERSONAL_ORGANIZATION = "Personal"


def join(user: User, organization: Organization, roles: Iterable[Role]) -> Membership:
    """`user` becomes a member of `organization` with `roles` (their home organization when
    they have none); no commit."""
    membership = Membership(user=user, organization=organization, roles=list(roles))
    if user.organization_id is None:
        user.home_organization = organization
    db.session.add(membership)
    return membership


def builtin_role(name: str) -> Role:
    role = db.session.scalars(
        sa.select(Role)
        .where(Role.organization_id.is_(None), Role.name == name)
        .options(selectinload(Role.permissions))
    ).one_or_none()
    if role is None:
        raise ServiceUnavailable("The service is not initialised yet (run `flask seed`).")
    return role


def with_access(user_id: str, organization_id: str) -> Membership | None:
    """The person's membership of that organization, loaded for a `user` answer."""
    statement = membership_with_access(
        Membership.user_id == user_id, Membership.organization_id == organization_id
    )
    return db.session.execute(statement).unique().scalar_one_or_none()


def landing(user: User) -> Membership:
    """The membership a new session acts through: the home organization's when it is active,
    else the oldest active one; a new organization of their own for a person with none.
    Raises Forbidden(account_disabled) when every membership is suspended."""
    home_first = sa.case((Membership.organization_id == user.organization_id, 0), else_=1)
    statement = membership_with_access(Membership.user_id == user.id).order_by(
        Membership.is_active.desc(), home_first, Membership.created_at, Membership.id
    )
    found = db.session.execute(statement).unique().scalars().first()
    if found is None:
        return join(
            user, Organization(id=new_id(), name=PERSONAL_ORGANIZATION), [builtin_role("owner")]
        )
    if not found.is_active:
        raise Forbidden(
            "Your membership is suspended in every organization you belong to.",
            code="account_disabled",
        )
    return found
