"""authapp: a sync-first Flask service for authentication and account settings.

`create_app` is the table of contents: the platform every request stands on, the primitives
that need the app, then the features' blueprints, operations and commands. The layers below it
are docs/architecture.md's; import-linter's contracts in pyproject.toml keep them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from authapp import ops
from authapp.auth import cookies
from authapp.auth import pages as auth_pages
from authapp.auth import routes as auth_routes
from authapp.cli import commands as cli
from authapp.platform import api_docs as docs
from authapp.platform import config, errors, hooks, logs, metrics
from authapp.platform.extensions import api
from authapp.platform.extensions import init_app as init_extensions
from authapp.security import keys, passwords, tokens
from authapp.settings import pages as settings_pages
from authapp.settings import routes as settings_routes
from authapp.web import pages as web_pages


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    app = hooks.SyncFlask(__name__, instance_relative_config=True)
    app.config.update(config.load(app.instance_path, overrides))  # the environment, once
    config.check_production(app.config)  # names the weak variable and stops
    logs.configure(app.config)
    metrics.init_app(app)  # first: its clock starts before any hook that may refuse (limits)
    init_extensions(app)
    hooks.init_app(app)
    errors.init_app(app)  # after extensions: flask-smorest installs its own handler
    keys.init_app(app)  # before any token is made or read
    tokens.init_app(app)
    passwords.init_app(app)
    cookies.init_app(app)  # sets or clears the auth cookies a request decided on
    web_pages.init_app(app)  # form sessions, CSRF on every form outside /api/
    for bp in (auth_routes.bp, settings_routes.bp):
        api.register_blueprint(bp)  # validated, listed in /api/openapi.json
    for page_bp in (auth_pages.bp, settings_pages.bp, docs.bp):
        app.register_blueprint(page_bp)  # HTML forms
    ops.init_app(app)  # /_testing/clock exists only when AUTHAPP_ENV=testing
    cli.init_app(app)
    return app
