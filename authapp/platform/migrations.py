"""authapp's migrations run in a host app (`flask authapp upgrade`): Alembic on the package's
migrations, with a version table of their own, so they never mix with the host's (its
`alembic_version`, its `flask db`). As the whole app, `flask db upgrade` runs the same scripts
through Flask-Migrate (docs/deployment.md "Migrations")."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from authapp.platform.extensions import MIGRATIONS_DIR, db

VERSION_TABLE = "authapp_alembic_version"  # read by migrations/env.py through the attributes


def upgrade(revision: str = "head") -> None:
    command.upgrade(_config(), revision)


def current() -> str | None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    config.attributes["version_table"] = VERSION_TABLE
    return config
