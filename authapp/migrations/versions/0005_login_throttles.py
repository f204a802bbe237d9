"""login_throttles: per-login back-off after consecutive failures

Revision ID: 0005_login_throttles
Revises: 0004_outbox
Create Date: 2026-11-23

"""

import sqlalchemy as sa
from alembic import op

revision = "0005_login_throttles"
down_revision = "0004_outbox"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_throttles",
        sa.Column("login_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("login_key", name=op.f("pk_login_throttles")),
    )


def downgrade():
    op.drop_table("login_throttles")
