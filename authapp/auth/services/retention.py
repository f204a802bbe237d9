"""Retention (`flask prune`): rows that stopped mattering a retention period ago are deleted.

- sessions expired or revoked PRUNE_SESSIONS_AFTER ago, with their refresh tokens, and refresh
  tokens expired that long ago (an expired refresh token is refused by its own `exp` claim
  before any row is read, so its row no longer guards anything);
- one-time tokens used or expired PRUNE_TOKENS_AFTER ago;
- outbox messages sent PRUNE_OUTBOX_SENT_AFTER ago (never pending or dead ones);
- audit events older than AUDIT_RETENTION, unless it is 0.

Unlike the other services this one commits once per batch, not once: a backlog of millions of
rows deleted in one transaction would hold its locks and its undo for as long as it runs.
Refresh tokens go before the sessions they reference, so no foreign key refuses a batch
(SQLite does not cascade).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from authapp.models import (
    AuditEvent,
    OneTimeToken,
    OutboxMessage,
    PasskeyChallenge,
    RefreshToken,
    Session,
)
from authapp.platform import clock
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit

BATCH = 1000


@dataclass(frozen=True)
class Target:
    model: Any
    key: Any  # the primary key's column
    criterion: sa.ColumnElement[bool]

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    def count(self) -> int:
        statement = sa.select(sa.func.count()).select_from(self.model).where(self.criterion)
        return int(db.session.scalar(statement) or 0)

    def delete_batch(self) -> int:
        chosen = sa.select(self.key).where(self.criterion).limit(BATCH)
        return changed_rows(sa.delete(self.model).where(self.key.in_(chosen)))


def targets(now: datetime | None = None) -> list[Target]:
    """What is past retention as of `now`, in the order it must be deleted."""
    now = now or clock.now()
    config = current_app.config

    def before(setting: str) -> datetime:
        return now - timedelta(seconds=config[setting])

    sessions_cutoff, tokens_cutoff = before("PRUNE_SESSIONS_AFTER"), before("PRUNE_TOKENS_AFTER")
    ended = sa.or_(Session.revoked_at < sessions_cutoff, Session.expires_at < sessions_cutoff)
    found = [
        Target(
            RefreshToken,
            RefreshToken.jti,
            sa.or_(
                RefreshToken.expires_at < sessions_cutoff,
                RefreshToken.session_id.in_(sa.select(Session.id).where(ended)),
            ),
        ),
        Target(Session, Session.id, ended),
        *_single_use(tokens_cutoff),
        Target(
            OutboxMessage,
            OutboxMessage.id,
            sa.and_(
                OutboxMessage.status == "sent",
                OutboxMessage.sent_at < before("PRUNE_OUTBOX_SENT_AFTER"),
            ),
        ),
    ]
    if config["AUDIT_RETENTION"]:
        found.append(
            Target(AuditEvent, AuditEvent.id, AuditEvent.created_at < before("AUDIT_RETENTION"))
        )
    return found


def _single_use(cutoff: datetime) -> list[Target]:
    """Links spent or expired, and passkey challenges nobody answered."""
    return [
        Target(
            OneTimeToken,
            OneTimeToken.id,
            sa.or_(OneTimeToken.used_at < cutoff, OneTimeToken.expires_at < cutoff),
        ),
        Target(
            PasskeyChallenge, PasskeyChallenge.challenge_hash, PasskeyChallenge.expires_at < cutoff
        ),
    ]


def count(found: list[Target]) -> dict[str, int]:
    """Rows past retention per table (what `--dry-run` prints); nothing changes."""
    counts = {target.table: target.count() for target in found}
    db.session.commit()  # ends the read transaction
    return counts


def prune(found: list[Target]) -> Iterator[tuple[str, int]]:
    """Delete in batches of BATCH rows, each committed; yields (table, rows deleted) per batch.
    A run that deleted anything is audited as `retention.pruned` with the totals."""
    totals: dict[str, int] = {}
    for target in found:
        totals[target.table] = 0
        while True:
            deleted = target.delete_batch()
            db.session.commit()
            totals[target.table] += deleted
            yield target.table, deleted
            if deleted < BATCH:
                break
    if any(totals.values()):  # a daily run that found nothing leaves no trace
        audit.record(
            "retention.pruned", organization_id=None, user_id=None, actor="system", data=totals
        )
        db.session.commit()
