"""Browser pages of the auth blueprint: the same services as /api/v1/auth, with cookies."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
)
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits, login_steps, policy, second_factor
from authapp.auth.schemas import (
    ForgotPasswordIn,
    LinkTokenIn,
    LoginIn,
    ResetPasswordIn,
    SignupIn,
)
from authapp.auth.services import accounts, email_change, logins, recovery, sessions
from authapp.platform import hooks
from authapp.platform.errors import AppError
from authapp.platform.network import request_client
from authapp.web.forms import load_form, render_form, safe_next, see_other

bp = Blueprint("auth_pages", __name__)
PageAnswer = login_steps.PageAnswer


@bp.get("/")
def home() -> str:
    cookies.browser_principal()  # the page shows who is logged in, if anyone
    return render_template("authapp/home.html")


@bp.route("/signup", methods=["GET", "POST"])
@limits.signup
def signup() -> PageAnswer:
    """Closed (SIGNUP_MODE), the page says so and has no form; with REQUIRE_VERIFIED_EMAIL a
    sign-up ends on "check your mail", logged in nowhere."""
    template, refusal = "authapp/auth/signup.html", policy.signup_refusal()
    context = {
        "min_length": current_app.config["PASSWORD_MIN_LENGTH"],
        "closed": refusal.message if refusal else None,
    }
    if refusal is not None or request.method == "GET":
        return render_form(template, refusal if request.method == "POST" else None, **context)
    try:
        pair = accounts.sign_up(**load_form(SignupIn()), client=request_client())
    except AppError as exc:
        return render_form(template, exc, values=request.form, **context)
    if pair is None:
        return render_form(template, sent=True, **context)
    cookies.issue(pair)
    return see_other("auth_pages.home")


@bp.route("/login", methods=["GET", "POST"])
@limits.login
def login() -> PageAnswer:
    next_path = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_form("authapp/auth/login.html", next=next_path)
    session.pop(login_steps.MFA_LOGIN, None)
    try:
        body = load_form(LoginIn(only=("login", "password")))
        pair = logins.log_in(
            **body,
            totp_code=None,
            client=request_client(),
            device_cookie=cookies.device_cookie(),
        )
    except second_factor.MfaRequired as exc:
        return login_steps.ask_for_code(exc.user_id, next_path)
    except AppError as exc:
        return login_steps.login_refused(exc, next_path, values=request.form)
    cookies.issue(pair)
    return redirect(next_path, code=303)


@bp.route("/login/code", methods=["GET", "POST"])
@limits.login
def login_code() -> PageAnswer:
    """The login form's second step (MFA): a TOTP code or a recovery code, or a passkey's
    answer (`credential`, posted by passkeys.js; options from auth/passkey_pages.py)."""
    pending = login_steps.pending_mfa_login()
    if pending is None:
        return see_other("auth_pages.login")
    if request.method == "GET":
        return login_steps.code_page(pending)
    try:
        code, passkey = login_steps.second_factor_of_form()
        pair = logins.log_in_second_step(
            user_id=pending["user_id"],
            totp_code=code,
            passkey=passkey,
            client=request_client(),
            device_cookie=cookies.device_cookie(),
            method=str(pending.get("method", "password")),
        )
    except policy.EmailUnverified as exc:  # every credential was right: the login is over
        session.pop(login_steps.MFA_LOGIN, None)
        return login_steps.login_refused(exc, safe_next(pending.get("next")))
    except AppError as exc:
        return login_steps.code_page(pending, exc)
    session.pop(login_steps.MFA_LOGIN, None)
    cookies.issue(pair)
    return redirect(safe_next(pending.get("next")), code=303)


@bp.post("/logout")
def logout() -> Response:
    """SE-1: the session ends on the server and both cookies go."""
    principal = cookies.browser_principal()
    if principal is not None and principal.user is not None and principal.session_id:
        sessions.log_out(principal.user, principal.session_id, request_client())
    cookies.clear()
    return see_other("auth_pages.login")


@bp.route("/forgot-password", methods=["GET", "POST"])
@limits.forgot_password_by_ip
@limits.forgot_password_by_email
def forgot_password() -> PageAnswer:
    if request.method == "GET":
        return render_form("authapp/auth/forgot_password.html")
    try:
        body = load_form(ForgotPasswordIn())
    except AppError as exc:
        return render_form("authapp/auth/forgot_password.html", exc, values=request.form)
    recovery.forgot_password(body["email"], request_client())
    return render_form(
        "authapp/auth/forgot_password.html", sent=True
    )  # the same page for any email


@bp.route("/verify-email/resend", methods=["GET", "POST"])
@limits.resend  # the API's counts (RL-4): per client address here, and per address asked for
@limits.resend_by_email
def resend_verification() -> PageAnswer:
    """A new verification link by address, without a login: the way back for an account that
    REQUIRE_VERIFIED_EMAIL keeps from logging in. The same page for any address."""
    template = "authapp/auth/resend_verification.html"
    if request.method == "GET":
        return render_form(template)
    try:
        body = load_form(ForgotPasswordIn())  # the same one field: a required email address
    except AppError as exc:
        return render_form(template, exc, values=request.form)
    recovery.resend_verification_to(body["email"], request_client())
    return render_form(template, sent=True)


@bp.route("/reset-password", methods=["GET", "POST"])
def reset_password() -> PageAnswer:
    """The token arrives in the link's query and leaves it at once: it goes into the form, and
    the page sends no Referer (RS-2)."""
    hooks.send_no_referrer()
    token = request.values.get("token", "")
    if request.method == "GET":
        return render_form("authapp/auth/reset_password.html", token=token)
    try:
        body = load_form(ResetPasswordIn())
        recovery.reset_password(body["token"], body["new_password"], request_client())
    except AppError as exc:
        return render_form("authapp/auth/reset_password.html", exc, token=token)
    flash("Your password is changed and every session is logged out. Log in with it now.")
    return see_other("auth_pages.login")


@bp.route("/verify-email", methods=["GET", "POST"])
def verify_email() -> PageAnswer:
    """GET shows a button (a GET never changes state); its POST spends the token."""
    hooks.send_no_referrer()
    token = request.values.get("token", "")
    if request.method == "GET":
        return render_form("authapp/auth/verify_email.html", token=token)
    try:
        recovery.verify_email(load_form(LinkTokenIn())["token"])
    except AppError as exc:
        return render_form("authapp/auth/verify_email.html", exc, token=token)
    flash("Your email address is confirmed.")
    return see_other("auth_pages.home")


@bp.route("/confirm-email-change", methods=["GET", "POST"])
def confirm_email_change() -> PageAnswer:
    """The verify page's way: GET shows a button, its POST spends the token. Every session of
    the account ends, this browser's included, so its cookies go too."""
    hooks.send_no_referrer()
    token = request.values.get("token", "")
    if request.method == "GET":
        return render_form("authapp/auth/confirm_email_change.html", token=token)
    try:
        email_change.confirm_change(load_form(LinkTokenIn())["token"], request_client())
    except AppError as exc:
        return render_form("authapp/auth/confirm_email_change.html", exc, token=token)
    cookies.clear()
    flash("Your email address is changed and every session is logged out. Log in with it now.")
    return see_other("auth_pages.login")
