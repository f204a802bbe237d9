"""Browser pages for invitations: the organization's pending invitations, and accepting one
from its mailed link. The same schemas and services as settings/invitation_routes.py."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, request, session, url_for
from werkzeug.wrappers import Response

from authapp.auth import cookies, federation_flow, limits
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.platform import clock, hooks
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
    context = _offer_page(token, offer, logged_in)
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


def _offer_page(token: str, offer: Any, logged_in: bool) -> dict[str, Any]:
    return {
        "token": token,
        "offer": offer,
        "logged_in": logged_in,
        "login_url": url_for("auth_pages.login", next=url_for(".accept", token=token)),
    }


@bp.post("/invitations/accept/with/<name>")
@limits.invitation_accept
def accept_with_provider(name: str) -> Response:
    """The accept page's "Join with <provider>": to the provider, the invitation's token kept
    in the flow (docs/federation.md "Invitations")."""
    provider = federation_flow.provider_named(name)
    token = request.form.get("token", "")
    try:
        invitation_accept.preview(token)
        return federation_flow.leave_for(
            provider, url_for("auth_pages.home"), purpose="invitation", invitation=token
        )
    except AppError as exc:
        return render_form(ACCEPT_PAGE, exc, invalid=True)


@bp.get("/invitations/accept/federated")
@limits.invitation_accept
def accept_with_identity() -> Response:
    """Back from the provider: the account for the invited address, linked to that identity."""
    invited = session.pop(federation_flow.INVITED, None)
    if not isinstance(invited, dict) or invited.get("until", 0) < clock.now().timestamp():
        return see_other("auth_pages.login")
    token = invited["token"]
    try:
        offer = invitation_accept.preview(token)
    except AppError as exc:
        return render_form(ACCEPT_PAGE, exc, invalid=True)
    try:
        pair = invitation_accept.accept_with_identity(
            token, invited["provider"], invited["profile"], request_client()
        )
    except AppError as exc:  # the invitation stands: the page offers its other ways again
        return render_form(ACCEPT_PAGE, exc, **_offer_page(token, offer, logged_in=False))
    cookies.issue(pair)
    flash(f"You joined {offer.organization.name}.")
    return see_other("auth_pages.home")
