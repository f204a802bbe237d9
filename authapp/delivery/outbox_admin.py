"""What operators do with the outbox (`flask outbox ...`): read its state, put dead messages
back in line, drain it message by message, and sweep it from a process of its own.

The sweeper of `work` is the one gunicorn's workers run (outbox.Sweeper), in the foreground:
for a deployment whose web processes do not sweep (no gunicorn, or OUTBOX_SWEEP_SECONDS=0).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
import structlog
from flask import Flask

from authapp.delivery import offload, outbox
from authapp.models import OutboxMessage
from authapp.models.base import is_id
from authapp.platform import clock
from authapp.platform.errors import AppError
from authapp.platform.extensions import changed_rows, db
from authapp.security import audit

log = structlog.get_logger(__name__)
# Mails whose link is wiped when they die (outbox._finish, CS-2): sent again they would carry
# no link, so they stay dead and the user asks for a new one.
LINKED_TEMPLATES = ("password_reset", "verify_email")


@dataclass(frozen=True)
class Status:
    counts: dict[tuple[str, str], int]  # (status, kind) -> messages
    oldest_pending: datetime | None  # when the oldest pending message was written

    def total(self, status: str) -> int:
        return sum(count for (of, _kind), count in self.counts.items() if of == status)


def status() -> Status:
    """Messages by status and kind, and the age of the backlog."""
    rows = db.session.execute(
        sa.select(OutboxMessage.status, OutboxMessage.kind, sa.func.count())
        .group_by(OutboxMessage.status, OutboxMessage.kind)
        .order_by(OutboxMessage.status, OutboxMessage.kind)
    ).all()
    oldest = db.session.scalar(
        sa.select(sa.func.min(OutboxMessage.created_at)).where(OutboxMessage.status == "pending")
    )
    db.session.commit()  # ends the read transaction
    return Status({(row[0], row[1]): row[2] for row in rows}, oldest)


@dataclass(frozen=True)
class Retried:
    retried: int
    kept_dead: int  # linked mails that cannot be sent again (LINKED_TEMPLATES)


def retry_dead(*, kind: str | None = None, message_id: str | None = None) -> Retried:
    """Dead messages (of `kind`, or the one `message_id`) pending again, due now, with all
    their attempts ahead of them. Raises AppError(not_found) for an id that names no dead
    message."""
    criteria = [OutboxMessage.status == "dead"]
    if kind is not None:
        criteria.append(OutboxMessage.kind == kind)
    if message_id is not None:
        if not is_id(message_id):
            raise AppError(f"No dead message has the id {message_id!r}.", code="not_found")
        criteria.append(OutboxMessage.id == message_id)
    template = sa.func.coalesce(OutboxMessage.payload["template"].as_string(), "")
    linked = sa.and_(OutboxMessage.kind == "email", template.in_(LINKED_TEMPLATES))
    kept = db.session.scalar(
        sa.select(sa.func.count()).select_from(OutboxMessage).where(*criteria, linked)
    )
    retried = changed_rows(
        sa.update(OutboxMessage)
        .where(*criteria, sa.not_(linked))
        .values(status="pending", attempts=0, next_attempt_at=clock.now(), leased_until=None)
    )
    if message_id is not None and not retried and not kept:
        db.session.rollback()
        raise AppError(f"No dead message has the id {message_id!r}.", code="not_found")
    if retried:
        data = {"retried": retried, "kind": kind, "message_id": message_id}
        audit.record(
            "outbox.retried", organization_id=None, user_id=None, actor="system", data=data
        )
    db.session.commit()
    return Retried(retried, kept or 0)


def draining() -> tuple[int, Iterator[str]]:
    """`flask outbox drain`, one message at a time: how many are pending, and each one's new
    status as it is delivered (in this process, whatever its retry time)."""
    messages = outbox.due(limit=10_000, everything=True)
    return len(messages), (outbox.deliver(message_id, force=True) for message_id, *_ in messages)


@dataclass
class Worked:
    passes: int = 0
    handed_over: int = 0
    finished: Counter[str] = field(default_factory=Counter)  # `once`: each message's status


def work(app: Flask, stopping: threading.Event, *, interval: float, once: bool) -> Worked:
    """Sweep every `interval` seconds (±20 %) until `stopping` is set; `once`: one pass whose
    deliveries are waited for. Then the pool shuts down letting running deliveries finish;
    what did not start stays pending for the next sweep, here or anywhere."""
    worked = Worked()
    try:
        while True:
            futures = _sweep(app)
            worked.passes += 1
            worked.handed_over += len(futures)
            if once:
                wait(futures)
                worked.finished.update(f.result() or "failed" for f in futures if not f.cancelled())
                break
            if stopping.wait(interval * random.uniform(0.8, 1.2)):
                break
    finally:
        offload.shutdown(app, wait=True)
    return worked


def _sweep(app: Flask) -> list[Future[str]]:
    """One pass of outbox.sweep, keeping the futures of what the pool accepted."""
    futures: list[Future[str]] = []
    with app.app_context():
        try:
            for message_id, lane, key in outbox.due():
                try:
                    futures.append(offload.submit(outbox.deliver, message_id, lane=lane, key=key))
                except offload.Rejected:
                    log.warning("outbox.deferred", message_id=message_id)
        except Exception:  # a boundary: a database outage must not end the worker
            log.exception("outbox.sweep_failed")
        finally:
            db.session.remove()
    return futures
