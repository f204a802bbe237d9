"""authapp: a sync-first Flask service for authentication and account settings.

Run it as its own service with `create_app()`, or mount it in your Flask app with `AuthApp`
(authapp/extension.py) and guard your own routes with `require_login()` /
`require_permission(code)`, reading `current_principal` behind them (docs/embedding.md). The
layers below are docs/architecture.md's; import-linter's contracts in pyproject.toml keep them.

The names are loaded on first use (PEP 562), so `import authapp.client` in another service
(docs/protecting-services.md) does not load Flask, SQLAlchemy and the rest of the app."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from authapp.auth.guards import require_login, require_permission
    from authapp.auth.principals import Principal
    from authapp.extension import AuthApp

    current_principal: Principal

__all__ = ["AuthApp", "create_app", "current_principal", "require_login", "require_permission"]

# Where each public name lives; `current_principal` is made on first use below.
_LAZY = {
    "AuthApp": "authapp.extension",
    "require_login": "authapp.auth.guards",
    "require_permission": "authapp.auth.guards",
}


def __getattr__(name: str) -> Any:
    if name == "current_principal":
        # The principal a guard resolved for this request (behind `require_login` or
        # `require_permission` only), like Flask-Login's `current_user`.
        from flask import g
        from werkzeug.local import LocalProxy

        proxy = LocalProxy(lambda: g.principal)
        globals()[name] = proxy
        return proxy
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'authapp' has no attribute {name!r}")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """authapp as the whole app: its settings from the environment (and `overrides`), its
    policies on every route."""
    from authapp.extension import AuthApp, assemble
    from authapp.platform import config, hooks, logs

    app = hooks.SyncFlask(__name__, instance_relative_config=True, static_folder=None)
    app.config.update(config.load(app.instance_path, overrides))  # the environment, once
    logs.configure(app.config)
    assemble(app, AuthApp(), whole_app=True)
    return app
