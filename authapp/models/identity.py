from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.models.user import User
from authapp.platform import clock


class Identity(Base):
    """An account's identity at an identity provider (docs/federation.md): the provider's name
    (FEDERATION_PROVIDERS) and its subject, which is stable where an email address is not. The
    address and whether the provider vouched for it are as it last said, for the owner to see."""

    __tablename__ = "identities"
    __table_args__ = (sa.UniqueConstraint("provider", "subject"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(255))  # OIDC Core §2: at most 255 ASCII
    email: Mapped[str] = mapped_column(sa.String(254), default="", server_default="")
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Lets a new account and its identity be added together (the flush inserts the user first).
    user: Mapped[User] = relationship(lazy="raise_on_sql")
