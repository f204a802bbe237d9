"""Deleting an organization (docs/api.md "Organizations"): its owner, with the password again.

Everything that lives only in the organization goes: memberships and their roles, custom roles,
API keys, pending invitations, the sessions acting in it. The people stay, with their other
memberships; a person whose home it was lands elsewhere at their next login. The audit trail
stays too, `organization.deleted` last (audit rows have no foreign key)."""

from __future__ import annotations

import sqlalchemy as sa

from authapp.auth.principals import Principal
from authapp.auth.services import reauthentication
from authapp.auth.services.refusals import audit_refusals
from authapp.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    RefreshToken,
    Role,
    Session,
    User,
    membership_roles,
    role_permissions,
)
from authapp.platform.errors import Conflict, Forbidden, NotFound
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit
from authapp.settings.services import members
from authapp.settings.verified import require_verified_email


@audit_refusals("organization.delete")
def delete_organization(principal: Principal, user: User, *, password: str) -> None:
    """Raises Forbidden (not an owner), Conflict(default_organization), ValidationFailed (a
    wrong password, audited `organization.delete_failed`). Commits."""
    require_verified_email(principal)
    organization_id = principal.organization_id
    members.lock(organization_id)
    principal = members.as_of_now(principal)
    if not principal.is_owner:
        raise Forbidden("Only an owner can delete the organization.")
    organization = db.session.get(Organization, organization_id)
    if organization is None:
        raise NotFound("No such organization.")
    if organization.is_default:
        raise Conflict(
            "The default organization cannot be deleted: new accounts join it.",
            code="default_organization",
        )
    reauthentication.require_password(
        principal, user, password, failed_event="organization.delete_failed"
    )
    counts = delete_rows(organization_id)
    db.session.expunge(organization)
    audit.by_principal(
        "organization.deleted", principal, user_id=user.id, name=organization.name, **counts
    )
    db.session.commit()


def delete_rows(organization_id: str) -> dict[str, int]:
    """Delete the organization and what lives only in it; no commit. Explicit deletes rather
    than the foreign keys' cascades: SQLite enforces those only when asked to (privacy.py says
    the same of an account)."""
    in_org = sa.select(Membership.id).where(Membership.organization_id == organization_id)
    roles = sa.select(Role.id).where(Role.organization_id == organization_id)
    sessions = sa.select(Session.id).where(Session.organization_id == organization_id)
    changed_rows(sa.delete(RefreshToken).where(RefreshToken.session_id.in_(sessions)))
    counts = {
        "sessions_ended": changed_rows(
            sa.delete(Session).where(Session.organization_id == organization_id)
        )
    }
    changed_rows(
        sa.delete(membership_roles).where(
            sa.or_(
                membership_roles.c.membership_id.in_(in_org),
                membership_roles.c.role_id.in_(roles),
            )
        )
    )
    counts["members"] = changed_rows(
        sa.delete(Membership).where(Membership.organization_id == organization_id)
    )
    changed_rows(sa.delete(role_permissions).where(role_permissions.c.role_id.in_(roles)))
    changed_rows(sa.delete(Role).where(Role.organization_id == organization_id))
    # Keys made by keys point at their parent: cut the links before the rows go.
    changed_rows(
        sa.update(ApiKey).where(ApiKey.organization_id == organization_id).values(made_by_key=None)
    )
    counts["api_keys"] = changed_rows(
        sa.delete(ApiKey).where(ApiKey.organization_id == organization_id)
    )
    changed_rows(sa.delete(Invitation).where(Invitation.organization_id == organization_id))
    changed_rows(
        sa.update(User).where(User.organization_id == organization_id).values(organization_id=None)
    )
    changed_rows(sa.delete(Organization).where(Organization.id == organization_id))
    return counts
