"""api_keys.acts_for: the member whose current rights bound a key (AK-3)

Keys made by members act for them. A key made by a key acts for the member its maker acted
for, found through the `api_key.created` audit events; a key whose member cannot be found
(deleted, or never recorded) is left with none and stops working: failing closed.

Revision ID: 0007_rights
Revises: 0006_recovery_codes
Create Date: 2026-12-01

"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007_rights"
down_revision = "0006_recovery_codes"
branch_labels = None
depends_on = None

KEY_ACTOR = "api_key:"


def upgrade():
    # resolve_fks=False: SQLite's copy of the table needs no reflection of `users` (whose
    # expression index SQLAlchemy cannot reflect, and warns about).
    with op.batch_alter_table("api_keys", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.add_column(sa.Column("acts_for", sa.Uuid(as_uuid=False), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_acts_for_users"),
            "users",
            ["acts_for"],
            ["id"],
            ondelete="SET NULL",
        )
    conn = op.get_bind()
    key_id_type = sa.Uuid(as_uuid=False)
    keys = sa.table(
        "api_keys",
        sa.column("id", key_id_type),
        sa.column("created_by", key_id_type),
        sa.column("acts_for", key_id_type),
    )
    events = sa.table(
        "audit_events",
        sa.column("event", sa.String),
        sa.column("actor", sa.String),
        sa.column("data", sa.JSON),
    )
    rows = conn.execute(sa.select(keys.c.id, keys.c.created_by)).all()
    made_by = {_hex(key_id): member for key_id, member in rows}
    maker_key = {}
    created = sa.select(events.c.actor, events.c.data).where(
        events.c.event == "api_key.created", events.c.actor.startswith(KEY_ACTOR)
    )
    for actor, data in conn.execute(created):
        child, maker = _hex((data or {}).get("api_key_id")), _hex(actor[len(KEY_ACTOR) :])
        if child and maker:
            maker_key[child] = maker
    for key_id, _created_by in rows:
        member = _member(_hex(key_id), made_by, maker_key)
        if member is not None:
            conn.execute(keys.update().where(keys.c.id == key_id).values(acts_for=member))


def _hex(value):
    """An id as uuid.hex (the audit data spells ids with dashes), or None if it is none."""
    try:
        return uuid.UUID(str(value)).hex
    except ValueError:
        return None


def _member(key_id, made_by, maker_key):
    """The member a key acts for: its maker, or its maker key's member, and so on."""
    seen = set()
    current = key_id
    while current is not None and current not in seen:
        seen.add(current)
        if made_by.get(current) is not None:
            return made_by[current]
        current = maker_key.get(current)
    return None


def downgrade():
    with op.batch_alter_table("api_keys", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_keys_acts_for_users"), type_="foreignkey")
        batch_op.drop_column("acts_for")
