"""Browser pages for invitations: the organization's pending invitations, and accepting one
from its mailed link. The same schemas and services as settings/invitation_routes.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, request, url_for
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.platform import hooks
from authapp.platform.errors import AppError
from authapp.platform.network import request_client
from authapp.settings import invitation_schemas as schemas
from authapp.settings.services import invitation_accept, invitations, roles
from authapp.web.forms import load_form, render_form, see_other

bp = Blueprint("invitation_pages", __name__)
ACCEPT_PAGE = "authapp/invitations/accept.html"


def _invitations_page(error: AppError | None = None) -> Response:
    organization_id = current_principal().organization_id
    return render_form(
        "authapp/settings/invitations.html",
        error,
        values=request.form if error else {},
        invitations=invitations.list_pending(organization_id),
        roles=roles.list_roles(organization_id),
    )


@bp.get("/settings/invitations")
@page_login_required("users:read")
def invitations_page() -> Response:
    return _invitations_page()


@bp.post("/settings/invitations")
@page_login_required("users:manage")
def invite() -> Response:
    try:
        invited = invitations.invite(current_principal(), **load_form(schemas.InvitationIn()))
    except AppError as exc:
        return _invitations_page(exc)
    again = "" if invited.created else " again (the earlier link no longer works)"
    flash(f"Invitation sent to {invited.invitation.email}{again}.")
    return see_other("invitation_pages.invitations_page")


@bp.post("/settings/invitations/<invitation_id>/revoke")
@page_login_required("users:manage")
def revoke(invitation_id: str) -> Response:
    try:
        invitations.revoke(current_principal(), invitation_id)
    except AppError as exc:
        flash(exc.message, "error")
    else:
        flash("Invitation revoked: its link no longer works.")
    return see_other("invitation_pages.invitations_page")


@bp.route("/invitations/accept", methods=["GET", "POST"])
@limits.invitation_accept
def accept() -> Response:
    """GET shows what the link offers and spends nothing: a "Join" button for a logged-in
    browser, else a sign-up form for the invited address and a way to log in first. The token
    leaves the URL for the form, and the page sends no Referer (RS-2)."""
    hooks.send_no_referrer()
    token = request.values.get("token", "")
    principal = cookies.browser_principal()
    logged_in = principal is not None and principal.user is not None
    try:
        offer = invitation_accept.preview(token)
    except AppError as exc:
        return render_form(ACCEPT_PAGE, exc, invalid=True)
    context: dict[str, Any] = {
        "token": token,
        "offer": offer,
        "logged_in": logged_in,
        "login_url": url_for("auth_pages.login", next=url_for(".accept", token=token)),
    }
    if request.method == "GET":
        return render_form(ACCEPT_PAGE, **context)
    try:
        if logged_in:
            invitation_accept.accept_as_member(current_user(), token, request_client())
        else:
            body = load_form(schemas.AcceptInvitationIn())
            cookies.issue(invitation_accept.accept_with_signup(**body, client=request_client()))
    except AppError as exc:
        return render_form(ACCEPT_PAGE, exc, values=request.form, **context)
    flash(f"You joined {offer.organization.name}.")
    return see_other("auth_pages.home")
