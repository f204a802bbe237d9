"""The schema comes only from authapp/migrations/; the models agree with it on both databases."""

import uuid
from datetime import UTC, datetime

import flask_migrate
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from authapp.models.user import RETIRED_COLUMNS, RETIRED_TABLES
from authapp.platform.extensions import db
from tests.app.platform.conftest import sqlite_reflection
from tests.conftest import build_app


def _differences(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, db.metadata) if not _retired(d)]


def _retired(difference):
    """A column or table the models stopped mapping, left for a later release to drop
    (user.py)."""
    kind, *rest = difference if isinstance(difference, tuple) else (None,)
    if kind == "remove_table":
        return rest[0].name in RETIRED_TABLES
    if kind == "remove_index":
        return rest[0].table.name in RETIRED_TABLES
    return kind == "remove_column" and rest[1] == "users" and rest[2].name in RETIRED_COLUMNS


def test_only_the_retired_columns_are_left_unmapped(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        left = {
            d[1].name if d[0] == "remove_table" else d[3].name
            for d in compare_metadata(context, db.metadata)
            if _retired(d) and d[0] != "remove_index"
        }

    assert left == RETIRED_COLUMNS | RETIRED_TABLES


def test_models_match_the_migrated_postgresql_schema(app):
    assert _differences(app) == []


@sqlite_reflection
def test_migrations_build_the_same_schema_on_sqlite(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 'authapp.db'}")
    with app.app_context():
        flask_migrate.upgrade()
        index_sql = db.session.scalar(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'uq_users_username_lower'")
        )

    assert _differences(app) == []
    assert index_sql == "CREATE UNIQUE INDEX uq_users_username_lower ON users (lower(username))"


@sqlite_reflection
def test_migrations_downgrade_and_upgrade_again_on_sqlite(tmp_path):
    app = build_app(f"sqlite:///{tmp_path / 'authapp.db'}")
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        flask_migrate.upgrade()

    assert _differences(app) == []


# 0007: api_keys.acts_for, the member whose current rights bound a key (AK-3)

ID = sa.Uuid(as_uuid=False)
ORGANIZATIONS = sa.table(
    "organizations", sa.column("id", ID), sa.column("name"), sa.column("created_at")
)
USERS = sa.table(
    "users",
    *(sa.column(name, ID) for name in ("id", "organization_id")),
    *(sa.column(name) for name in ("email", "email_normalized", "password_hash")),
    *(sa.column(name) for name in ("created_at", "updated_at")),
)
KEYS = sa.table(
    "api_keys",
    *(sa.column(name, ID) for name in ("id", "organization_id", "created_by")),
    *(sa.column(name) for name in ("name", "prefix", "key_hash", "created_at")),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in ("expires_at", "revoked_at")),
    sa.column("scopes", sa.JSON),
)
EVENTS = sa.table(
    "audit_events",
    sa.column("id", ID),
    *(sa.column(name) for name in ("actor", "event", "created_at")),
    sa.column("data", sa.JSON),
)


REVOKED_AT = datetime(2026, 1, 2, tzinfo=UTC)
EXPIRES_AT = datetime(2027, 1, 2, tzinfo=UTC)


def _keys_made_before_0007(conn):
    """A member's key, a key made by that key, one made by the second, and an orphan whose
    maker was a deleted member; the child expires, the grandchild is revoked. Returns (member
    id, key ids)."""
    now = datetime.now(UTC)
    org, member = str(uuid.uuid4()), str(uuid.uuid4())
    keys = {name: str(uuid.uuid4()) for name in ("member", "child", "grandchild", "orphan")}
    conn.execute(ORGANIZATIONS.insert().values(id=org, name="Acme", created_at=now))
    conn.execute(
        USERS.insert().values(
            id=member,
            organization_id=org,
            email="ada@acme.example",
            email_normalized="ada@acme.example",
            password_hash="x",
            created_at=now,
            updated_at=now,
        )
    )
    for name, key_id in keys.items():
        conn.execute(
            KEYS.insert().values(
                id=key_id,
                organization_id=org,
                created_by=member if name == "member" else None,
                name=name,
                prefix=key_id[:12],
                key_hash="0" * 64,
                scopes=[],
                created_at=now,
                expires_at=EXPIRES_AT if name == "child" else None,
                revoked_at=REVOKED_AT if name == "grandchild" else None,
            )
        )
    makers = {
        "member": f"user:{member}",
        "child": f"api_key:{keys['member']}",
        "grandchild": f"api_key:{keys['child']}",
        "orphan": f"user:{uuid.uuid4()}",
    }
    for name, actor in makers.items():
        conn.execute(
            EVENTS.insert().values(
                id=str(uuid.uuid4()),
                actor=actor,
                event="api_key.created",
                data={"api_key_id": keys[name], "name": name},
                created_at=now,
            )
        )
    return member, keys


@sqlite_reflection
def test_0007_keys_act_for_their_maker_or_their_maker_keys_member(empty_database):
    """And a key made by a key takes on its maker's revocation and expiry."""
    app = build_app(empty_database)
    with app.app_context():
        flask_migrate.upgrade(revision="0006_recovery_codes")
        with db.engine.begin() as conn:
            member, keys = _keys_made_before_0007(conn)
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            listed = sa.select(
                KEYS.c.name,
                sa.column("acts_for", ID),
                sa.column("made_by_key", ID),
                KEYS.c.expires_at,
                KEYS.c.revoked_at,
            ).select_from(KEYS)
            rows = {row.name: row for row in conn.execute(listed)}
        db.engine.dispose()

    acts_for = {name: row.acts_for for name, row in rows.items()}
    assert acts_for == {"member": member, "child": member, "grandchild": member, "orphan": None}
    made_by = {name: row.made_by_key for name, row in rows.items()}
    assert made_by == {
        "member": None, "child": keys["member"], "grandchild": keys["child"], "orphan": None
    }  # fmt: skip
    inherited = {
        name: (_aware(row.expires_at), _aware(row.revoked_at)) for name, row in rows.items()
    }
    assert inherited == {
        "member": (None, None),
        "child": (EXPIRES_AT, None),
        "grandchild": (EXPIRES_AT, REVOKED_AT),
        "orphan": (None, None),
    }


def _aware(value):
    """SQLite reads times back without their zone (they are stored as UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
