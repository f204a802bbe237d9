"""testing_clock: the shared offset of authapp.clock under AUTHAPP_ENV=testing

Revision ID: 0002_testing_clock
Revises: 0001_foundation
Create Date: 2026-11-23

"""

import sqlalchemy as sa
from alembic import op

revision = "0002_testing_clock"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "testing_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("offset_seconds", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_testing_clock")),
    )


def downgrade():
    op.drop_table("testing_clock")
