from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock


class OutboxMessage(Base):
    """A durable side effect (an email, a webhook), written in the transaction that causes it.

    Its id is the stable delivery id. Secrets in `payload["secrets"]` (a reset or verification
    link) are stored encrypted (outbox.add) and wiped once the message is sent or dead.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('email', 'webhook')", name="kind"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')", name="status"),
        sa.Index("ix_outbox_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Set while one process delivers it: nobody else may claim it until then (a crash ends it).
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OneTimeToken(Base):
    """A password-reset, email-verification or email-change token, kept only as its SHA-256
    (CS-2)."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        sa.CheckConstraint(
            "purpose IN ('password_reset', 'email_verify', 'email_change')", name="purpose"
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    purpose: Mapped[str] = mapped_column(sa.String(20))
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # An email_change token's address: kept here, not in its link, so the link names nobody.
    new_email: Mapped[str | None] = mapped_column(sa.String(254))
