"""A person's organizations (docs/api.md "Organizations"): the ones they belong to, creating
one, leaving one, removing a member and handing ownership over. Membership changes lock the
organization's row (members.lock), like every other change to who may do what there."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from authapp.auth.principals import Principal, membership_with_access
from authapp.auth.services import memberships, sessions, switching
from authapp.auth.services.refusals import audit_refusals
from authapp.delivery import events, outbox
from authapp.models import Membership, Organization, User
from authapp.models.base import new_id
from authapp.platform.errors import Conflict, Forbidden, ValidationFailed
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit
from authapp.settings.services import members
from authapp.settings.verified import require_verified_email


@dataclass(frozen=True)
class MyOrganization:
    """One of the caller's memberships, as `GET /organizations` lists it."""

    id: str  # the organization's
    name: str
    roles: list[str]
    is_active: bool  # the membership: suspended there, the person cannot switch to it
    current: bool  # the organization the caller's session acts in


def list_mine(principal: Principal) -> list[MyOrganization]:
    """The caller's memberships in the order they joined."""
    user_id = principal.user.id if principal.user else ""
    statement = membership_with_access(Membership.user_id == user_id).order_by(
        Membership.created_at, Membership.id
    )
    return [
        MyOrganization(
            id=m.organization.id,
            name=m.organization.name,
            roles=m.role_names,
            is_active=m.is_active,
            current=m.organization_id == principal.organization_id,
        )
        for m in db.session.execute(statement).unique().scalars()
    ]


def owned_count(user_id: str) -> int:
    """The organizations the person owns (ORGANIZATIONS_PER_USER counts these)."""
    owned = members.holding_owner(sa.func.count()).where(Membership.user_id == user_id)
    return db.session.scalar(owned) or 0


def create(principal: Principal, *, name: str) -> Organization:
    """A new organization with the caller as its owner. Raises Forbidden(email_not_verified),
    Conflict(organization_limit). Commits."""
    require_verified_email(principal)
    user_id = principal.user.id if principal.user else ""
    # Serialises one person's creations: two at once must not both pass the count.
    user = db.session.execute(
        sa.select(User).where(User.id == user_id).with_for_update()
    ).scalar_one()
    limit = current_app.config["ORGANIZATIONS_PER_USER"]
    if owned_count(user_id) >= limit:
        db.session.rollback()
        raise Conflict(
            f"You own {limit} organizations already, the most one person may own: "
            "delete one, or hand its ownership over, first.",
            code="organization_limit",
        )
    organization = Organization(id=new_id(), name=name)
    memberships.join(user, organization, [memberships.builtin_role("owner")])
    audit.record(
        "organization.created",
        organization_id=organization.id,
        user_id=user_id,
        actor=principal.actor,
        ip=principal.ip,
        user_agent=principal.user_agent,
        data={"name": name},
    )
    db.session.commit()
    return organization


@audit_refusals("member.remove", target="user_id")
def remove_member(principal: Principal, user_id: str) -> None:
    """The member leaves the caller's organization: their roles here, their sessions acting
    here (at once) and the keys acting for them here (through AK-3) end. Raises NotFound,
    Forbidden (AC-3 rules; the caller themself: they leave instead), Conflict(last_owner).
    Commits."""
    principal, member = members.within_reach(principal, user_id, verb="remove")
    if principal.user is not None and principal.user.id == member.user_id:
        raise Forbidden("You cannot remove yourself: leave the organization instead.")
    ended = _end_membership(member, reason="member_removed")
    audit.by_principal("member.removed", principal, user_id=member.user_id, sessions_revoked=ended)
    message_ids = events.ids(
        events.webhook(
            principal.organization_id,
            "member.removed",
            {"user_id": member.user_id, "reason": "removed"},
        )
    )
    db.session.commit()
    outbox.dispatch(message_ids)


def _end_membership(member: Membership, *, reason: str) -> int:
    """Delete the membership (its roles with it) and end the person's sessions acting there
    (a session moved elsewhere before this is flushed with it, and goes on); no commit.
    Raises Conflict(last_owner)."""
    organization_id, user_id = member.organization_id, member.user_id
    db.session.delete(member)  # the ORM deletes its membership_roles rows too
    db.session.flush()
    members.require_an_owner(organization_id)
    ended = sessions.revoke_in_organization(user_id, organization_id, reason=reason)
    # Their next login must not look for a home that no longer takes them.
    changed_rows(
        sa.update(User)
        .where(User.id == user_id, User.organization_id == organization_id)
        .values(organization_id=None)
    )
    return ended


def leave(principal: Principal) -> sessions.TokenPair:
    """The caller leaves the organization their session acts in; the session moves to their
    home organization if they may act there, else to their oldest active membership, and the
    answer is its new pair. Their other sessions acting there end. Raises Conflict(last_owner,
    last_organization). Commits."""
    user = principal.user
    if user is None or principal.session_id is None:
        raise Forbidden("API keys cannot use this route: it acts on a user's own account.")
    members.lock(principal.organization_id)
    member = members.membership(principal.organization_id, user.id)
    target = _next_organization(user.id, principal.organization_id)
    if target is None:
        raise Conflict(
            "This is the only organization you can act in: delete your account (or the "
            "organization) instead, or join another one first.",
            code="last_organization",
        )
    pair = switching.move_session(principal.session_id, target)
    ended = _end_membership(member, reason="member_left")
    audit.by_principal(
        "member.removed", principal, user_id=user.id, voluntary=True, sessions_revoked=ended
    )
    message_ids = events.ids(
        events.webhook(
            principal.organization_id, "member.removed", {"user_id": user.id, "reason": "left"}
        )
    )
    db.session.commit()
    outbox.dispatch(message_ids)
    return pair


def _next_organization(user_id: str, leaving: str) -> Membership | None:
    home = db.session.scalar(sa.select(User.organization_id).where(User.id == user_id))
    home_first = sa.case((Membership.organization_id == home, 0), else_=1)
    statement = membership_with_access(
        Membership.user_id == user_id,
        Membership.organization_id != leaving,
        Membership.is_active.is_(True),
    ).order_by(home_first, Membership.created_at, Membership.id)
    return db.session.execute(statement).unique().scalars().first()


@audit_refusals("organization.transfer", target="user_id")
def transfer_ownership(principal: Principal, user_id: str) -> None:
    """The member becomes an owner; the caller stops being one and is an admin. Raises
    Forbidden (not an owner), NotFound, ValidationFailed (the caller themself),
    Conflict(member_suspended). Commits."""
    require_verified_email(principal)
    members.lock(principal.organization_id)
    principal = members.as_of_now(principal)
    if principal.user is None or not principal.is_owner:
        raise Forbidden("Only an owner can transfer the ownership.")
    if user_id == principal.user.id:
        raise ValidationFailed({"user_id": ["Choose another member: you own it already."]})
    target = members.membership(principal.organization_id, user_id)
    if not target.is_active or not target.user.is_active:
        raise Conflict(
            "That member is suspended: enable them before handing them the ownership.",
            code="member_suspended",
        )
    me = members.membership(principal.organization_id, principal.user.id)
    owner, admin = memberships.builtin_role("owner"), memberships.builtin_role("admin")
    if owner not in target.roles:
        target.roles = [*target.roles, owner]
    me.roles = [role for role in me.roles if role is not owner]
    if admin not in me.roles:
        me.roles = [*me.roles, admin]
    db.session.flush()
    members.require_an_owner(principal.organization_id)
    audit.by_principal(
        "organization.ownership_transferred",
        principal,
        user_id=target.user_id,
        **{"from": principal.user.id, "to": target.user_id},
    )
    db.session.commit()
