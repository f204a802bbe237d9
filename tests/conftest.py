"""App fixtures on real PostgreSQL: one database per xdist worker, one app per test; and the
layer markers, one per directory of tests/ (see LAYERS)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp import create_app
from authapp.auth.services import accounts
from authapp.cli.seed import seed_database
from authapp.delivery import offload
from authapp.models import User
from authapp.platform import clock
from authapp.platform.extensions import db

SERVER = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1/test")
PASSWORD = "a long passphrase nobody guesses"
TEST_SECRETS = {
    "SECRET_KEY": "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "JWT_SECRET_KEY": "test-jwt-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "PASSWORD_PEPPER": "test-pepper-0123456789abcdefghijklmnopqrstuvwxyz",
    "DATA_ENCRYPTION_KEY": "p7JmQ4bS7cX9nZ2rV1tYw3eK5hL8aD0fG6jH2kM4nQE=",
}


TESTS = Path(__file__).resolve().parent
# The layer a test belongs to is the directory it sits in, and its marker says so: `-m app`,
# `-m server`, ... select a layer. tests/faults is marked `slow`, which pyproject's addopts leave
# out (`make faults` runs it).
LAYERS = {
    "app": "app",  # in-process Flask app tests, by feature
    "server": "server",  # real gunicorn (nginx in front of it for some)
    "browser": "browser",  # Chromium via Playwright against real gunicorn
    "faults": "slow",  # fault scenarios under load
    "fuzz": "fuzz",  # schemathesis against the OpenAPI document
    "architecture": "architecture",  # import contracts, sizes, sync-only
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in LAYERS:
            item.add_marker(LAYERS[parts[0]])


def build_app(database_url: str, **overrides: Any) -> Flask:
    settings = {
        "AUTHAPP_ENV": "testing",
        "BCRYPT_ROUNDS": 4,
        # Suites log in far more than 10 times a minute from one address; the limit tests
        # (tests/app/auth/test_rate_limits.py) switch it on with their own Redis database.
        "RATELIMIT_ENABLED": False,
        "DATABASE_URL": database_url,
        **TEST_SECRETS,
        **overrides,
    }
    return create_app(settings)


def admin_engine() -> sa.Engine:
    return sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A new empty PostgreSQL database, dropped afterwards."""
    engine = admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is unreachable at {SERVER}: {exc}", pytrace=False)
    try:
        yield sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def worker_name(prefix: str) -> str:
    """A database name unique to this xdist worker (and to AUTHAPP_TEST_RUN, so that two
    pytest runs on one machine never drop each other's databases)."""
    run = os.environ.get("AUTHAPP_TEST_RUN", "")
    return f"{prefix}{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database(worker_name("authapp_test")) as url:
        app = build_app(url)
        with app.app_context():
            flask_migrate.upgrade()  # the schema comes from authapp/migrations/
            db.engine.dispose()
        yield url


@contextmanager
def seeded_app(database_url: str, **settings: Any) -> Iterator[Flask]:
    """An app on the test database, seeded; afterwards every table is emptied."""
    app = build_app(database_url, **settings)
    with app.app_context():
        seed_database()
    yield app
    offload.shutdown(app)  # no pool task may write into the next test
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:  # other threads commit too: truncate, not roll back
            conn.execute(sa.text("TRUNCATE " + ", ".join(db.metadata.tables) + " CASCADE"))
        db.engine.dispose()  # an app per test must not leak its connections


def marker_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's `@pytest.mark.config(**settings)`."""
    marker = request.node.get_closest_marker("config")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def app(database_url: str, request: pytest.FixtureRequest) -> Iterator[Flask]:
    with seeded_app(database_url, **marker_settings(request)) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., dict[str, Any]]:
    """Create an account the way an operator would; returns its id, email and password."""

    def make(email: str = "ada@example.com", password: str = PASSWORD, **fields: Any) -> dict:
        with app.app_context():
            user = accounts.create_user(email=email, password=password, **fields)
            return {"id": user.id, "email": email, "password": password}

    return make


@pytest.fixture
def login(client: FlaskClient) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def do_login(user: dict[str, Any]) -> dict[str, Any]:
        response = client.post(
            "/api/v1/auth/login", json={"login": user["email"], "password": user["password"]}
        )
        assert response.status_code == 200, response.json
        return response.json

    return do_login


@pytest.fixture
def count_sql(app: Flask) -> Callable[[], Any]:
    """Statements this thread sends while the block runs (pool threads do not count)."""

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []
        me = threading.get_ident()

        def record(_conn, _cursor, statement, _params, _context, _many):  # noqa: ANN001
            if threading.get_ident() == me:
                statements.append(statement)

        with app.app_context():
            engine = db.engine
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)

    return counting


def confirm_email(app: Flask, email: str) -> None:
    """Mark an account's address confirmed, as its mailed verification link would (sign-up
    leaves it unconfirmed; MFA, API keys and administration wait for it)."""
    with app.app_context():
        db.session.execute(
            sa.update(User)
            .where(User.email_normalized == email.strip().lower())
            .values(email_verified_at=clock.now())
        )
        db.session.commit()


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
