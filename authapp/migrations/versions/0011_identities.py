"""identities: accounts' identities at identity providers; users.has_password

Additive: the release before this one neither reads nor writes the table or the column (every
account it made has a password: the column's default). A downgrade drops every linked identity
(their owners log in with a password or a passkey again; an account made through a provider
resets its password).

Revision ID: 0011_identities
Revises: 0010_passkeys
Create Date: 2026-12-05

"""

import sqlalchemy as sa
from alembic import op

revision = "0011_identities"
down_revision = "0010_passkeys"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_identities_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_identities_provider_subject")),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identities_user_id"), ["user_id"], unique=False)
    # Not in a batch: SQLite adds a column in place (a batch would copy `users`, and lose the
    # expression index uq_users_username_lower that reflection cannot see).
    op.add_column(
        "users", sa.Column("has_password", sa.Boolean(), server_default=sa.true(), nullable=False)
    )


def downgrade():
    op.drop_column("users", "has_password")  # SQLite drops a column in place since 3.35
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_user_id"))
    op.drop_table("identities")
