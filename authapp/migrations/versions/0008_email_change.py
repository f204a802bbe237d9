"""one_time_tokens: the email_change purpose, and the address such a token moves its account to

Additive: the release before this one never writes an email_change token, and the new column
is nullable.

Revision ID: 0008_email_change
Revises: 0007_rights
Create Date: 2026-12-04

"""

import sqlalchemy as sa
from alembic import op

revision = "0008_email_change"
down_revision = "0007_rights"
branch_labels = None
depends_on = None

PURPOSES = "purpose IN ('password_reset', 'email_verify', 'email_change')"
OLD_PURPOSES = "purpose IN ('password_reset', 'email_verify')"


def upgrade():
    with op.batch_alter_table("one_time_tokens", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.add_column(sa.Column("new_email", sa.String(length=254), nullable=True))
        batch_op.drop_constraint(batch_op.f("ck_one_time_tokens_purpose"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_one_time_tokens_purpose"), PURPOSES)


def downgrade():
    # The older schema cannot hold these tokens: their links stop working.
    op.execute(sa.text("DELETE FROM one_time_tokens WHERE purpose = 'email_change'"))
    with op.batch_alter_table("one_time_tokens", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_one_time_tokens_purpose"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_one_time_tokens_purpose"), OLD_PURPOSES)
        batch_op.drop_column("new_email")
