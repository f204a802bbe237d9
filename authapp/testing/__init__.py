"""authapp's pytest plugin (docs/testing.md): fixtures to test an app that is, or mounts,
authapp, behind its guards.

Installing authapp registers it (the `pytest11` entry point `authapp`); `-p no:authapp` turns
it off. It is inert until a test asks for one of its fixtures: importing it builds no app and
opens no database. A conftest fixture of the same name wins over the plugin's, as always.

- `app`: an app from `authapp_factory` with `authapp_settings`, on the session's database
  (migrated once, seeded before each test, emptied after it);
- `client`: its test client;
- `make_user(email=..., password=..., permissions=[...], organization=...)`: an account;
- `login(user)`: `{"Authorization": "Bearer …"}`, through the real login endpoint;
- `mailbox`: the mails sent during the test (`authapp.testing.mails.Mailbox`).

Options (ini): `authapp_app_factory = package.module:create_app` (default
`authapp:create_app`), `authapp_test_database_url` (a PostgreSQL URL, or the environment's
`AUTHAPP_TEST_DATABASE_URL`: a scratch database on that server; default: a SQLite file).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixtures import what they use: loading the plugin stays cheap
    from flask import Flask
    from flask.testing import FlaskClient

    from authapp.testing.accounts import MadeUser
    from authapp.testing.apps import Factory
    from authapp.testing.database import Database, Prepare
    from authapp.testing.mails import Mailbox

FACTORY_OPTION = "authapp_app_factory"
DATABASE_OPTION = "authapp_test_database_url"
DATABASE_VARIABLE = "AUTHAPP_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        FACTORY_OPTION,
        "authapp.testing: the factory of the app under test, package.module:function "
        "(called with a dict of settings)",
        default="authapp:create_app",
    )
    parser.addini(
        DATABASE_OPTION,
        f"authapp.testing: a PostgreSQL server URL to test on a scratch database there "
        f"({DATABASE_VARIABLE} wins); empty: a SQLite file",
        default="",
    )


@pytest.fixture(scope="session")
def authapp_factory(pytestconfig: pytest.Config) -> Factory:
    """What builds the app: the `authapp_app_factory` ini option's function."""
    from authapp.testing.apps import load_factory

    spec = str(pytestconfig.getini(FACTORY_OPTION))
    try:
        return load_factory(spec)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        raise pytest.UsageError(f"{FACTORY_OPTION}: {exc}") from exc


@pytest.fixture(scope="session")
def authapp_database(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """The session's database (one per xdist worker)."""
    from authapp.testing.database import session_database

    server = os.environ.get(DATABASE_VARIABLE) or str(pytestconfig.getini(DATABASE_OPTION))
    with session_database(server, tmp_path_factory.mktemp("authapp")) as database:
        yield database


@pytest.fixture
def authapp_mail_dir(tmp_path: Path) -> Path:
    """Where the test's app keeps its mail (MAIL_DIR), read by `mailbox`."""
    return tmp_path / "authapp-mail"


@pytest.fixture
def authapp_settings(authapp_database: Database, authapp_mail_dir: Path) -> dict[str, Any]:
    """The settings handed to the factory; override it to add your own."""
    from authapp.testing.apps import settings_for

    return settings_for(authapp_database.url, authapp_mail_dir)


@pytest.fixture
def authapp_prepare_database() -> Prepare:
    """Run once per session after authapp's migrations, with the first test's app (in its app
    context): creates a host's own tables (`db.create_all()`); override it to run yours."""
    from authapp.testing.database import create_host_tables

    return create_host_tables


@pytest.fixture
def app(
    authapp_factory: Factory,
    authapp_settings: dict[str, Any],
    authapp_database: Database,
    authapp_prepare_database: Prepare,
) -> Iterator[Flask]:
    with authapp_database.serving(
        authapp_factory(authapp_settings), authapp_prepare_database
    ) as built:
        yield built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., MadeUser]:
    """`make_user(email=..., password=..., permissions=[...], organization=...)`."""
    from authapp.testing.accounts import create_user

    def make(**fields: Any) -> MadeUser:
        return create_user(app, **fields)

    return make


@pytest.fixture
def login(client: FlaskClient) -> Callable[[Mapping[str, Any]], dict[str, str]]:
    """`login(user)`: the bearer header of a fresh session of `user`."""
    from authapp.testing.accounts import bearer, log_in

    def do_login(user: Mapping[str, Any]) -> dict[str, str]:
        return bearer(log_in(client, user))

    return do_login


@pytest.fixture
def mailbox(app: Flask, authapp_mail_dir: Path) -> Mailbox:
    from authapp.testing.mails import Mailbox

    return Mailbox(app, authapp_mail_dir)
