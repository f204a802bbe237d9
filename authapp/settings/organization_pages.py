"""Browser pages for organizations: switching, creating, leaving, transferring ownership,
deleting one, and removing a member. The same services and schemas as
settings/organization_routes.py; a move of the session sets the new cookies like the API."""

from __future__ import annotations

from flask import Blueprint, flash, request
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits
from authapp.auth.guards import current_principal, current_user, page_login_required
from authapp.auth.services import switching
from authapp.auth.services.sessions import TokenPair
from authapp.platform.errors import AppError, ValidationFailed
from authapp.settings import organization_schemas as schemas
from authapp.settings.services import members, organization_deletion, organizations
from authapp.web.forms import load, load_form, render_form, see_other

bp = Blueprint("organization_pages", __name__, url_prefix="/settings")
PageAnswer = Response | tuple[str, int]
TEMPLATE = "authapp/settings/organizations.html"
CONFIRM = "Tick the box to confirm that the organization and its data go for good."
MEMBERS_SHOWN = 100  # the transfer form's choice: an owner of more pages types nothing here


def _page(error: AppError | None = None, *, failed: str | None = None) -> Response:
    principal = current_principal()
    listed = members.list_members(principal.organization_id, limit=MEMBERS_SHOWN, cursor=None)
    me = principal.user.id if principal.user else ""
    return render_form(
        TEMPLATE,
        error,
        values=request.form if error else {},
        failed=failed,
        organizations=organizations.list_mine(principal),
        others=[m for m in listed.items if m.id != me and m.is_active],
    )


@bp.get("/organizations")
@page_login_required()
def organizations_page() -> PageAnswer:
    return _page()


@bp.post("/organizations")
@page_login_required()
def create_organization() -> PageAnswer:
    try:
        created = organizations.create(current_principal(), **load_form(schemas.OrganizationIn()))
    except AppError as exc:
        return _page(exc, failed="create")
    flash(f"{created.name} created. Switch to it to work there.")
    return see_other("organization_pages.organizations_page")


@bp.post("/organizations/<organization_id>/switch")
@limits.refresh  # the API's count: a rotation
@page_login_required()
def switch_organization(organization_id: str) -> Response:
    try:
        pair = switching.switch(current_principal(), organization_id)
    except AppError as exc:
        flash(exc.message, "error")
    else:
        _moved(pair, f"You now work in {pair.user.organization.name}.")
    return see_other("organization_pages.organizations_page")


@bp.post("/organization/leave")
@page_login_required()
def leave_organization() -> Response:
    left = current_principal().organization.name
    try:
        pair = organizations.leave(current_principal())
    except AppError as exc:
        flash(exc.message, "error")
    else:
        _moved(pair, f"You left {left}; you now work in {pair.user.organization.name}.")
    return see_other("organization_pages.organizations_page")


@bp.post("/organization/transfer")
@page_login_required()
def transfer_ownership() -> PageAnswer:
    try:
        body = load_form(schemas.TransferIn())
        organizations.transfer_ownership(current_principal(), body["user_id"])
    except AppError as exc:
        return _page(exc, failed="transfer")
    flash("Ownership transferred: you are now an admin here.")
    return see_other("organization_pages.organizations_page")


@bp.post("/organization/delete")
@limits.password_change  # the API's count (RL-4): it checks the password
@page_login_required()
def delete_organization() -> PageAnswer:
    try:
        if request.form.get("delete_confirm") != "yes":
            raise ValidationFailed({"confirm": [CONFIRM]}, CONFIRM)
        password = request.form.get("delete_password")
        body = load(schemas.OrganizationDeleteIn(), {"password": password})
        organization_deletion.delete_organization(current_principal(), current_user(), **body)
    except AppError as exc:
        # The page's other forms have fields too: this form's are prefixed.
        exc.fields = {f"delete_{name}": why for name, why in (exc.fields or {}).items()}
        return _page(exc, failed="delete")
    cookies.clear()  # the session acted in it, and ended with it
    flash("The organization was deleted. Log in again to work in another one.")
    return see_other("auth_pages.login")


@bp.post("/members/<user_id>/remove")
@page_login_required("users:manage")
def remove_member(user_id: str) -> Response:
    try:
        organizations.remove_member(current_principal(), user_id)
    except AppError as exc:  # AC-3 refusals: shown above the table, nothing changed
        flash(exc.message, "error")
    else:
        flash("Member removed.")
    return see_other("settings_pages.members")


def _moved(pair: TokenPair, message: str) -> None:
    cookies.issue(pair)  # the old cookies' tokens were spent: this answer carries the new ones
    flash(message)
