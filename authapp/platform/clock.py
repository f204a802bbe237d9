"""The only clock: every expiry decision reads `now()`.

Under AUTHAPP_ENV=testing it runs ahead by the offset stored in `testing_clock`, so black-box
tests cross 14- and 30-day boundaries without sleeping, in every worker at once. The offset is
read once per request (the one statement testing adds to a request), over a connection of its
own so that a call from inside a flush never re-enters the session.
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app, g, has_app_context, has_request_context

OFFSET_QUERY = sa.text("SELECT offset_seconds FROM testing_clock WHERE id = 1")


def now() -> datetime:
    """Aware UTC, to the microsecond."""
    wall = datetime.now(UTC)
    if not has_app_context() or current_app.config["AUTHAPP_ENV"] != "testing":
        return wall
    return wall + timedelta(seconds=_offset())


def _offset() -> int:
    if has_request_context() and "clock_offset" in g:
        return int(g.clock_offset)
    # The app's Flask-SQLAlchemy by key: models import this module, so it cannot import db.
    with current_app.extensions["sqlalchemy"].engine.connect() as conn:
        offset = int(conn.execute(OFFSET_QUERY).scalar() or 0)
    if has_request_context():
        g.clock_offset = offset
    return offset
