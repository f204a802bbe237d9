"""The app a test gets: which factory builds it, and the settings it is built with."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

DEFAULT_FACTORY = "authapp:create_app"
# Fixed, long, random-looking: the test settings' secrets (never acceptable in production,
# where AUTHAPP_ENV=testing cannot run anyway).
TEST_SECRETS = {
    "SECRET_KEY": "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "JWT_SECRET_KEY": "test-jwt-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "PASSWORD_PEPPER": "test-pepper-0123456789abcdefghijklmnopqrstuvwxyz",
    "DATA_ENCRYPTION_KEY": "p7JmQ4bS7cX9nZ2rV1tYw3eK5hL8aD0fG6jH2kM4nQE=",
}
Factory = Callable[[Mapping[str, Any]], Flask]


def settings_for(database_url: str, mail_dir: Path | None = None) -> dict[str, Any]:
    """What `authapp_settings` hands the factory: the testing environment, bcrypt's cheapest
    cost, no rate limits, fixed secrets, the test database (under authapp's name and
    Flask-SQLAlchemy's, so a whole app and a host's `db` both use it) and mail kept in
    `mail_dir`."""
    settings: dict[str, Any] = {
        "AUTHAPP_ENV": "testing",
        "BCRYPT_ROUNDS": 4,
        "RATELIMIT_ENABLED": False,
        "DATABASE_URL": database_url,
        "SQLALCHEMY_DATABASE_URI": database_url,
        **TEST_SECRETS,
    }
    if mail_dir is not None:
        settings |= {"SMTP_URL": "", "MAIL_DIR": str(mail_dir)}
    return settings


def load_factory(spec: str) -> Factory:
    """`package.module:function` (the `authapp_app_factory` ini option) as the function."""
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or not attribute:
        raise ValueError(f"authapp_app_factory = {spec!r}: expected 'package.module:function'")
    target: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise TypeError(f"authapp_app_factory = {spec!r} is not callable")
    factory: Factory = target
    return factory
