"""Reading an organization's audit trail, newest first."""

from __future__ import annotations

import sqlalchemy as sa

from authapp.models import AuditEvent
from authapp.settings.pagination import Page, page


def list_events(organization_id: str, *, limit: int, cursor: str | None) -> Page:
    return page(
        sa.select(AuditEvent).where(AuditEvent.organization_id == organization_id),
        AuditEvent.created_at,
        AuditEvent.id,
        limit=limit,
        cursor=cursor,
        newest_first=True,
    )
