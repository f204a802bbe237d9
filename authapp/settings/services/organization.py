"""The caller's organization and its members (AC-1..3): everything scoped to one organization."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from authapp.auth.key_principals import key_as_of_now
from authapp.auth.principals import Account, Principal, user_with_access
from authapp.auth.services import accounts, sessions
from authapp.auth.services.refusals import audit_refusals
from authapp.delivery import events, outbox, webhooks
from authapp.models import TIER_RATE_LIMITS, Organization, Role, User, user_roles
from authapp.models.base import is_id
from authapp.platform.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from authapp.platform.extensions import db
from authapp.security import audit, secretbox
from authapp.settings.pagination import Page, page
from authapp.settings.services import roles as role_services
from authapp.settings.verified import require_verified_email


@dataclass(frozen=True)
class OrganizationUpdate:
    organization: Organization
    webhook_secret: str | None = None  # only in the answer that first sets a webhook_url


def update_organization(principal: Principal, changes: dict[str, Any]) -> OrganizationUpdate:
    """Rename; set or clear `webhook_url` (CF-2 rules). The first URL gets a new signing
    secret, returned once. Raises ValidationFailed."""
    require_verified_email(principal)
    organization = _organization(principal)
    changed: dict[str, Any] = {}
    secret = None
    if "name" in changes and changes["name"] != organization.name:
        changed["name"] = {"from": organization.name, "to": changes["name"]}
        organization.name = changes["name"]
    if "webhook_url" in changes and changes["webhook_url"] != organization.webhook_url:
        url = changes["webhook_url"]
        if url is not None:
            problem = webhooks.target_error(url) or webhooks.resolution_error(url, organization.id)
            if problem is not None:
                raise ValidationFailed({"webhook_url": [problem]})
            if organization.webhook_secret is None:
                secret = webhooks.new_secret()
                organization.webhook_secret = secretbox.seal(secret)
        else:
            organization.webhook_secret = None  # a later URL gets a new secret, shown once
        changed["webhook_url"] = {"from": organization.webhook_url, "to": url}
        organization.webhook_url = url
    if changed:
        audit.by_principal("organization.updated", principal, **changed)
    db.session.commit()
    return OrganizationUpdate(organization, secret)


def set_tier(id_or_name: str, tier: str) -> Organization:
    """`flask org set-tier`: the tier and the API-key rate limit it gives. Raises AppError."""
    if tier not in TIER_RATE_LIMITS:
        raise AppError(
            f"Unknown tier {tier!r}: use {', '.join(TIER_RATE_LIMITS)}.", code="not_found"
        )
    organization = accounts.find_organization(id_or_name)
    before = organization.tier
    organization.tier = tier
    organization.rate_limit_per_minute = TIER_RATE_LIMITS[tier]
    audit.record(
        "organization.tier_changed",
        organization_id=organization.id,
        user_id=None,
        actor="system",
        data={"from": before, "to": tier},
    )
    db.session.commit()
    return organization


def rotate_webhook_secret(principal: Principal) -> str:
    """A new signing secret, shown once; the old one stops signing now."""
    require_verified_email(principal)
    organization = _webhook_organization(principal)
    secret = webhooks.new_secret()
    organization.webhook_secret = secretbox.seal(secret)
    audit.by_principal("webhook.secret_rotated", principal)
    db.session.commit()
    return secret


def send_test_webhook(principal: Principal) -> str:
    """A signed `ping` through the outbox; its delivery id."""
    require_verified_email(principal)
    organization = _webhook_organization(principal)
    message_id = events.webhook(organization.id, "ping", {"requested_by": principal.actor})
    audit.by_principal("webhook.ping", principal, message_id=message_id)
    db.session.commit()
    outbox.dispatch(events.ids(message_id))
    return message_id or ""


def _organization(principal: Principal) -> Organization:
    organization = db.session.get(Organization, principal.organization_id)
    if organization is None:  # deleted under the caller's feet
        raise NotFound("No such organization.")
    return organization


def _webhook_organization(principal: Principal) -> Organization:
    organization = _organization(principal)
    if not organization.webhook_url:
        raise Conflict("Set the organization's webhook_url first.", code="webhook_not_configured")
    return organization


def list_members(organization_id: str, *, limit: int, cursor: str | None) -> Page:
    statement = sa.select(User).where(User.organization_id == organization_id)
    return page(
        statement.options(joinedload(User.roles)),
        User.created_at,
        User.id,
        limit=limit,
        cursor=cursor,
    )


@audit_refusals("member.update", target="user_id")
def update_member(principal: Principal, user_id: str, changes: dict[str, Any]) -> User:
    """Change a member's roles and/or is_active. Raises NotFound (another organization's user),
    Forbidden (AC-3 escalation rules), Conflict(last_owner), ValidationFailed (unknown role)."""
    require_verified_email(principal)
    _lock(principal.organization_id)  # serialises owner changes: two owners demoting each other
    principal = _as_of_now(principal)
    if "users:manage" not in principal.permissions:
        raise Forbidden("You do not have permission to do this.")
    member = _member(principal.organization_id, user_id)
    if "owner" in member.role_names and not principal.is_owner:
        raise Forbidden("Only an owner can change an owner.")
    # AC-3: a member holding a permission the caller lacks is out of the caller's reach (a
    # custom role with users:manage must not disable an admin or strip their roles).
    role_services.require_grantable(
        principal, member.permission_codes, refusal="You cannot change a member who holds"
    )
    changed: dict[str, Any] = {}
    if "roles" in changes:
        changed |= _change_roles(principal, member, changes["roles"])
    if "is_active" in changes and changes["is_active"] != member.is_active:
        changed |= _change_active(principal, member, changes["is_active"])
    message_ids: list[str] = []
    if changed:
        db.session.flush()
        _require_an_owner(principal.organization_id)
        audit.by_principal("member.updated", principal, user_id=member.id, **changed)
        if changed.get("is_active") is False:
            data = {"user_id": member.id}
            message_ids = events.ids(events.webhook(member.organization_id, "user.disabled", data))
    db.session.commit()
    outbox.dispatch(message_ids)
    return member


def _change_roles(principal: Principal, member: User, names: list[str]) -> dict[str, Any]:
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


def _change_active(principal: Principal, member: User, is_active: bool) -> dict[str, Any]:
    if principal.user is not None and principal.user.id == member.id:
        raise Forbidden("You cannot disable or enable your own account.")
    member.is_active = is_active
    change: dict[str, Any] = {"is_active": is_active}
    if not is_active:  # SE-4: every session ends now, in every worker
        change["sessions_revoked"] = sessions.revoke_all(member.id, reason="user_disabled")
    return change


def _as_of_now(principal: Principal) -> Principal:
    """The caller's rights re-read under the lock: a request that waited on it must not act
    with roles another owner took away meanwhile."""
    if principal.user is None:  # a key: what its member may still do (AK-3)
        return key_as_of_now(principal)
    user = (
        db.session.execute(
            user_with_access(
                User.id == principal.user.id, User.is_active.is_(True)
            ).execution_options(populate_existing=True)
        )
        .unique()
        .scalar_one_or_none()
    )
    if user is None:
        raise Forbidden("Your account was disabled.")
    return replace(principal, user=Account.of(user), permissions=frozenset(user.permission_codes))


def _lock(organization_id: str) -> None:
    db.session.execute(
        sa.select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )


def _member(organization_id: str, user_id: str) -> User:
    if not is_id(user_id):
        raise NotFound("No such member.")
    member = (
        db.session.execute(
            user_with_access(User.id == user_id, User.organization_id == organization_id)
        )
        .unique()
        .scalar_one_or_none()
    )
    if member is None:
        raise NotFound("No such member.")  # AC-2: another organization's user does not exist
    return member


def _require_an_owner(organization_id: str) -> None:
    owners = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .join(user_roles, user_roles.c.user_id == User.id)
        .join(Role, Role.id == user_roles.c.role_id)
        .where(
            User.organization_id == organization_id,
            User.is_active,
            Role.organization_id.is_(None),
            Role.name == "owner",
        )
    )
    if not owners:
        db.session.rollback()
        raise Conflict("The organization must keep at least one active owner.", code="last_owner")
