"""Operations endpoints: liveness, readiness, metrics, the JWKS; the testing clock in testing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
import structlog
from flask import Blueprint, Flask, Response, request
from marshmallow import Schema, ValidationError, fields, validate
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from authapp.models import OutboxMessage, TestingClock
from authapp.platform import connections, metrics
from authapp.platform.errors import ServiceUnavailable, ValidationFailed, is_database_outage
from authapp.platform.extensions import db
from authapp.security import keys

bp = Blueprint("ops", __name__)
testing_bp = Blueprint("testing", __name__, url_prefix="/_testing")
TEN_YEARS = 10 * 366 * 86400
OUTBOX_STATUSES = ("pending", "dead")
log = structlog.get_logger(__name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, str]:
    """Ready when the database answers. A pooled connection the server ended a moment ago (a
    restart) is tried once more on a fresh one, as every request's first statement is: it says
    nothing about the database now."""
    try:
        connections.first_statement(_select_one)
    except sa.exc.SQLAlchemyError as exc:
        if not is_database_outage(exc):
            raise
        raise ServiceUnavailable(
            "The database is not reachable.", headers={"Retry-After": "5"}
        ) from None
    return {"status": "ready"}


def _select_one() -> None:
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


@bp.get("/.well-known/jwks.json")
def jwks() -> dict[str, Any]:
    return keys.public_jwks()


class ClockIn(Schema):
    offset_seconds = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=-TEN_YEARS, max=TEN_YEARS)
    )


@testing_bp.post("/clock")
def set_clock() -> dict[str, int]:
    """Shift authapp.platform.clock for every worker; registered only when AUTHAPP_ENV=testing."""
    try:
        offset = ClockIn().load(request.get_json(silent=True) or {})["offset_seconds"]
    except ValidationError as exc:
        raise ValidationFailed(exc.normalized_messages()) from None
    db.session.merge(TestingClock(id=1, offset_seconds=offset))
    db.session.commit()
    return {"offset_seconds": offset}


def scrape() -> Response:
    return metrics.scrape(_Outbox(_outbox_counts()))


class _Outbox(Collector):
    def __init__(self, counts: Mapping[str, int] | None) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "authapp_outbox_up",
            "1 when this scrape read the outbox counts from the database, else 0 (and no counts).",
            value=0 if self.counts is None else 1,
        )
        if self.counts is None:
            return
        messages = GaugeMetricFamily(
            "authapp_outbox_messages",
            "Outbox messages by status: pending (the backlog) and dead (given up on).",
            labels=["status"],
        )
        for status in OUTBOX_STATUSES:
            messages.add_metric([status], self.counts.get(status, 0))
        yield messages


def _outbox_counts() -> dict[str, int] | None:
    """One statement on the (status, next_attempt_at) index; None when the database fails."""
    statement = (
        sa.select(OutboxMessage.status, sa.func.count())
        .where(OutboxMessage.status.in_(OUTBOX_STATUSES))
        .group_by(OutboxMessage.status)
    )
    try:
        rows = db.session.execute(statement).all()
    except sa.exc.SQLAlchemyError as exc:  # an outage must not fail the scrape (nor be a 500)
        db.session.rollback()
        log.warning("metrics.outbox_unavailable", error_type=type(exc).__name__)
        return None
    return {status: count for status, count in rows}


bp.add_url_rule("/metrics", "metrics", scrape)  # the endpoint platform/metrics.py skips


def init_app(app: Flask, url_prefix: str) -> None:
    app.register_blueprint(bp, url_prefix=url_prefix)
    if app.config["AUTHAPP_ENV"] == "testing":
        app.register_blueprint(testing_bp, url_prefix=url_prefix + "/_testing")
