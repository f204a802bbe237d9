"""api_keys.acts_for and made_by_key: the member whose current rights bound a key (AK-3), and
the key that made it

Keys made by members act for them. A key made by a key acts for the member its maker acted
for, found through the `api_key.created` audit events, and never outlives its maker: it takes
on the maker's revocation and earlier expiry. A key whose member cannot be found (deleted, or
never recorded) is left with none and stops working: failing closed.

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
        batch_op.add_column(sa.Column("made_by_key", sa.Uuid(as_uuid=False), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_acts_for_users"),
            "users",
            ["acts_for"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_made_by_key_api_keys"),
            "api_keys",
            ["made_by_key"],
            ["id"],
            ondelete="SET NULL",
        )
    _fill_in(op.get_bind())


ID = sa.Uuid(as_uuid=False)
WHEN = sa.DateTime(timezone=True)
KEYS = sa.table(
    "api_keys",
    *(sa.column(name, ID) for name in ("id", "created_by", "acts_for", "made_by_key")),
    *(sa.column(name, WHEN) for name in ("revoked_at", "expires_at")),
)
EVENTS = sa.table(
    "audit_events", sa.column("event"), sa.column("actor"), sa.column("data", sa.JSON)
)


def _fill_in(conn):
    """Each key's member, maker key, and the revocation and expiry it inherits from its maker
    keys (a key made by a key never outlives it)."""
    rows = {
        _hex(row.id): row
        for row in conn.execute(
            sa.select(KEYS.c.id, KEYS.c.created_by, KEYS.c.revoked_at, KEYS.c.expires_at)
        )
    }
    maker_key = {}
    created = sa.select(EVENTS.c.actor, EVENTS.c.data).where(
        EVENTS.c.event == "api_key.created", EVENTS.c.actor.startswith(KEY_ACTOR)
    )
    for actor, data in conn.execute(created):
        child, maker = _hex((data or {}).get("api_key_id")), _hex(actor[len(KEY_ACTOR) :])
        if child in rows and maker in rows:
            maker_key[child] = maker
    for key, row in rows.items():
        chain = [rows[link] for link in _chain(key, maker_key)]
        member = next((link.created_by for link in chain if link.created_by), None)
        revoked = [link.revoked_at for link in chain if link.revoked_at is not None]
        expires = [link.expires_at for link in chain if link.expires_at is not None]
        conn.execute(
            KEYS.update()
            .where(KEYS.c.id == row.id)
            .values(
                acts_for=member,
                made_by_key=rows[maker_key[key]].id if key in maker_key else None,
                revoked_at=row.revoked_at or min(revoked, default=None),
                expires_at=min(expires, default=None),
            )
        )


def _hex(value):
    """An id as uuid.hex (the audit data spells ids with dashes), or None if it is none."""
    try:
        return uuid.UUID(str(value)).hex
    except ValueError:
        return None


def _chain(key, maker_key):
    """The key, its maker key, that key's maker key, and so on."""
    chain = [key]
    while chain[-1] in maker_key and maker_key[chain[-1]] not in chain:
        chain.append(maker_key[chain[-1]])
    return chain


def downgrade():
    with op.batch_alter_table("api_keys", reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_api_keys_made_by_key_api_keys"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_api_keys_acts_for_users"), type_="foreignkey")
        batch_op.drop_column("made_by_key")
        batch_op.drop_column("acts_for")
