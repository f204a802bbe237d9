from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock


class ApiKey(Base):
    """A machine client's key: `ak_<prefix>_<secret>`, kept only as a SHA-256 hash (AK-1)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # The key belongs to the organization: it outlives the member who made it.
    created_by: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    # AK-3: the member whose rights bound the key now (its creator, or for a key made by a key,
    # the member that key acts for). NULL or a member of another organization: the key stops.
    acts_for: Mapped[str | None] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="SET NULL"))
    # A key made by a key never outlives it: revoked with it, expiring no later (AK-2, AK-3).
    made_by_key: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
