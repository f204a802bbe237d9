from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.models.organization import Organization
from authapp.models.role import Role
from authapp.models.user import User
from authapp.platform import clock

membership_roles = sa.Table(
    "membership_roles",
    Base.metadata,
    sa.Column(
        "membership_id", ID, sa.ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "role_id", ID, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class Membership(Base):
    """A person in one organization: the roles they hold there, and whether they may act there.

    A user may belong to several organizations; a session acts in one of them at a time
    (`sessions.organization_id`, the `org` claim). Suspending a membership (`is_active`) is what
    an organization's admin can do; disabling the person (`users.is_active`) is the operator's.
    """

    __tablename__ = "memberships"
    __table_args__ = (sa.UniqueConstraint("user_id", "organization_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, sa.ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    user: Mapped[User] = relationship(lazy="raise_on_sql")
    organization: Mapped[Organization] = relationship(lazy="raise_on_sql")
    roles: Mapped[list[Role]] = relationship(
        secondary=membership_roles, lazy="raise_on_sql", order_by=Role.name
    )

    @property
    def role_names(self) -> list[str]:
        return sorted({role.name for role in self.roles})

    @property
    def permission_codes(self) -> list[str]:
        return sorted({perm.code for role in self.roles for perm in role.permissions})


class Invitation(Base):
    """An invitation to join an organization, bound to one address: single-use, expiring, kept
    only as the hash of its mailed token. At most one pending invitation per address and
    organization: inviting again refreshes it."""

    __tablename__ = "invitations"
    __table_args__ = (
        sa.Index(
            "uq_invitations_pending",
            "organization_id",
            "email_normalized",
            unique=True,
            postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
            sqlite_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(sa.String(254))  # as the inviter typed it
    email_normalized: Mapped[str] = mapped_column(sa.String(254))
    roles: Mapped[list[str]] = mapped_column(sa.JSON, default=list)  # role names
    invited_by: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
