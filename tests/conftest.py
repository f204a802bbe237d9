"""App fixtures on real PostgreSQL: one database per xdist worker, one app per test; and the
layer markers, one per directory of tests/ (see LAYERS)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from authapp import create_app
from authapp.models import User
from authapp.platform import clock
from authapp.platform.extensions import db
from authapp.testing import accounts as testing_accounts
from authapp.testing import database as testing_database
from authapp.testing.accounts import PASSWORD, MadeUser, bearer
from authapp.testing.apps import TEST_SECRETS, settings_for

# authapp.testing (the pytest plugin authapp installs) holds the pieces an adopter's suite needs
# too: the settings, the scratch database, the seeding and emptying, users, logins and the
# mailbox. This suite reuses them, with its own fixtures of the same names (which win over the
# plugin's): one PostgreSQL database per xdist worker, and `login` answering the tokens.
__all__ = ["PASSWORD", "TEST_SECRETS", "auth_header"]
SERVER = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1/test")


TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
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


def layer_of(path: Path) -> str | None:
    """The marker of a test file: its directory's in tests/, `examples` under examples/ (each
    example's own suite, on the authapp.testing plugin), none elsewhere."""
    parts = path.resolve().relative_to(ROOT).parts if path.resolve().is_relative_to(ROOT) else ()
    if len(parts) > 2 and parts[0] == "tests":
        return LAYERS.get(parts[1])
    if len(parts) > 1 and parts[0] == "examples":
        return "examples"
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = layer_of(item.path)
        if layer is not None:
            item.add_marker(layer)


def build_app(database_url: str, **overrides: Any) -> Flask:
    # The plugin's test settings. No rate limits: suites log in far more than 10 times a minute
    # from one address; the limit tests (tests/app/auth/test_rate_limits.py) switch them on
    # with their own Redis database.
    return create_app({**settings_for(database_url), **overrides})


def admin_engine() -> sa.Engine:
    return sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")


def scratch_database(name: str) -> AbstractContextManager[str]:
    """A new empty PostgreSQL database on SERVER, dropped afterwards."""
    return testing_database.scratch_database(SERVER, name)


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


def seeded_app(database_url: str, **settings: Any) -> AbstractContextManager[Flask]:
    """An app on the test database, seeded; afterwards every table is emptied."""
    app = build_app(database_url, **settings)
    return testing_database.seeded(app, list(db.metadata.tables))


def marker_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The test's `@pytest.mark.config(**settings)`."""
    marker = request.node.get_closest_marker("config")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def app(
    database_url: str, authapp_mail_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    """The plugin's `mailbox` reads what this app mails (MAIL_DIR, without SMTP_URL)."""
    settings = {"MAIL_DIR": str(authapp_mail_dir), **marker_settings(request)}
    with seeded_app(database_url, **settings) as app:
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., MadeUser]:
    """Create an account the way an operator would (authapp.testing's): its id, email and
    password; `permissions=[...]` gives it a role holding them."""

    def make(**fields: Any) -> MadeUser:
        return testing_accounts.create_user(app, **fields)

    return make


@pytest.fixture
def login(client: FlaskClient) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Unlike the plugin's (which answers the bearer header), the login's JSON: the tokens."""

    def do_login(user: dict[str, Any]) -> dict[str, Any]:
        return testing_accounts.log_in(client, user)

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
    return bearer(token)
