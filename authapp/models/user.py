from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.models.organization import Organization
from authapp.platform import clock

# Still in the schema, no longer mapped: the release before this one reads them, so a later
# release's migration drops them (docs/deployment.md "Migrations": additive within a release).
RETIRED_COLUMNS = frozenset({"failed_login_count", "locked_until"})
# Likewise a whole table: `user_roles`, the roles of the one organization a user had before
# memberships (migration 0009 copied them into `membership_roles`).
RETIRED_TABLES = frozenset({"user_roles"})


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.Index("uq_users_email_normalized", "email_normalized", unique=True),
        # Usernames are unique case-insensitively; the index decides, never a SELECT first.
        sa.Index("uq_users_username_lower", sa.func.lower(sa.column("username")), unique=True),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    # The home organization: where a new session starts (the last one switched to). What the
    # person may do anywhere is their memberships'; NULL once the home organization is gone.
    organization_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(254))  # as the user typed it
    email_normalized: Mapped[str] = mapped_column(sa.String(254))
    username: Mapped[str | None] = mapped_column(sa.String(32))
    full_name: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(sa.String(100))
    # False for an account made through an identity provider: its password_hash is of a random
    # secret nobody knows, until a password reset sets one (docs/federation.md "Accounts").
    has_password: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mfa_secret: Mapped[str | None] = mapped_column(sa.Text)  # Fernet token, never returned
    mfa_enabled: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    mfa_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    home_organization: Mapped[Organization | None] = relationship(lazy="raise_on_sql")

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None
