"""An organization's API keys (AK-1..3): shown once, stored hashed, revoked at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from authapp import audit, clock, events, outbox
from authapp.errors import NotFound
from authapp.extensions import db
from authapp.models import ApiKey
from authapp.models.base import is_id
from authapp.security import api_keys
from authapp.security.rbac import Principal
from authapp.settings.services import roles as role_services
from authapp.settings.services.verified import require_verified_email


@dataclass(frozen=True)
class CreatedKey:
    """The new row and, in this answer only, the key itself."""

    row: ApiKey
    key: str


def list_keys(organization_id: str) -> list[ApiKey]:
    return list(
        db.session.scalars(
            sa.select(ApiKey)
            .where(ApiKey.organization_id == organization_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
    )


def create_key(
    principal: Principal, *, name: str, scopes: list[str], expires_in_days: int | None
) -> CreatedKey:
    """AK-3: scopes are permissions the caller holds. Raises ValidationFailed, Forbidden."""
    require_verified_email(principal)
    scopes = sorted(set(scopes))
    role_services.permissions_named(scopes, field="scopes")
    role_services.require_grantable(principal, scopes)
    material = api_keys.generate()
    now = clock.now()
    row = ApiKey(
        organization_id=principal.organization_id,
        # A key made by a key is attributed to nobody: the audit log names the acting key.
        created_by=principal.user.id if principal.user else None,
        name=name,
        prefix=material.prefix,
        key_hash=material.key_hash,
        scopes=scopes,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(row)
    db.session.flush()
    audit.by_principal(
        "api_key.created", principal, api_key_id=row.id, name=name, prefix=row.prefix, scopes=scopes
    )
    data = {"api_key_id": row.id, "name": name, "prefix": row.prefix, "scopes": scopes}
    message_id = events.webhook(principal.organization_id, "api_key.created", data)
    db.session.commit()
    outbox.dispatch(events.ids(message_id))
    return CreatedKey(row=row, key=material.key)


def revoke_key(principal: Principal, key_id: str) -> None:
    """AK-2: the key fails on every request after this commits. Revoking twice is a no-op."""
    row = _key(principal.organization_id, key_id)
    message_id = None
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        audit.by_principal("api_key.revoked", principal, api_key_id=row.id, prefix=row.prefix)
        data = {"api_key_id": row.id, "prefix": row.prefix}
        message_id = events.webhook(principal.organization_id, "api_key.revoked", data)
    db.session.commit()
    outbox.dispatch(events.ids(message_id))


def _key(organization_id: str, key_id: str) -> ApiKey:
    if not is_id(key_id):
        raise NotFound("No such API key.")
    row = db.session.scalars(
        sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.organization_id == organization_id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such API key.")  # AC-2
    return row
