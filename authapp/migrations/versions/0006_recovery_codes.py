"""recovery_codes: single-use MFA recovery codes, stored hashed

Revision ID: 0006_recovery_codes
Revises: 0005_login_throttles
Create Date: 2026-11-23

"""

import sqlalchemy as sa
from alembic import op

revision = "0006_recovery_codes"
down_revision = "0005_login_throttles"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index("uq_recovery_codes_user_hash", ["user_id", "code_hash"], unique=True)


def downgrade():
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index("uq_recovery_codes_user_hash")
    op.drop_table("recovery_codes")
