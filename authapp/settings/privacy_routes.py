"""/api/v1/settings/account: a person's data export and deleting their own account.

A blueprint of its own beside settings/routes.py (same URL prefix), which is near its size cap."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from authapp.auth import cookies, limits
from authapp.auth.guards import current_principal, current_user, require_login
from authapp.settings import export_schemas, schemas
from authapp.settings.services import privacy

bp = Blueprint(
    "settings_privacy",
    __name__,
    url_prefix="/api/v1/settings",
    description="A person's own data: export and account deletion",
)


@bp.route("/account/export", methods=["GET"])
@limits.export
@require_login()  # a person's data: a user's login only, never an API key
@bp.response(200, export_schemas.AccountExportOut)
def export_account() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Everything authapp holds about the caller, as a JSON file: profile, memberships,
    sessions, the API keys they made (never a key or hash) and the newest 1,000 audit events
    about them."""
    return (
        privacy.export(current_principal(), current_user()),
        200,
        export_schemas.download_headers(),
    )


@bp.route("/account", methods=["DELETE"])
@limits.password_change  # it checks the password: the same per-account budget of guesses
@require_login()
@bp.arguments(schemas.AccountDeleteIn)
@bp.response(204)
def delete_account(body: dict[str, str]) -> None:
    """Delete the caller's account (the password again). Its keys are revoked, its audit rows
    stay anonymised; an organization's owner is 409 owner_must_transfer."""
    privacy.delete_account(current_principal(), current_user(), **body)
    cookies.clear()
