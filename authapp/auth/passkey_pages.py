"""The login pages' passkey buttons (docs/api.md "Passkeys"): the page's script asks for
options (JSON), lets the browser talk to the authenticator, and posts its answer in a form, so
the outcome is a page like any login's."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, redirect, request, session
from werkzeug.wrappers import Response

from authapp.auth import cookies, limits, relying_party
from authapp.auth.login_steps import MFA_LOGIN, PageAnswer, login_refused, pending_mfa_login
from authapp.auth.schemas import PasskeyFormIn
from authapp.auth.services import passkey_logins
from authapp.platform.errors import AppError, Conflict
from authapp.platform.network import request_client
from authapp.security.passkeys import Presented
from authapp.web.forms import json_refusal, load_form, safe_next

bp = Blueprint("passkey_pages", __name__)


@bp.app_context_processor
def _offered() -> dict[str, object]:
    """`passkeys_offered()` in every page: the passkey buttons only where the RP id can be
    this site's (relying_party.py)."""
    return {"passkeys_offered": _offered_here}


def _offered_here() -> bool:
    """relying_party.available(), once per request however often a page asks."""
    if "passkeys_offered" not in g:
        g.passkeys_offered = relying_party.available()
    return bool(g.passkeys_offered)


@bp.post("/login/passkey/options")
@limits.passkey_options
def login_options() -> Response:
    """Options for any passkey this site's authenticators hold (the button, and autofill)."""
    try:
        return jsonify(publicKey=passkey_logins.options(relying_party.current()))
    except AppError as exc:
        return json_refusal(exc)


@bp.post("/login/passkey")
@limits.login
def login() -> PageAnswer:
    next_path = safe_next(request.values.get("next"))
    session.pop(MFA_LOGIN, None)
    try:
        presented = Presented(relying_party.current(), load_form(PasskeyFormIn())["credential"])
        pair = passkey_logins.log_in(
            presented, client=request_client(), device_cookie=cookies.device_cookie()
        )
    except AppError as exc:
        return login_refused(exc, next_path)
    cookies.issue(pair)
    return redirect(next_path, code=303)


@bp.post("/login/code/passkey/options")
@limits.passkey_options
def second_step_options() -> Response:
    """Options for the passkeys of the account waiting for its second factor."""
    pending = pending_mfa_login()
    try:
        if pending is None:
            raise Conflict(
                "Log in again: the wait for your second factor ran out.", code="mfa_login_expired"
            )
        party = relying_party.current()
        return jsonify(publicKey=passkey_logins.options(party, user_id=pending["user_id"]))
    except AppError as exc:
        return json_refusal(exc)
