"""Browser pages of the settings blueprint: the same services as /api/v1/settings."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, request
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits
from authapp.auth.guards import (
    current_account,
    current_principal,
    current_user,
    page_login_required,
)
from authapp.auth.services import email_change, recovery
from authapp.platform.errors import AppError
from authapp.settings import schemas, security_page
from authapp.settings.services import account, api_keys, mfa, roles
from authapp.settings.services import members as member_services
from authapp.web.forms import load, load_form, render_form, see_other

bp = Blueprint("settings_pages", __name__, url_prefix="/settings")
PageAnswer = Response | tuple[str, int]


# Self-service


@bp.route("/profile", methods=["GET", "POST"])
@page_login_required()
def profile() -> PageAnswer:
    user = current_user()
    current = {"full_name": user.full_name, "username": user.username or ""}
    if request.method == "GET":
        return render_form("authapp/settings/profile.html", values=current)
    form = {
        "full_name": request.form.get("full_name", ""),
        "username": request.form.get("username"),
    }
    try:
        changes = load(schemas.ProfilePatchIn(), form | {"username": form["username"] or None})
        account.update_profile(current_principal(), user, changes)
    except AppError as exc:
        return render_form("authapp/settings/profile.html", exc, values=request.form)
    flash("Profile saved.")
    return see_other("settings_pages.profile")


@bp.post("/email")
@limits.password_change  # the API's count (RL-4): it checks the password
@page_login_required()
def change_email() -> PageAnswer:
    user = current_user()
    try:
        body = load_form(schemas.EmailChangeIn())
        email_change.request_change(current_principal(), user, **body)
    except AppError as exc:
        profile = {"full_name": user.full_name, "username": user.username or ""}
        values = profile | {"new_email": request.form.get("new_email", "")}
        return render_form("authapp/settings/profile.html", exc, values=values, failed="email")
    flash("A confirmation link is on its way to the new address. Open it to finish the change.")
    return see_other("settings_pages.profile")


@bp.post("/email/resend")
@limits.resend  # the API's count: a page must not double the allowance (RL-4)
@page_login_required()
def resend_verification() -> Response:
    recovery.resend_verification(current_user(), current_principal())
    flash("A new confirmation link is on its way to your email address.")
    return see_other("settings_pages.profile")


@bp.route("/password", methods=["GET", "POST"])
@limits.password_change
@page_login_required()
def password() -> PageAnswer:
    if request.method == "GET":
        return render_form("authapp/settings/password.html")
    try:
        account.change_password(
            current_principal(), current_user(), **load_form(schemas.PasswordChangeIn())
        )
    except AppError as exc:
        return render_form("authapp/settings/password.html", exc)
    flash("Password changed. Your other sessions were logged out.")
    return see_other("settings_pages.password")


@bp.get("/sessions")
@page_login_required()
def sessions() -> PageAnswer:
    listed = account.live_sessions(current_account().id)
    return render_form("authapp/settings/sessions.html", sessions=listed)


@bp.post("/sessions/<session_id>/revoke")
@page_login_required()
def revoke_session(session_id: str) -> Response:
    principal = current_principal()
    account.revoke_session(principal, current_user(), session_id)
    if session_id == principal.session_id:
        cookies.clear()
        return see_other("auth_pages.login")
    flash("Session logged out.")
    return see_other("settings_pages.sessions")


# Two-factor authentication (MFA)


@bp.get("/security")
@page_login_required()
def security() -> PageAnswer:
    return security_page.render()


@bp.post("/security/totp")
@limits.password_change
@page_login_required()
def start_mfa() -> PageAnswer:
    try:
        body = load_form(schemas.MfaEnrolIn())
        enrolment = mfa.start_enrolment(current_principal(), current_user(), body["password"])
    except AppError as exc:
        return security_page.render(exc)
    # The secret is shown in this answer only (no redirect: it must not pass through a URL).
    return security_page.render(enrolment=enrolment)


@bp.post("/security/totp/confirm")
@page_login_required()
def confirm_mfa() -> PageAnswer:
    try:
        code = load_form(schemas.MfaConfirmIn())["code"]
        recovery_codes = mfa.confirm_enrolment(current_principal(), current_user(), code)
    except AppError as exc:
        return security_page.render(exc, confirming=True)
    return security_page.render(recovery_codes=recovery_codes)


@bp.post("/security/totp/disable")
@limits.password_change
@page_login_required()
def disable_mfa() -> PageAnswer:
    def turn_off() -> str:
        mfa.disable(current_principal(), current_user(), **load_form(schemas.MfaDisableIn()))
        return "Two-factor authentication is off."

    return security_page.after(turn_off)


# API keys


def _api_keys_page(error: AppError | None = None, **context: Any) -> PageAnswer:
    principal = current_principal()
    return render_form(
        "authapp/settings/api_keys.html",
        error,
        values=request.form if error else {},
        keys=api_keys.list_keys(principal.organization_id),
        grantable=sorted(principal.permissions),
        **context,
    )


@bp.get("/api-keys")
@page_login_required("api_keys:manage")
def api_keys_page() -> PageAnswer:
    return _api_keys_page()


@bp.post("/api-keys")
@page_login_required("api_keys:manage")
def create_api_key() -> PageAnswer:
    try:
        created = api_keys.create_key(current_principal(), **load_form(schemas.ApiKeyIn()))
    except AppError as exc:
        return _api_keys_page(exc)
    # Shown in this answer only (no redirect: the key must not pass through a URL or flash).
    return _api_keys_page(new_key=created)


@bp.post("/api-keys/<key_id>/revoke")
@page_login_required("api_keys:manage")
def revoke_api_key(key_id: str) -> Response:
    api_keys.revoke_key(current_principal(), key_id)
    flash("API key revoked.")
    return see_other("settings_pages.api_keys_page")


# Members and roles


@bp.get("/members")
@page_login_required("users:read")
def members() -> PageAnswer:
    args = load(schemas.PageArgs(), request.args)
    principal = current_principal()
    return render_form(
        "authapp/settings/members.html",
        page=member_services.list_members(principal.organization_id, **args),
        roles=roles.list_roles(principal.organization_id),
    )


@bp.post("/members/<user_id>")
@page_login_required("users:manage")
def update_member(user_id: str) -> Response:
    changes = {"roles": request.form.getlist("roles"), "is_active": "is_active" in request.form}
    try:
        member = member_services.update_member(current_principal(), user_id, changes)
    except AppError as exc:  # AC-3 refusals: shown above the table, nothing changed
        flash(_sentence(exc), "error")
    else:
        flash(f"{member.email} updated.")
    return see_other("settings_pages.members")


def _roles_page(error: AppError | None = None) -> PageAnswer:
    principal = current_principal()
    return render_form(
        "authapp/settings/roles.html",
        error,
        values=request.form if error else {},
        roles=roles.list_roles(principal.organization_id),
        permissions=roles.list_permissions(),
    )


@bp.get("/roles")
@page_login_required("users:read")
def roles_page() -> PageAnswer:
    return _roles_page()


@bp.post("/roles")
@page_login_required("roles:manage")
def create_role() -> PageAnswer:
    try:
        roles.create_role(current_principal(), **load_form(schemas.RoleIn()))
    except AppError as exc:
        return _roles_page(exc)
    flash("Role created.")
    return see_other("settings_pages.roles_page")


@bp.post("/roles/<role_id>")
@page_login_required("roles:manage")
def update_role(role_id: str) -> Response:
    try:
        roles.update_role(current_principal(), role_id, load_form(schemas.RolePatchIn()))
    except AppError as exc:
        flash(_sentence(exc), "error")
    else:
        flash("Role saved.")
    return see_other("settings_pages.roles_page")


@bp.post("/roles/<role_id>/delete")
@page_login_required("roles:manage")
def delete_role(role_id: str) -> Response:
    try:
        roles.delete_role(current_principal(), role_id)
    except AppError as exc:
        flash(_sentence(exc), "error")
    else:
        flash("Role deleted.")
    return see_other("settings_pages.roles_page")


def _sentence(exc: AppError) -> str:
    details = [message for messages in (exc.fields or {}).values() for message in messages]
    return " ".join([exc.message, *details])
