"""`authapp.client` is for other services (docs/protecting-services.md): importing it must not
load the app (Flask, SQLAlchemy, ...), which authapp/__init__.py's lazy names make possible."""

from __future__ import annotations

import subprocess
import sys

APP_LIBRARIES = ("flask", "werkzeug", "sqlalchemy", "flask_smorest", "marshmallow", "webauthn")


def test_importing_the_client_loads_none_of_the_app():
    probe = "import sys, authapp.client; print(' '.join(sorted(sys.modules)))"

    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()

    assert [name for name in APP_LIBRARIES if name in loaded] == []
    assert "jwt" in loaded  # the probe did load the client


def test_the_public_names_still_come_from_the_package():
    probe = (
        "from authapp import AuthApp, create_app, current_principal, require_login, "
        "require_permission; print(AuthApp.__module__, require_permission.__module__)"
    )

    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()

    assert shown == ["authapp.extension", "authapp.auth.guards"]
