from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock

TIER_RATE_LIMITS = {"free": 100, "pro": 1_000, "enterprise": 10_000}


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        sa.CheckConstraint("tier IN ('free', 'pro', 'enterprise')", name="tier"),
        # At most one default organization: the one sign-ups without organization_name join.
        sa.Index(
            "uq_organizations_default",
            "is_default",
            unique=True,
            postgresql_where=sa.text("is_default"),
            sqlite_where=sa.text("is_default"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100))
    is_default: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    tier: Mapped[str] = mapped_column(sa.String(20), default="free", server_default="free")
    rate_limit_per_minute: Mapped[int] = mapped_column(
        default=TIER_RATE_LIMITS["free"], server_default=str(TIER_RATE_LIMITS["free"])
    )
    webhook_url: Mapped[str | None] = mapped_column(sa.String(2048))
    webhook_secret: Mapped[str | None] = mapped_column(sa.Text)  # Fernet token, never plain
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
