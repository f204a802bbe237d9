"""`AuthApp`: authapp mounted in a host's Flask app, the way Flask-Login or Flask-Security are.

    auth = AuthApp()          # or AuthApp(app, db=db)
    auth.init_app(app, db=db)

It registers authapp's blueprints under AUTHAPP_URL_PREFIX (`/auth` by default), its models on
the host's Flask-SQLAlchemy `db` (or its own), its commands as `flask authapp ...`, and its
policies (JSON-only bodies, CSRF on its forms, the security headers and `no-store`, the error
envelope) on its own routes only: the host's routes keep their behaviour. `create_app` is the
same assembly owning the whole app (docs/architecture.md "Mounted in a host app")."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask
from flask_sqlalchemy import SQLAlchemy

from authapp import ops
from authapp.auth import cookies
from authapp.auth import federation_pages as auth_federation_pages
from authapp.auth import federation_routes as auth_federation_routes
from authapp.auth import introspection_routes as auth_introspection_routes
from authapp.auth import pages as auth_pages
from authapp.auth import passkey_pages as auth_passkey_pages
from authapp.auth import passkey_routes as auth_passkey_routes
from authapp.auth import routes as auth_routes
from authapp.cli import commands as cli
from authapp.delivery import offload, outbox
from authapp.platform import api_docs as docs
from authapp.platform import config, errors, hooks, host_settings, logs, metrics, territory
from authapp.platform.extensions import api
from authapp.platform.extensions import init_app as init_extensions
from authapp.security import keys, passwords, tokens
from authapp.settings import (
    identity_pages,
    invitation_pages,
    invitation_routes,
    organization_pages,
    organization_routes,
    passkey_pages,
    passkey_routes,
    privacy_pages,
    privacy_routes,
)
from authapp.settings import pages as settings_pages
from authapp.settings import routes as settings_routes
from authapp.web import pages as web_pages

EXTENSION = "authapp"
# The stylesheet and scripts of the pages, and their templates (all named `authapp/...`, so a
# host's own `base.html` never stands in for authapp's).
assets = Blueprint(
    "authapp_assets",
    "authapp",
    static_folder="static",
    static_url_path="/static",
    template_folder="templates",
)
API_BLUEPRINTS = (
    auth_routes.bp,
    auth_passkey_routes.bp,
    auth_introspection_routes.bp,
    settings_routes.bp,
    privacy_routes.bp,
    organization_routes.bp,
    invitation_routes.bp,
    passkey_routes.bp,
    auth_federation_routes.bp,
)
PAGE_BLUEPRINTS = (
    auth_pages.bp,
    auth_passkey_pages.bp,
    auth_federation_pages.bp,
    settings_pages.bp,
    privacy_pages.bp,
    organization_pages.bp,
    invitation_pages.bp,
    passkey_pages.bp,
    identity_pages.bp,
    docs.bp,
    assets,
)
# Every blueprint answers its own errors with the envelope: that is all a host app gets of it.
for _blueprint in (*API_BLUEPRINTS, *PAGE_BLUEPRINTS, ops.bp, ops.testing_bp):
    web_pages.answer_errors(_blueprint)


class AuthApp:
    """authapp as a Flask extension; `app.extensions["authapp"]` is this object."""

    def __init__(self, app: Flask | None = None, *, db: SQLAlchemy | None = None) -> None:
        self.db = db
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, db: SQLAlchemy | None = None) -> None:
        """Mount authapp in the host `app`. Its settings come from the host's config, then the
        environment (docs/configuration.md); the host's own Flask settings stay the host's."""
        host_db = db or self.db or app.extensions.get("sqlalchemy")
        settings = host_settings.load_mounted(app.config, app.instance_path)
        for name, value in settings.items():
            if name in Flask.default_config:
                continue  # the host's app, the host's Flask settings
            if name in config.SETTINGS:
                app.config[name] = value  # the host's value, typed, or the environment's
            else:
                app.config.setdefault(name, value)  # a library's (the host's SQLALCHEMY_* win)
        app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or settings["SECRET_KEY"]
        logs.configure_mounted()
        assemble(app, self, host_db=host_db, whole_app=False)
        host_csrf = app.extensions["csrf"]  # the host's CSRFProtect, or authapp's
        for blueprint in API_BLUEPRINTS:  # its own CSRF check: the token's (docs/security.md)
            host_csrf.exempt(blueprint)

    def start_sweeper(self, app: Flask) -> None:
        """Sweep the outbox from this process (docs/embedding.md "Mail, webhooks and the
        outbox"): call it in each server process after the fork, as gunicorn's
        `post_worker_init`; or run `flask authapp outbox work` as a process of its own."""
        outbox.start_sweeper(app)

    def shutdown(self, app: Flask) -> None:
        """Stop sweeping and let running deliveries finish (gunicorn's `worker_exit`); what is
        left stays pending in the outbox."""
        outbox.stop_sweeper(app)
        offload.shutdown(app, wait=True)


def assemble(
    app: Flask, owner: AuthApp, *, host_db: SQLAlchemy | None = None, whole_app: bool
) -> None:
    """The platform every request stands on, the primitives that need the app, then the
    features' blueprints, operations and commands; `app.config` holds the settings already."""
    config.check_production(app.config)  # names the weak variable and stops
    app.extensions[EXTENSION] = owner
    ours = territory.init_app(app, whole_app=whole_app)
    metrics.init_app(app)  # first: its clock starts before any hook that may refuse (limits)
    init_extensions(app, host_db=host_db, whole_app=whole_app)
    hooks.init_app(app)
    if whole_app:
        web_pages.answer_errors(app)  # after extensions: flask-smorest installs its own handler
    else:
        errors.register_guard_errors(app)
    keys.init_app(app)  # before any token is made or read
    tokens.init_app(app)
    passwords.init_app(app)
    cookies.init_app(app)  # sets or clears the auth cookies a request decided on
    web_pages.init_app(app)  # CSRF on authapp's forms (every form, as the whole app)
    for bp in API_BLUEPRINTS:  # validated, listed in the OpenAPI document
        api.register_blueprint(bp, url_prefix=ours.prefix + _own_prefix(bp))
    for page_bp in PAGE_BLUEPRINTS:  # HTML forms, the API's reader, the pages' assets
        app.register_blueprint(page_bp, url_prefix=ours.prefix + _own_prefix(page_bp))
    ops.init_app(app, ours.prefix)  # /_testing/clock exists only when AUTHAPP_ENV=testing
    cli.init_app(app, group=None if whole_app else EXTENSION)


def _own_prefix(blueprint: Any) -> str:
    return str(blueprint.url_prefix or "")
