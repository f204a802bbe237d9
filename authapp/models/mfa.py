from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock


class RecoveryCode(Base):
    """One single-use MFA recovery code, kept only as its SHA-256 (CS-2, MF-3)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (sa.Index("uq_recovery_codes_user_hash", "user_id", "code_hash", unique=True),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
