"""authapp: a sync-first Flask service for authentication and account settings.

Run it as its own service with `create_app()`, or mount it in your Flask app with `AuthApp`
(authapp/extension.py) and guard your own routes with `require_login()` /
`require_permission(code)`, reading `current_principal` behind them (docs/embedding.md). The
layers below are docs/architecture.md's; import-linter's contracts in pyproject.toml keep them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, g
from werkzeug.local import LocalProxy

from authapp.auth.guards import require_login, require_permission
from authapp.auth.principals import Principal
from authapp.extension import AuthApp, assemble
from authapp.platform import config, hooks, logs

__all__ = ["AuthApp", "create_app", "current_principal", "require_login", "require_permission"]

# The principal a guard resolved for this request (behind `require_login` or
# `require_permission` only), like Flask-Login's `current_user`.
current_principal: Principal = LocalProxy(lambda: g.principal)  # type: ignore[assignment]


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """authapp as the whole app: its settings from the environment (and `overrides`), its
    policies on every route."""
    app = hooks.SyncFlask(__name__, instance_relative_config=True, static_folder=None)
    app.config.update(config.load(app.instance_path, overrides))  # the environment, once
    logs.configure(app.config)
    assemble(app, AuthApp(), whole_app=True)
    return app
