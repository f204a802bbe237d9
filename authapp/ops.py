"""Operations endpoints: liveness, readiness, the JWKS; the testing clock in testing only."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, request
from marshmallow import Schema, ValidationError, fields, validate

from authapp.errors import ServiceUnavailable, ValidationFailed, is_database_outage
from authapp.extensions import db
from authapp.models import TestingClock
from authapp.security import keys

bp = Blueprint("ops", __name__)
testing_bp = Blueprint("testing", __name__, url_prefix="/_testing")
TEN_YEARS = 10 * 366 * 86400


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, str]:
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        if not is_database_outage(exc):
            raise
        db.session.rollback()
        raise ServiceUnavailable(
            "The database is not reachable.", headers={"Retry-After": "5"}
        ) from None
    return {"status": "ready"}


@bp.get("/.well-known/jwks.json")
def jwks() -> dict[str, Any]:
    return keys.public_jwks()


class ClockIn(Schema):
    offset_seconds = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=-TEN_YEARS, max=TEN_YEARS)
    )


@testing_bp.post("/clock")
def set_clock() -> dict[str, int]:
    """Shift authapp.clock for every worker; registered only when AUTHAPP_ENV=testing."""
    try:
        offset = ClockIn().load(request.get_json(silent=True) or {})["offset_seconds"]
    except ValidationError as exc:
        raise ValidationFailed(exc.normalized_messages()) from None
    db.session.merge(TestingClock(id=1, offset_seconds=offset))
    db.session.commit()
    return {"offset_seconds": offset}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    if app.config["AUTHAPP_ENV"] == "testing":
        app.register_blueprint(testing_bp)
