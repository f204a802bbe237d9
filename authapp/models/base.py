"""The column types and ids every table shares; `Base` (and its naming convention) is
platform/extensions.py's, because `db` is built on it before any table exists."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from authapp.platform.extensions import Base

__all__ = ["ID", "Base", "UTCDateTime", "is_id", "new_id"]


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stored as UTC; read back aware on PostgreSQL and on SQLite (which keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use authapp.platform.clock.now()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def is_id(value: object) -> bool:
    """A canonical UUID string: anything else names no row (and must not reach the database)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


ID = sa.Uuid(as_uuid=False)
