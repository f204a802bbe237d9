"""The login pages' shared steps (auth/pages.py, auth/passkey_pages.py): the login form shown
again with why, and the account waiting between its password and its second factor."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, request, session
from werkzeug.wrappers import Response

from authapp.auth import passkey_checks, policy, relying_party
from authapp.auth.schemas import LoginCodeIn, PasskeyFormIn
from authapp.platform import clock
from authapp.platform.errors import AppError
from authapp.security.passkeys import Presented
from authapp.web.forms import load_form, render_form, see_other

PageAnswer = Response | tuple[str, int] | str


def login_refused(exc: AppError, next_path: str, **context: Any) -> Response:
    """The login form again, with why; an unconfirmed account (REQUIRE_VERIFIED_EMAIL) is
    shown the way to a new link rather than the API's wording."""
    unverified = isinstance(exc, policy.EmailUnverified)
    return render_form(
        "authapp/auth/login.html", exc, next=next_path, unverified=unverified, **context
    )


# Between the password and the code, the account waits in the signed session cookie, never the
# password in the page: the second step posts only `totp_code`.
MFA_LOGIN = "mfa_login"


def ask_for_code(user_id: str, next_path: str, method: str = "password") -> Response:
    """The second step's page; `method` is how the first step proved the person (the audit
    trail's, for the login the code completes)."""
    until = clock.now().timestamp() + current_app.config["MFA_LOGIN_TTL"]
    session[MFA_LOGIN] = {"user_id": user_id, "until": until, "next": next_path, "method": method}
    return see_other("auth_pages.login_code")


def pending_mfa_login() -> dict[str, Any] | None:
    """The account waiting for its second factor, unless the wait ran out (then it is
    forgotten, and the next page says so)."""
    pending = session.get(MFA_LOGIN)
    if not isinstance(pending, dict) or pending.get("until", 0) < clock.now().timestamp():
        session.pop(MFA_LOGIN, None)
        if pending is not None:
            flash("Log in again: the wait for your code ran out.")
        return None
    return pending


def second_factor_of_form() -> tuple[str | None, Presented | None]:
    """The second step's form: a passkey's answer when the page's script posted one, else the
    code. Raises AppError (a field message, or PasskeysUnavailable)."""
    if "credential" in request.form:
        credential = load_form(PasskeyFormIn())["credential"]
        return None, Presented(relying_party.current(), credential)
    return load_form(LoginCodeIn())["totp_code"], None


def code_page(pending: dict[str, Any], error: AppError | None = None) -> Response:
    """The second step's page; its passkey button only for an account that has a passkey."""
    has_passkey = bool(passkey_checks.credential_ids(pending["user_id"]))
    return render_form("authapp/auth/login_code.html", error, has_passkey=has_passkey)
