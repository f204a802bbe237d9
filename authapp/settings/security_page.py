"""The security settings page (two-factor authentication, passkeys, your data), rendered by
settings/pages.py, settings/passkey_pages.py and settings/privacy_pages.py alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, request
from werkzeug.wrappers import Response

from authapp.auth import passkey_checks, second_factor
from authapp.auth.guards import current_user
from authapp.auth.services import identity_links
from authapp.platform.errors import AppError
from authapp.web.forms import render_form, see_other


def render(error: AppError | None = None, **context: Any) -> Response | tuple[str, int]:
    user = current_user()
    return render_form(
        "authapp/settings/security.html",
        error,
        values=request.form if error else {},
        user=user,
        remaining=second_factor.unused_recovery_codes(user.id) if user.mfa_enabled else 0,
        passkeys=passkey_checks.passkeys_of(user.id),
        identities=identity_links.identities_of(user.id),
        provider_name=identity_links.display_name,
        **context,
    )


def after(change: Callable[[], str]) -> Response | tuple[str, int]:
    """A form of the security page: `change` done, its sentence flashed on the page again
    (POST-redirect-GET); its refusal shown in the page."""
    try:
        done = change()
    except AppError as exc:
        return render(exc)
    flash(done)
    return see_other("settings_pages.security")
