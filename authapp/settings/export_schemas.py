"""The shape of a person's data export (GET /api/v1/settings/account/export); kept beside
schemas.py, which holds the settings' other schemas, to keep both modules short.

Only listed fields leave: a column added to a table later is not exported by accident (and no
hash, secret or key ever is)."""

from __future__ import annotations

from marshmallow import Schema, fields

from authapp.platform import clock
from authapp.platform.openapi import TIME_FORMAT
from authapp.settings.schemas import AuditEventOut


def _time(**kwargs: object) -> fields.DateTime:
    return fields.DateTime(format=TIME_FORMAT, **kwargs)  # type: ignore[arg-type]


class ExportedUser(Schema):
    id = fields.String()
    email = fields.String()
    username = fields.String(allow_none=True)
    full_name = fields.String()
    email_verified = fields.Boolean()
    email_verified_at = _time(allow_none=True)
    mfa_enabled = fields.Boolean()
    is_active = fields.Boolean()
    last_login_at = _time(allow_none=True)
    created_at = _time()
    updated_at = _time()


class ExportedOrganization(Schema):
    id = fields.String()
    name = fields.String()


class ExportedMembership(Schema):
    organization = fields.Nested(ExportedOrganization)
    roles = fields.List(fields.String())
    is_active = fields.Boolean()


class ExportedSession(Schema):
    id = fields.String()
    created_at = _time()
    last_seen_at = _time()
    expires_at = _time()
    revoked_at = _time(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)


class ExportedApiKey(Schema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String())
    created_at = _time()
    last_used_at = _time(allow_none=True)
    expires_at = _time(allow_none=True)
    revoked_at = _time(allow_none=True)


class ExportedPasskey(Schema):
    id = fields.String()
    name = fields.String()
    created_at = _time()
    last_used_at = _time(allow_none=True)
    backed_up = fields.Boolean()


class ExportedIdentity(Schema):
    """An account at an identity provider linked to this one (docs/federation.md)."""

    id = fields.String()
    provider = fields.String()
    subject = fields.String()
    email = fields.String()
    email_verified = fields.Boolean()
    created_at = _time()
    last_used_at = _time(allow_none=True)


class ExportedAuditEvent(AuditEventOut):
    """The audit log's own shape, with the organization instead of the (exporting) user."""

    class Meta:
        exclude = ("user_id",)

    organization_id = fields.String(allow_none=True)


class AccountExportOut(Schema):
    exported_at = _time()
    user = fields.Nested(ExportedUser)
    memberships = fields.List(fields.Nested(ExportedMembership))
    sessions = fields.List(fields.Nested(ExportedSession))
    api_keys = fields.List(fields.Nested(ExportedApiKey))
    passkeys = fields.List(fields.Nested(ExportedPasskey))
    identities = fields.List(fields.Nested(ExportedIdentity))
    audit_events = fields.List(
        fields.Nested(ExportedAuditEvent),
        metadata={"description": "Events about the user, newest first, at most 1,000."},
    )
    audit_events_truncated = fields.Boolean(
        metadata={"description": "True when older events were left out."}
    )


def render(document: dict[str, object]) -> dict[str, object]:
    """The export as JSON-ready values (the page serves it as a file, outside flask-smorest)."""
    return AccountExportOut().dump(document)  # type: ignore[no-any-return]


def download_headers() -> dict[str, str]:
    """The export is a file to keep, named by its day (`no-store` comes from the app's hooks)."""
    filename = f"authapp-export-{clock.now():%Y-%m-%d}.json"
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
