"""Unbound extensions; `init_app` binds them to one app."""

from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from authapp.models.base import Base
from authapp.openapi import Api
from authapp.security.network import client_ip

# expire_on_commit=False: the answer built after a commit reads loaded attributes, no SELECT.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate(compare_type=True, render_as_batch=True)  # batch: SQLite cannot ALTER much
jwt = JWTManager()
api = Api()
csrf = CSRFProtect()  # every HTML form; the JSON API is exempt (it has X-CSRF-TOKEN)


def changed_rows(statement: sa.Update | sa.Delete) -> int:
    """Run an UPDATE or DELETE in the request's session, leaving loaded objects alone; the number
    of rows it changed. A conditional UPDATE's row count is how a race picks its one winner."""
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# Limits are per client address unless a route names another key (security/limits.py).
limiter = Limiter(key_func=lambda: f"ip:{client_ip()}")


def init_app(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(app))
    jwt.init_app(app)
    api.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)


def _migrations_dir(app: Flask) -> str:
    # The repository's migrations/ sits beside the package; `flask db` works from any cwd.
    return str(Path(app.root_path).parent / "migrations")
