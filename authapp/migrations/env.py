"""Alembic environment: the schema of authapp comes only from here. Run by Flask-Migrate's
`flask db` (authapp as the whole app) or by `flask authapp upgrade` (mounted in a host app,
platform/migrations.py), which names a version table of authapp's own."""

from alembic import context

from authapp.platform.extensions import MIGRATION_OPTIONS, db

target_metadata = db.metadata
options = MIGRATION_OPTIONS | {
    "version_table": context.config.attributes.get("version_table", "alembic_version")
}


def run_migrations_offline() -> None:
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # Logging stays as authapp.platform.logs configured it: no fileConfig, which would mute loggers.
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            **options,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
