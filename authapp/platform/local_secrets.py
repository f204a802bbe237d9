"""The secrets a checkout makes for itself outside production (docs/configuration.md "Required in
production"): generated once and kept in `instance/local-secrets.json`, so that every process of
the checkout agrees on them. config.load calls `fill`; production never reaches it."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def fill(settings: dict[str, Any], instance_path: str, names: Iterable[str]) -> None:
    """Outside production, a missing secret of `names` is generated once and kept in `instance/`.

    Kept rather than regenerated per process: gunicorn workers and `flask seed` must agree on
    the pepper and the JWT key, or a seeded password and a token from another worker would fail.
    """
    missing = [name for name in names if not settings[name]]
    if not missing or settings["AUTHAPP_ENV"] == "production":
        return
    path = Path(instance_path) / "local-secrets.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    if any(name not in stored for name in missing):
        stored |= {name: secrets.token_urlsafe(48) for name in missing if name not in stored}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stored))
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: two workers starting at once never read half a file
    for name in missing:
        settings[name] = stored[name]
