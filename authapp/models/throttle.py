from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import Base, UTCDateTime
from authapp.platform import clock


class LoginThrottle(Base):
    """Consecutive failed logins per back-off counter (RL-2, EN-4, auth/backoff.py): an account,
    a device cookie, or a login no account has.

    Keyed by a SHA-256 (of the account id, the device id or the normalized identifier), so an
    unknown account is throttled exactly like a real one and the table names nobody.
    """

    __tablename__ = "login_throttles"

    login_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
