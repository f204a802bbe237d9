"""seed_database(): create what the database lacks, by natural key, in one commit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import selectinload

from authapp.auth.services import memberships
from authapp.auth.services.accounts import normalize_email
from authapp.models import Organization, Permission, Role, User
from authapp.platform import clock
from authapp.platform.extensions import db
from authapp.security import passwords

BUILTIN_PERMISSIONS = {
    "users:read": "List the organization's members and roles.",
    "users:manage": "Change members' roles and disable or enable them.",
    "roles:manage": "Create, change and delete the organization's custom roles.",
    "org:manage": "Change the organization's settings and webhooks.",
    "api_keys:manage": "Create, list and revoke the organization's API keys.",
    "audit:read": "Read the organization's audit log.",
    # An API key with it asks POST /auth/introspect whether a token is good (RFC 7662).
    "tokens:introspect": "Check other members' access tokens through token introspection.",
}
BUILTIN_ROLES = ("owner", "admin", "member")
FULL_ACCESS_ROLES = ("owner", "admin")  # every permission, the operator's own codes included


class SeedError(ValueError):
    """A seed setting is unusable; the message names it."""


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    generated_password: str | None = None


def seed_database() -> SeedReport:
    report = SeedReport()
    permissions = _ensure_permissions(report)
    roles = _ensure_roles(permissions, report)
    organization = _ensure_default_organization(report)
    _ensure_admin(organization, roles["owner"], report)
    db.session.commit()
    return report


def _ensure_permissions(report: SeedReport) -> dict[str, Permission]:
    existing = {p.code: p for p in db.session.scalars(sa.select(Permission))}
    for code, description in BUILTIN_PERMISSIONS.items():
        if code not in existing:
            existing[code] = Permission(code=code, description=description)
            db.session.add(existing[code])
            report.created.append(f"permission {code}")
    return existing


def _ensure_roles(permissions: dict[str, Permission], report: SeedReport) -> dict[str, Role]:
    roles = {
        role.name: role
        for role in db.session.scalars(
            sa.select(Role)
            .where(Role.organization_id.is_(None))
            .options(selectinload(Role.permissions))
        )
    }
    for name in BUILTIN_ROLES:
        role = roles.get(name)
        if role is None:
            role = roles[name] = Role(name=name, permissions=[])
            db.session.add(role)
            report.created.append(f"role {name}")
        granted = permissions.values() if name in FULL_ACCESS_ROLES else ()
        missing = [permission for permission in granted if permission not in role.permissions]
        if missing:
            role.permissions.extend(missing)
            if f"role {name}" not in report.created:
                report.created.append(f"permissions of role {name}")
    return roles


def add_permission(code: str, description: str) -> bool:
    """`flask permissions add`: an application's permission code, granted to the full-access
    built-in roles so owners can put it into custom roles. False when it already existed
    (its description is updated)."""
    permission = db.session.scalars(
        sa.select(Permission).where(Permission.code == code)
    ).one_or_none()
    created = permission is None
    if permission is None:
        permission = Permission(code=code)
        db.session.add(permission)
    permission.description = description
    full_access = db.session.scalars(
        sa.select(Role)
        .where(Role.organization_id.is_(None), Role.name.in_(FULL_ACCESS_ROLES))
        .options(selectinload(Role.permissions))
    )
    for role in full_access:
        if permission not in role.permissions:
            role.permissions.append(permission)
    db.session.commit()
    return created


def _ensure_default_organization(report: SeedReport) -> Organization:
    organization = db.session.scalars(
        sa.select(Organization).where(Organization.is_default)
    ).one_or_none()
    if organization is None:
        organization = Organization(name=current_app.config["DEFAULT_ORG_NAME"], is_default=True)
        db.session.add(organization)
        report.created.append(f"organization {organization.name}")
    return organization


def _ensure_admin(organization: Organization, owner: Role, report: SeedReport) -> None:
    email = current_app.config["SEED_ADMIN_EMAIL"].strip()
    exists = db.session.scalar(
        sa.select(sa.func.count())
        .select_from(User)
        .where(User.email_normalized == normalize_email(email))
    )
    if exists:
        return
    password = current_app.config["SEED_ADMIN_PASSWORD"]
    if not password:
        password = report.generated_password = secrets.token_urlsafe(18)
    else:
        reasons = passwords.policy_errors(password, email=email)
        if reasons:
            raise SeedError(f"SEED_ADMIN_PASSWORD is refused: {' '.join(reasons)}")
    admin = User(
        email=email,
        email_normalized=normalize_email(email),
        full_name="Administrator",
        password_hash=passwords.hash_password(password),
        email_verified_at=clock.now(),
    )
    db.session.add(admin)
    memberships.join(admin, organization, [owner])
    report.created.append(f"admin {email}")
