"""The security page's identity providers (docs/federation.md "Linking"): connect an account at
a provider (the password again, then the provider's own sign-in; the way back is
auth/federation_pages.py), and disconnect one."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from werkzeug.wrappers import Response

from authapp.auth import federation_flow, limits
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.auth.services import identity_links
from authapp.platform.errors import AppError
from authapp.settings import security_page

bp = Blueprint("settings_identity_pages", __name__, url_prefix="/settings/security/identities")


@bp.post("/<name>/connect")
@limits.password_change
@page_login_required()
def connect(name: str) -> Response | tuple[str, int]:
    provider = federation_flow.provider_named(name)
    principal, user = current_principal(), current_user()
    try:
        # The security page's other forms have a `password` field too: this one is named apart.
        identity_links.check_owner(principal, user, request.form.get("identity_password", ""))
        return federation_flow.leave_for(
            provider,
            url_for("settings_pages.security"),
            purpose="link",
            user_id=user.id,
            session_id=principal.session_id or "",
        )
    except AppError as exc:
        return security_page.render(exc)


@bp.post("/<identity_id>/remove")
@page_login_required()
def remove(identity_id: str) -> Response | tuple[str, int]:
    def change() -> str:
        removed = identity_links.unlink(current_principal(), current_user(), identity_id)
        return f"{removed} disconnected."

    return security_page.after(change)
