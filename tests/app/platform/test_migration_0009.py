"""0009: each user's organization and roles become a membership, each session acts in it, and
a disabled user becomes a suspended membership of an active person; tested with data, on both
databases, and back down again."""

import uuid
from datetime import UTC, datetime, timedelta

import flask_migrate
import sqlalchemy as sa

from authapp.platform.extensions import db
from tests.app.platform.conftest import sqlite_reflection
from tests.conftest import build_app

ID = sa.Uuid(as_uuid=False)
WHEN = sa.DateTime(timezone=True)
ORGANIZATIONS = sa.table(
    "organizations", sa.column("id", ID), sa.column("name"), sa.column("created_at", WHEN)
)
USERS = sa.table(
    "users",
    *(sa.column(name, ID) for name in ("id", "organization_id")),
    *(sa.column(name) for name in ("email", "email_normalized", "password_hash", "is_active")),
    *(sa.column(name, WHEN) for name in ("created_at", "updated_at")),
)
ROLES = sa.table(
    "roles", *(sa.column(n, ID) for n in ("id", "organization_id")), sa.column("name"),
    sa.column("created_at", WHEN),
)  # fmt: skip
USER_ROLES = sa.table("user_roles", sa.column("user_id", ID), sa.column("role_id", ID))
SESSIONS = sa.table(
    "sessions",
    *(sa.column(name, ID) for name in ("id", "user_id", "organization_id")),
    *(sa.column(name, WHEN) for name in ("created_at", "last_seen_at", "expires_at")),
)
MEMBERSHIPS = sa.table(
    "memberships",
    *(sa.column(name, ID) for name in ("id", "user_id", "organization_id")),
    sa.column("is_active"),
    sa.column("created_at", WHEN),
)
MEMBERSHIP_ROLES = sa.table(
    "membership_roles", sa.column("membership_id", ID), sa.column("role_id", ID)
)
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _ids(*names):
    return {name: str(uuid.uuid4()) for name in names}


def _rows_before_0009(conn):
    """Acme (Ada: owner and a custom role, with a session) and Globex (Bob: a disabled
    member)."""
    org, user, role = _ids("acme", "globex"), _ids("ada", "bob"), _ids("owner", "member", "custom")
    for name, org_id in org.items():
        conn.execute(ORGANIZATIONS.insert().values(id=org_id, name=name, created_at=NOW))
    for name, role_id in role.items():
        owner = org["acme"] if name == "custom" else None
        conn.execute(
            ROLES.insert().values(id=role_id, organization_id=owner, name=name, created_at=NOW)
        )
    for name, org_id, active in (("ada", org["acme"], True), ("bob", org["globex"], False)):
        email = f"{name}@example.com"
        conn.execute(
            USERS.insert().values(
                id=user[name], organization_id=org_id, email=email, email_normalized=email,
                password_hash="x", is_active=active, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    held = (("ada", "owner"), ("ada", "custom"), ("bob", "member"))
    for name, role_name in held:
        conn.execute(USER_ROLES.insert().values(user_id=user[name], role_id=role[role_name]))
    session = str(uuid.uuid4())
    conn.execute(
        SESSIONS.insert().values(
            id=session, user_id=user["ada"], created_at=NOW, last_seen_at=NOW,
            expires_at=NOW + timedelta(days=30),
        )
    )  # fmt: skip
    return org, user, role, session


def _memberships(conn):
    rows = conn.execute(sa.select(MEMBERSHIPS)).all()
    roles = conn.execute(sa.select(MEMBERSHIP_ROLES)).all()
    return (
        {(r.user_id, r.organization_id, bool(r.is_active)) for r in rows},
        {(r.membership_id, r.role_id) for r in roles},
    )


@sqlite_reflection
def test_0009_moves_every_user_into_a_membership_with_its_roles(empty_database):
    app = build_app(empty_database)
    with app.app_context():
        flask_migrate.upgrade(revision="0008_email_change")
        with db.engine.begin() as conn:
            org, user, role, session = _rows_before_0009(conn)
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            memberships, held = _memberships(conn)
            acts_in = conn.scalar(sa.select(SESSIONS.c.organization_id))
            active = dict(conn.execute(sa.select(USERS.c.id, USERS.c.is_active)).all())
            kept = conn.scalar(sa.select(sa.func.count()).select_from(USER_ROLES))
        db.engine.dispose()

    assert memberships == {
        (user["ada"], org["acme"], True),
        (user["bob"], org["globex"], False),  # suspended where it was disabled
    }
    # One membership per user, so the migration gives it the user's id.
    assert held == {
        (user["ada"], role["owner"]), (user["ada"], role["custom"]), (user["bob"], role["member"])
    }  # fmt: skip
    assert acts_in == org["acme"]
    assert {k: bool(v) for k, v in active.items()} == {user["ada"]: True, user["bob"]: True}
    assert kept == 3  # user_roles stays for the release before this one


@sqlite_reflection
def test_0009_downgrades_to_one_organization_per_user_with_its_roles(empty_database):
    app = build_app(empty_database)
    with app.app_context():
        flask_migrate.upgrade(revision="0008_email_change")
        with db.engine.begin() as conn:
            org, user, role, _session = _rows_before_0009(conn)
        flask_migrate.upgrade()
        with db.engine.begin() as conn:  # Ada also joins Globex, as a member, after 0009
            membership = str(uuid.uuid4())
            conn.execute(
                MEMBERSHIPS.insert().values(
                    id=membership, user_id=user["ada"], organization_id=org["globex"],
                    is_active=True, created_at=NOW + timedelta(days=1),
                )
            )  # fmt: skip
            conn.execute(
                MEMBERSHIP_ROLES.insert().values(membership_id=membership, role_id=role["member"])
            )
        flask_migrate.downgrade(revision="0008_email_change")
        with db.engine.connect() as conn:
            users = {
                r.id: (r.organization_id, bool(r.is_active)) for r in conn.execute(sa.select(USERS))
            }
            held = set(conn.execute(sa.select(USER_ROLES)).all())
        db.engine.dispose()

    assert users == {user["ada"]: (org["acme"], True), user["bob"]: (org["globex"], False)}
    assert held == {
        (user["ada"], role["owner"]), (user["ada"], role["custom"]), (user["bob"], role["member"])
    }  # fmt: skip
