"""Which requests are authapp's (docs/architecture.md "Mounted in a host app").

Run as its own service (`create_app`), authapp owns the whole app: its policies (JSON-only
bodies, CSRF on forms, the security headers, the error envelope) apply to every request. Mounted
in a host's Flask app (`AuthApp`), it owns the paths under its URL prefix and nothing else: the
host's routes keep their own behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import Flask, current_app

EXTENSION = "authapp.territory"
# Below the prefix: the paths whose errors are JSON (the rest are pages).
JSON_PATHS = ("/api/", "/healthz", "/readyz", "/_testing/")


@dataclass(frozen=True)
class Territory:
    prefix: str
    whole_app: bool

    @property
    def api_path(self) -> str:
        return self.prefix + "/api/"

    @cached_property  # read by every error answer
    def json_paths(self) -> tuple[str, ...]:
        return tuple(self.prefix + path for path in JSON_PATHS)

    @property
    def static_path(self) -> str:
        return self.prefix + "/static/"

    def owns(self, path: str) -> bool:
        return self.whole_app or path == self.prefix or path.startswith(self.prefix + "/")


def init_app(app: Flask, *, whole_app: bool) -> Territory:
    territory = app.extensions[EXTENSION] = Territory(app.config["AUTHAPP_URL_PREFIX"], whole_app)
    return territory


def current_of(app: Flask) -> Territory:
    territory: Territory = app.extensions[EXTENSION]
    return territory


def current() -> Territory:
    """The territory of the app handling this request."""
    return current_of(current_app)
