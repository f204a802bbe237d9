"""The login and sign-up pages' "Log in with <provider>" buttons, and the one way back from
every provider (docs/federation.md); the flow itself is auth/federation_flow.py."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from authapp.auth import cookies, federation_flow, limits, policy
from authapp.auth.login_steps import ask_for_code, login_refused
from authapp.auth.services import federated_logins, identity_links
from authapp.platform import clock
from authapp.platform.errors import AppError
from authapp.platform.federation_settings import Provider
from authapp.platform.network import request_client
from authapp.web.forms import safe_next

bp = Blueprint("federation_pages", __name__)
SECURITY_PAGE = "settings_pages.security"


@bp.app_context_processor
def _providers() -> dict[str, object]:
    """`identity_providers` in every page: the buttons, in the order they were configured."""
    return {"identity_providers": list(current_app.config["FEDERATION_PROVIDERS"].values())}


@bp.post("/login/with/<name>")
@limits.login
def start(name: str) -> Response:
    provider = federation_flow.provider_named(name)
    next_path = safe_next(request.values.get("next"))
    try:
        return federation_flow.leave_for(provider, next_path)
    except AppError as exc:
        return login_refused(exc, next_path)


@bp.get("/login/with/<name>/continue")
def leave(name: str) -> Response | str:
    """The way out to the provider, for the flow this browser started: its refresh and link
    leave this site as no form's redirect may (templates' leaving.html says why)."""
    provider = federation_flow.provider_named(name)
    flow = session.get(federation_flow.FLOW)
    if not isinstance(flow, dict) or flow.get("provider") != provider.name:
        return redirect(url_for("auth_pages.login"), code=303)
    return render_template(
        "authapp/auth/leaving.html", provider=provider, url=flow["authorization_url"]
    )


@bp.get("/login/with/<name>/callback")
@limits.federation_callback
def callback(name: str) -> Response:
    provider = federation_flow.provider_named(name)
    flow = session.pop(federation_flow.FLOW, None)  # one way back per start
    if isinstance(flow, dict) and flow.get("purpose") == "link":
        return _linked(provider, flow)
    if isinstance(flow, dict) and flow.get("purpose") == "invitation":
        return _invited(provider, flow)
    next_path = safe_next(flow.get("next") if isinstance(flow, dict) else None)
    try:
        outcome = federation_flow.sign_in(provider, federation_flow.come_back(provider, flow))
    except AppError as exc:
        return login_refused(exc, next_path)
    return _signed_in(outcome, next_path)


def _linked(provider: Provider, flow: dict[str, object]) -> Response:
    """Back from a "Connect" of the security page: only to the account and session that left."""
    principal = cookies.browser_principal()
    try:
        if (
            principal is None
            or principal.user is None
            or (
                (principal.user.id, principal.session_id)
                != (flow.get("user_id"), flow.get("session_id"))
            )
        ):
            raise federation_flow.refused(provider, "not_the_owner")
        profile = federation_flow.come_back(provider, flow)
        done = identity_links.link(
            principal.user.id, provider.name, provider.display_name, profile, request_client()
        )
    except AppError as exc:
        done = exc.message
    flash(done)
    return redirect(url_for(SECURITY_PAGE), code=303)


def _invited(provider: Provider, flow: dict[str, Any]) -> Response:
    try:
        profile = federation_flow.come_back(provider, flow)
    except AppError as exc:
        return login_refused(exc, url_for("auth_pages.home"))
    session[federation_flow.INVITED] = {
        "provider": provider.name,
        "profile": profile,
        "token": flow.get("invitation", ""),
        "until": clock.now().timestamp() + current_app.config["FEDERATION_FLOW_TTL"],
    }
    return redirect(url_for("invitation_pages.accept_with_identity"), code=303)


def _signed_in(outcome: federated_logins.Outcome, next_path: str) -> Response:
    if isinstance(outcome, federated_logins.SecondFactorNeeded):
        return ask_for_code(outcome.user_id, next_path, method=federated_logins.METHOD)
    if outcome is None:  # REQUIRE_VERIFIED_EMAIL: the account waits for its link
        flash(policy.CHECK_YOUR_MAIL)
        return redirect(url_for("auth_pages.login"), code=303)
    cookies.issue(outcome)
    return redirect(next_path, code=303)
