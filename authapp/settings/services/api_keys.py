"""An organization's API keys (AK-1..3): shown once, stored hashed, revoked at once, never
doing more than the member they act for may do now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from authapp.auth.key_principals import (
    EFFECTIVE_SCOPES,
    MEMBER_ACTIVE,
    effective_scopes,
    key_status,
    with_member,
)
from authapp.auth.principals import Principal
from authapp.auth.services.refusals import audit_refusals
from authapp.delivery import events, outbox
from authapp.models import ApiKey
from authapp.models.base import is_id
from authapp.platform import clock
from authapp.platform.errors import NotFound
from authapp.platform.extensions import db
from authapp.security import api_keys, audit
from authapp.settings.services import roles as role_services
from authapp.settings.verified import require_verified_email


@dataclass(frozen=True)
class KeyView:
    """A key as the settings show it: `status` says whether it can act now (`active`,
    `revoked`, `expired`, `member_disabled`, `member_left`) and `effective_scopes` what it
    may do now, its scopes that the member it acts for still holds (AK-3)."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_by: str | None
    acts_for: str | None
    made_by_key: str | None
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    status: str
    effective_scopes: list[str]

    @classmethod
    def of(cls, key: ApiKey, *, status: str, effective: list[str]) -> KeyView:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scopes=key.scopes,
            created_by=key.created_by,
            acts_for=key.acts_for,
            made_by_key=key.made_by_key,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            status=status,
            effective_scopes=effective if status == "active" else [],
        )


@dataclass(frozen=True)
class CreatedKey(KeyView):
    """A new key and, in this answer only, the key itself."""

    key: str = ""


def list_keys(organization_id: str) -> list[KeyView]:
    rows = db.session.execute(
        with_member(sa.select(ApiKey, MEMBER_ACTIVE, EFFECTIVE_SCOPES).select_from(ApiKey))
        .where(ApiKey.organization_id == organization_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    now = clock.now()
    return [
        KeyView.of(
            row.ApiKey,
            status=key_status(row.ApiKey.revoked_at, row.ApiKey.expires_at, row.member_active, now),
            effective=effective_scopes(row),
        )
        for row in rows
    ]


@audit_refusals("api_key.create")
def create_key(
    principal: Principal, *, name: str, scopes: list[str], expires_in_days: int | None
) -> CreatedKey:
    """AK-3: scopes are permissions the caller holds; the key acts for the calling member (a
    key made by a key, for that key's member). Raises ValidationFailed, Forbidden."""
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
        acts_for=principal.user.id if principal.user else principal.acts_for,
        name=name,
        prefix=material.prefix,
        key_hash=material.key_hash,
        scopes=scopes,
        created_at=now,
        expires_at=_expiry(principal, now, expires_in_days),
        made_by_key=principal.api_key_id,
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
    # Its member holds every scope now: require_grantable checked the caller's, which are the
    # member's own or, for a key, a part of them.
    view = KeyView.of(row, status="active", effective=scopes)
    return CreatedKey(**vars(view), key=material.key)


def _expiry(principal: Principal, now: datetime, days: int | None) -> datetime | None:
    """When a new key expires: after `days`, and for a key made by a key no later than that
    key (AK-3: it never outlives the key that made it)."""
    expires_at = now + timedelta(days=days) if days else None
    maker = db.session.get(ApiKey, principal.api_key_id) if principal.api_key_id else None
    if maker is not None and maker.expires_at is not None:
        expires_at = min(expires_at or maker.expires_at, maker.expires_at)
    return expires_at


@audit_refusals("api_key.revoke", target="key_id")
def revoke_key(principal: Principal, key_id: str) -> None:
    """AK-2: the key fails on every request after this commits, and so do the keys it made,
    and theirs (AK-3). Revoking twice is a no-op."""
    row = _key(principal.organization_id, key_id)
    message_ids: list[str] = []
    if row.revoked_at is None:
        now = clock.now()
        message_ids += _revoke(principal, row, now)
        for made in _made_by(row.id):
            message_ids += _revoke(principal, made, now, with_key=row.id)
    db.session.commit()
    outbox.dispatch(message_ids)


def _revoke(principal: Principal, row: ApiKey, now: datetime, **why: str) -> list[str]:
    row.revoked_at = now
    audit.by_principal("api_key.revoked", principal, api_key_id=row.id, prefix=row.prefix, **why)
    data = {"api_key_id": row.id, "prefix": row.prefix}
    return events.ids(events.webhook(principal.organization_id, "api_key.revoked", data))


def _made_by(key_id: str) -> list[ApiKey]:
    """The live keys a key made, the keys they made, and so on."""
    found: list[ApiKey] = []
    makers = [key_id]
    while makers:
        made = list(
            db.session.scalars(
                sa.select(ApiKey).where(ApiKey.made_by_key.in_(makers), ApiKey.revoked_at.is_(None))
            )
        )
        found += made
        makers = [key.id for key in made]
    return found


def _key(organization_id: str, key_id: str) -> ApiKey:
    if not is_id(key_id):
        raise NotFound("No such API key.")
    row = db.session.scalars(
        sa.select(ApiKey).where(ApiKey.id == key_id, ApiKey.organization_id == organization_id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such API key.")  # AC-2
    return row
