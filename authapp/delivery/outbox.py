"""The transactional outbox (docs/architecture.md "Rules", rule 3): durable side effects leave only
through here.

`add` writes a row in the caller's transaction; after the commit, `dispatch` hands the ids to
the offload pool. A message is claimed with a conditional UPDATE (PostgreSQL batches also use
`FOR UPDATE SKIP LOCKED`) and leases it (`leased_until`): nobody else sends it meanwhile, and
a process that dies mid-delivery leaves it to a sweep once the lease ends. Delivery is at
least once; the row id is the stable delivery id.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.fernet import InvalidToken
from flask import Flask, current_app

from authapp.delivery import mail, offload, webhooks
from authapp.models import OutboxMessage
from authapp.platform import clock
from authapp.platform.extensions import db
from authapp.security import audit, secretbox

log = structlog.get_logger(__name__)
SWEEP_BATCH = 50
ROUTES = "authapp.delivery.outbox.routes"  # session.info: the lane and key of each message added
_ORGANIZATION_ID = OutboxMessage.payload["organization_id"].as_string().label("organization_id")


def add(kind: str, payload: dict[str, Any]) -> str:
    """A message row in the caller's transaction; returns its id for `dispatch` after commit."""
    offload.require_plain(payload)
    message = OutboxMessage(kind=kind, payload=_sealed(payload), next_attempt_at=clock.now())
    db.session.add(message)
    db.session.flush()
    routes = db.session.info.setdefault(ROUTES, {})
    routes[message.id] = _route(kind, payload.get("organization_id"))
    return message.id


def _route(kind: str, organization_id: Any) -> tuple[str, str | None]:
    """The offload lane of a message and its key there. Mail and webhooks never share threads,
    and an organization's webhooks take turns (WEBHOOK_MAX_PER_ORGANIZATION): a receiver that a
    tenant chose and made slow holds only its own turns (F5)."""
    if kind != "webhook":
        return offload.MAIL, None
    return offload.WEBHOOKS, str(organization_id) if organization_id else None


def dispatch(message_ids: Iterable[str]) -> None:
    """After commit: deliver now on the pool; a full pool leaves the rows to the sweeper."""
    routes: dict[str, tuple[str, str | None]] = db.session.info.get(ROUTES, {})
    for message_id in message_ids:
        route = routes.pop(message_id, None) or _stored_route(message_id)
        _submit(message_id, *route)


def _stored_route(message_id: str) -> tuple[str, str | None]:
    """The route of a message this session did not add (read from its row)."""
    row = db.session.execute(
        sa.select(OutboxMessage.kind, _ORGANIZATION_ID).where(OutboxMessage.id == message_id)
    ).first()
    return _route(row.kind, row.organization_id) if row is not None else (offload.MAIL, None)


def _submit(message_id: str, lane: str, key: str | None) -> None:
    try:
        offload.submit(deliver, message_id, lane=lane, key=key)
    except offload.Rejected:
        log.warning("outbox.deferred", message_id=message_id)


def _lease() -> timedelta:
    # Longer than one delivery can take, so a live worker is never doubled by a sweep.
    config = current_app.config
    return timedelta(seconds=max(config["OFFLOAD_TIMEOUT"], config["WEBHOOK_TIMEOUT"]) * 3 + 5)


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        OutboxMessage.status == "pending",
        sa.or_(OutboxMessage.leased_until.is_(None), OutboxMessage.leased_until <= now),
    )


def _claim(message_id: str, *, force: bool = False) -> dict[str, Any] | None:
    """Lease one message; None when another process holds the lease, or it is done. `force`
    ignores the retry time, never another process's lease."""
    now = clock.now()
    due = [OutboxMessage.next_attempt_at <= now] if not force else []
    claimed = db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id, _claimable(now), *due)
        .values(leased_until=now + _lease(), attempts=OutboxMessage.attempts + 1)
        .returning(OutboxMessage.kind, OutboxMessage.payload, OutboxMessage.attempts)
    ).first()
    db.session.commit()
    if claimed is None:
        return None
    return {"kind": claimed.kind, "payload": claimed.payload, "attempts": claimed.attempts}


def deliver(message_id: str, *, force: bool = False) -> str:
    """Claim and send one message (on the pool, or from `flask outbox drain`); its new status."""
    claimed = _claim(message_id, force=force)
    if claimed is None:
        return "skipped"
    try:
        _send(message_id, claimed["kind"], claimed["payload"])
    except offload.Undeliverable as exc:
        return _finish(message_id, "dead", error=str(exc))
    except Exception as exc:  # refused, timed out, an open breaker, or a bug: retried, then dead
        if claimed["attempts"] >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
            return _finish(message_id, "dead", error=_describe(exc))
        _retry_later(message_id, claimed["attempts"], _describe(exc))
        return "pending"
    return _finish(message_id, "sent")


# CS-2: a payload's `secrets` (a live reset or verification link) wait in the database, for
# hours while SMTP is down, encrypted with DATA_ENCRYPTION_KEY: a reader of the table cannot
# use them. They are opened only to compose the mail, and wiped once it is sent or dead.
def _sealed(payload: dict[str, Any]) -> dict[str, Any]:
    if "secrets" not in payload:
        return payload
    return {**payload, "secrets": secretbox.seal(json.dumps(payload["secrets"]))}


def _opened(payload: dict[str, Any]) -> dict[str, Any]:
    sealed = payload.get("secrets")
    if not isinstance(sealed, str):
        return payload
    try:
        return {**payload, "secrets": json.loads(secretbox.open_sealed(sealed))}
    except InvalidToken:  # sealed under another key: no attempt will ever open it
        raise offload.Undeliverable("its secrets do not open with DATA_ENCRYPTION_KEY") from None


def rewrite(message_id: str, payload: dict[str, Any]) -> None:
    """Replace a message's payload (sealed like `add`'s), in the caller's transaction."""
    offload.require_plain(payload)
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(payload=_sealed(payload))
    )


# A message whose sealed secrets hold one of these keys is a request that its feature turns
# into a mail on the pool (message id, secrets -> the mail, or None when it names nobody).
# Features register here (auth/services/recovery.py), so this module never imports them.
Composer = Callable[[str, dict[str, Any]], dict[str, Any] | None]
COMPOSERS: dict[str, Composer] = {}


def composes(secret_key: str, composer: Composer) -> None:
    COMPOSERS[secret_key] = composer


def _mail(message_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """The mail a message sends, or None when it names nobody. A password-reset request is
    the same message whether or not an account has the address (EN-3): which account that is,
    if any, is found by its composer, off the request thread."""
    opened = _opened(payload)
    secrets = opened.get("secrets", {})
    for secret_key, composer in COMPOSERS.items():
        if secret_key in secrets:
            return composer(message_id, secrets)
    return opened


def _send(message_id: str, kind: str, payload: dict[str, Any]) -> None:
    if kind == "email":
        opened = _mail(message_id, payload)
        if opened is not None:
            mail.send(message_id, opened)
    else:
        webhooks.send(message_id, payload)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _retry_later(message_id: str, attempts: int, error: str) -> None:
    config = current_app.config
    delay = config["OUTBOX_RETRY_SECONDS"] * 2 ** (attempts - 1)
    delay = min(config["OUTBOX_RETRY_MAX_SECONDS"], delay) * random.uniform(0.5, 1.5)  # jitter
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            next_attempt_at=clock.now() + timedelta(seconds=delay),
            leased_until=None,
            last_error=error,
        )
    )
    db.session.commit()
    log.info("outbox.retry", message_id=message_id, attempts=attempts, error=error)


def _finish(message_id: str, status: str, *, error: str | None = None) -> str:
    message = db.session.get(OutboxMessage, message_id)
    if message is None:
        return status
    message.status = status
    message.leased_until = None
    message.last_error = error
    message.sent_at = clock.now() if status == "sent" else None
    # The link in a reset or verification mail must not outlive its use.
    message.payload = {k: v for k, v in message.payload.items() if k != "secrets"}
    if status == "dead":
        audit.record(
            "outbox.dead",
            organization_id=message.payload.get("organization_id"),
            user_id=message.payload.get("user_id"),
            actor="system",
            data={"message_id": message.id, "kind": message.kind, "error": error},
        )
        log.warning("outbox.dead", message_id=message_id, kind=message.kind, error=error)
    db.session.commit()
    return status


def due(limit: int = SWEEP_BATCH, *, everything: bool = False) -> list[tuple[str, str, str | None]]:
    """(id, lane, key) of pending messages whose time has come (all with `everything`)."""
    now = clock.now()
    columns = (OutboxMessage.id, OutboxMessage.kind, _ORGANIZATION_ID)
    statement = sa.select(*columns).where(_claimable(now))
    if not everything:
        statement = statement.where(OutboxMessage.next_attempt_at <= now)
    statement = statement.order_by(OutboxMessage.next_attempt_at).limit(limit)
    # SKIP LOCKED lets several workers and hosts sweep at once without waiting on each other;
    # the conditional UPDATE of _claim (the lease) decides who sends.
    rows = db.session.execute(statement.with_for_update(skip_locked=True)).all()
    db.session.commit()
    return [(row.id, *_route(row.kind, row.organization_id)) for row in rows]


def sweep() -> int:
    """One pass: hand every due message to the pool. Returns how many were handed over."""
    messages = due()
    for message_id, lane, key in messages:
        _submit(message_id, lane, key)
    return len(messages)


def drain() -> dict[str, int]:
    """`flask outbox drain`: deliver every pending message now, in this process."""
    counts: dict[str, int] = {}
    for message_id, _lane, _key in due(limit=10_000, everything=True):
        status = deliver(message_id, force=True)
        counts[status] = counts.get(status, 0) + 1
    return counts


class Sweeper:
    """A daemon thread per worker process that sweeps every OUTBOX_SWEEP_SECONDS."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="outbox-sweeper", daemon=True)

    def _loop(self) -> None:
        interval = self.app.config["OUTBOX_SWEEP_SECONDS"]
        while not self.stopping.wait(interval * random.uniform(0.8, 1.2)):
            with self.app.app_context():
                try:
                    sweep()
                except Exception:  # a boundary: a database outage must not kill the sweeper
                    log.exception("outbox.sweep_failed")
                finally:
                    db.session.remove()


def start_sweeper(app: Flask) -> Sweeper | None:
    """Called in each gunicorn worker after fork (gunicorn.conf.py `post_worker_init`)."""
    if app.config["OUTBOX_SWEEP_SECONDS"] <= 0:
        return None
    sweeper = Sweeper(app)
    sweeper.thread.start()
    app.extensions["authapp.sweeper"] = sweeper
    return sweeper


def stop_sweeper(app: Flask) -> None:
    sweeper: Sweeper | None = app.extensions.pop("authapp.sweeper", None)
    if sweeper is not None:
        sweeper.stopping.set()
