"""Invitations into the caller's organization (docs/api.md "Invitations"): inviting an address
with roles, the pending list, revoking. Accepting one is settings/services/invitation_accept.py.

An invitation is a mailed single-use link like a reset link (auth/link_tokens.py): 256 random
bits, kept only as SHA-256. One pending invitation per address and organization, decided by the
partial unique index `uq_invitations_pending`: inviting again refreshes it (a new token, so the
old link stops working) instead of adding a second one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from authapp.auth.principals import Principal
from authapp.auth.services import accounts
from authapp.auth.services.refusals import audit_refusals
from authapp.delivery import events, outbox
from authapp.models import Invitation, Membership, User
from authapp.models.base import is_id, new_id
from authapp.platform import clock
from authapp.platform.errors import Conflict, Forbidden, NotFound, constraint_name
from authapp.platform.extensions import db
from authapp.security import audit
from authapp.security.digests import sha256_hex
from authapp.settings.services import roles as role_services
from authapp.settings.verified import require_verified_email

# Neither accepted nor revoked: the rows the partial unique index holds to one per address.
PENDING = (Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
PENDING_INDEX = "uq_invitations_pending"


@dataclass(frozen=True)
class Invited:
    invitation: Invitation
    created: bool  # False: a pending invitation of the address was refreshed


@audit_refusals("member.invite")
def invite(principal: Principal, email: str, roles: list[str]) -> Invited:
    """Invite `email` with `roles` (names) and mail the link. Raises ValidationFailed (an
    unknown role), Forbidden (AC-3: a permission the caller lacks, `owner` by a non-owner;
    email_not_verified), Conflict(already_member)."""
    require_verified_email(principal)
    granted = accounts.roles_named(principal.organization_id, roles)
    names = sorted({role.name for role in granted})
    if "owner" in names and not principal.is_owner:
        raise Forbidden("Only an owner can invite someone as an owner.")
    role_services.require_grantable(principal, {p.code for r in granted for p in r.permissions})
    normalized = accounts.normalize_email(email)
    if _is_member(principal.organization_id, normalized):
        raise Conflict(
            "This address belongs to a member of the organization already.", code="already_member"
        )
    token = secrets.token_urlsafe(32)
    invitation, created = _store(principal, email, normalized, names, sha256_hex(token))
    audit.by_principal(
        "member.invited",
        principal,
        invitation_id=invitation.id,
        email=invitation.email,
        roles=names,
        refreshed=not created,
    )
    message_ids = events.ids(_mail(principal, invitation, token), _webhook(invitation))
    db.session.commit()
    outbox.dispatch(message_ids)
    return Invited(invitation, created)


def _is_member(organization_id: str, email_normalized: str) -> bool:
    found = db.session.scalar(
        sa.select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(
            Membership.organization_id == organization_id,
            User.email_normalized == email_normalized,
        )
    )
    return found is not None


def _store(
    principal: Principal, email: str, normalized: str, names: list[str], token_hash: str
) -> tuple[Invitation, bool]:
    """The pending invitation of the address refreshed, or a new one. Two inviters racing on a
    new address: the index refuses the second insert, which then refreshes the first's row."""
    now = clock.now()
    values = {
        "email": email,
        "roles": names,
        "token_hash": token_hash,
        "invited_by": principal.user.id if principal.user else principal.acts_for,
        "created_at": now,
        "expires_at": now + timedelta(seconds=current_app.config["INVITATION_TTL"]),
    }
    for _attempt in range(2):
        pending = _pending_of(principal.organization_id, normalized)
        if pending is not None:
            for name, value in values.items():
                setattr(pending, name, value)
            db.session.flush()
            return pending, False
        invitation = Invitation(
            id=new_id(),
            organization_id=principal.organization_id,
            email_normalized=normalized,
            **values,
        )
        db.session.add(invitation)
        try:
            db.session.flush()
        except IntegrityError as exc:
            db.session.rollback()
            if constraint_name(exc) != PENDING_INDEX:
                raise
            continue
        return invitation, True
    raise Conflict("The invitation changed meanwhile; try again.")


def _pending_of(organization_id: str, email_normalized: str) -> Invitation | None:
    """The address's pending invitation (expired ones too: the index still holds them), locked
    until the commit so that two inviters refresh it one after the other."""
    return db.session.scalars(
        sa.select(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            Invitation.email_normalized == email_normalized,
            *PENDING,
        )
        .with_for_update()
    ).one_or_none()


def _mail(principal: Principal, invitation: Invitation, token: str) -> str:
    inviter = principal.user.full_name or principal.user.email if principal.user else None
    return events.email_to_address(
        invitation.email,
        "invitation",
        organization_id=invitation.organization_id,
        context={
            "organization": principal.organization.name,
            "inviter": inviter,
            "expires_at": invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        },
        secrets={"link": events.link(f"/invitations/accept?token={token}")},
    )


def _webhook(invitation: Invitation) -> str | None:
    # What the organization typed itself: the address and the roles, never the link.
    data = {"invitation_id": invitation.id, "email": invitation.email, "roles": invitation.roles}
    return events.webhook(invitation.organization_id, "member.invited", data)


def list_pending(organization_id: str) -> list[Invitation]:
    """The organization's invitations still waiting (not accepted, revoked or expired), newest
    first."""
    statement = (
        sa.select(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            *PENDING,
            Invitation.expires_at > clock.now(),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    )
    return list(db.session.scalars(statement))


@audit_refusals("invitation.revoke", target="invitation_id")
def revoke(principal: Principal, invitation_id: str) -> None:
    """The link stops working now; an invitation accepted or revoked already stays as it is.
    Raises NotFound (unknown, or another organization's: AC-2), Forbidden(email_not_verified)."""
    require_verified_email(principal)
    if not is_id(invitation_id):
        raise NotFound("No such invitation.")
    invitation = db.session.scalars(
        sa.select(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.organization_id == principal.organization_id,
        )
        .with_for_update()
    ).one_or_none()
    if invitation is None:
        raise NotFound("No such invitation.")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = clock.now()
        audit.by_principal(
            "invitation.revoked", principal, invitation_id=invitation.id, email=invitation.email
        )
    db.session.commit()
