"""The security settings page (two-factor authentication, passkeys, your data), rendered by
settings/pages.py and settings/passkey_pages.py alike."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response

from authapp.auth import passkey_checks, second_factor
from authapp.auth.guards import current_user
from authapp.platform.errors import AppError
from authapp.web.forms import render_form


def render(error: AppError | None = None, **context: Any) -> Response | tuple[str, int]:
    user = current_user()
    return render_form(
        "authapp/settings/security.html",
        error,
        values=request.form if error else {},
        user=user,
        remaining=second_factor.unused_recovery_codes(user.id) if user.mfa_enabled else 0,
        passkeys=passkey_checks.passkeys_of(user.id),
        **context,
    )
