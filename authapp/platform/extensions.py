"""Unbound extensions; `init_app` binds them to one app."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
import structlog
from flask import Flask
from flask.globals import request_ctx
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter, RequestLimit
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits.errors import StorageError
from sqlalchemy.orm import DeclarativeBase
from werkzeug.local import LocalProxy

from authapp.platform import connections
from authapp.platform.network import client_bucket
from authapp.platform.openapi import Api

log = structlog.get_logger(__name__)
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table's base (authapp/models/): constraint names follow NAMING, so migrations can
    name what they alter on SQLite and PostgreSQL alike."""

    metadata = sa.MetaData(naming_convention=NAMING)


# expire_on_commit=False: the answer built after a commit reads loaded attributes, no SELECT.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
MIGRATION_OPTIONS = {"compare_type": True, "render_as_batch": True}  # batch: SQLite cannot ALTER
migrate = Migrate(**MIGRATION_OPTIONS)
# Inside the package, so `pip install` carries them; `flask db` works from any cwd.
MIGRATIONS_DIR = str(Path(__file__).parent.parent / "migrations")
jwt = JWTManager()
api = Api()
csrf = CSRFProtect()  # every HTML form; the JSON API is exempt (it has X-CSRF-TOKEN)


def changed_rows(statement: sa.Update | sa.Delete) -> int:
    """Run an UPDATE or DELETE in the request's session, leaving loaded objects alone; the number
    of rows it changed. A conditional UPDATE's row count is how a race picks its one winner."""
    result = db.session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


class RefusalHeadersLimiter(Limiter):
    """Flask-Limiter writing its RateLimit-* headers on refusals (429) only, and checking limits
    only where a route has one. On a success the headers would cost every limited request
    another round trip to Redis for the window's state."""

    @property
    def current_limit(self) -> RequestLimit | None:
        limit = super().current_limit
        return limit if limit is not None and limit.breached else None

    def _check_request_limit(
        self, callable_name: str | None = None, in_middleware: bool = True
    ) -> None:
        # authapp sets no default, application or blueprint limit: every limit is a route's
        # decorator (auth/limits.py), which checks itself. The check Flask-Limiter also
        # runs before every request found nothing to do and cost a token check 6 % of its CPU.
        if not in_middleware:
            super()._check_request_limit(callable_name, in_middleware)

    def init_app(self, app: Flask) -> None:
        """Flask-Limiter's after- and teardown-request hooks run only for a request that met a
        limit. They read (and reset) the request's limiter state, building it first when the
        request had none: for a route without a limit that found nothing to do and cost a
        token check ~5 % of its CPU. A limit's decorator makes the state, so a limited request,
        refused or not, still gets its deductions and refusal headers."""
        after = list(app.after_request_funcs.get(None, ()))
        teardown = list(app.teardown_request_funcs.get(None, ()))
        super().init_app(app)
        for hooks, known, idle in (
            (app.after_request_funcs.get(None, []), after, lambda response: response),
            (app.teardown_request_funcs.get(None, []), teardown, lambda _error=None: None),
        ):
            hooks[:] = [hook if hook in known else _when_limited(hook, idle) for hook in hooks]

    # Flask-Limiter takes *any* exception raised while it checks a limit for a storage outage:
    # it moves the whole process to fresh in-memory counters, and the request that raised is
    # not counted. A request that makes a key function raise would turn shared limits into
    # per-worker ones on demand (F12). Only the store's own failures (limits' StorageError,
    # platform/config.py wraps them) may do that; anything else is a bug and propagates as one.
    @property
    def _storage_dead(self) -> bool:
        return self._on_fallback

    @_storage_dead.setter
    def _storage_dead(self, dead: bool) -> None:
        failure = sys.exc_info()[1]  # Flask-Limiter sets it in its `except` block
        if dead and failure is not None and not isinstance(failure, StorageError):
            raise failure
        self._on_fallback = dead


def _when_limited(hook: Callable[..., Any], idle: Callable[..., Any]) -> Callable[..., Any]:
    def hook_if_limited(*args: Any) -> Any:
        # Limiter.context's own mark on the request context (no attribute lookup that fails)
        context = cast(LocalProxy[Any], request_ctx)._get_current_object()
        limited = "_limiter_request_context" in vars(context)
        return hook(*args) if limited else idle(*args)

    hook_if_limited.__module__ = getattr(hook, "func", hook).__module__  # bench/layers.py
    return hook_if_limited


# Limits are per client address unless a route names another key (auth/limits.py).
limiter = RefusalHeadersLimiter(key_func=client_bucket)


def init_app(app: Flask, *, host_db: SQLAlchemy | None = None, whole_app: bool = True) -> None:
    """Bind the extensions to `app`. Mounted in a host app (`whole_app` false), authapp keeps
    its own session on the host's database engines when the host has a Flask-SQLAlchemy `db`,
    leaves the host's `flask db` and CSRFProtect alone, and keeps flask-smorest's error handler
    off the host's routes (docs/architecture.md "Mounted in a host app")."""
    if host_db is None or host_db is db:
        db.init_app(app)
    else:
        _share_engines(app, host_db)
    with app.app_context():
        connections.configure(db.engine, prepare_after=app.config["DATABASE_PREPARE_AFTER"])
    # Registered after Flask-SQLAlchemy's own, so it runs first (Flask runs them in reverse).
    app.teardown_appcontext(_end_session)
    if whole_app:
        migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    jwt.init_app(app)
    host_handlers = {
        code: dict(by_class) for code, by_class in app.error_handler_spec[None].items()
    }
    api.init_app(app)
    if not whole_app:  # flask-smorest answers every HTTP error of the app in JSON otherwise
        app.error_handler_spec[None].clear()
        app.error_handler_spec[None].update(host_handlers)
    if whole_app or "csrf" not in app.extensions:
        _init_csrf(app, check_every_request=whole_app)
    limiter.init_app(app)


def _share_engines(app: Flask, host_db: SQLAlchemy) -> None:
    """authapp's session on the host's engines: its own unit of work, the host's database.
    Flask-SQLAlchemy keeps an app's engines in `_app_engines` (3.1); there is no public way to
    hand another instance's engines over."""
    engines = host_db._app_engines.get(app)  # noqa: SLF001
    if engines is None:
        raise RuntimeError("Call db.init_app(app) for the host's db before AuthApp.init_app(app).")
    db._app_engines[app] = engines  # noqa: SLF001


def _init_csrf(app: Flask, *, check_every_request: bool) -> None:
    """Flask-WTF's CSRFProtect checks every form of an app before each request; authapp checks
    its own forms (web/pages.py). Mounted in a host without CSRFProtect, that app-wide check
    goes: the host's forms are the host's business."""
    before = list(app.before_request_funcs.get(None, ()))
    csrf.init_app(app)
    if not check_every_request:
        app.before_request_funcs[None] = before


def _end_session(_error: BaseException | None) -> None:
    """End the request's session. When the database dropped the connection after the request's
    last statement (a restart, a failover), the closing ROLLBACK fails outside every error
    handler and gunicorn would answer a bare 500 for a request that succeeded: the dead
    connection is discarded instead, and the answer stands (F1)."""
    try:
        db.session.remove()
    except sa.exc.DBAPIError as exc:
        log.warning("database.connection_lost_at_teardown", error_type=type(exc).__name__)
        db.session.remove()  # the connection is invalidated now: this close cannot fail
