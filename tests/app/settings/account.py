"""What the account settings tests (test_account_*.py) share."""

import sqlalchemy as sa

from authapp.models import AuditEvent
from authapp.platform.extensions import db
from tests.app.settings.conftest import SETTINGS

PROFILE = f"{SETTINGS}/profile"
PASSWORD_ROUTE = f"{SETTINGS}/password"
ME = "/api/v1/auth/me"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "an entirely different passphrase"
UNKNOWN_ID = "5f0c2a4e-9b1d-4c3e-8f7a-2d6b1e0c9a84"  # fixed: xdist needs stable test ids


def audit_events(app, event):
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.event == event)).all()
        return [{"actor": r.actor, "user_id": r.user_id, "data": r.data} for r in rows]


def log_in_with(client, login, password):
    return client.post("/api/v1/auth/login", json={"login": login, "password": password})
