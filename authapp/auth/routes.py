"""/api/v1/auth: thin views that parse, call one service, and shape the answer."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from authapp.auth import cookies, limits, policy, relying_party
from authapp.auth.guards import (
    current_account,
    current_principal,
    current_user,
    require_login,
    require_login_unless,
)
from authapp.auth.schemas import (
    AcceptedOut,
    ForgotPasswordIn,
    LinkTokenIn,
    LoginIn,
    LogoutIn,
    RefreshIn,
    ResendIn,
    ResetPasswordIn,
    SignupIn,
    TokenPairOut,
    UserEnvelopeOut,
)
from authapp.auth.services import (
    accounts,
    email_change,
    logins,
    recovery,
    sessions,
    switching,
)
from authapp.platform.network import request_client
from authapp.security.passkeys import Presented

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign-up, login, tokens")


@bp.route("/signup", methods=["POST"])
@limits.signup
@policy.signup_open
@bp.arguments(SignupIn)
@bp.response(201, TokenPairOut)
@bp.alt_response(202, schema=AcceptedOut, success=True, description=policy.CHECK_YOUR_MAIL)
def signup(body: dict[str, Any]) -> sessions.TokenPair | tuple[Response, int]:
    """Create an account (and, with organization_name, a new organization it owns). With
    REQUIRE_VERIFIED_EMAIL the answer is 202 without tokens: log in after the mailed link."""
    pair = accounts.sign_up(**body, client=request_client())
    if pair is None:
        return jsonify({"message": policy.CHECK_YOUR_MAIL}), 202
    return pair


@bp.route("/login", methods=["POST"])
@limits.login
@bp.arguments(LoginIn)
@bp.response(200, TokenPairOut)
def login(body: dict[str, Any]) -> sessions.TokenPair:
    """Log in with an email or username; starts a new session. With MFA on, `totp_code` (or a
    recovery code) or `passkey` is needed too. The answer also sets a device cookie: with it,
    this client's logins are not held by failures other clients caused."""
    passkey = body.pop("passkey")
    pair = logins.log_in(
        **body,
        client=request_client(),
        device_cookie=cookies.device_cookie(),
        passkey=None if passkey is None else Presented(relying_party.current(), passkey),
    )
    cookies.remember_device(pair)
    return pair


@bp.route("/me", methods=["GET"])
@require_login()
@bp.response(200, UserEnvelopeOut)
def me() -> dict[str, Any]:
    """The calling user."""
    return {"user": current_account()}


@bp.route("/refresh", methods=["POST"])
@limits.refresh
@bp.arguments(RefreshIn)
@bp.response(200, TokenPairOut)
def refresh(body: dict[str, Any]) -> sessions.TokenPair:
    """Trade a refresh token for a new pair in the same session (single use).

    Without `refresh_token` in the body, the refresh cookie is used; it needs the
    `X-CSRF-TOKEN` header (the `csrf_refresh_token` cookie's value) and renews the cookies."""
    if body["refresh_token"] is None:
        return cookies.refresh_from_cookie()
    return sessions.refresh(body["refresh_token"], request_client())


class SwitchOrganizationIn(Schema):
    # Any string: one that is not a canonical UUID is 404 like an unknown id (AC-2).
    organization_id = fields.String(required=True, validate=validate.Length(min=1, max=100))


@bp.route("/switch-organization", methods=["POST"])
@limits.refresh  # a rotation: refresh's allowance, counted together
@require_login()
@bp.arguments(SwitchOrganizationIn)
@bp.response(200, TokenPairOut)
def switch_organization(body: dict[str, str]) -> sessions.TokenPair:
    """Make this session act in another of the caller's organizations (an active membership):
    the answer is a new token pair like a refresh's; the tokens issued before stop at once.
    A browser's cookies are renewed with it."""
    pair = switching.switch(current_principal(), body["organization_id"])
    if cookies.refresh_token() is not None:  # spent by the switch: the browser needs the new one
        cookies.issue(pair)
    return pair


@bp.route("/logout", methods=["POST"])
@require_login()
@bp.arguments(LogoutIn)
@bp.response(204)
def logout(body: dict[str, Any]) -> None:
    """End the current session now."""
    session_id = current_principal().session_id or ""
    sessions.log_out(current_account(), session_id, request_client(), body["refresh_token"])
    cookies.clear()


@bp.route("/logout-all", methods=["POST"])
@require_login()
@bp.response(204)
def logout_all() -> None:
    """End every session of the caller now."""
    sessions.log_out_all(current_account(), request_client())
    cookies.clear()


FORGOT_ANSWER = {"message": "If the address belongs to an account, a reset link is on its way."}


@bp.route("/password/forgot", methods=["POST"])
@limits.forgot_password_by_ip
@limits.forgot_password_by_email
@bp.arguments(ForgotPasswordIn)
@bp.response(202, AcceptedOut)
def forgot_password(body: dict[str, str]) -> dict[str, str]:
    """Mail a reset link (1 hour). The answer is the same whether or not the account exists."""
    recovery.forgot_password(body["email"], request_client())
    return FORGOT_ANSWER


@bp.route("/password/reset", methods=["POST"])
@bp.arguments(ResetPasswordIn)
@bp.response(204)
def reset_password(body: dict[str, str]) -> None:
    """Set a new password with a mailed token; every session of the account ends."""
    recovery.reset_password(body["token"], body["new_password"], request_client())


@bp.route("/email/verify", methods=["POST"])
@bp.arguments(LinkTokenIn)
@bp.response(204)
def verify_email(body: dict[str, str]) -> None:
    """Confirm the email address with the mailed token (7 days, single use)."""
    recovery.verify_email(body["token"])


@bp.route("/email/confirm-change", methods=["POST"])
@bp.arguments(LinkTokenIn)
@bp.response(204)
def confirm_email_change(body: dict[str, str]) -> None:
    """Move the account to the new address with the token mailed there (7 days, single use);
    every session of the account ends."""
    email_change.confirm_change(body["token"], request_client())


@bp.route("/email/resend", methods=["POST"])
@limits.resend
@limits.resend_by_email
@bp.arguments(ResendIn, required=False)  # no body: the logged-in caller
@require_login_unless("email")
@bp.response(202, AcceptedOut)
def resend_verification(body: dict[str, str | None]) -> dict[str, str]:
    """Mail a new verification link (nothing is sent when the address is verified already):
    to the logged-in caller, or, with `email` and no login needed, to the account with that
    address if it has one (the answer is the same either way)."""
    if body["email"] is not None:
        recovery.resend_verification_to(body["email"], request_client())
    else:
        recovery.resend_verification(current_user(), request_client())
    return {"message": "A verification link is on its way if the address needs one."}
