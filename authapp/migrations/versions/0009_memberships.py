"""memberships, membership_roles, invitations; sessions.organization_id; users.organization_id
becomes the home organization (nullable, SET NULL)

Before this release a user belonged to exactly one organization (`users.organization_id`) and
held roles there (`user_roles`). Each user becomes one membership of that organization, whose
id is the user's id (one per user, so unique), with the same roles; each session acts in that
organization. Disabling was per person and per organization at once: a disabled user becomes a
suspended membership (which the organization's admins can lift again) and an active person.

`user_roles` stays, no longer written: the release before this one still reads it during a
rolling deploy, and a later release drops it (docs/deployment.md "Migrations").

Revision ID: 0009_memberships
Revises: 0008_email_change
Create Date: 2026-12-04

"""

import sqlalchemy as sa
from alembic import op

revision = "0009_memberships"
down_revision = "0008_email_change"
branch_labels = None
depends_on = None

ID = sa.Uuid(as_uuid=False)
WHEN = sa.DateTime(timezone=True)
HOME_FK = "fk_users_organization_id_organizations"
PENDING = "accepted_at IS NULL AND revoked_at IS NULL"


def upgrade():
    _create_tables()
    with op.batch_alter_table("sessions", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.add_column(sa.Column("organization_id", ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_sessions_organization_id_organizations"),
            "organizations",
            ["organization_id"],
            ["id"],
            ondelete="CASCADE",
        )
    _home_organization(nullable=True, ondelete="SET NULL")
    _move_into_memberships()


def _create_tables():
    op.create_table(
        "memberships",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_memberships_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint(
            "user_id", "organization_id", name=op.f("uq_memberships_user_id_organization_id")
        ),
    )
    op.create_index(
        op.f("ix_memberships_organization_id"), "memberships", ["organization_id"], unique=False
    )
    op.create_table(
        "membership_roles",
        sa.Column("membership_id", ID, nullable=False),
        sa.Column("role_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["memberships.id"],
            name=op.f("fk_membership_roles_membership_id_memberships"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"], ["roles.id"], name=op.f("fk_membership_roles_role_id_roles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("membership_id", "role_id", name=op.f("pk_membership_roles")),
    )
    op.create_index(
        op.f("ix_membership_roles_role_id"), "membership_roles", ["role_id"], unique=False
    )
    op.create_table(
        "invitations",
        sa.Column("id", ID, nullable=False),
        sa.Column("organization_id", ID, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_normalized", sa.String(length=254), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("invited_by", ID, nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("accepted_at", WHEN, nullable=True),
        sa.Column("accepted_by", ID, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_invitations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["users.id"], name=op.f("fk_invitations_invited_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by"], ["users.id"], name=op.f("fk_invitations_accepted_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    op.create_index(
        "uq_invitations_pending",
        "invitations",
        ["organization_id", "email_normalized"],
        unique=True,
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )


def _home_organization(*, nullable, ondelete):
    """users.organization_id's nullability and what deleting its organization does to it.

    On SQLite the batch copies the table, and SQLAlchemy cannot reflect the expression index
    on lower(username): it is dropped before and made again after (0001 made it the same way).
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.drop_index("uq_users_username_lower", table_name="users")
    with op.batch_alter_table("users", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_constraint(HOME_FK, type_="foreignkey")
        batch_op.alter_column("organization_id", existing_type=ID, nullable=nullable)
        batch_op.create_foreign_key(
            HOME_FK, "organizations", ["organization_id"], ["id"], ondelete=ondelete
        )
    if sqlite:
        op.create_index(
            "uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True
        )


def _move_into_memberships():
    op.execute(
        sa.text(
            "INSERT INTO memberships (id, user_id, organization_id, is_active, created_at) "
            "SELECT id, id, organization_id, is_active, created_at FROM users "
            "WHERE organization_id IS NOT NULL"
        )
    )
    op.execute(
        sa.text(
            "INSERT INTO membership_roles (membership_id, role_id) "
            "SELECT user_roles.user_id, user_roles.role_id FROM user_roles "
            "JOIN memberships ON memberships.id = user_roles.user_id"
        )
    )
    op.execute(
        sa.text(
            "UPDATE sessions SET organization_id = "
            "(SELECT users.organization_id FROM users WHERE users.id = sessions.user_id)"
        )
    )
    op.execute(sa.text("UPDATE users SET is_active = true WHERE is_active = false"))


def downgrade():
    # Back to one organization per user: the home one (else the oldest membership), with the
    # roles held there and its suspension; a user with no membership at all is left in none,
    # which the older schema cannot hold: such accounts are deleted.
    op.execute(
        sa.text(
            "UPDATE users SET organization_id = COALESCE("
            "(SELECT m.organization_id FROM memberships m "
            "WHERE m.user_id = users.id AND m.organization_id = users.organization_id), "
            "(SELECT m.organization_id FROM memberships m WHERE m.user_id = users.id "
            "ORDER BY m.created_at LIMIT 1))"
        )
    )
    op.execute(sa.text("DELETE FROM users WHERE organization_id IS NULL"))
    op.execute(sa.text("DELETE FROM user_roles"))
    op.execute(
        sa.text(
            "INSERT INTO user_roles (user_id, role_id) SELECT m.user_id, mr.role_id "
            "FROM membership_roles mr JOIN memberships m ON m.id = mr.membership_id "
            "JOIN users u ON u.id = m.user_id AND u.organization_id = m.organization_id"
        )
    )
    op.execute(
        sa.text(
            "UPDATE users SET is_active = false WHERE EXISTS (SELECT 1 FROM memberships m "
            "WHERE m.user_id = users.id AND m.organization_id = users.organization_id "
            "AND NOT m.is_active)"
        )
    )
    _home_organization(nullable=False, ondelete="CASCADE")
    with op.batch_alter_table("sessions", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_sessions_organization_id_organizations"), type_="foreignkey"
        )
        batch_op.drop_column("organization_id")
    op.drop_index("uq_invitations_pending", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index(op.f("ix_membership_roles_role_id"), table_name="membership_roles")
    op.drop_table("membership_roles")
    op.drop_index(op.f("ix_memberships_organization_id"), table_name="memberships")
    op.drop_table("memberships")
