import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import Base


class TestingClock(Base):
    """One row: how far platform/clock.py runs ahead, for all workers (AUTHAPP_ENV=testing only)."""

    __tablename__ = "testing_clock"
    __test__ = False  # not a pytest test class, despite the name

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    offset_seconds: Mapped[int] = mapped_column(sa.BigInteger, default=0)
