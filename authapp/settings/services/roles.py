"""Roles and permissions as data: built-ins everywhere, custom roles per organization."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from authapp.auth.principals import Principal
from authapp.auth.services.accounts import visible_roles
from authapp.auth.services.refusals import audit_refusals
from authapp.models import Permission, Role, membership_roles
from authapp.models.base import is_id
from authapp.platform.errors import Conflict, Forbidden, NotFound, ValidationFailed, constraint_name
from authapp.platform.extensions import db
from authapp.security import audit
from authapp.settings.verified import require_verified_email

BUILTIN_NAMES = ("owner", "admin", "member")
NAME_TAKEN = "A role with this name already exists."


def list_roles(organization_id: str) -> list[Role]:
    # Built-ins first, strongest first; then the organization's own by name.
    rank = sa.case({name: index for index, name in enumerate(BUILTIN_NAMES)}, value=Role.name)
    statement = visible_roles(organization_id).order_by(
        Role.organization_id.is_not(None),
        sa.case((Role.organization_id.is_(None), rank)),
        Role.name,
    )
    return list(db.session.scalars(statement))


def list_permissions() -> list[Permission]:
    return list(db.session.scalars(sa.select(Permission).order_by(Permission.code)))


def permissions_named(codes: Iterable[str], *, field: str) -> list[Permission]:
    """Raises ValidationFailed on `field` for a code nobody registered."""
    wanted = set(codes)
    found = list(db.session.scalars(sa.select(Permission).where(Permission.code.in_(wanted))))
    unknown = wanted - {p.code for p in found}
    if unknown:
        raise ValidationFailed({field: [f"Unknown permission: {', '.join(sorted(unknown))}."]})
    return found


def require_grantable(
    principal: Principal, codes: Iterable[str], *, refusal: str = "You cannot grant"
) -> None:
    """AC-3: nobody hands out a permission they lack (through a role, a member or a key), nor
    acts on a role or a member holding one (`refusal` says which)."""
    lacking = set(codes) - principal.permissions
    if lacking:
        raise Forbidden(f"{refusal} permissions you do not have: {', '.join(sorted(lacking))}.")


@audit_refusals("role.create")
def create_role(principal: Principal, *, name: str, permissions: list[str]) -> Role:
    """Raises ValidationFailed (unknown permission), Forbidden, Conflict(role_name_taken)."""
    require_verified_email(principal)
    _check_name(name)
    role = Role(
        organization_id=principal.organization_id,
        name=name,
        permissions=_grantable_permissions(principal, permissions),
    )
    db.session.add(role)
    _flush_name()
    audit.by_principal(
        "role.created", principal, role_id=role.id, name=name, permissions=sorted(permissions)
    )
    db.session.commit()
    return role


@audit_refusals("role.update", target="role_id")
def update_role(principal: Principal, role_id: str, changes: dict[str, Any]) -> Role:
    """Rename and/or replace the permissions of a custom role; built-ins are Forbidden."""
    require_verified_email(principal)
    role = _changeable_role(principal, role_id)
    before = {"name": role.name, "permissions": role.permission_codes}
    if "name" in changes and changes["name"] != role.name:
        _check_name(changes["name"])
        role.name = changes["name"]
    if "permissions" in changes:
        role.permissions = _grantable_permissions(principal, changes["permissions"])
    _flush_name()
    after = {"name": role.name, "permissions": role.permission_codes}
    audit.by_principal("role.updated", principal, role_id=role.id, before=before, after=after)
    db.session.commit()
    return role


@audit_refusals("role.delete", target="role_id")
def delete_role(principal: Principal, role_id: str) -> None:
    """Members holding the role lose it (and its permissions) at once."""
    require_verified_email(principal)
    role = _changeable_role(principal, role_id)
    # Explicit rather than ON DELETE CASCADE alone: SQLite enforces no foreign keys by default.
    db.session.execute(sa.delete(membership_roles).where(membership_roles.c.role_id == role.id))
    db.session.delete(role)
    audit.by_principal("role.deleted", principal, role_id=role.id, name=role.name)
    db.session.commit()


def _custom_role(organization_id: str, role_id: str) -> Role:
    if not is_id(role_id):
        raise NotFound("No such role.")
    role = db.session.scalars(
        visible_roles(organization_id).where(Role.id == role_id)
    ).one_or_none()
    if role is None:
        raise NotFound("No such role.")  # AC-2: another organization's role does not exist
    if role.is_builtin:
        raise Forbidden("Built-in roles cannot be changed or deleted.")
    return role


def _changeable_role(principal: Principal, role_id: str) -> Role:
    """A custom role the caller may change: one carrying no permission the caller lacks, since
    changing it acts on every member holding it (AC-3). Raises NotFound, Forbidden."""
    role = _custom_role(principal.organization_id, role_id)
    require_grantable(principal, role.permission_codes, refusal="You cannot change a role with")
    return role


def _check_name(name: str) -> None:
    if name.lower() in BUILTIN_NAMES:
        raise Conflict(NAME_TAKEN, code="role_name_taken")


def _grantable_permissions(principal: Principal, codes: list[str]) -> list[Permission]:
    """The permissions named, each the caller's own."""
    found = permissions_named(codes, field="permissions")
    require_grantable(principal, codes)
    return found


def _flush_name() -> None:
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        if constraint_name(exc) != "uq_roles_organization_id_name":
            raise
        raise Conflict(NAME_TAKEN, code="role_name_taken") from None
