"""authapp's settings when it is mounted in a host's Flask app (authapp/extension.py).

A value the host's config gives one of authapp's names wins over the environment (a string is
parsed as the environment's would be); Flask's own defaults are no choice of the host's. authapp's
routes start at `/auth` unless AUTHAPP_URL_PREFIX says otherwise, and never at the root, which is
the host's (docs/embedding.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from authapp.platform.config import SETTINGS, ConfigError, load, parsed

DEFAULT_PREFIX = "/auth"
_UNSET = object()


def load_mounted(host: Mapping[str, Any], instance_path: str) -> dict[str, Any]:
    """authapp's typed settings, given the host's config."""
    chosen = {
        name: value
        for name, value in host.items()
        if Flask.default_config.get(name, _UNSET) != value  # MAX_CONTENT_LENGTH None: unset
    }
    overrides = {name: _typed(name, chosen[name]) for name in SETTINGS if name in chosen}
    if chosen.get("SECRET_KEY"):
        overrides["SECRET_KEY"] = chosen["SECRET_KEY"]
    if "AUTHAPP_URL_PREFIX" not in overrides and not os.environ.get("AUTHAPP_URL_PREFIX"):
        overrides["AUTHAPP_URL_PREFIX"] = DEFAULT_PREFIX
    settings = load(instance_path, overrides)
    if not settings["AUTHAPP_URL_PREFIX"]:
        raise ConfigError("AUTHAPP_URL_PREFIX is empty: mounted in a host app, set it to a path.")
    return settings


def _typed(name: str, value: Any) -> Any:
    return parsed(name, value) if isinstance(value, str) else value
