"""The test database: a scratch one per session (SQLite, or PostgreSQL when asked), migrated
once with authapp's packaged migrations, seeded before each test and emptied after it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa
from flask import Flask

from authapp.cli.seed import seed_database
from authapp.delivery import offload
from authapp.platform import migrations, territory
from authapp.platform.extensions import MIGRATIONS_DIR, db

VERSION_TABLES = frozenset({"alembic_version", migrations.VERSION_TABLE})
Prepare = Callable[[Flask], None]


@dataclass
class Database:
    """The session's database: its URL, and once the first app migrated it, its tables."""

    url: str
    tables: list[str] | None = field(default=None)

    @contextmanager
    def serving(self, app: Flask, prepare: Prepare) -> Iterator[Flask]:
        """`app` on this database: migrated (first time only), seeded, emptied afterwards."""
        if self.tables is None:
            with app.app_context():
                migrate(app)
                prepare(app)
                self.tables = table_names(db.engine)
                db.session.remove()
        with seeded(app, self.tables):
            yield app


@contextmanager
def session_database(server_url: str, folder: Path) -> Iterator[Database]:
    """A SQLite file in `folder`, or with `server_url` (PostgreSQL) a scratch database on that
    server, dropped at the end."""
    if not server_url:
        yield Database(f"sqlite:///{folder / 'authapp-test.db'}")
        return
    name = f"authapp_test_{os.getpid()}_{secrets.token_hex(4)}"
    with scratch_database(server_url, name) as url:
        yield Database(url)


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """A new empty PostgreSQL database `name` on the server of `server_url`, dropped
    afterwards (with the connections left to it)."""
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(f"PostgreSQL is unreachable at {server_url}: {exc}", pytrace=False)
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def migrate(app: Flask) -> None:
    """authapp's packaged migrations, as its deployment runs them: `flask authapp upgrade`
    mounted in a host (its own version table), `flask db upgrade` as the whole app."""
    if territory.current_of(app).whole_app:
        flask_migrate.upgrade(directory=MIGRATIONS_DIR)
    else:
        migrations.upgrade()


def create_host_tables(app: Flask) -> None:
    """The default `authapp_prepare_database`: a host's own Flask-SQLAlchemy tables
    (`db.create_all()` on the host's metadata, which holds none of authapp's)."""
    host_db = app.extensions.get("sqlalchemy")
    if host_db is not None and host_db is not db:
        host_db.create_all()


def table_names(engine: sa.Engine) -> list[str]:
    """Every table but the migrations' version tables, dependents first."""
    ordered = sa.inspect(engine).get_sorted_table_and_fkc_names()  # foreign keys only
    names = [name for name, _keys in reversed(ordered) if name is not None]
    return [name for name in names if name not in VERSION_TABLES]


def empty_tables(engine: sa.Engine, tables: Sequence[str]) -> None:
    """Delete every row: other threads (the outbox's) commit too, so no rollback would do."""
    if not tables:
        return
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(map(quote, tables))} CASCADE"))
            return
        for table in tables:
            conn.execute(sa.text(f"DELETE FROM {quote(table)}"))


@contextmanager
def seeded(app: Flask, tables: Sequence[str]) -> Iterator[Flask]:
    """`app` seeded (`flask seed`: built-in permissions and roles, the default organization and
    its admin); afterwards its pools stop, `tables` are emptied and its connections closed."""
    with app.app_context():
        seed_database()
        db.session.remove()
    try:
        yield app
    finally:
        offload.shutdown(app)  # no pool task may write into the next test
        with app.app_context():
            db.session.remove()
            empty_tables(db.engine, tables)
            for engine in db.engines.values():
                engine.dispose()  # an app per test must not leak its connections
