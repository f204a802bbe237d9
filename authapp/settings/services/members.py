"""The members of the caller's organization (AC-1..3): who they are, the roles they hold here,
suspending them here. Everything is scoped to the membership: one organization's admin never
changes what a person may do in another."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from authapp.auth.key_principals import key_as_of_now
from authapp.auth.principals import (
    Account,
    Person,
    Principal,
    membership_with_access,
    person_of,
)
from authapp.auth.services import accounts, sessions
from authapp.auth.services.refusals import audit_refusals
from authapp.delivery import events, outbox
from authapp.models import Membership, Organization, Role, User, membership_roles
from authapp.models.base import is_id
from authapp.platform.errors import Conflict, Forbidden, NotFound
from authapp.platform.extensions import db
from authapp.security import audit
from authapp.settings.pagination import Page, page
from authapp.settings.services import roles as role_services
from authapp.settings.verified import require_verified_email


@dataclass(frozen=True)
class Member(Person):
    """A member as the organization's administrators see them (settings.schemas.MemberOut):
    the person (addressed by the user's id), and their roles and status in this organization."""

    role_names: list[str]
    permission_codes: list[str]
    is_active: bool  # in this organization

    @classmethod
    def of(cls, membership: Membership) -> Member:
        return cls(
            **person_of(membership.user),
            role_names=membership.role_names,
            permission_codes=membership.permission_codes,
            is_active=membership.is_active,
        )


def list_members(organization_id: str, *, limit: int, cursor: str | None) -> Page:
    """The organization's members in the order they joined."""
    statement = membership_with_access(Membership.organization_id == organization_id)
    found = page(statement, Membership.created_at, Membership.id, limit=limit, cursor=cursor)
    return dataclasses.replace(found, items=[Member.of(m) for m in found.items])


@audit_refusals("member.update", target="user_id")
def update_member(principal: Principal, user_id: str, changes: dict[str, Any]) -> Member:
    """Change a member's roles and/or is_active here. Raises NotFound (not a member of the
    caller's organization), Forbidden (AC-3 escalation rules), Conflict(last_owner),
    ValidationFailed (unknown role)."""
    principal, member = within_reach(principal, user_id, verb="change")
    changed: dict[str, Any] = {}
    if "roles" in changes:
        changed |= _change_roles(principal, member, changes["roles"])
    if "is_active" in changes and changes["is_active"] != member.is_active:
        changed |= _change_active(principal, member, changes["is_active"])
    message_ids: list[str] = []
    if changed:
        db.session.flush()
        require_an_owner(principal.organization_id)
        audit.by_principal("member.updated", principal, user_id=member.user_id, **changed)
        if changed.get("is_active") is False:
            data = {"user_id": member.user_id}
            message_ids = events.ids(
                events.webhook(principal.organization_id, "user.disabled", data)
            )
    db.session.commit()
    outbox.dispatch(message_ids)
    return Member.of(member)


def within_reach(principal: Principal, user_id: str, *, verb: str) -> tuple[Principal, Membership]:
    """The caller's rights as of now, under the organization's lock (it serialises owner
    changes: two owners demoting each other), and the member they may `verb`. Raises
    Forbidden (AC-3), NotFound."""
    require_verified_email(principal)
    lock(principal.organization_id)
    principal = as_of_now(principal)
    if "users:manage" not in principal.permissions:
        raise Forbidden("You do not have permission to do this.")
    member = membership(principal.organization_id, user_id)
    if "owner" in member.role_names and not principal.is_owner:
        raise Forbidden(f"Only an owner can {verb} an owner.")
    # AC-3: a member holding a permission the caller lacks is out of the caller's reach (a
    # custom role with users:manage must not disable an admin or strip their roles).
    role_services.require_grantable(
        principal, member.permission_codes, refusal=f"You cannot {verb} a member who holds"
    )
    return principal, member


def holding_owner(*columns: Any) -> sa.Select[Any]:
    """`columns` of the memberships that hold the built-in `owner` role."""
    return (
        sa.select(*columns)
        .select_from(Membership)
        .join(membership_roles, membership_roles.c.membership_id == Membership.id)
        .join(Role, Role.id == membership_roles.c.role_id)
        .where(Role.organization_id.is_(None), Role.name == "owner")
    )


def _change_roles(principal: Principal, member: Membership, names: list[str]) -> dict[str, Any]:
    roles = accounts.roles_named(principal.organization_id, names)
    before, after = set(member.role_names), {role.name for role in roles}
    if before == after:
        return {}
    # Granting only what the caller holds also stops anyone from raising their own rights.
    added = [role for role in roles if role.name not in before]
    if "owner" in before ^ after and not principal.is_owner:
        raise Forbidden("Only an owner can grant or remove the owner role.")
    role_services.require_grantable(principal, {p.code for r in added for p in r.permissions})
    member.roles = roles
    return {"roles": {"from": sorted(before), "to": sorted(after)}}


def _change_active(principal: Principal, member: Membership, is_active: bool) -> dict[str, Any]:
    if principal.user is not None and principal.user.id == member.user_id:
        raise Forbidden("You cannot disable or enable your own account.")
    member.is_active = is_active
    change: dict[str, Any] = {"is_active": is_active}
    if not is_active:  # SE-4: every session acting here ends now, in every worker
        change["sessions_revoked"] = sessions.revoke_in_organization(
            member.user_id, member.organization_id, reason="user_disabled"
        )
    return change


def as_of_now(principal: Principal) -> Principal:
    """The caller's rights re-read under the lock: a request that waited on it must not act
    with roles another owner took away meanwhile."""
    if principal.user is None:  # a key: what its member may still do (AK-3)
        return key_as_of_now(principal)
    statement = membership_with_access(
        Membership.user_id == principal.user.id,
        Membership.organization_id == principal.organization_id,
        Membership.is_active.is_(True),
        User.is_active.is_(True),
    ).execution_options(populate_existing=True)
    found = db.session.execute(statement).unique().scalar_one_or_none()
    if found is None:
        raise Forbidden("Your account was disabled.")
    account = Account.of(found)
    return dataclasses.replace(
        principal, user=account, permissions=frozenset(account.permission_codes)
    )


def lock(organization_id: str) -> None:
    db.session.execute(
        sa.select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )


def membership(organization_id: str, user_id: str) -> Membership:
    """A member of the organization, loaded with the person and the roles."""
    if not is_id(user_id):
        raise NotFound("No such member.")
    found = (
        db.session.execute(
            membership_with_access(
                Membership.user_id == user_id, Membership.organization_id == organization_id
            )
        )
        .unique()
        .scalar_one_or_none()
    )
    if found is None:
        raise NotFound("No such member.")  # AC-2: another organization's user does not exist
    return found


def require_an_owner(organization_id: str) -> None:
    """Raises Conflict(last_owner) (after a rollback) when no active owner would be left."""
    owners = db.session.scalar(
        holding_owner(sa.func.count())
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id, Membership.is_active, User.is_active)
    )
    if not owners:
        db.session.rollback()
        raise Conflict("The organization must keep at least one active owner.", code="last_owner")
