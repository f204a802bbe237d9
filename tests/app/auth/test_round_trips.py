"""The hot path's shape (docs/architecture.md "Rules", rule 5): round trips to PostgreSQL as
psycopg2 sends them, BEGIN, COMMIT, ROLLBACK and pings included (bench/wire.py), not as SQLAlchemy
sees them.

- an authenticated read (a token check, an API key, a page) is one statement in one round trip;
- a refresh is one round trip on PostgreSQL;
- a write is BEGIN, its statements and COMMIT, with no ROLLBACK after;
- a pooled connection that the server dropped costs no failed request (F1).

These tests run with AUTHAPP_ENV=development: under `testing` the testing clock adds its one
documented statement (docs/architecture.md "Time"), which
`test_the_testing_clock_adds_one_statement` pins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.platform import connections
from authapp.platform.extensions import db
from bench import wire
from tests.conftest import auth_header

ME = "/api/v1/auth/me"
DEVELOPMENT = pytest.mark.config(AUTHAPP_ENV="development")


@pytest.fixture
def round_trips(app: Flask) -> Callable[[], Any]:
    """`with round_trips() as sent:` lists what this thread sent to PostgreSQL in the block."""
    wire.install()
    with app.app_context():
        db.engine.dispose()  # every connection from now on counts
    return wire.counting


@pytest.fixture
def admin(database_url: str) -> Iterator[sa.Connection]:
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        yield conn
    engine.dispose()


OTHERS = sa.text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _terminate_others(admin: sa.Connection) -> int:
    """What a restart or a failover does to the pool: every other backend of this database ends.
    Waits until they are gone."""
    killed = admin.execute(
        sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ).scalar_one()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and admin.execute(OTHERS).scalar_one():
        time.sleep(0.02)  # a loaded machine takes its time to end a backend
    time.sleep(0.1)  # and the client's socket, to see the end
    return int(killed)


@DEVELOPMENT
def test_a_token_check_is_one_statement_in_one_round_trip(client, make_user, login, round_trips):
    access = login(make_user())["access_token"]
    client.get(ME, headers=auth_header(access))  # the pool's first connection is made here

    with round_trips() as sent:
        response = client.get(ME, headers=auth_header(access))

    assert response.status_code == 200
    assert len(sent) == 1, sent  # no pre-ping, no BEGIN, no ROLLBACK
    assert sent[0].lstrip().startswith("SELECT sessions.revoked_at")


@DEVELOPMENT
def test_a_statement_sent_often_is_prepared_once_then_executed(
    client, make_user, login, round_trips
):
    """PostgreSQL plans the principal's statement once per connection, not once per request."""
    access = login(make_user())["access_token"]

    with round_trips() as sent:
        for _ in range(6):
            assert client.get(ME, headers=auth_header(access)).status_code == 200

    kinds = [statement.split()[0] for statement in sent]
    assert kinds == ["SELECT", "SELECT", "PREPARE", "EXECUTE", "EXECUTE", "EXECUTE", "EXECUTE"]
    assert all("SELECT sessions.revoked_at" in statement for statement in sent)


@pytest.mark.config(AUTHAPP_ENV="development", DATABASE_PREPARE_AFTER=0)
def test_prepared_statements_can_be_turned_off(client, make_user, login, round_trips):
    """DATABASE_PREPARE_AFTER=0: for a pooler that does not keep a server session per client."""
    access = login(make_user())["access_token"]

    with round_trips() as sent:
        for _ in range(6):
            assert client.get(ME, headers=auth_header(access)).status_code == 200

    assert [statement.split()[0] for statement in sent] == ["SELECT"] * 6


def test_a_statement_postgresql_cannot_prepare_is_sent_as_text(app):
    """`unknown + unknown` has no operator PostgreSQL can pick, so the statement cannot be
    prepared; as text its values are numbers, and it keeps working."""
    statement = "SELECT %(x)s + %(y)s AS total"
    with app.app_context(), db.engine.connect() as conn:
        totals = [conn.exec_driver_sql(statement, {"x": n, "y": 1}).scalar() for n in range(5)]
        statements = conn.connection.dbapi_connection.statements

    assert totals == [1, 2, 3, 4, 5]
    assert statements[statement] is None


@DEVELOPMENT
def test_an_api_key_read_is_one_round_trip(client, make_user, login, round_trips):
    admin_user = make_user(email="root@example.com", role_names=("owner",))
    token = login(admin_user)["access_token"]
    key = client.post(
        "/api/v1/settings/api-keys",
        json={"name": "reader", "scopes": ["users:read"]},
        headers=auth_header(token),
    ).json["key"]
    organization = "/api/v1/settings/organization"
    client.get(organization, headers={"X-API-Key": key})  # records last_used_at (a write)

    with round_trips() as sent:
        response = client.get(organization, headers={"X-API-Key": key})

    assert response.status_code == 200
    assert response.json["name"] == "Default"
    assert len(sent) == 1, sent


@DEVELOPMENT
def test_a_page_view_is_one_round_trip(app, client, make_user, login, round_trips):
    access = login(make_user(email="page@example.com"))["access_token"]
    client.set_cookie(app.config["JWT_ACCESS_COOKIE_NAME"], access)
    client.get("/")

    with round_trips() as sent:
        response = client.get("/")

    assert response.status_code == 200
    assert "page@example.com" in response.get_data(as_text=True)
    assert len(sent) == 1, sent


@DEVELOPMENT
def test_a_refresh_is_one_round_trip(client, make_user, login, round_trips):
    pair = login(make_user())
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    with round_trips() as sent:
        response = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": first.json["refresh_token"]}
        )

    assert response.status_code == 200
    assert len(sent) == 1, sent  # consume, insert the child, touch the session, read: one go
    assert sent[0].lstrip().startswith("WITH consumed AS")


@DEVELOPMENT
def test_a_write_is_begin_statements_commit_and_no_rollback(client, make_user, login, round_trips):
    access = login(make_user())["access_token"]
    client.get(ME, headers=auth_header(access))

    with round_trips() as sent:
        response = client.post("/api/v1/auth/logout", json={}, headers=auth_header(access))

    assert response.status_code == 204
    assert sent[0].lstrip().startswith("SELECT sessions.revoked_at")  # the token check: no BEGIN
    assert sent[1] == "BEGIN"
    assert sent[-1] == "COMMIT"
    assert "ROLLBACK" not in sent


@pytest.mark.parametrize(
    ("statement", "read"),
    [
        ("SELECT 1", True),
        ("  select id FROM users", True),
        ("SELECT id FROM organizations WHERE id = %(id)s FOR UPDATE", False),
        ("SELECT id FROM outbox FOR UPDATE SKIP LOCKED", False),
        ("SELECT id FROM users FOR NO KEY UPDATE", False),
        ("SELECT id FROM users FOR SHARE", False),
        ("SELECT pg_advisory_xact_lock(1)", False),
        ("WITH consumed AS (UPDATE refresh_tokens SET used_at = now()) SELECT 1", False),
        ("UPDATE users SET full_name = ''", False),
        ("SAVEPOINT sa_savepoint_1", False),
    ],
)
def test_only_plain_selects_run_outside_a_transaction(statement, read):
    assert connections.is_read(statement) is read


@DEVELOPMENT
def test_pooled_connections_the_server_ended_cost_no_failed_request(
    client, make_user, login, round_trips, admin
):
    """F1: a restart or failover ended every pooled connection while they sat idle."""
    access = login(make_user())["access_token"]
    client.get(ME, headers=auth_header(access))
    assert _terminate_others(admin) >= 1

    with round_trips() as sent:
        response = client.get(ME, headers=auth_header(access))

    assert response.status_code == 200
    assert len(sent) == 1, sent  # found dead at checkout, without a round trip


@DEVELOPMENT
@pytest.mark.parametrize("observed", [False, True], ids=["driver", "sqlalchemy"])
def test_a_connection_that_dies_unseen_is_tried_once_more(
    app, client, make_user, login, admin, monkeypatch, observed
):
    """A drop the checkout cannot see (the backend ends between checkout and the statement):
    the token check, the request's first statement, runs again on a fresh connection, on
    platform/statements.py's path to the driver and, with a cursor listener on the engine, on
    SQLAlchemy's."""
    access = login(make_user())["access_token"]
    client.get(ME, headers=auth_header(access))
    ended: list[int] = []
    execute = connections.Cursor.execute

    def end_backend_first(cursor, query, params=None):  # noqa: ANN001
        if not ended and "sessions.revoked_at" in str(query):
            pid = cursor.connection.info.backend_pid
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.execute(sa.text("SELECT pg_sleep(0.2)"))
            ended.append(pid)
        return execute(cursor, query, params)

    monkeypatch.setattr(connections.Cursor, "execute", end_backend_first)
    with app.app_context():
        engine = db.engine
    listener = lambda *_args: None  # noqa: E731 - any listener sends statements through SQLAlchemy
    if observed:
        sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        response = client.get(ME, headers=auth_header(access))
    finally:
        if observed:
            sa.event.remove(engine, "before_cursor_execute", listener)

    assert ended, "the backend was not ended"
    assert response.status_code == 200


def test_the_testing_clock_adds_one_statement(client, make_user, login, round_trips):
    access = login(make_user())["access_token"]
    client.get(ME, headers=auth_header(access))

    with round_trips() as sent:
        response = client.get(ME, headers=auth_header(access))

    assert response.status_code == 200
    assert [s.split()[:4] for s in sent] == [
        ["SELECT", "offset_seconds", "FROM", "testing_clock"],
        ["SELECT", "sessions.revoked_at,", "sessions.revoked_reason,", "sessions.expires_at,"],
    ]


def test_a_token_is_verified_once_per_process(client, make_user, login, monkeypatch):
    """The signature of a token presented again is not checked again (its claims are kept);
    expiry, type and revocation still are, on every request."""
    access = login(make_user())["access_token"]
    loads: list[str] = []
    original = jwt.api_jws.PyJWS._load

    def counting(self, token):  # noqa: ANN001
        loads.append(token)
        return original(self, token)

    monkeypatch.setattr(jwt.api_jws.PyJWS, "_load", counting)
    first = client.get(ME, headers=auth_header(access))
    second = client.get(ME, headers=auth_header(access))

    assert first.status_code == second.status_code == 200
    assert len(loads) == 1
