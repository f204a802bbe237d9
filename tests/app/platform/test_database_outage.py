"""A database that goes away, or was never there: degrade to 503, never 500, and recover.

F1 (database outage is a 503 with Retry-After, then recovery without a restart),
F2 (the app starts while the database is unreachable), ER-1 (one error envelope, no 500).
The outage is real: the server refuses new connections to the database and terminates the
open ones, exactly what a failover or a restart looks like to the pool.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp.cli.seed import seed_database
from authapp.platform.extensions import db
from tests.conftest import (
    PASSWORD,
    admin_engine,
    auth_header,
    build_app,
    scratch_database,
    worker_name,
)

LOGIN = "/api/v1/auth/login"
SIGNUP = "/api/v1/auth/signup"
ME = "/api/v1/auth/me"
RECOVERY_SECONDS = 10.0
UNREACHABLE_URL = "postgresql+psycopg2://postgres@127.0.0.1:1/x"  # nothing listens on port 1


@pytest.fixture(scope="module")
def outage_database() -> Iterator[str]:
    """This module's own migrated and seeded database: cutting it disturbs no other test."""
    with scratch_database(worker_name("authapp_outage")) as url:
        app = build_app(url)
        with app.app_context():
            try:
                flask_migrate.upgrade()
                seed_database()
            finally:
                db.session.remove()
                db.engine.dispose()
        yield url


@pytest.fixture
def outage_app(outage_database: str) -> Iterator[Flask]:
    app = build_app(outage_database)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def outage_client(outage_app: Flask) -> FlaskClient:
    return outage_app.test_client()


def _set_allow_connections(conn: sa.Connection, name: str, allowed: bool) -> None:
    conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))


def _terminate_backends(conn: sa.Connection, name: str) -> None:
    """Kill every connection to the database, as a failover or a restart would."""
    # pg_terminate_backend in the select list: a WHERE clause may evaluate it on any row.
    killed = {
        pid
        for pid, _ in conn.execute(
            sa.text(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    }
    # pg_terminate_backend only signals: wait until those backends are really gone, or a pooled
    # connection could still answer the next request. Only those: during a restart the app's
    # own threads (an outbox delivery) may already have opened new ones.
    deadline = time.monotonic() + 10
    while _alive(conn, killed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(conn, killed), "backends survived pg_terminate_backend"


def _alive(conn: sa.Connection, pids: set[int]) -> set[int]:
    running = conn.execute(sa.text("SELECT pid FROM pg_stat_activity")).scalars()
    return pids & set(running)


@contextmanager
def _database_down(url: str) -> Iterator[None]:
    """Refuse new connections and kill the open ones; always allow connections again."""
    name = sa.make_url(url).database
    assert name, url
    engine = admin_engine()
    try:
        with engine.connect() as conn:
            try:
                _set_allow_connections(conn, name, False)
                _terminate_backends(conn, name)
                yield
            finally:
                _set_allow_connections(conn, name, True)
    finally:
        engine.dispose()


def _restart_connections(url: str) -> None:
    """Kill the open connections but keep accepting new ones: a database restart."""
    name = sa.make_url(url).database
    assert name, url
    engine = admin_engine()
    try:
        with engine.connect() as conn:
            _terminate_backends(conn, name)
    finally:
        engine.dispose()


@pytest.fixture
def database_down(outage_database: str) -> Callable[[], AbstractContextManager[None]]:
    """`with database_down(): ...` cuts this module's database for the block."""
    return lambda: _database_down(outage_database)


def _new_account(client: FlaskClient) -> dict[str, Any]:
    """A fresh account (unique per test, so the tests share the database in any order)."""
    email = f"outage-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(SIGNUP, json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.json
    return {"email": email, "password": PASSWORD, **response.json}


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, (response.status_code, response.get_data(as_text=True))
    body = response.json
    assert set(body) == {"error", "request_id"}, body
    assert body["error"]["code"] == "service_unavailable", body
    assert body["error"]["message"], body
    assert body["request_id"] == response.headers["X-Request-ID"]


def _wait_until(probe: Callable[[], bool], seconds: float = RECOVERY_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if probe():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def test_liveness_stays_up_and_readiness_is_503_while_the_database_is_down(
    outage_client, database_down
):
    """F1, ER-1: /healthz needs no database; /readyz says 503 in the error envelope."""
    with database_down():
        health = outage_client.get("/healthz")
        ready = outage_client.get("/readyz")

    assert health.status_code == 200
    assert health.json == {"status": "ok"}
    _assert_unavailable(ready)
    assert ready.headers["Retry-After"].isdigit()


def test_login_during_an_outage_is_503_with_retry_after_never_500(outage_client, database_down):
    """F1, ER-1: the credentials are fine, the database is not: 503 + Retry-After, no 500."""
    account = _new_account(outage_client)

    with database_down():
        responses = [
            outage_client.post(LOGIN, json={"login": account["email"], "password": PASSWORD})
            for _ in range(3)  # the first one meets dead pooled connections, later ones none
        ]

    for response in responses:
        _assert_unavailable(response)
        assert int(response.headers["Retry-After"]) > 0


def test_authenticated_request_during_an_outage_is_503_not_401(outage_client, database_down):
    """F1, ER-1: a valid token whose session cannot be checked is 503, neither 401 nor 500."""
    account = _new_account(outage_client)
    token = account["access_token"]
    assert outage_client.get(ME, headers=auth_header(token)).status_code == 200

    with database_down():
        response = outage_client.get(ME, headers=auth_header(token))

    _assert_unavailable(response)
    assert "Retry-After" in response.headers


def test_the_same_app_recovers_by_itself_when_the_database_returns(
    outage_app, outage_client, database_down
):
    """F1: after the outage the same app object and client serve again, no restart needed."""
    account = _new_account(outage_client)
    credentials = {"login": account["email"], "password": PASSWORD}

    with database_down():
        _assert_unavailable(outage_client.get("/readyz"))
        _assert_unavailable(outage_client.post(LOGIN, json=credentials))

    assert _wait_until(lambda: outage_client.get("/readyz").status_code == 200), (
        f"/readyz did not recover within {RECOVERY_SECONDS} s"
    )
    response = outage_client.post(LOGIN, json=credentials)
    assert response.status_code == 200, response.json
    me = outage_client.get(ME, headers=auth_header(response.json["access_token"]))
    assert me.status_code == 200
    assert me.json["user"]["id"] == account["user"]["id"]
    assert outage_client.application is outage_app


def test_killed_pooled_connections_cost_no_failed_request(outage_database, outage_client):
    """F1: pool_pre_ping replaces connections the server dropped; the next request is fine."""
    account = _new_account(outage_client)
    token = account["access_token"]

    _restart_connections(outage_database)
    me = outage_client.get(ME, headers=auth_header(token))
    _restart_connections(outage_database)
    login = outage_client.post(LOGIN, json={"login": account["email"], "password": PASSWORD})

    assert me.status_code == 200, me.json
    assert login.status_code == 200, login.json


def _end_backend(pid: int) -> None:
    """End one connection's backend and wait until it is gone (the signal is asynchronous)."""
    engine = admin_engine()
    try:
        with engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            deadline = time.monotonic() + 10
            while _alive(admin, {pid}) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not _alive(admin, {pid}), "backend survived pg_terminate_backend"
    finally:
        engine.dispose()


def test_a_connection_dropped_after_the_last_statement_costs_no_500(outage_app: Flask):
    """F1, ER-1: the database drops the connection between a request's last statement and its
    end (a restart at that moment): the closing ROLLBACK fails, yet the answer stands, and the
    next request gets a working connection."""

    @outage_app.get("/_probe/dropped")
    def dropped() -> dict[str, int]:
        pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        assert pid is not None
        _end_backend(pid)
        return {"pid": pid}

    client = outage_app.test_client()
    answer = client.get("/_probe/dropped")
    after = client.get("/readyz")

    assert answer.status_code == 200
    assert after.status_code == 200


def test_readiness_is_not_fooled_by_a_connection_that_died_unseen(outage_app: Flask):
    """F1: a pooled connection whose backend ended after the checkout's look at its socket (a
    restart at that moment, or a silent network drop) costs readiness nothing: the probe tries
    once more on a fresh connection, as every first statement does, instead of a 503."""
    client = outage_app.test_client()
    assert client.get("/readyz").status_code == 200  # one connection rests in the pool now
    ended: list[int] = []

    def end_once_checked_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not ended:
            ended.append(dbapi_connection.get_backend_pid())
            _end_backend(ended[0])

    with outage_app.app_context():
        engine = db.engine
    sa.event.listen(engine, "checkout", end_once_checked_out)
    try:
        ready = client.get("/readyz")
    finally:
        sa.event.remove(engine, "checkout", end_once_checked_out)

    assert ended, "the pooled connection was not checked out"
    assert ready.status_code == 200, ready.json


def test_app_starts_while_the_database_is_unreachable_and_reports_not_ready():
    """F2, ER-1: creating the app touches no database; liveness 200, readiness 503."""
    app = build_app(UNREACHABLE_URL)  # must not raise
    try:
        client = app.test_client()
        health = client.get("/healthz")
        ready = client.get("/readyz")
        login = client.post(LOGIN, json={"login": "ada@example.com", "password": PASSWORD})
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()

    assert health.status_code == 200
    assert health.json == {"status": "ok"}
    _assert_unavailable(ready)
    assert ready.headers["Retry-After"].isdigit()
    _assert_unavailable(login)
