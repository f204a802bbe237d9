"""An API key's last use, kept to the minute (auth/key_principals.py decides when)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from authapp.models import ApiKey
from authapp.platform.extensions import db


def record_use(key_id: str, now: datetime) -> None:
    """Committed by itself: recorded even when the route that follows only reads."""
    db.session.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
    db.session.commit()
