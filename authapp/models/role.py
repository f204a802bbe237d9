from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authapp.models.base import ID, Base, UTCDateTime, new_id
from authapp.platform import clock

role_permissions = sa.Table(
    "role_permissions",
    Base.metadata,
    sa.Column("role_id", ID, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "permission_id",
        ID,
        sa.ForeignKey("permissions.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Role(Base):
    """A named set of permissions: built-in (organization_id NULL) or an organization's own."""

    __tablename__ = "roles"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "name"),
        # NULLs are distinct in a unique constraint: built-in names need their own index.
        sa.Index(
            "uq_roles_builtin_name",
            "name",
            unique=True,
            postgresql_where=sa.text("organization_id IS NULL"),
            sqlite_where=sa.text("organization_id IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    organization_id: Mapped[str | None] = mapped_column(
        ID, sa.ForeignKey("organizations.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    permissions: Mapped[list[Permission]] = relationship(
        secondary=role_permissions, lazy="raise_on_sql", order_by=Permission.code
    )

    @property
    def permission_codes(self) -> list[str]:
        return sorted(permission.code for permission in self.permissions)

    @property
    def is_builtin(self) -> bool:
        return self.organization_id is None
