from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock


class Session(Base):
    """One login on one device; its id is the `sid` claim of every token it issues."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The organization the session acts in (the access token's `org` claim): one of the user's
    # memberships; a switch changes it. NULL only for a session begun before memberships.
    organization_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the absolute cap
    ip: Mapped[str | None] = mapped_column(sa.String(45))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(sa.String(50))


class RefreshToken(Base):
    """A single-use refresh token; `jti` is the claim, `replaced_by` the child it rotated to."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by: Mapped[str | None] = mapped_column(ID)

    session: Mapped[Session] = relationship(lazy="raise_on_sql")  # also orders the INSERTs
