"""The schema comes only from migrations/, and the models agree with it on both databases."""

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from authapp.extensions import db
from tests.conftest import build_app


def _differences(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_models_match_the_migrated_postgresql_schema(app):
    assert _differences(app) == []


# SQLAlchemy cannot reflect SQLite expression indexes; the test checks that one by name.
def sqlite_reflection(test):
    for message in ("ignore:Skipped unsupported reflection", "ignore:autogenerate skipping"):
        test = pytest.mark.filterwarnings(message)(test)
    return test


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
